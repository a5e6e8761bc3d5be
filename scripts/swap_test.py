"""Issue 16's swap test, literally: the same classifier code with ``torch.nn`` and ``spikingrnn`` layers.

``Linear(28 -> 128) -> rnn(128 -> 128, batch_first=True) -> Linear(128 -> 10)`` on the rnn output at
the last step; MNIST-5k read row by row (T = 28), the first 2,000 training samples, the package's fixed
test split (1,000 samples), 8 epochs of batch 64, Adam, gradient-norm clip 1, cosine schedule per
batch, cross-entropy. The layer is built as ``cls(128, 128, batch_first=True)`` and nothing else: the
spiking classes run with their module defaults. This is the plain loop a user writes; the study of
docs/LEARNING.md runs the same recipe through ``spikingrnn.train`` (cosine schedule per epoch), so the
two differ by the schedule's steps and the order of the random draws.

    python scripts/swap_test.py --models nn.GRU SpikingGRU --lrs 1e-2 3e-3 --seeds 0-9 --out runs/swap.jsonl
    python scripts/swap_test.py --summarize runs/swap.jsonl [--seeds 0-2]

Prints (and with ``--out`` appends) one JSON line per run: test accuracy, the mean firing rate of the
spiking output on the test set, whether it is all 0/1, seconds per epoch. ``--rate-target R`` probes a
homeostatic threshold (see ``run``); its runs are named apart (``..., threshold to rate R``).
``--chrono-steps N`` probes the chrono initialisation of the memory gate: the spiking classes are built
with ``forget_bias="chrono", chrono_steps=N`` and the ``torch.nn`` ones get ``spikingrnn.nn.chrono_bias_``
(runs named ``..., chrono N``). ``--rate-penalty L`` and ``--free-rate F`` build the spiking classes with ``rate_penalty=L`` /
``free_rate=F`` instead of their defaults (runs named ``..., rate penalty L`` / ``..., free rate F``;
``--rate-penalty 0`` is the module default before 2026-12-03).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
from torch import nn

HIDDEN, TRAIN_SIZE, EPOCHS, BATCH = 128, 2000, 8, 64


def layer_classes() -> dict[str, type[nn.Module]]:
    import spikingrnn
    return {"nn.LSTM": nn.LSTM, "nn.GRU": nn.GRU, "nn.RNN": nn.RNN, "SpikingLSTM": spikingrnn.SpikingLSTM,
            "SpikingGRU": spikingrnn.SpikingGRU, "SpikingRNN": spikingrnn.SpikingRNN}


class SwapClassifier(nn.Module):
    """``Linear -> rnn -> Linear`` on the last step; ``rnn`` any layer with ``torch.nn.LSTM``'s interface."""

    def __init__(self, rnn_class: type[nn.Module], features: int, classes: int = 10, chrono_steps: int | None = None,
                 rate_penalty: float | None = None, free_rate: float | None = None):
        super().__init__()
        self.encoder = nn.Linear(features, HIDDEN)
        # chrono_steps: a probe, not the swap (the memory gate's chrono initialisation)
        spiking = rnn_class.__module__.startswith("spikingrnn")
        probe: dict = {"forget_bias": "chrono", "chrono_steps": chrono_steps} if chrono_steps and spiking else {}
        if rate_penalty is not None and spiking:
            probe["rate_penalty"] = rate_penalty
        if free_rate is not None and spiking:
            probe["free_rate"] = free_rate
        self.rnn = rnn_class(HIDDEN, HIDDEN, batch_first=True, **probe)
        if chrono_steps and not spiking:
            from spikingrnn.nn import chrono_bias_
            chrono_bias_(self.rnn, chrono_steps)
        self.readout = nn.Linear(HIDDEN, classes)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The rnn's output sequence ``[B, T, H]`` for inputs ``x [B, T, F]``."""
        return self.rnn(self.encoder(x))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.outputs(x)[:, -1])


def parse_seeds(text: list[str]) -> list[int]:
    """``["0-4", "7"]`` -> ``[0, 1, 2, 3, 4, 7]``."""
    seeds: list[int] = []
    for part in text:
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def run(name: str, lr: float, seed: int, data, rate_target: float | None = None, threshold_step: float = 0.5,
        chrono_steps: int | None = None, rate_penalty: float | None = None, free_rate: float | None = None) -> dict:
    """Train one classifier with the swap recipe; its test accuracy and output statistics.

    ``rate_target`` (a probe of a lever, not part of the swap test; spiking classes with a
    ``spike_threshold`` only): after every optimizer step the layer's threshold moves by
    ``threshold_step * (rate - rate_target)`` (clamped to [0.05, 0.95]), ``rate`` the batch's firing rate:
    a homeostatic threshold that needs no state beyond the layer's own setting. ``chrono_steps``: see
    :class:`SwapClassifier` (LSTM and GRU classes); ``rate_penalty``, ``free_rate``: the spiking classes'
    (``None``: their defaults)."""
    x_train, y_train = data.x_train[:TRAIN_SIZE], data.y_train[:TRAIN_SIZE]
    torch.manual_seed(seed)
    model = SwapClassifier(layer_classes()[name], x_train.shape[-1], chrono_steps=chrono_steps,
                           rate_penalty=rate_penalty, free_rate=free_rate)
    if rate_target is not None and not hasattr(model.rnn, "spike_threshold"):
        raise ValueError(f"rate_target needs a spiking layer with a spike_threshold, got {name}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = math.ceil(len(x_train) / BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS * batches)
    order = torch.Generator().manual_seed(seed)
    start, finite = time.perf_counter(), True
    for _ in range(EPOCHS):
        for index in torch.randperm(len(x_train), generator=order).split(BATCH):
            outputs = model.outputs(x_train[index])
            loss = nn.functional.cross_entropy(model.readout(outputs[:, -1]), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            finite = finite and bool(torch.isfinite(loss))
            if rate_target is not None:
                moved = model.rnn.spike_threshold + threshold_step * (outputs.detach().mean().item() - rate_target)
                model.rnn.spike_threshold = min(0.95, max(0.05, moved))
    seconds = (time.perf_counter() - start) / EPOCHS
    model.eval()
    with torch.no_grad():
        outputs = model.outputs(data.x_test)
        accuracy = (model.readout(outputs[:, -1]).argmax(-1) == data.y_test).float().mean().item()
    binary = bool(((outputs == 0) | (outputs == 1)).all())
    if rate_target is not None:
        name = f"{name}, threshold to rate {rate_target:g}"
    if chrono_steps is not None:
        name = f"{name}, chrono {chrono_steps}"
    if rate_penalty is not None and name.startswith("Spiking"):
        name = f"{name}, rate penalty {rate_penalty:g}"
    if free_rate is not None and name.startswith("Spiking"):
        name = f"{name}, free rate {free_rate:g}"
    return {"model": name, "lr": lr, "seed": seed, "test_accuracy": round(accuracy, 4),
            "rate": round(outputs.mean().item(), 4) if binary else None, "binary": binary,
            "finite_loss": finite, "seconds_per_epoch": round(seconds, 2), "threads": torch.get_num_threads(),
            "spike_threshold": getattr(model.rnn, "spike_threshold", None),
            "rate_penalty": getattr(model.rnn, "rate_penalty", None), "free_rate": getattr(model.rnn, "free_rate", None)}


def summarize(path: str, seeds: list[int] | None) -> None:
    """Mean ± sd of the accuracy per learning rate and model (over ``seeds`` only, when given), with the
    seeds each mean covers."""
    groups: dict[tuple[float, str], list[dict]] = {}
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            if seeds is not None and record["seed"] not in seeds:
                continue
            groups.setdefault((record["lr"], record["model"]), []).append(record)
    print("| lr | model | seeds | test accuracy | firing rate |")
    print("|---|---|---|---|---|")
    for (lr, model), records in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        accuracies = [r["test_accuracy"] for r in records]
        spread = f" ± {statistics.stdev(accuracies):.3f}" if len(accuracies) > 1 else ""
        rates = [r["rate"] for r in records if r["rate"] is not None]
        rate = f"{statistics.mean(rates):.2f}" if rates else "–"
        seeds = sorted(r["seed"] for r in records)
        print(f"| {lr:g} | {model} | {seeds[0]}–{seeds[-1]} ({len(seeds)}) | "
              f"{statistics.mean(accuracies):.3f}{spread} | {rate} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["nn.LSTM", "SpikingLSTM", "nn.GRU", "SpikingGRU"],
                        choices=sorted(layer_classes()))
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-2, 3e-3])
    parser.add_argument("--seeds", nargs="+", default=None,
                        help="seeds or ranges, e.g. 0-9 (runs: default 0-2; --summarize: only these)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rate-target", type=float, default=None,
                        help="probe: move the spiking layer's threshold toward this firing rate after every step")
    parser.add_argument("--chrono-steps", type=int, default=None,
                        help="probe: the chrono initialisation of the memory gate for up to this many steps")
    parser.add_argument("--rate-penalty", type=float, default=None,
                        help="the spiking classes' rate_penalty (default: theirs); runs named apart")
    parser.add_argument("--free-rate", type=float, default=None,
                        help="the spiking classes' free_rate (default: theirs); runs named apart")
    parser.add_argument("--out", default=None, help="append the JSON lines to this file")
    parser.add_argument("--summarize", metavar="JSONL", default=None, help="print the table of a results file")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize, None if args.seeds is None else parse_seeds(args.seeds))
        return
    from spikingrnn.data import load_dataset
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k_rows", seed=0)
    for lr in args.lrs:
        for name in args.models:
            for seed in parse_seeds(args.seeds or ["0-2"]):
                line = json.dumps(run(name, lr, seed, data, args.rate_target, chrono_steps=args.chrono_steps,
                                      rate_penalty=args.rate_penalty, free_rate=args.free_rate))
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a") as out:
                        out.write(line + "\n")


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    main()
