#!/usr/bin/env bash
# The GPU checks of the triton backend, as one script for a machine with CUDA, in under 8 minutes on an
# H100/H200 (issues 4 and 14):
#   1. exactness: every cell's kernels bit for bit against the reference backend
#      (python -m spikingrnn.ops.triton.exactness): the LSTM (each cell_state, and proj_size), the GRU and
#      the vanilla RNN at H = 20, 40, 256 (persistent kernels) and 300 (per-step kernels), B = 33 (two full
#      batch tiles and a partial one), packed and not, two layers, both directions, five runs that must be
#      identical, with full-precision and with TF32 products;
#   2. the benchmark table on the issue's GPU shapes;
#   3. the CUDA tests (tests/test_triton_cuda.py: half types, TF32, autocast, low memory, auto's self-check),
#      in the time that is left.
# Each phase runs under a time limit taken from what is left of GPU_CHECK_SECONDS (default 430 s, counted
# from the start; a stopped phase gets 10 s more to exit), so the whole stays under 8 minutes whatever a
# phase does; a phase that fails or runs out of time is recorded,
# the next one still runs, and the script fails at the end. Writes to $OUT (or ./gpu_results). Expects
# torch with CUDA, triton and (optionally) spikingjelly importable; installs nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
budget="${GPU_CHECK_SECONDS:-430}"
start=$SECONDS
failed=()

# phase NAME CAP LOG COMMAND...: run COMMAND with at most CAP seconds (less when less is left), output to LOG
phase() {
    local name="$1" cap="$2" log="$3"
    shift 3
    local left=$((budget - (SECONDS - start)))
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 10 ]; then
        echo "## $name: not run, the time budget is spent" | tee "$log"
        failed+=("$name (not run: no time left)")
        return
    fi
    echo "## $name (at most ${limit} s)"
    local began=$SECONDS
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    echo "## $name: exit $rc after $((SECONDS - began)) s"
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        failed+=("$name (ran out of time: ${limit} s)")
    elif [ "$rc" != 0 ]; then
        failed+=("$name (exit $rc, see $log)")
    fi
}

timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
timeout 20 python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" \
  | tee -a "$out/gpu.txt"

phase "exactness" 200 "$out/exactness.log" python -m spikingrnn.ops.triton.exactness --device cuda --repeats 5
phase "benchmark" 150 "$out/bench.log" python -m spikingrnn.bench --device cuda --repeats "${REPEATS:-7}" --budget 4 \
  --shapes "100,64,700,256,2;784,128,1,128,1;128,256,512,1024,2;256,8,128,256,1" \
  --markdown "$out/BENCHMARKS_gpu.md" --json "$out/gpu.json"
phase "CUDA tests" 400 "$out/cuda_tests.log" python -m pytest -q -p no:cacheprovider tests/test_triton_cuda.py

echo "# gpu_check: $((SECONDS - start)) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all GPU checks passed"
