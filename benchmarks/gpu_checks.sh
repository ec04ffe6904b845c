#!/usr/bin/env bash
# The GPU checks of a session lent a device: the CUDA tests, then the engine's guard on the GPU.
#   bash benchmarks/gpu_checks.sh            (writes its log to $OUT/gpu.log when OUT is set)
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
log=${OUT:-/tmp}/gpu.log
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_analysis_spectra.py::test_cuda_gives_the_cpu_eigenvalues -rs
  timeout 90 python3 benchmarks/bench_odenet.py --device cuda --repeats 20 --warmup 3 --models conv
} 2>&1 | tee "$log"
