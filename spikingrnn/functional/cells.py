"""Pure one-step functions of the spiking LSTM, GRU and vanilla RNN cells.

Shapes: ``x`` ``[B, I]``, ``h`` ``[B, H_out]``, ``c`` ``[B, H]``; weights in PyTorch's layout
(``w_ih`` ``[G*H, I]``, ``w_hh`` ``[G*H, H_out]``, ``w_hr`` ``[H_out, H]``, gate rows in torch's
order: LSTM ``i|f|g|o``, GRU ``r|z|n``). ``spike``/``spike_g`` map pre-activations to 0/1 spikes
(surrogate modules). Pre-activations are ``linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)``,
the same order of float operations as SpikingJelly, so spikes agree bit for bit.

Each cell's math is written once, in ``lstm_step_gates``/``gru_step_gates``/``rnn_step_gates``,
which return the new state and what the step computed on the way (:class:`LSTMGates`,
:class:`GRUGates`, :class:`RNNGates`: the gate spikes, the cell state, the layer's spikes) for
readers such as :mod:`spikingrnn.monitor`; ``lstm_step``/``gru_step``/``rnn_step`` (the reference
backend's steps) return only the state.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

CELL_STATES = ("clamp", "accumulate", "spike")
# each rule's code in the kernels (the C++ loops' and the Triton kernels' cell-state switches): its index above
CELL_STATE_CODES = {name: code for code, name in enumerate(CELL_STATES)}
DEFAULT_CELL_THRESHOLD = 0.1


class _ClampMaxStraightThrough(torch.autograd.Function):
    """``min(x, bound)`` forward, identity backward (SpikingJelly 2.0's in-place no-grad clamp)."""

    @staticmethod
    def forward(ctx, x, bound):
        return torch.clamp(x, max=bound)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


def clamp_max_straight_through(x: Tensor, bound: float = 1.0) -> Tensor:
    """``min(x, bound)`` whose gradient passes straight through."""
    return _ClampMaxStraightThrough.apply(x, bound)


def lstm_cell_update(f: Tensor, c: Tensor, i: Tensor, g: Tensor, cell_state: str,
                     spike, threshold: float) -> Tensor:
    """New cell state from the gates: ``c' = f*c + i*g`` then the ``cell_state`` rule.

    ``"accumulate"`` keeps ``c'``; ``"clamp"`` takes ``min(c', 1)`` with a straight-through
    gradient; ``"spike"`` fires ``Θ(c' - threshold)`` with the ``spike`` surrogate.
    """
    c_new = c * f + i * g
    if cell_state == "clamp":
        return clamp_max_straight_through(c_new, 1.0)
    if cell_state == "accumulate":
        return c_new
    if cell_state == "spike":
        return spike(c_new - threshold)
    raise ValueError(f"cell_state must be one of {CELL_STATES}, got {cell_state!r}")


class LSTMGates(NamedTuple):
    """What one LSTM step computed besides its state: the spikes ``i, f, g, o`` ``[B, H]``, the new
    cell state ``c`` ``[B, H]`` and the layer's spikes ``h = o * c`` ``[B, H]``, taken before the
    projection ``W_hr`` (without a projection it is the new state ``h``)."""
    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor
    c: Tensor
    h: Tensor


class GRUGates(NamedTuple):
    """What one GRU step computed: the spikes ``r, z, n`` ``[B, H]`` and the new state ``h`` ``[B, H]``."""
    r: Tensor
    z: Tensor
    n: Tensor
    h: Tensor


class RNNGates(NamedTuple):
    """What one vanilla RNN step computed: the new state ``h`` ``[B, H]`` (its spikes)."""
    h: Tensor


def lstm_step_gates(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
                    b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None, *,
                    spike, spike_g, cell_state: str = "clamp",
                    threshold: float = DEFAULT_CELL_THRESHOLD) -> tuple[tuple[Tensor, Tensor], LSTMGates]:
    """One spiking LSTM step; returns ``((h [B, H_out], c [B, H]), LSTMGates)``.

    ``u = W_ih x + b_ih + W_hh h + b_hh``; ``i, f, o = spike(u_i, u_f, u_o)``,
    ``g = spike_g(u_g)``; ``c`` by :func:`lstm_cell_update`; ``h = o * c``, then
    ``h = W_hr h`` when ``w_hr`` is given.
    """
    h, c = state
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    if spike_g is spike:
        i, f, g, o = spike(gates).chunk(4, dim=1)
    else:
        u_i, u_f, u_g, u_o = gates.chunk(4, dim=1)
        i, f, g, o = spike(u_i), spike(u_f), spike_g(u_g), spike(u_o)
    c = lstm_cell_update(f, c, i, g, cell_state, spike, threshold)
    h = c * o
    recorded = LSTMGates(i, f, g, o, c, h)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return (h, c), recorded


def lstm_step(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None, *,
              spike, spike_g, cell_state: str = "clamp",
              threshold: float = DEFAULT_CELL_THRESHOLD) -> tuple[Tensor, Tensor]:
    """One spiking LSTM step; returns ``(h [B, H_out], c [B, H])`` (:func:`lstm_step_gates` without the gates)."""
    return lstm_step_gates(x, state, w_ih, w_hh, b_ih, b_hh, w_hr, spike=spike, spike_g=spike_g,
                           cell_state=cell_state, threshold=threshold)[0]


def gru_step_gates(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
                   b_ih: Tensor | None, b_hh: Tensor | None, *, spike, spike_n) -> tuple[tuple[Tensor], GRUGates]:
    """One spiking GRU step; returns ``((h [B, H],), GRUGates)``.

    ``r = Θ(u_r)``, ``z = Θ(u_z)``, ``n = Θ(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h' = (1 - z) * n + z * h``.
    """
    (h,) = state
    x_r, x_z, x_n = F.linear(x, w_ih, b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
    r = spike(x_r + h_r)
    z = spike(x_z + h_z)
    n = spike_n(x_n + r * h_n)
    h = (1.0 - z) * n + z * h
    return (h,), GRUGates(r, z, n, h)


def gru_step(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None, b_hh: Tensor | None, *, spike, spike_n) -> tuple[Tensor]:
    """One spiking GRU step; returns ``(h [B, H],)`` (:func:`gru_step_gates` without the gates)."""
    return gru_step_gates(x, state, w_ih, w_hh, b_ih, b_hh, spike=spike, spike_n=spike_n)[0]


def rnn_step_gates(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
                   b_ih: Tensor | None, b_hh: Tensor | None, *, spike) -> tuple[tuple[Tensor], RNNGates]:
    """One spiking vanilla RNN step; returns ``((h [B, H],), RNNGates)`` with ``h' = Θ(W_ih x + b_ih + W_hh h + b_hh)``."""
    (h,) = state
    h = spike(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh))
    return (h,), RNNGates(h)


def rnn_step(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None, b_hh: Tensor | None, *, spike) -> tuple[Tensor]:
    """One spiking vanilla RNN step; returns ``(h [B, H],)`` (:func:`rnn_step_gates` without the gates)."""
    return rnn_step_gates(x, state, w_ih, w_hh, b_ih, b_hh, spike=spike)[0]
