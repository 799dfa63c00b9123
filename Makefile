# One command for every standing promise: `make check` before pushing, `make fast` while editing.
# Everything runs from the project's own .venv (python3 -m venv .venv && .venv/bin/pip install
# -e '.[test]'); nothing is fetched at run time.

VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := broker core workers api client config telemetry ops
# mypy sees the top-level folders under their import names (anygate.broker, ...) through a tree
# of symlinks, exactly as tests/test_quality_gates.py does.
MYPY_TREE := .mypy-tree

.PHONY: check fast lint format-check mypy test

check: lint format-check mypy test

fast:
	$(BIN)/python -m pytest -q -m "not slow"

lint:
	$(BIN)/ruff check .

format-check:
	$(BIN)/ruff format --check .

mypy:
	rm -rf $(MYPY_TREE) && mkdir -p $(MYPY_TREE)/anygate
	for p in $(PACKAGES); do ln -s "$(CURDIR)/$$p" $(MYPY_TREE)/anygate/$$p; done
	cd $(MYPY_TREE) && MYPYPATH="$(CURDIR)/$(MYPY_TREE)" "$(CURDIR)/$(BIN)/mypy" \
		--config-file "$(CURDIR)/pyproject.toml" --cache-dir "$(CURDIR)/.mypy_cache" -p anygate

test:
	$(BIN)/python -m pytest -q
