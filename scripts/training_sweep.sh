#!/usr/bin/env bash
# The sweep behind the training defaults (docs/TRAINING.md): SpikingLSTM on MNIST-5k row-wise with
# 2,000 training samples and 12 epochs, one setting changed at a time. Two runs at a time, 1 thread
# each; outputs under runs/explore/<name>/; `python scripts/training_table.py runs/explore` prints
# the table. About 14 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/explore}
mkdir -p "$OUT"
# every setting the sweep varies is pinned here (SpikingJelly's: clamped cell, erf alpha 2, no clipping),
# so that the runs do not depend on TrainConfig's defaults; each run overrides some of them
BASE="--task mnist5k_rows --model lstm --hidden 128 --epochs 12 --schedule cosine --limit-train 2000 --threads 1
      --no-plots --gates heaviside --forget-bias none --leak none --cell-state clamp --surrogate erf --surrogate-alpha 0
      --readout mean --grad-clip 0 --lr 3e-3"
runs=(
  "base --lr 3e-3"
  "lr1e3 --lr 1e-3"
  "lr1e2 --lr 1e-2"
  "a1 --lr 3e-3 --surrogate-alpha 1"
  "a05 --lr 3e-3 --surrogate-alpha 0.5"
  "last --lr 3e-3 --readout last"
  "a05_lr1e2 --surrogate-alpha 0.5 --lr 1e-2"
  "clamp_a025_lr1e2 --surrogate-alpha 0.25 --lr 1e-2"
  "acc_lr3e3 --cell-state accumulate --lr 3e-3"
  "acc_a05_lr1e2 --cell-state accumulate --surrogate-alpha 0.5 --lr 1e-2"
  "acc_a025_lr1e2 --cell-state accumulate --surrogate-alpha 0.25 --lr 1e-2"
  "acc_a05_lr2e2 --cell-state accumulate --surrogate-alpha 0.5 --lr 2e-2"
  "gru --model gru --lr 3e-3"
  "torch_lr1e2 --model torch_lstm --lr 1e-2"
  # with gradient clipping (found later on MNIST-1D): the three cell-state rules
  "clamp_clip --cell-state clamp --surrogate-alpha 0.5 --lr 1e-2 --grad-clip 1"
  "spike_clip --cell-state spike --surrogate-alpha 0.5 --lr 1e-2 --grad-clip 1"
  "acc_clip --cell-state accumulate --surrogate-alpha 0.5 --lr 1e-2 --grad-clip 1"
)
run_one() {
  local name=$1; shift
  "$PY" -m spikingrnn train $BASE "$@" --out "$OUT/$name" --overwrite > "$OUT/$name.log" 2>&1 && echo "done $name" || echo "FAILED $name"
}
export -f run_one
export PY OUT BASE
printf '%s\n' "${runs[@]}" | xargs -P 2 -I{} bash -c 'run_one {}'
