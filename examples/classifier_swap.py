"""Swap torch.nn.LSTM for spikingrnn.SpikingLSTM in a sequence classifier and change nothing else.

The classifier reads scikit-learn's 8x8 digits row by row (T = 8 steps of 8 pixels): a Linear
encoder, a recurrent layer (``batch_first=True``) and a Linear readout of the time-averaged outputs.
``--rnn`` picks the recurrent class; every other line of the model, the loss and the training loop
is the same for all four. For the spiking layers the script also prints the firing rate of the
layer's output (the fraction of 1s) and checks that the output holds only 0s and 1s.

Run::

    python examples/classifier_swap.py                       # SpikingLSTM, full size (about a minute on 2 cores)
    python examples/classifier_swap.py --rnn lstm            # the torch.nn.LSTM it replaces
    python examples/classifier_swap.py --rnn spiking_gru     # or gru
    python examples/classifier_swap.py --fast                # a few seconds, 1 thread (what CI runs)

Needs scikit-learn (the digits ship with it; nothing is downloaded).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import spikingrnn
from spikingrnn.data import load_digits_rows

# the one line that differs between the four models
RNN_CLASSES = {"lstm": nn.LSTM, "spiking_lstm": spikingrnn.SpikingLSTM,
               "gru": nn.GRU, "spiking_gru": spikingrnn.SpikingGRU}

CHANCE = 0.1          # ten balanced classes
# The default bounds of the final check. Measured on seeds 0-9: fast mode (5 epochs, hidden 32) reached
# 0.75 or more test accuracy (means 0.82-0.86) for every --rnn choice; full size (20 epochs, hidden 128)
# 0.97-0.99 with seed 0.
MIN_ACCURACY = {"fast": 0.5, "full": 0.9}


class SequenceClassifier(nn.Module):
    """``x [B, T, F] -> logits [B, classes]``: Linear encoder, recurrent layer, Linear readout of the time mean."""

    def __init__(self, rnn_class: type[nn.Module], num_features: int, hidden: int, num_classes: int):
        super().__init__()
        self.encoder = nn.Linear(num_features, hidden)
        self.rnn = rnn_class(hidden, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The recurrent layer's output ``[B, T, hidden]`` (0/1 spikes for the spiking layers)."""
        output, _ = self.rnn(self.encoder(x))   # (h_n, c_n) for LSTMs, h_n for GRUs: not needed
        return output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x).mean(dim=1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rnn", choices=sorted(RNN_CLASSES), default="spiking_lstm",
                        help="the recurrent layer (default: spiking_lstm)")
    parser.add_argument("--fast", action="store_true",
                        help="5 epochs, hidden 32, 1 thread: a few seconds (CI)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 20; 5 with --fast)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden units (default 128; 32 with --fast)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=None,
                        help=f"fail below this test accuracy (default {MIN_ACCURACY['full']}; "
                             f"{MIN_ACCURACY['fast']} with --fast)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; 1 with --fast)")
    args = parser.parse_args(argv)
    args.epochs = args.epochs if args.epochs is not None else (5 if args.fast else 20)
    args.hidden = args.hidden if args.hidden is not None else (32 if args.fast else 128)
    if args.min_accuracy is None:
        args.min_accuracy = MIN_ACCURACY["fast" if args.fast else "full"]
    if args.fast and args.threads is None:
        args.threads = 1
    return args


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = load_digits_rows()                       # x [N, 8, 8] batch-first, y [N]; 1437 train / 360 test
    model = SequenceClassifier(RNN_CLASSES[args.rnn], data.x_train.shape[2], args.hidden, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(data.y_train), generator=generator)
        total = 0.0
        for first in range(0, len(order), args.batch_size):
            index = order[first:first + args.batch_size]
            loss = nn.functional.cross_entropy(model(data.x_train[index]), data.y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {total / len(order):.4f}")
    seconds = time.perf_counter() - start

    test_accuracy = accuracy(model, data.x_test, data.y_test)
    print(f"{args.rnn}: test accuracy {test_accuracy:.3f} ({len(data.y_test)} digits, "
          f"{args.epochs} epochs in {seconds:.1f} s)")
    result = {"rnn": args.rnn, "test_accuracy": test_accuracy}

    if args.rnn.startswith("spiking"):
        with torch.no_grad():
            spikes = model.features(data.x_test)
        values = torch.unique(spikes)
        if not set(values.tolist()) <= {0.0, 1.0}:
            raise SystemExit(f"FAILED: the spiking layer's output is not binary: values {values[:10].tolist()}")
        rate = spikes.mean().item()
        print(f"firing rate of the {type(model.rnn).__name__} output: {rate:.3f} (spikes per unit and step)")
        if not 0.0 < rate < 1.0:
            raise SystemExit(f"FAILED: firing rate {rate} means the layer is silent or saturated")
        result["firing_rate"] = rate

    bound = args.min_accuracy
    if test_accuracy < bound:
        raise SystemExit(f"FAILED: test accuracy {test_accuracy:.3f} < {bound} (chance is {CHANCE})")
    print(f"OK: accuracy {test_accuracy:.3f} >= {bound} (chance {CHANCE})")
    return result


if __name__ == "__main__":
    main()
