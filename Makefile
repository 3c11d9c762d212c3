# tokenbroker — every install step lives here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint system-deps bench readme clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,speed]'
	touch $(STAMP)

# System packages: Chromium for the browser tests, wrk for `make bench`; installed when
# missing and we are allowed to (root), otherwise the browser tests / bench say why they cannot run.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's$$missing"; \
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

bench: install system-deps
	$(BIN)/python -m bench | tee bench/RESULTS.md.new && mv bench/RESULTS.md.new bench/RESULTS.md
	$(BIN)/python docs/build_readme.py

readme: install
	$(BIN)/python docs/build_readme.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
