# tokenbroker — every install step lives here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint test-min-versions system-deps bench readme clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,speed]'
	touch $(STAMP)

# System packages the tests need (Chromium for the browser tests, wrk for the SIGTERM load
# check and `make bench`, redis-server for the throwaway TLS/ACL Redis instances); installed when
# missing and we are allowed to (root), otherwise the tests that need them say why they cannot run.
SYSTEM_PACKAGES := chromium wrk redis-server

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's$$missing for the tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "WARNING: could not install$$missing"; \
	  else echo "WARNING:$$missing missing and cannot be installed (not root)"; fi; \
	fi

run: install
	$(BIN)/tokenbroker dev

test: install system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check service emulators minimal_client tests
	$(BIN)/hadolint Dockerfile
	$(BIN)/mypy

# The lowest allowed versions: a fresh venv, the package installed with every runtime dependency
# pinned to its pyproject floor, then every module imported and the example config checked.
MIN_VENV := .venv-min
RUNTIME_EXTRAS := telemetry,speed
test-min-versions:
	rm -rf $(MIN_VENV) && $(PYTHON) -m venv $(MIN_VENV)
	$(PYTHON) .ci/min_versions.py constraints > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/pip install --quiet -c $(MIN_VENV)/constraints.txt ".[$(RUNTIME_EXTRAS)]" && rm -rf build
	cd $(MIN_VENV) && bin/python ../.ci/min_versions.py import-all
	$(MIN_VENV)/bin/tokenbroker check-config --config deploy/config.example.toml

bench: install system-deps
	$(BIN)/python -m bench | tee bench/RESULTS.md.new && mv bench/RESULTS.md.new bench/RESULTS.md
	$(BIN)/python docs/build_readme.py

readme: install
	$(BIN)/python docs/build_readme.py

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache build *.egg-info
