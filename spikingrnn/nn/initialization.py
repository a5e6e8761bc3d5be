"""Parameter initialisation of the spiking modules: torch's uniform init, then the memory-gate bias."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

# The row block of the gate that keeps memory, in torch's gate order: LSTM i|f|g|o -> f, GRU r|z|n -> z.
MEMORY_GATE_INDEX = {"LSTM": 1, "GRU": 1}


def reset_uniform(parameters: Iterable[Tensor], hidden_size: int) -> None:
    """``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`` for every parameter, as torch.nn.LSTM/GRU/RNN."""
    bound = 1.0 / math.sqrt(hidden_size)
    for weight in parameters:
        nn.init.uniform_(weight, -bound, bound)


def set_forget_bias(bias_ih: Tensor | None, bias_hh: Tensor | None, mode: str, hidden_size: int,
                    value: float | None) -> None:
    """Give the memory gate (LSTM ``f``, GRU ``z``) the total bias ``value``: ``bias_ih``'s rows of that
    gate set to ``value``, ``bias_hh``'s to 0. A sigmoid gate then starts near ``sigmoid(value)``
    (0.73 for 1.0): the cell keeps most of its state from the first step, which is what lets a
    recurrent network carry information over long sequences early in training (Gers et al. 2000;
    Jozefowicz et al. 2015). Nothing happens for ``value=None``, a vanilla RNN or a module without bias."""
    if value is None or mode not in MEMORY_GATE_INDEX or bias_ih is None or bias_hh is None:
        return
    rows = slice(MEMORY_GATE_INDEX[mode] * hidden_size, (MEMORY_GATE_INDEX[mode] + 1) * hidden_size)
    with torch.no_grad():
        bias_ih[rows].fill_(value)
        bias_hh[rows].zero_()
