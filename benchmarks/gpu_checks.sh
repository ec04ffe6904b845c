#!/usr/bin/env bash
# The GPU checks of a session lent a device, in one go (about 6 minutes on an H200):
#   1. the CUDA tests (tests/test_cuda.py, slow ones included);
#   2. the engine's guard on the GPU (bench_odenet.py);
#   3. the epoch target (a resnet20 CIFAR-10 epoch in 2 s on an H100-class GPU) with the data on the
#      GPU: odenets train's own step timed by bench_data.py (--amp --compile, then CUDA graphs and
#      channels-last), and three epochs of `odenets train`, whose metrics.jsonl holds each epoch's
#      train_seconds.
# CIFAR-10 JPEGs are read from $DATA (default gpu-data/cifar10, an ignored folder to name in the
# device tool's `carry`; benchmarks/README.md shows how to make a subset that fits); without them
# step 3 is skipped.
#   bash benchmarks/gpu_checks.sh            (logs to $OUT/gpu.log when OUT is set)
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
out=${OUT:-/tmp}
data=${DATA:-gpu-data/cifar10}
export ODENETS_CACHE=${ODENETS_CACHE:-/tmp/odenets-cache}  # not under $OUT: 150 MB would travel back
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
      tests/test_analysis_spectra.py::test_cuda_gives_the_cpu_eigenvalues -rs
  timeout 60 python3 benchmarks/bench_odenet.py --device cuda --repeats 20 --warmup 3 --models conv
  if [ -d "$data/train" ]; then
    for flags in "--amp --compile" "--amp --compile-mode reduce-overhead --channels-last"; do
      timeout 150 python3 benchmarks/bench_data.py --data-dir "$data" --device cuda --loaders cache \
          --batches 200 --chunk 20 $flags
    done
    timeout 180 python3 -m odenets train --data cifar10 --data-dir "$data" --model resnet20 --device cuda \
        --amp --compile-mode reduce-overhead --channels-last --epochs 3 --out "$out/run"
    python3 -c "import json, sys; [print('epoch', r['epoch'], 'train', round(r['train_seconds'], 2), 's, whole',
                round(r['seconds'], 2), 's') for r in map(json.loads, open(sys.argv[1]))]" "$out/run/metrics.jsonl"
  else
    echo "no CIFAR-10 JPEGs in $data: the epoch timings are skipped"
  fi
} 2>&1 | tee "$out/gpu.log"
