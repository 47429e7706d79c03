# The two commands of the README. Each sets itself up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Exact versions and hashes: requirements.lock (runtime, for operators), requirements-test.lock
# (runtime + the test extra + build, for this venv). `make lock` regenerates both.
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command "make lock"

.PHONY: demo test lint venv postgres clean report-example dist lock

# Every locked package first, hash-checked; then the project itself (editable: it cannot be
# hashed) and anything pyproject.toml added since the lock was made.
$(STAMP): pyproject.toml requirements-test.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-test.lock
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

postgres:
	@scripts/ensure-postgres.sh

# The gates (docs/architecture.md, "Gates"): style, types, layer rules, module size. `make test` runs them first.
LINT_PATHS := retentiond tests bench demo tools
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict retentiond
	$(BIN)/lint-imports
	$(BIN)/python tools/check_module_size.py

test: lint postgres
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/python -m demo.run

# The README's screenshot: the demo's report in headless Chromium (Debian's chromium package).
report-example: demo
	$(BIN)/python -m tests.report.browser demo/out/report.html docs/report-example.png 1700
# sdist + wheel in dist/ (SOURCE_DATE_EPOCH = the last commit: the same commit builds the same wheel).
dist: $(STAMP)
	rm -rf dist
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(BIN)/python -m build --outdir dist .

lock: $(STAMP)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements.lock
	echo build | $(BIN)/uv pip compile pyproject.toml - --extra test $(LOCK_FLAGS) -o requirements-test.lock

clean:
	rm -rf $(VENV) build dist *.egg-info demo/out
