# The two commands of the README. Each sets itself up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv postgres clean report-example

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

postgres:
	@scripts/ensure-postgres.sh

test: $(STAMP) postgres
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/python -m demo.run

# The README's screenshot: the demo's report in headless Chromium (Debian's chromium package).
report-example: demo
	$(BIN)/python -m tests.report.browser demo/out/report.html docs/report-example.png 1700

clean:
	rm -rf $(VENV) build *.egg-info demo/out
