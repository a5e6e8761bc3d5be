"""The firing-rate penalty of a stack: the gradient of ``λ × (rate above free_rate)``, added in backward.

A spiking stack trained on a task loss alone fires wherever that loss wants it to (the LSTM and GRU
end near 0.35 on the swap test; docs/LEARNING.md). With ``rate_penalty = λ > 0`` every training-mode
forward that autograd will differentiate ties each layer's output spikes (per direction: cell ``k``)
to an identity autograd Function. Its backward adds the gradient of

    λ · Σ_k (N_k / N) · max(0, r_k − free_rate)

to the gradients of the spikes: ``r_k`` is cell ``k``'s mean firing rate in this forward, ``N_k`` its
number of spikes (valid positions × units) and ``N`` the stack's. Every spike of a cell above
``free_rate`` gets ``λ / N``, those of a cell under it nothing (at the kink, ``r_k = free_rate``, the
penalty acts); with ``free_rate = 0`` that is the gradient of ``λ · mean(all spikes)``. The loss's
value is not changed: the regulariser travels with the module, as weight decay travels with an
optimizer, so a training loop written for ``torch.nn.LSTM`` gets it unchanged, and a layer that
already fires sparsely is not touched.

The gradient is added whenever backward reaches a layer through its output or its final states
(unused ones count as zero gradients), so a loss on ``h_n`` alone is regularised as one on the output.
Padded positions of packed sequences are not spikes: they count in no rate and get nothing. Nothing
changes in the forward values, in evaluation mode, or under ``torch.no_grad``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .spec import RNNSpec

__all__ = ["DEFAULT_FREE_RATE", "DEFAULT_RATE_PENALTY", "RateGradient", "add_rate_gradient", "rate_gradient"]

DEFAULT_RATE_PENALTY = 0.2  # the stacks' default λ (docs/LEARNING.md, "The firing rate")
DEFAULT_FREE_RATE = 0.25  # the stacks' default: a layer firing at or under it is not penalised


class RateGradient(NamedTuple):
    """What every cell of one stack run needs: ``step``, ``λ / N`` at valid positions and 0 at padded
    ones (``[T, B, 1]``; a 0-dim tensor when every position is valid); ``valid`` ``[T, B, 1]``, 1 at
    valid positions (``None``: all are); ``free_spikes``: how many spikes a cell may emit before it is
    penalised (``free_rate`` × its valid positions × units)."""
    step: Tensor
    valid: Tensor | None
    free_spikes: float


class _AddRateGradient(torch.autograd.Function):
    """Identity on ``(out, *states)``; backward adds ``step`` to ``out``'s gradient when ``out`` (masked
    by ``valid``) holds at least ``free_spikes`` spikes (with ``free_rate`` 0: always)."""

    @staticmethod
    def forward(ctx, step: Tensor, valid: Tensor | None, free_spikes: float, out: Tensor,
                *states: Tensor) -> tuple[Tensor, ...]:
        spikes = out.sum() if valid is None else (out * valid).sum()
        active = spikes >= free_spikes  # a 0-dim bool tensor: no synchronisation here
        ctx.save_for_backward(step * active)
        # copies, not views: a caller may modify the output in place, which torch forbids on a view
        # that a custom Function returned
        return (out.clone(), *(s.clone() for s in states))

    @staticmethod
    def backward(ctx, grad_out: Tensor, *grad_states: Tensor) -> tuple[Tensor | None, ...]:
        (step,) = ctx.saved_tensors
        return (None, None, None, grad_out + step.to(grad_out.dtype), *grad_states)  # step broadcasts


def rate_gradient(spec: RNNSpec, x: Tensor, lengths: Tensor | None, width: int) -> RateGradient:
    """The :class:`RateGradient` of a stack whose cells emit ``width`` units, run on ``x [T, B, I]``
    with packed ``lengths`` (``None``: every step of every row), in ``x``'s dtype and device."""
    steps, batch = x.shape[0], x.shape[1]
    valid: Tensor | None = None
    positions = steps * batch
    if lengths is not None:
        lengths = lengths.cpu()
        mask = torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)
        valid = mask.to(x.dtype).unsqueeze(2).to(x.device)
        positions = int(lengths.sum())
    scale = spec.rate_penalty / max(spec.num_layers * spec.num_directions * positions * width, 1)
    step = x.new_tensor(scale) if valid is None else valid * scale
    return RateGradient(step, valid, spec.free_rate * positions * width)


def add_rate_gradient(rate: RateGradient, out: Tensor, state: tuple[Tensor, ...]
                      ) -> tuple[Tensor, tuple[Tensor, ...]]:
    """``(out, state)`` of one cell unchanged in value; in backward ``rate.step`` is added to ``out``'s
    gradient if ``out`` fired above the free rate."""
    result = _AddRateGradient.apply(rate.step, rate.valid, rate.free_spikes, out, *state)
    return result[0], tuple(result[1:])
