#!/usr/bin/env bash
# The training runs behind docs/TRAINING.md: each line of the table is one `spikingrnn train` command.
# Runs two at a time with 1 thread each (2-core machine); outputs under runs/study/<name>/, then
# `python scripts/training_table.py runs/study` prints the table. About 40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/study}
mkdir -p "$OUT"
COMMON="--threads 1 --no-plots"
# every spiking run uses the training defaults found by the sweep in docs/TRAINING.md:
# accumulating cell state, a wide surrogate (erf, alpha 0.5), Adam at 1e-2 with a cosine schedule,
# gradients clipped to norm 1
SPIKE="--gates heaviside --forget-bias none --leak none --cell-state accumulate --surrogate erf --surrogate-alpha 0.5 --lr 1e-2 --schedule cosine --grad-clip 1.0"
commands=(
  # sequential digits, row-wise (T=8): the >= 97 % target
  "digits_h256 --task digits_rows --model lstm --hidden 256 --epochs 60 --batch-size 64 $SPIKE"
  # MNIST-1D (T=40): the >= 91 % target, and torch.nn.LSTM by the same command
  "mnist1d_lstm --task mnist1d --model lstm --hidden 128 --epochs 40 $SPIKE"
  "mnist1d_torch_lstm --task mnist1d --model torch_lstm --hidden 128 --epochs 40 $SPIKE"
  # MNIST-5k row-wise (T=28): spiking LSTM vs torch.nn.LSTM, same command
  "mnist5k_lstm --task mnist5k_rows --model lstm --hidden 128 --epochs 20 $SPIKE"
  "mnist5k_torch_lstm --task mnist5k_rows --model torch_lstm --hidden 128 --epochs 20 $SPIKE"
)
# MNIST-1D follow-up (docs/TRAINING.md): without clipping, with it, longer, deeper, both directions
NOCLIP="${SPIKE/--grad-clip 1.0/--grad-clip 0}"
commands+=(
  "mnist1d_e40_noclip --task mnist1d --model lstm --hidden 128 --epochs 40 $NOCLIP"
  "mnist1d_e20_lr3e3_noclip --task mnist1d --model lstm --hidden 128 --epochs 20 ${NOCLIP/--lr 1e-2/--lr 3e-3}"
  "mnist1d_e20_clip --task mnist1d --model lstm --hidden 128 --epochs 20 $SPIKE"
  "mnist1d_e60 --task mnist1d --model lstm --hidden 128 --epochs 60 $SPIKE"
  "mnist1d_torch_e60 --task mnist1d --model torch_lstm --hidden 128 --epochs 60 $SPIKE"
  "mnist1d_l2_e60 --task mnist1d --model lstm --hidden 128 --layers 2 --epochs 60 $SPIKE"
  "mnist1d_bi_e60 --task mnist1d --model lstm --hidden 128 --bidirectional --epochs 60 $SPIKE"
)
# reliability across seeds: the README demo command, spiking vs torch.nn.LSTM
for seed in 0 1 2; do
  commands+=("digits_lstm_seed$seed --task digits_rows --model lstm --hidden 128 --epochs 30 --seed $seed $SPIKE")
  commands+=("digits_torch_lstm_seed$seed --task digits_rows --model torch_lstm --hidden 128 --epochs 30 --seed $seed $SPIKE")
done
run_one() {
  local name=$1; shift
  "$PY" -m spikingrnn train "$@" $COMMON --out "$OUT/$name" --overwrite > "$OUT/$name.log" 2>&1 && echo "done $name" || echo "FAILED $name"
}
export -f run_one
export PY OUT COMMON
printf '%s\n' "${commands[@]}" | xargs -P 2 -I{} bash -c 'run_one {}'
