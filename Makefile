# Two commands do all set-up on a fresh machine (Python 3.11+):
#   make serve   installs the gateway into .venv and starts it on the embedded Kokoro backend
#   make test    installs the test tools too and runs lint, type checks and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

CHROMIUM ?= /usr/bin/chromium

.PHONY: serve test lint typecheck pytest bench browser clean

serve: $(VENV)/.installed
	$(BIN)/tts-gateway serve $(ARGS)

test: $(VENV)/.installed-test browser lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (never a browser downloaded by Playwright). As root,
# install it when it is missing; otherwise those tests are skipped with a reason.
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	           apt-get install -y -qq chromium; } >"$$log" 2>&1; then \
	      cat "$$log"; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "note: $(CHROMIUM) is missing; the browser tests will be skipped" \
	         "(install Debian's chromium package to run them)"; \
	  fi; \
	fi

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.first_audio $(BENCH_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
