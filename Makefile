# eegvision: one-command set-up. `make demo` and `make test` each install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install demo test test-slow bench clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch/torchvision first, pinned, so nothing later can swap them.
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PIP) install -e '.[test]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/eegvision demo --out demo-output --overwrite

test: install chromium
	$(PY) -m pytest -q

# Headless Chromium for the report test (Debian's package; browser downloads by test tools fail offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

test-slow: install chromium
	$(PY) -m pytest -q -m slow

bench: install
	@set -e; for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf $(VENV) demo-output .pytest_cache
