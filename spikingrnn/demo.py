"""A short training demo: a spiking LSTM classifies scikit-learn's 8x8 digits read row by row.

Each image is a sequence of T=8 rows of 8 pixels scaled to [0, 1]; a SpikingLSTM reads it and a
linear readout of the time-averaged spikes of the last layer gives the class. The data ship with
scikit-learn, so nothing is downloaded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .nn.modules import SpikingLSTM
from .ops.cpu.extension import loops


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo`."""

    epochs: int = 30
    hidden_size: int = 128
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    threads: int = 2


def load_digit_rows(seed: int) -> tuple[torch.Tensor, ...]:
    """scikit-learn digits as row sequences: ``x [N, 8, 8]`` in [0, 1], labels ``[N]``; 80/20 split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("the demo needs scikit-learn: pip install 'spikingrnn[demo]'") from error
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


class RowClassifier(nn.Module):
    """SpikingLSTM over rows, then a linear readout of the mean spike rate: ``[B, T, I] -> [B, classes]``."""

    def __init__(self, input_size: int, hidden_size: int, classes: int):
        super().__init__()
        self.encoder = nn.Linear(input_size, hidden_size)
        self.rnn = SpikingLSTM(hidden_size, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.rnn(self.encoder(x))
        return self.readout(spikes.mean(dim=1))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def run_demo(config: DemoConfig = DemoConfig(), log: Callable[[str], object] = print) -> float:
    """Train on the digits' rows and return the test accuracy."""
    torch.set_num_threads(config.threads)
    log("cpu backend: preparing its C++ time loops (built once per machine, ~1 min the first time)")
    log("cpu backend: " + ("C++ loops ready" if loops() is not None else "C++ loops unavailable, using PyTorch loops"))
    torch.manual_seed(config.seed)
    x_train, y_train, x_test, y_test = load_digit_rows(config.seed)
    model = RowClassifier(8, config.hidden_size, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(y_train))
        total = 0.0
        for batch in order.split(config.batch_size):
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        log(f"epoch {epoch + 1:2d}/{config.epochs}  loss {total / len(y_train):.4f}  "
            f"test accuracy {accuracy(model, x_test, y_test):.4f}  ({time.perf_counter() - start:.0f} s)")
    test_accuracy = accuracy(model, x_test, y_test)
    log(f"SpikingLSTM on sklearn digits (row-wise, T=8): test accuracy {test_accuracy:.4f}")
    return test_accuracy
