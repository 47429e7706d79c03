"""Command-line interface (SPEC §6): thin click commands that call actions and render results."""
