# Two commands do all the set-up on a fresh machine (README, "Quick start"):
#   make train   a virtual environment (.venv) with the pinned requirements, then the main job on the embedded data
#   make test    the same plus the test requirements and the system packages the tests use (redis-server, a Java
#                runtime for Spark), then the whole test suite; .ci/run calls it
# A second run skips what is installed: each install leaves a stamp named after the hash of the requirements files,
# so editing a pin reinstalls, nothing else does. PYTHON picks the interpreter (python3.11, as the pins were
# resolved for; else python3);
# PYTEST_ARGS passes options to pytest (e.g. make test PYTEST_ARGS='-m "not slow"').

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3.11)
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-16)
DEV_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
RUN_STAMP := $(VENV)/.installed-run-$(RUN_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_HASH)
PIP := $(BIN)/python -m pip install --quiet --progress-bar off

.PHONY: train test system-packages

train: $(RUN_STAMP)
	$(BIN)/python run.py --pipeline train

test: system-packages $(DEV_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=<python3.11 path>" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(RUN_STAMP): | $(BIN)/python
	@echo "installing requirements.txt into $(VENV) (once; a few minutes)"
	$(PIP) -r requirements.txt
	@rm -f $(VENV)/.installed-run-* && touch $@

$(DEV_STAMP): | $(BIN)/python
	@echo "installing requirements.txt and requirements-dev.txt into $(VENV) (once; a few minutes)"
	$(PIP) -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@ $(RUN_STAMP)

# Installed only when missing; apt-get through sudo unless already root.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
