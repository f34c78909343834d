# crosstune: two commands do everything on a fresh machine.
#   make demo   create .venv, install crosstune with PyTorch, run the demo job
#   make test   create/update .venv, install the test extras, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Stamps: reinstall only when pyproject.toml changes.
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test sysdeps clean

demo: $(RUN_STAMP) sysdeps
	$(BIN)/crosstune demo

test: $(TEST_STAMP) sysdeps
	$(BIN)/python -m pytest

# System packages crosstune needs, installed when missing: a C compiler that links host modules.
sysdeps:
	@command -v cc >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gcc; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[torch]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[torch,test]'
	touch $@ $(RUN_STAMP)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
