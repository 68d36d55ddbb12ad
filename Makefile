# GFL from Scratch. The two commands of the README:
#   make demo   - the main job (for now: make check)
#   make test   - ruff + the whole test suite
# Both create .venv if it is missing and install what they need (idempotent).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
HYPOTHESIS_PROFILE ?= dev
STAMP := $(VENV)/.installed-test

.PHONY: venv test check bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed only when the venv has none: bring your own build by
# installing it first (or set TORCH_SPEC).
$(STAMP): $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	GFL_HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest -q

check: $(STAMP)
	$(PY) tools/certificate.py

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis bench_results
