# Two commands do everything on a fresh machine:
#   make demo   set up, start all three services on the embedded default, ingest sample images
#   make test   set up and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo up test lint protos bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

up: $(STAMP)
	$(VENV)/bin/corral up

test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/buf lint
	$(PY) scripts/gen_protos.py --check

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

bench: $(STAMP)
	bash scripts/bench.sh

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache
