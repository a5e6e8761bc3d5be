"""Shared helpers of the torch-contract tests: module tables, torch twins, state utilities.

The spiking modules and cells are checked against the torch classes they replace, so every
helper here pairs a spiking class with its torch counterpart and hides the few differences
(``SpikingRNN``'s ``nonlinearity``, LSTM's ``(h, c)`` tuple versus a single ``h``).
"""
from __future__ import annotations

import torch
from torch import nn

from builders import layer_copy, state_shapes
from spikingrnn import (SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN,
                        SpikingRNNCell)

MODES = ("LSTM", "GRU", "RNN")
SPIKING = {"LSTM": SpikingLSTM, "GRU": SpikingGRU, "RNN": SpikingRNN}
TORCH = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}
SPIKING_CELLS = {"LSTM": SpikingLSTMCell, "GRU": SpikingGRUCell, "RNN": SpikingRNNCell}
TORCH_CELLS = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell, "RNN": nn.RNNCell}

INPUT_SIZE = 3
HIDDEN_SIZE = 5

# (mode, constructor kwargs) covering layers 1-3, bidirectional, bias=False and proj_size.
CONFIGS = [
    ("LSTM", {}),
    ("LSTM", {"num_layers": 2}),
    ("LSTM", {"num_layers": 3, "bidirectional": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "bias": False}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}),
    ("LSTM", {"proj_size": 3, "bias": False}),
    ("GRU", {}),
    ("GRU", {"num_layers": 3, "bidirectional": True}),
    ("GRU", {"num_layers": 2, "bias": False}),
    ("RNN", {}),
    ("RNN", {"num_layers": 2, "bidirectional": True}),
    ("RNN", {"num_layers": 3, "bias": False}),
]


def config_id(config) -> str:
    mode, kwargs = config
    return mode + "".join(f"-{k}={v}" for k, v in kwargs.items())


def spiking(mode: str, input_size: int = INPUT_SIZE, hidden_size: int = HIDDEN_SIZE, **kwargs):
    return SPIKING[mode](input_size, hidden_size, **kwargs)


def torch_twin(mode: str, input_size: int = INPUT_SIZE, hidden_size: int = HIDDEN_SIZE, **kwargs):
    """The torch module with the same configuration (``nn.RNN`` with torch's own ``tanh``)."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("invariant_dropout_mask", "backend")}
    return TORCH[mode](input_size, hidden_size, **kwargs)


def as_list(states) -> list[torch.Tensor]:
    """``(h, c)`` or ``h`` as a list of tensors."""
    return list(states) if isinstance(states, (tuple, list)) else [states]


def from_list(mode: str, states: list[torch.Tensor]):
    """The inverse of :func:`as_list` for ``mode``."""
    return tuple(states) if mode == "LSTM" else states[0]


def random_hx(module, batch: int | None, dtype=torch.float64, requires_grad: bool = False):
    """Random initial states for ``module`` (tuple for LSTM). Values in [0, 1) like spikes/cells."""
    states = [torch.rand(shape, dtype=dtype, requires_grad=requires_grad)
              for shape in state_shapes(module, batch)]
    return from_list(module.mode, states)


def assert_nontrivial(*tensors) -> None:
    """Guard against vacuous comparisons: the compared tensors (outputs, states, or lists of them)
    must hold more than one distinct value between them."""
    flat, stack = [], list(tensors)
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(item)
        else:
            flat.append(item)
    values = torch.cat([t.detach().flatten().double() for t in flat])
    assert values.numel() > 0
    assert values.unique().numel() > 1, "outputs are constant; the comparison would prove nothing"


def assert_states_equal(actual, expected) -> None:
    actual, expected = as_list(actual), as_list(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-12)


def layer_module(module, layer: int, backend: str = "auto"):
    """A one-layer copy of ``module``'s layer ``layer`` on ``backend`` (:func:`builders.layer_copy`)."""
    return layer_copy(module, layer, backend=backend)
