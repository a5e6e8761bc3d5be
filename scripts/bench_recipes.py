"""Training-step time of the new defaults against the earlier ``spikingrnn train`` recipe, interleaved.

Issue 16 asks that training with the new defaults (sigmoid gates, binary spikes out) be no slower
per epoch than the recipe the training CLI used before (Heaviside gates, accumulating cell state).
Both run here side by side in one process on the same batches: ``Linear(F -> H)`` -> spiking stack
-> ``Linear(H -> 10)`` on the time-averaged output, cross-entropy, backward and an Adam step, with
the cpu backend; rounds alternate the two models and the medians of ``--repeats`` rounds are
compared (the machine's noise hits both alike). ``nn.LSTM`` in the same classifier is timed too, and
the new default without its firing-rate penalty (``rate_penalty=0``), to show what the penalty costs.

    python scripts/bench_recipes.py --threads 1 --repeats 15
    python scripts/bench_recipes.py --threads 1 --repeats 15 --rate 0.35   # the new default firing as trained

Untrained, the new default fires at about 0.19; trained models fire at 0.2-0.36 (docs/LEARNING.md),
and its event-driven products cost more the more it fires. ``--rate R`` sets the ``spike_threshold``
of the new default (found by bisection on the benchmark batch) so that it fires at about ``R``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn

# (name, T, B, F): the shapes of the study's tasks
SHAPES = (("mnist5k_rows", 28, 64, 28), ("mnist1d", 40, 64, 1), ("temporal_xor", 200, 64, 2),
          ("mnist5k_pixels", 784, 64, 1))
HIDDEN = 128


def recipes():
    from spikingrnn import SpikingLSTM
    from spikingrnn.surrogate import Erf
    return {
        "new default (sigmoid gates)": lambda: SpikingLSTM(HIDDEN, HIDDEN, backend="cpu"),
        "earlier recipe (heaviside, accumulate)": lambda: SpikingLSTM(
            HIDDEN, HIDDEN, backend="cpu", gates="heaviside", cell_state="accumulate", forget_bias=None,
            surrogate_function1=Erf(alpha=0.5), rate_penalty=0.0),
        "nn.LSTM": lambda: nn.LSTM(HIDDEN, HIDDEN),
        # what the firing-rate penalty (the default rate_penalty=0.1) costs per step
        "new default, rate_penalty=0": lambda: SpikingLSTM(HIDDEN, HIDDEN, backend="cpu", rate_penalty=0.0),
    }


class Classifier(nn.Module):
    def __init__(self, features: int, rnn: nn.Module):
        super().__init__()
        self.encoder, self.rnn, self.readout = nn.Linear(features, HIDDEN), rnn, nn.Linear(HIDDEN, 10)

    def forward(self, x):
        return self.readout(self.rnn(self.encoder(x))[0].mean(dim=0))


def set_firing_rate(model: Classifier, x: torch.Tensor, rate: float) -> float:
    """Set the sigmoid LSTM's ``spike_threshold`` so that its spikes on ``x`` have mean ``rate``; returns it.

    Only which units cross the threshold changes, not the arithmetic per step: the cost that depends on
    the rate is that of the event-driven products."""
    rnn = model.rnn
    low, high = -1.0, 1.0  # o * tanh(c) lies in (-1, 1)
    with torch.no_grad():
        for _ in range(40):
            rnn.spike_threshold = (low + high) / 2
            measured = rnn(model.encoder(x))[0].mean().item()
            low, high = (rnn.spike_threshold, high) if measured > rate else (low, rnn.spike_threshold)
    return measured


def step_time(model: nn.Module, optimizer, x, y) -> float:
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--shapes", nargs="*", default=[s[0] for s in SHAPES])
    parser.add_argument("--rate", type=float, default=None,
                        help="make the new default fire at about this rate (its spike_threshold)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, repeats {args.repeats}, hidden {HIDDEN}; median seconds per training step")
    print("| task (T, B, F) | " + " | ".join(recipes()) + " | new / earlier | new / without penalty |")
    print("|---|" + "---|" * (len(recipes()) + 2))
    for name, steps, batch, features in SHAPES:
        if name not in args.shapes:
            continue
        torch.manual_seed(0)
        x = torch.rand(steps, batch, features)
        y = torch.randint(0, 10, (batch,))
        models = {}
        for label, make in recipes().items():
            torch.manual_seed(0)
            model = Classifier(features, make())
            models[label] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
        if args.rate is not None:
            first = next(iter(models.values()))[0]
            print(f"# {name}: new default set to fire at {set_firing_rate(first, x, args.rate):.3f}", flush=True)
        if args.rate is not None:  # the same threshold for the default without its penalty
            models["new default, rate_penalty=0"][0].rnn.spike_threshold = first.rnn.spike_threshold
        for model, optimizer in models.values():  # warm-up (and the C++ build on a first run)
            step_time(model, optimizer, x, y)
        times = {label: [] for label in models}
        for _ in range(args.repeats):
            for label, (model, optimizer) in models.items():
                times[label].append(step_time(model, optimizer, x, y))
        medians = {label: statistics.median(t) for label, t in times.items()}
        labels = list(models)
        print(f"| {name} ({steps}, {batch}, {features}) | " + " | ".join(f"{medians[l]:.4f}" for l in labels)
              + f" | {medians[labels[0]] / medians[labels[1]]:.2f} | {medians[labels[0]] / medians[labels[3]]:.2f} |",
              flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    main()
