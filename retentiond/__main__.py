"""``python -m retentiond``: the same entry point as the console script."""

from retentiond.cli.main import main

if __name__ == "__main__":
    main()
