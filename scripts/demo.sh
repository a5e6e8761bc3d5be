#!/usr/bin/env bash
# Set up and run the main job: a short SpikingLSTM training demo on scikit-learn's digits (offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
.venv/bin/spikingrnn demo "$@"
