# Field Kit: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_HOME ?= $(CURDIR)/.demo
PYTEST_ARGS ?=
# make test's image test: auto = when the Debian root is cached (see image-build/test/cache.sh),
# 0 = never, 1 = always (builds the root when it is not cached: 2-3 minutes more, twice that when busy).
IMAGE_TEST ?= auto

.PHONY: demo test bench lint deps apt-deps image-test clean help

help:
	@echo "make demo   - install what is needed, start the whole kit with simulated hardware"
	@echo "make test   - install what is needed, run the full test suite (and the image test when its root is cached)"
	@echo "make bench  - run every benchmark, print one table, write bench/results/*.json"
	@echo "make lint   - ruff"
	@echo "make image-test - install the kit on a Debian root (built once, then cached), boot it under QEMU"

# Debian packages: install only the missing ones (a fresh machine has none of them).
APT_LISTS ?= .ci/apt-packages
apt-deps:
	@missing=""; for p in python3-venv $$(cat $(APT_LISTS) | grep -v '^#' | tr -s ' \n' ' '); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

deps: apt-deps $(STAMP)

demo: deps
	@rm -rf $(DEMO_HOME)
	FIELDKIT_HOME=$(DEMO_HOME) $(VENV)/bin/fieldkit init --kit-id demo --site demo --demo
	FIELDKIT_HOME=$(DEMO_HOME) $(VENV)/bin/fieldkit up --simulate

test: deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 4 --dist loadgroup -q -rfE $(PYTEST_ARGS)
	@case "$(IMAGE_TEST)" in \
	  0|no|off) echo "image test not run: IMAGE_TEST=$(IMAGE_TEST)" ;; \
	  1|yes|on) bash image-build/test/run.sh ;; \
	  *) bash image-build/test/run.sh --if-cached ;; \
	esac

bench: deps
	@$(MAKE) --no-print-directory apt-deps APT_LISTS=.ci/bench-apt-packages
	$(PY) bench/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

image-test: apt-deps $(STAMP)
	bash image-build/test/run.sh

clean:
	rm -rf $(VENV) $(DEMO_HOME) bench/results build *.egg-info
