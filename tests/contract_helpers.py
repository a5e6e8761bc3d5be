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
    kwargs = {k: v for k, v in kwargs.items()
              if k not in ("invariant_dropout_mask", "backend", "gates", "spike_threshold", "forget_bias",
                           "cell_state", "cell_threshold", "low_memory", "leak")}
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


# the row block of the gate whose bias ``forget_bias`` sets (LSTM i|f|g|o -> f, GRU r|z|n -> z)
MEMORY_GATE = {"LSTM": 1, "GRU": 1}


def memory_gate_bias(module) -> dict[str, tuple[slice, float]]:
    """``{parameter name: (rows, value)}`` of the memory gate's bias entries that the module's
    ``forget_bias`` initialises (``bias_ih*`` rows to ``forget_bias``, ``bias_hh*`` rows to 0): every other
    entry is torch's uniform init. Empty for a vanilla RNN, ``forget_bias=None`` or ``bias=False``."""
    value = getattr(module, "forget_bias", None)
    if module.mode not in MEMORY_GATE or value is None:
        return {}
    hidden = module.hidden_size
    rows = slice(MEMORY_GATE[module.mode] * hidden, (MEMORY_GATE[module.mode] + 1) * hidden)
    return {name: (rows, value if name.startswith("bias_ih") else 0.0)
            for name, _ in module.named_parameters() if name.startswith(("bias_ih", "bias_hh"))}


def uniform_part(module) -> dict[str, torch.Tensor]:
    """``{name: the parameter's entries that torch's uniform init draws}`` (all but :func:`memory_gate_bias`),
    after checking that those set by ``forget_bias`` hold their value."""
    fixed = memory_gate_bias(module)
    parts = {}
    for name, param in module.named_parameters():
        param = param.detach()
        if name in fixed:
            rows, value = fixed[name]
            assert torch.all(param[rows] == value), f"{name}: memory gate rows are not {value}"
            keep = torch.ones(param.shape[0], dtype=torch.bool)
            keep[rows] = False
            param = param[keep]
        parts[name] = param
    return parts


def emitted_spikes(module, h: torch.Tensor) -> torch.Tensor:
    """What the module outputs with the final state ``h``: ``h`` itself, except for the sigmoid-form GRU
    whose state is the analog ``s`` and the leaky RNN (``leak`` not None) whose state is the analog membrane
    ``v``: their output is the spikes ``Θ(state - spike_threshold)``."""
    if (module.mode == "GRU" and module.gates == "sigmoid") or (module.mode == "RNN" and module.leak is not None):
        return (h - module.spike_threshold >= 0).to(h.dtype)
    return h


def layer_module(module, layer: int, backend: str = "auto"):
    """A one-layer copy of ``module``'s layer ``layer`` on ``backend`` (:func:`builders.layer_copy`)."""
    return layer_copy(module, layer, backend=backend)
