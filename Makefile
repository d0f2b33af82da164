# Two commands do all set-up on a fresh machine (Python 3.11+):
#   make serve   installs the gateway into .venv and starts it on the embedded Kokoro backend
#   make test    installs the test tools too (as root also the Debian packages some tests need:
#                chromium, libportaudio2, haproxy, redis-server) and runs lint, type checks and
#                the whole test suite
#   make bench   installs the `bench` extra and runs the benchmark suite (bench/suite.py); pass
#                options with BENCH_ARGS, e.g. make bench BENCH_ARGS=--quick
#   make screenshots  retakes the demo page's screenshots in docs/screenshots (needs chromium)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

CHROMIUM ?= /usr/bin/chromium
HAPROXY ?= /usr/sbin/haproxy
REDIS_SERVER ?= /usr/bin/redis-server

.PHONY: serve test lint typecheck pytest bench screenshots system-packages clean

serve: $(VENV)/.installed
	$(BIN)/tts-gateway serve $(ARGS)

test: $(VENV)/.installed-test system-packages lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

screenshots: $(VENV)/.installed-test
	$(BIN)/python docs/screenshots/make_screenshots.py

# System packages some tests need: Debian's chromium for the browser tests (never a browser
# downloaded by Playwright), PortAudio for `say --play`, and HAProxy and Redis for the cluster
# tests (each test starts its own haproxy and redis-server on loopback ports; no system service
# is used). As root, install what is missing; otherwise those tests are skipped with a reason.
system-packages:
	@missing=""; \
	[ -x "$(CHROMIUM)" ] || missing="$$missing chromium"; \
	ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2' || missing="$$missing libportaudio2"; \
	[ -x "$(HAPROXY)" ] || missing="$$missing haproxy"; \
	[ -x "$(REDIS_SERVER)" ] || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages for the tests:$$missing"; \
	    log=$$(mktemp); \
	    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	           apt-get install -y -qq $$missing; } >"$$log" 2>&1; then \
	      cat "$$log"; rm -f "$$log"; exit 1; \
	    fi; \
	    rm -f "$$log"; \
	  else \
	    echo "note: missing$$missing; the tests that need them will be skipped" \
	         "(install these Debian packages to run them)"; \
	  fi; \
	fi

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.suite $(BENCH_ARGS)

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

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
