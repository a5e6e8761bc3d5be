#!/usr/bin/env bash
# The GPU checks of the triton backend, as one short script for a machine with CUDA (issue 4):
# the CUDA tests (float32 exact, bfloat16/float16 tolerances), then the benchmark table on the
# issue's GPU shapes, written to $OUT (or ./gpu_results). Expects torch with CUDA, triton and
# (optionally) spikingjelly importable; installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" \
  | tee -a "$out/gpu.txt"
# a failing test must not cost the benchmark of this one GPU session: record it, go on, fail at the end
tests_ok=1
python -m pytest -q -p no:cacheprovider tests/test_triton_cuda.py 2>&1 | tee "$out/cuda_tests.log" || tests_ok=0
python -m spikingrnn.bench --device cuda --repeats "${REPEATS:-11}" --budget 20 \
  --shapes "100,64,700,256,2;784,128,1,128,1;128,256,512,1024,2;256,8,128,256,1" \
  --markdown "$out/BENCHMARKS_gpu.md" --json "$out/gpu.json" 2>&1 | tee "$out/bench.log"
if [ "$tests_ok" = 0 ]; then echo "CUDA tests FAILED (see $out/cuda_tests.log)"; exit 1; fi
