# GFL from Scratch. The two commands of the README:
#   make demo   - train a GFL detector on the synthetic set (CPU), evaluate, draw the report
#   make test   - ruff + the whole test suite (and every notebook, via nbval: stored outputs must
#                 still be what the code prints)
#   make docs   - the documentation site, built with warnings as errors and checked
#   make course - the course's student release and teacher's version (course/build/)
#   make grade SUBMISSIONS=dir - grade a folder of submissions (course/build/grades/)
# Both create .venv if it is missing and install what they need (idempotent).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
HYPOTHESIS_PROFILE ?= dev
# The notebooks are committed with their outputs; nbval re-runs them and compares the text.
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg
STAMP := $(VENV)/.installed-test

.PHONY: venv test check bench lint docs demo course grade notebooks clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed only when the venv has none: bring your own build by
# installing it first (or set TORCH_SPEC).
$(STAMP): $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

venv: $(STAMP)

# The demo needs only the runtime dependencies (not the test/docs extras).
DEMO_STAMP := $(VENV)/.installed-demo

$(DEMO_STAMP): $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e .
	@touch $@

# OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of spinning while they wait,
# which keeps two training threads fast when other processes share the two cores.
demo: $(DEMO_STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) -m torch_impl demo --out reports/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP)
	$(VENV)/bin/ruff check .
	GFL_HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(PY) -m pytest -q tests notebooks $(NBVAL)

# Re-run every notebook and store its outputs (commit them): after changing a notebook or the
# code it shows, when `make test` says a stored output is stale.
notebooks: $(STAMP)
	$(PY) tools/execute_notebooks.py

check: $(STAMP)
	$(PY) tools/certificate.py

# make bench AGAINST=REV: also time the working tree and revision REV side by side, in one run
# (REV checked out in bench_results/against/<sha>; docs/benchmarks.md). BENCH_ARGS: more options
# of `python -m benchmarks.run`, e.g. BENCH_ARGS="--only against" for the comparison alone.
AGAINST ?=
BENCH_ARGS ?=

bench: $(STAMP)
	$(PY) -m benchmarks.run $(if $(AGAINST),--against $(AGAINST)) $(BENCH_ARGS)

# The site: Sphinx + MyST-NB, every notebook executed, math by a local MathJax
# (fetched from the npm registry into the git-ignored docs/_static/mathjax/),
# then docs/check_site.py looks at it in headless Chromium (Debian's chromium,
# installed here with apt-get when missing).
DOCS_STAMP := $(VENV)/.installed-docs
DOCS_BUILD := docs/_build/html

$(DOCS_STAMP): $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[docs]"
	@touch $@

docs: $(DOCS_STAMP)
	$(PY) docs/fetch_mathjax.py
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the reader check"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs $(DOCS_BUILD)
	$(PY) docs/check_site.py $(DOCS_BUILD)

# The course (docs/course.md): nbgrader turns course/source/ (exercises with their solutions
# marked) into course/build/student/ (solutions replaced by stubs; the reading notebooks
# without their `answer` cells) and course/build/teacher/. `make grade` autogrades
# SUBMISSIONS/<student>/<exercise>/<exercise>.ipynb into a score table and feedback.
COURSE_STAMP := $(VENV)/.installed-course
GRADES ?= course/build/grades

$(COURSE_STAMP): $(PY) pyproject.toml
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[course]"
	@touch $@

course: $(COURSE_STAMP)
	$(PY) -m course.build

grade: $(COURSE_STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=dir [GRADES=$(GRADES)]"; exit 2; }
	$(PY) -m course.grade "$(SUBMISSIONS)" --out "$(GRADES)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis bench_results course/build
	rm -rf docs/_build docs/notebooks docs/api docs/_generated docs/jupyter_execute
