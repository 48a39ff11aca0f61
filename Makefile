# vbi-dask: two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BASE_VENV ?= .venv-base

.PHONY: install demo test test-base notebooks bench bench-gpu cuda-compile clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(PY) -m vbi_dask.cli demo --out demo_output

test: install
	$(PY) -m ruff check vbi_dask kernels tests bench
	$(PY) -m ruff format --check vbi_dask kernels tests bench
	$(PY) -m pytest -q
	# CUDA kernels on the Numba CUDA simulator (set before numba is imported: own process)
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q tests/gpu
	# every notebook, executed at small sizes (their committed outputs are left as they are)
	VBI_DASK_NOTEBOOK_SIZE=small $(PY) -m pytest -q --nbmake --nbmake-timeout=900 notebooks

# the base install (`pip install .`, no extras) in a venv of its own: import, simulate, a tiny
# budget twice (bit-identical), and one-line errors naming the extras of training and clusters
test-base:
	test -x $(BASE_VENV)/bin/python || $(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BASE_VENV)/bin/python -m pip install --quiet .
	env -u PYTHONPATH $(BASE_VENV)/bin/python tests/base_install/check_base.py

# re-run the notebooks at full size and write their outputs (figures) back into them
notebooks: install
	VBI_DASK_NOTEBOOK_SIZE=full $(PY) -m pytest -q --nbmake --nbmake-timeout=3600 --overwrite notebooks

bench: install
	NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(PY) bench/bench_kernel.py && $(PY) bench/bench_budget.py && $(PY) bench/bench_train.py && $(PY) bench/bench_sequential.py

bench-gpu: install
	$(PY) bench/bench_gpu.py

# every model's CUDA shell compiled to sm_90 machine code (NVVM, ptxas; a CUDA toolkit, no GPU)
cuda-compile: install
	$(PY) bench/cuda_compile.py

clean:
	rm -rf $(VENV) $(BASE_VENV) demo_output bench.jsonl .pytest_cache
