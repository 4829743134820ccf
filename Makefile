# Payloom: two commands on a fresh machine.
#   make run    installs what is missing, then runs the whole platform locally
#   make test   installs what is missing, then runs every test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)

.PHONY: run test test-unit test-fast bench bench-quick build checkov deps clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

# npm ci installs exactly the committed lockfile and never rewrites it; `install` would.
node_modules/.bin/anvil: package.json package-lock.json
	@npm ci --no-audit --no-fund --silent
	@touch $@

# Browser tests drive Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@echo "installing Chromium from the Debian packages (browser tests)"
	@$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	  || { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q >/dev/null && \
	       $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

# Khmer glyphs for the pages' browser tests and screenshots (Debian's Khmer OS fonts).
KHMER_FONT := /usr/share/fonts/truetype/khmeros/KhmerOS.ttf
$(KHMER_FONT):
	@$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-khmeros >/dev/null \
	  || { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q >/dev/null && \
	       $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-khmeros >/dev/null; }

deps: $(STAMP) node_modules/.bin/anvil $(CHROMIUM) $(KHMER_FONT)
	@$(PY) -m infra.local.preflight

run: deps
	@$(PY) -m infra.local.stack

test: deps
	@$(PY) -m pytest -q --durations=25
	@bash infra/checkov.sh

test-unit: $(STAMP)
	@$(PY) -m pytest -q -m "unit and not e2e"

test-fast: deps
	@$(PY) -m pytest -q -m "not e2e" -x

bench: deps
	@$(PY) -m bench.run

bench-quick: deps
	@$(PY) -m bench.run --quick

build: deps
	@$(PY) infra/build.py

checkov:
	@bash infra/checkov.sh

clean:
	rm -rf build .local .venv .venv-tasks .venv-checkov node_modules
