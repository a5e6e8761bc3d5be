"""The stack driver every backend shares: layers, directions, packed lengths, inter-layer dropout.

A backend supplies ``run_cell(k, y, state, reverse) -> (out, state)`` that runs cell
``k = layer * D + direction`` over ``y [T, B, F]``; :func:`run_stack` runs the layers and directions
around it. Packed sequences (``lengths``, int64 ``[B]``, decreasing as packed sequences are) are
described to the cells by :func:`packed_batch_sizes` (the number of leading rows valid at each
step) and reversed within each row's own length by :func:`reverse_each`. Nothing here depends on a
backend.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .rate_penalty import RateGradient, add_rate_gradient, rate_gradient
from .spec import RNNSpec

__all__ = ["inter_layer_dropout", "needs_grad", "packed_batch_sizes", "reverse_each", "run_stack"]


def needs_grad(x: Tensor, states: Sequence[Tensor], weights: Sequence[tuple]) -> bool:
    """Whether autograd will ask for a gradient of the run: grad mode is on and ``x``, a state or a
    weight (``weights[k]`` tuples, ``None`` entries allowed) requires one."""
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *states, *(w for ws in weights for w in ws)))


def packed_batch_sizes(lengths: Tensor | None, steps: int) -> list[int] | None:
    """``sizes[t]``: how many leading rows are valid at step ``t`` (``t < steps``) for
    ``lengths`` (int64 ``[B]``, on any device); ``None`` when ``lengths`` is ``None`` (every row,
    every step). Raises ``ValueError`` unless ``lengths`` is non-increasing."""
    if lengths is None:
        return None
    lengths = lengths.cpu()
    if bool((lengths[1:] > lengths[:-1]).any()):
        raise ValueError("lengths must be sorted in decreasing order (as packed sequences are)")
    return (lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1).tolist()


def reverse_each(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse every row of ``x [T, B, F]`` within its own length (padding stays in place); the
    whole time axis when ``lengths`` is ``None``. Its own inverse."""
    if lengths is None:
        return x.flip(0)
    lengths = lengths.cpu()
    steps = torch.arange(x.shape[0]).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps).to(x.device)
    return x.gather(0, index.unsqueeze(2).expand_as(x))


def inter_layer_dropout(y: Tensor, spec: RNNSpec, training: bool) -> Tensor:
    """Dropout on a layer's output ``[T, B, F]`` (fresh mask per step, or one per sequence)."""
    if not training or spec.dropout == 0:
        return y
    if spec.invariant_dropout_mask:
        mask = F.dropout(y.new_ones(y.shape[1:]), p=spec.dropout, training=True)
        return y * mask
    return F.dropout(y, p=spec.dropout, training=True)


def run_stack(x: Tensor, states: tuple[Tensor, ...], spec: RNNSpec, training: bool,
              run_cell: Callable[[int, Tensor, tuple[Tensor, ...], bool], tuple[Tensor, tuple[Tensor, ...]]],
              lengths: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Layers, directions and inter-layer dropout around ``run_cell(k, y, state, reverse) -> (out, state)``,
    which runs cell ``k = layer * D + direction`` over ``y [T, B, F]`` from ``state`` (a tuple of
    ``[B, *]``). ``x`` is ``[T, B, I]``, ``states`` a tuple of ``[L*D, B, *]``, ``lengths`` the packed
    lengths (``None``: every step of every row); returns ``(output [T, B, D*H_out], final states
    [L*D, B, *] each)``. In training, ``spec.rate_penalty`` adds its gradient to every cell's output
    (``spikingrnn.ops.rate_penalty``)."""
    num_dirs = spec.num_directions
    final: list[tuple[Tensor, ...]] = []
    rate: RateGradient | None = None
    y = x
    for layer in range(spec.num_layers):
        outputs = []
        for direction in range(num_dirs):
            k = layer * num_dirs + direction
            out, state = run_cell(k, y, tuple(s[k] for s in states), direction == 1)
            if training and spec.rate_penalty > 0 and out.requires_grad:
                if rate is None:
                    rate = rate_gradient(spec, x, lengths, out.shape[2])
                out, state = add_rate_gradient(rate, out, state)
            outputs.append(out)
            final.append(state)
        y = torch.cat(outputs, dim=2) if num_dirs == 2 else outputs[0]
        if layer < spec.num_layers - 1:
            y = inter_layer_dropout(y, spec, training)
    return y, tuple(torch.stack([f[i] for f in final]) for i in range(spec.num_states))
