#!/usr/bin/env bash
# Set up and run the main job: train a SpikingLSTM on scikit-learn's digits read row by row (offline),
# print the test accuracy and where the metrics, checkpoints and plots are (runs/demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train
# the training defaults (docs/LEARNING.md): sigmoid gates with binary spikes out, Adam 1e-2, cosine, clip 1
.venv/bin/spikingrnn train --task digits_rows --model lstm --hidden 128 --epochs 30 --threads 2 \
    --out runs/demo --overwrite "$@"
