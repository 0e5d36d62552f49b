# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-faults lint bench docs clean browser-deps

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "tape needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@bash scripts/demo.sh

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  echo "note: Chromium not found: the browser tests (tests/test_browser.py) are skipped; make browser-deps installs it"
	$(BIN)/python -m pytest -q

# Headless Chromium and its driver for tests/test_browser.py (Debian/Ubuntu packages).
browser-deps:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }

test-faults: $(STAMP)
	$(BIN)/python -m pytest -q -m faults tests/test_engine_faults.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: $(STAMP)
	$(BIN)/python -m tape.cli.reference > docs/cli.md
	$(BIN)/python -m tape.cli.root_help

bench: $(STAMP)
	$(BIN)/tape bench log
	$(BIN)/tape bench backtest

clean:
	rm -rf $(VENV) results charts logs *.egg-info
