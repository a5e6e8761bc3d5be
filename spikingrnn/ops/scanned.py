"""The reference step in PyTorch's ``scan`` higher-order operator: the form an ONNX export captures.

``torch.onnx.export`` (the default, dynamo-based exporter) traces the model with ``torch.export`` and
translates ``scan`` to an ONNX ``Scan`` loop, so the exported graph holds one loop per (layer,
direction) over a free sequence length, and its step is the pure step function of
:mod:`spikingrnn.functional.cells` — the same definition the reference backend runs, not a copy.
:mod:`spikingrnn.ops.dispatch` runs this during an ONNX export whatever the ``backend``.

It is an inference path: surrogates fire their Heaviside spikes (their backward is not exported),
dropout is off as in ``eval()``; packed sequences are refused (their lengths are data).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..surrogate import SurrogateFunction, heaviside
from .reference import make_step
from .spec import RNNSpec
from .stack import run_stack

__all__ = ["scanned_rnn"]


def _exported_spike(surrogate):
    """What a surrogate computes at inference: a spiking :class:`SurrogateFunction` is plain Heaviside."""
    if isinstance(surrogate, SurrogateFunction) and surrogate.spiking:
        return heaviside
    return surrogate


def scan_direction(step, emit, x: Tensor, state: tuple[Tensor, ...], weights: tuple,
                   reverse: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one cell over ``x [T, B, I]`` with ``scan``; returns ``(emit(state) of every step [T, B, H_out],
    final state)`` (``step``, ``emit``: :func:`~spikingrnn.ops.reference.make_step`'s)."""
    from torch._higher_order_ops.scan import scan  # late: only an export needs it

    def combine(carry, x_t):
        new_state = step(x_t, carry, *weights)
        return new_state, emit(new_state).clone()  # scan's outputs must not alias its carry

    # fresh copies: views of the stacked [L*D, B, *] states would let the tracer relate B to L*D
    final, outputs = scan(combine, tuple(s.clone() for s in state), x, reverse=reverse)
    return outputs, tuple(final)


def scanned_rnn(x: Tensor, states: tuple[Tensor, ...], weights: list[tuple], spec: RNNSpec,
                surrogates: list[tuple], *, lengths: Tensor | None = None,
                training: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the stack (same contract as :func:`spikingrnn.ops.reference.reference_rnn`, inference only)."""
    if lengths is not None:
        raise ValueError("spikingrnn: a PackedSequence does not export to ONNX (its lengths are data, not shapes). "
                         "Export with padded input, or run one sequence at a time.")

    def run_cell(k, y, state, reverse):
        step, emit = make_step(spec, *(_exported_spike(s) for s in surrogates[k]))
        return scan_direction(step, emit, y, state, weights[k], reverse)

    return run_stack(x, states, spec, False, run_cell)
