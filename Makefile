# The two commands of the README. Each sets itself up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv postgres clean

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

clean:
	rm -rf $(VENV) build *.egg-info demo/out
