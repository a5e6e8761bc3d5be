"""Print the markdown table of the training runs under a directory (as scripts/training_study.sh writes).

Usage: python scripts/training_table.py runs/study
Each run directory holds config.json and metrics.jsonl (see spikingrnn.train); one row per run:
its command-line settings, final and best test accuracy, epochs and training time.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SHOWN = ("task", "model", "hidden", "layers", "cell_state", "surrogate", "surrogate_alpha", "readout", "lr", "schedule",
         "grad_clip",
         "batch_size", "epochs", "limit_train", "seed")


def row(run: Path) -> str | None:
    config_path, metrics_path = run / "config.json", run / "metrics.jsonl"
    if not (config_path.exists() and metrics_path.exists()):
        return None
    config = json.loads(config_path.read_text())
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not records:
        return None
    final = records[-1]["test_accuracy"]
    best = max(records, key=lambda r: r["test_accuracy"])
    minutes = sum(r["epoch_time"] for r in records) / 60
    settings = " ".join(f"{key}={config[key]}" for key in SHOWN if key in config)
    rate = records[-1].get("mean_rate")
    rate_text = f"{rate:.2f}" if rate is not None else "–"
    return (f"| {run.name} | {settings} | {100 * final:.1f} | {100 * best['test_accuracy']:.1f} (epoch "
            f"{best['epoch']}) | {rate_text} | {minutes:.1f} |")


def main(root: str) -> int:
    rows = [r for r in (row(path) for path in sorted(Path(root).iterdir()) if path.is_dir()) if r]
    print("| run | settings | final test acc % | best test acc % | firing rate | minutes |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "runs/study"))
