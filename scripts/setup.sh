#!/usr/bin/env bash
# Create .venv with the CPU build of torch and spikingrnn installed editable with the given extras.
# Usage: bash scripts/setup.sh EXTRAS   (e.g. "demo" or "test")
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:?usage: scripts/setup.sh EXTRAS}"
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q --disable-pip-version-check torch==2.13.0
pip install -q --disable-pip-version-check -e ".[${extras}]"
if [ "$extras" = "test" ]; then
    # SpikingJelly's metadata pulls torchvision/torchaudio (GBs); its rnn module needs none of them.
    pip install -q --disable-pip-version-check --no-deps spikingjelly==2.0.0
fi
