# trkx: `make run` builds the environment and runs the default pipeline; `make test` runs the suite.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
TORCH_VERSION ?= 2.13.0
PIPELINE ?= configs/pipeline.yaml

.PHONY: install run test bench eval clean cpp docs

install: $(VENV)/.installed

# torch is installed on its own first: with no GPU, pinning the version takes the CPU build
# (an open range would pull a multi-GB CUDA build); then trkx and its other dependencies, taking
# the newest release with a wheel (pythia8mc's newest may be a source tarball that compiles for long).
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: installing torch $(TORCH_VERSION) with CUDA"; \
		$(PIP) install -q "torch==$(TORCH_VERSION)"; \
	else \
		echo "No GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(PIP) install -q "torch==$(TORCH_VERSION)" || $(PIP) install -q "torch==$(TORCH_VERSION)+cpu"; \
	fi
	$(PIP) install -q --prefer-binary -e ".[dev]"
	touch $@

run: install
	$(VENV)/bin/trkx run $(PIPELINE)

eval: install
	$(VENV)/bin/trkx eval $(PIPELINE)

bench: install
	$(VENV)/bin/trkx bench $(PIPELINE)

# the C++ tool against LibTorch from the torch wheel (its CMake package), then its unit tests
cpp: install
	cmake -S cpp -B cpp/build -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" > cpp/build.log \
		&& cmake --build cpp/build -j 2 >> cpp/build.log 2>&1 || (tail -40 cpp/build.log; exit 1)
	cd cpp/build && ctest --output-on-failure

# the documentation site (MkDocs Material, API pages from the docstrings); --strict: a broken link fails
docs: install
	$(VENV)/bin/mkdocs build --strict --quiet

# the suite on both cores (pytest-xdist; one module's tests stay on one worker, so that its
# fixtures are built once)
test: install cpp docs
	$(PY) -m pytest -q -n 2 --dist loadscope tests

clean:
	rm -rf runs .pytest_cache cpp/build cpp/build.log site
