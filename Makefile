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

# Two workers, each test file on one of them (its module fixtures built once): most tests spend
# their time in one-threaded TVM builds, so a 2-core machine runs the suite in about two thirds
# of the time (29 min serially on a 2-core AVX2 VM).
test: $(TEST_STAMP) sysdeps
	$(BIN)/python -m pytest -n 2 --dist loadfile

# System packages, installed when missing (Debian/Ubuntu names):
#   gcc                    links host modules
#   g++-aarch64-linux-gnu  cross-links modules for the ARM board presets (rpi4, rpi5, ...)
#   qemu-user-static       runs emulated aarch64 boards (`crosstune board emulate`)
#   mmdebstrap             unpacks the emulated boards' arm64 Debian userland
#   chromium               renders reports in the browser tests
SYSPKGS := cc:gcc aarch64-linux-gnu-g++:g++-aarch64-linux-gnu qemu-aarch64-static:qemu-user-static \
           mmdebstrap:mmdebstrap chromium:chromium
sysdeps:
	@missing=""; for pair in $(SYSPKGS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

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
