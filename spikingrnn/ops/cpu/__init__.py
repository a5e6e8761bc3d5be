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
from ..spec import RNNSpec
from ..stack import needs_grad, packed_batch_sizes, reverse_each, run_stack
from ..storage import register_fast_unpack
from .common import SequenceConfig
from .extension import loops
from .library import sequence

__all__ = ["cpu_rnn", "unsupported_reason"]


def _unpack_bit_rows(bits: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor | None:
    """Bit rows ``bits [K, words]`` restored as ``[K, *shape]`` by the C++ table lookup, or ``None``
    where it does not apply (not a CPU float32/float64 case, or the loops are not built)."""
    if dtype not in (torch.float32, torch.float64) or bits.device.type != "cpu":
        return None
    compiled = loops()
    if compiled is None:
        return None
    out = torch.empty(bits.shape[0], *shape, dtype=dtype)
    compiled.unpack_bit_rows(bits.contiguous(), out)
    return out


register_fast_unpack(_unpack_bit_rows)


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


def _config(spec: RNNSpec, surrogate_pair, batch_sizes, save: bool) -> SequenceConfig:
    first, second = surrogate_pair
    return SequenceConfig(batch_sizes, type(first).derivative, first.alpha, type(second).derivative, second.alpha,
                          spec.cell_state, spec.cell_threshold, save, not spec.low_memory, spec.spike_threshold,
                          "sigmoid" if spec.sigmoid_gates else "heaviside", spec.leak if spec.leaky else None)


def cpu_rnn(x: Tensor, states: tuple[Tensor, ...], weights: list[tuple], spec: RNNSpec, surrogates: list[tuple],
            *, lengths: Tensor | None = None, training: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the stack; returns ``(output [T, B, D*H_out], final states [L*D, B, *] each)``."""
    batch_sizes = packed_batch_sizes(lengths, x.shape[0])
    save = needs_grad(x, states, weights)

    def run_cell(k, y, state, reverse):
        config = _config(spec, surrogates[k], batch_sizes, save)
        if not reverse:
            return sequence(spec.mode, y, state, weights[k], config)
        out, state = sequence(spec.mode, reverse_each(y, lengths), state, weights[k], config)
        return reverse_each(out, lengths), state

    return run_stack(x, states, spec, training, run_cell, lengths)
