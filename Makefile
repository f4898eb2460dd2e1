# trkx: `make run` builds the environment and runs the default pipeline; `make test` runs the suite.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
TORCH_VERSION ?= 2.13.0
PIPELINE ?= configs/pipeline.yaml

.PHONY: install run test bench eval clean

install: $(VENV)/.installed

# torch is installed on its own first: with no GPU, pinning the version takes the CPU build
# (an open range would pull a multi-GB CUDA build); then trkx and its other dependencies.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: installing torch $(TORCH_VERSION) with CUDA"; \
		$(PIP) install -q "torch==$(TORCH_VERSION)"; \
	else \
		echo "No GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(PIP) install -q "torch==$(TORCH_VERSION)" || $(PIP) install -q "torch==$(TORCH_VERSION)+cpu"; \
	fi
	$(PIP) install -q -e ".[dev]"
	touch $@

run: install
	$(VENV)/bin/trkx run $(PIPELINE)

eval: install
	$(VENV)/bin/trkx eval $(PIPELINE)

bench: install
	$(VENV)/bin/trkx bench $(PIPELINE)

test: install
	$(PY) -m pytest -q tests

clean:
	rm -rf runs .pytest_cache
