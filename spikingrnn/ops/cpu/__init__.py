"""The ``cpu`` backend: one whole-sequence autograd Function per layer and direction.

Same contract as :func:`spikingrnn.ops.reference.reference_rnn`. Supports every configuration of
the modules with surrogates that are :class:`~spikingrnn.surrogate.SurrogateFunction` instances in
spiking mode (their ``derivative`` is what backward needs); anything else is refused with the
reason (see :func:`unsupported_reason`) and ``backend="auto"`` uses the reference instead.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ...surrogate import SurrogateFunction
from ..reference import run_stack
from ..spec import RNNSpec
from .common import SequenceConfig
from .gru import GRUSequence
from .lstm import LSTMSequence
from .vanilla import RNNSequence

__all__ = ["cpu_rnn", "unsupported_reason"]


def unsupported_reason(device: torch.device, dtype: torch.dtype, surrogates) -> str | None:
    """Why the cpu backend cannot run this case, or ``None`` when it can."""
    if torch.device(device).type != "cpu":
        return f"it runs on CPU tensors only, got device {device}"
    if dtype not in (torch.float32, torch.float64):
        return f"it supports float32 and float64, got {dtype}"
    if torch.is_autocast_enabled("cpu"):
        # autocast would turn the Functions' GEMMs into lower-precision ones that the loops cannot take
        return (f"it supports float32 and float64 only and does not run under torch.autocast "
                f"(autocast dtype {torch.get_autocast_dtype('cpu')})")
    for spike in surrogates:
        kind = type(spike)
        if not isinstance(spike, SurrogateFunction):
            return f"surrogate {kind.__name__} is not a spikingrnn.surrogate.SurrogateFunction"
        if kind.forward is not SurrogateFunction.forward:
            return f"surrogate {kind.__name__} overrides forward"
        if kind.derivative is SurrogateFunction.derivative:
            return f"surrogate {kind.__name__} does not implement derivative"
        if not spike.spiking:
            return f"surrogate {type(spike).__name__} has spiking=False (smooth mode)"
    return None


def _batch_sizes(lengths: Tensor | None, steps: int) -> list[int] | None:
    if lengths is None:
        return None
    if bool((lengths[1:] > lengths[:-1]).any()):
        raise ValueError("cpu backend: lengths must be sorted in decreasing order (as packed sequences are)")
    return (lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1).tolist()


def _reverse_each(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse every row of ``x [T, B, F]`` within its own length (padding stays in place)."""
    if lengths is None:
        return x.flip(0)
    steps = torch.arange(x.shape[0]).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps).to(x.device)
    return x.gather(0, index.unsqueeze(2).expand_as(x))


def _config(spec: RNNSpec, surrogate_pair, batch_sizes, save: bool) -> SequenceConfig:
    first, second = surrogate_pair
    return SequenceConfig(batch_sizes, type(first).derivative, first.alpha, type(second).derivative, second.alpha,
                          spec.cell_state, spec.cell_threshold, save, not spec.low_memory)


def _run_cell(spec: RNNSpec, x: Tensor, state: tuple[Tensor, ...], weights: tuple, config: SequenceConfig):
    w_ih, w_hh, b_ih, b_hh, w_hr = weights
    if spec.mode == "LSTM":
        y, h, c = LSTMSequence.apply(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh, w_hr, config)
        return y, (h, c)
    function = GRUSequence if spec.mode == "GRU" else RNNSequence
    y, h = function.apply(x, state[0], w_ih, w_hh, b_ih, b_hh, config)
    return y, (h,)


def cpu_rnn(x: Tensor, states: tuple[Tensor, ...], weights: list[tuple], spec: RNNSpec, surrogates: list[tuple],
            *, lengths: Tensor | None = None, training: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the stack; returns ``(output [T, B, D*H_out], final states [L*D, B, *] each)``."""
    batch_sizes = _batch_sizes(lengths, x.shape[0])
    save = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *states, *(w for ws in weights for w in ws)))

    def run_cell(k, y, state, reverse):
        config = _config(spec, surrogates[k], batch_sizes, save)
        if not reverse:
            return _run_cell(spec, y, state, weights[k], config)
        out, state = _run_cell(spec, _reverse_each(y, lengths), state, weights[k], config)
        return _reverse_each(out, lengths), state

    return run_stack(x, states, spec, training, run_cell)
