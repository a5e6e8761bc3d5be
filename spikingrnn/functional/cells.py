"""Pure one-step functions of the spiking LSTM, GRU and vanilla RNN cells.

Shapes: ``x`` ``[B, I]``, ``h`` ``[B, H_out]``, ``c`` ``[B, H]``; weights in PyTorch's layout
(``w_ih`` ``[G*H, I]``, ``w_hh`` ``[G*H, H_out]``, ``w_hr`` ``[H_out, H]``, gate rows in torch's
order: LSTM ``i|f|g|o``, GRU ``r|z|n``). ``spike``/``spike_g`` map pre-activations to 0/1 spikes
(surrogate modules). ``gates`` picks the form of the LSTM's and GRU's gates (:data:`GATE_FORMS`). Pre-activations are ``linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)``,
the same order of float operations as SpikingJelly, so spikes agree bit for bit.

Each cell's math is written once, in ``lstm_step_gates``/``gru_step_gates``/``rnn_step_gates``,
which return the new state and what the step computed on the way (:class:`LSTMGates`,
:class:`GRUGates`, :class:`RNNGates`: the gate spikes, the cell state, the layer's spikes) for
readers such as :mod:`spikingrnn.monitor`; ``lstm_step``/``gru_step``/``rnn_step`` (the reference
backend's steps) return only the state.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..surrogate import SpikeFn

CELL_STATES = ("clamp", "accumulate", "spike")
# each rule's code in the kernels (the C++ loops' and the Triton kernels' cell-state switches): its index above
CELL_STATE_CODES = {name: code for code, name in enumerate(CELL_STATES)}
DEFAULT_CELL_THRESHOLD = 0.1
# The form of the LSTM's and GRU's gates. "sigmoid": torch's gates (sigmoid i, f, o / r, z; tanh g / n)
# with an analog cell state, and only the emitted h binary (h = Θ(o·tanh(c) − θ), GRU h = Θ(s − θ)):
# what neurons send stays 0/1 and the products with it event-driven. "heaviside": the seed's gates,
# each a 0/1 spike, with h = o·c and the cell_state rule (SpikingJelly 2.0's cell with "clamp").
GATE_FORMS = ("sigmoid", "heaviside")
DEFAULT_GATES = "sigmoid"  # measured in docs/LEARNING.md: the form that learns like nn.LSTM/nn.GRU
DEFAULT_CELL_STATE = "accumulate"  # the only rule of the sigmoid form (its analog cell state)
DEFAULT_SPIKE_THRESHOLD = 0.25  # θ of the sigmoid form's emitted spikes
DEFAULT_FORGET_BIAS = 1.0  # initial bias of the gate that keeps memory (LSTM f, GRU z)
# The vanilla RNN's leak β: its membrane v' = β v + (1 - β) u keeps a decaying memory of its input and
# emits h = Θ(v - θ); None is the seed's cell h = Θ(u) (SpikingJelly 2.0's), whose state is its spikes.
DEFAULT_LEAK = 0.9


class _ClampMaxStraightThrough(torch.autograd.Function):
    """``min(x, bound)`` forward, identity backward (SpikingJelly 2.0's in-place no-grad clamp)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, bound: float) -> Tensor:
        return torch.clamp(x, max=bound)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output, None


def clamp_max_straight_through(x: Tensor, bound: float = 1.0) -> Tensor:
    """``min(x, bound)`` whose gradient passes straight through."""
    return _ClampMaxStraightThrough.apply(x, bound)


def lstm_cell_update(f: Tensor, c: Tensor, i: Tensor, g: Tensor, cell_state: str,
                     spike: SpikeFn, threshold: float) -> Tensor:
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
    """What one LSTM step computed besides its state: the gates ``i, f, g, o`` ``[B, H]`` (0/1 spikes,
    or with ``gates="sigmoid"`` their analog values), the new cell state ``c`` ``[B, H]`` and the
    layer's output ``h`` ``[B, H]`` (``o * c``, or the spikes ``Θ(o·tanh(c) − θ)``), taken before the
    projection ``W_hr`` (without a projection it is the new state ``h``)."""
    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor
    c: Tensor
    h: Tensor


class GRUGates(NamedTuple):
    """What one GRU step computed: the gates ``r, z, n`` ``[B, H]`` (0/1 spikes, or analog with
    ``gates="sigmoid"``) and the emitted spikes ``h`` ``[B, H]`` (the heaviside form's new state)."""
    r: Tensor
    z: Tensor
    n: Tensor
    h: Tensor


class RNNGates(NamedTuple):
    """What one vanilla RNN step computed: its spikes ``h`` ``[B, H]`` (the seed's cell: its new state)."""
    h: Tensor


def lstm_step_gates(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
                    b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None, *,
                    spike: SpikeFn, spike_g: SpikeFn, cell_state: str = DEFAULT_CELL_STATE,
                    threshold: float = DEFAULT_CELL_THRESHOLD, gates: str = DEFAULT_GATES,
                    spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> tuple[tuple[Tensor, Tensor], LSTMGates]:
    """One spiking LSTM step; returns ``((h [B, H_out], c [B, H]), LSTMGates)``.

    ``u = W_ih x + b_ih + W_hh h + b_hh``. ``gates="sigmoid"``: ``i, f, o = sigmoid(u_i, u_f, u_o)``,
    ``g = tanh(u_g)``, ``c = f*c + i*g`` (``cell_state`` must be ``"accumulate"``) and the spikes
    ``h = spike(o * tanh(c) - spike_threshold)``. ``gates="heaviside"``: ``i, f, o = spike(u_i, u_f, u_o)``,
    ``g = spike_g(u_g)``; ``c`` by :func:`lstm_cell_update`; ``h = o * c``. Then ``h = W_hr h`` when
    ``w_hr`` is given.
    """
    h, c = state
    gates_u = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    if gates == "sigmoid":
        if cell_state != "accumulate":
            raise ValueError(f"gates='sigmoid' keeps an analog cell state: cell_state must be 'accumulate', "
                             f"got {cell_state!r}")
        u_i, u_f, u_g, u_o = gates_u.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(u_i), torch.sigmoid(u_f), torch.tanh(u_g), torch.sigmoid(u_o)
        c = f * c + i * g
        h = spike(o * torch.tanh(c) - spike_threshold)
        recorded = LSTMGates(i, f, g, o, c, h)
        if w_hr is not None:
            h = F.linear(h, w_hr)
        return (h, c), recorded
    if gates != "heaviside":
        raise ValueError(f"gates must be one of {GATE_FORMS}, got {gates!r}")
    if spike_g is spike:
        i, f, g, o = spike(gates_u).chunk(4, dim=1)
    else:
        u_i, u_f, u_g, u_o = gates_u.chunk(4, dim=1)
        i, f, g, o = spike(u_i), spike(u_f), spike_g(u_g), spike(u_o)
    c = lstm_cell_update(f, c, i, g, cell_state, spike, threshold)
    h = c * o
    recorded = LSTMGates(i, f, g, o, c, h)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return (h, c), recorded


def lstm_step(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None, b_hh: Tensor | None, w_hr: Tensor | None, *,
              spike: SpikeFn, spike_g: SpikeFn, cell_state: str = DEFAULT_CELL_STATE,
              threshold: float = DEFAULT_CELL_THRESHOLD, gates: str = DEFAULT_GATES,
              spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> tuple[Tensor, Tensor]:
    """One spiking LSTM step; returns ``(h [B, H_out], c [B, H])`` (:func:`lstm_step_gates` without the gates)."""
    return lstm_step_gates(x, state, w_ih, w_hh, b_ih, b_hh, w_hr, spike=spike, spike_g=spike_g,
                           cell_state=cell_state, threshold=threshold, gates=gates,
                           spike_threshold=spike_threshold)[0]


def state_spikes(s: Tensor, spike: SpikeFn, spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> Tensor:
    """The spikes ``h = spike(s - spike_threshold)`` ``[B, H]`` that a cell with the analog state ``s``
    emits (the sigmoid-form GRU, the leaky vanilla RNN): its output, and its recurrent input at the
    next step."""
    return spike(s - spike_threshold)


def gru_step_gates(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
                   b_ih: Tensor | None, b_hh: Tensor | None, *, spike: SpikeFn, spike_n: SpikeFn,
                   gates: str = DEFAULT_GATES,
                   spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> tuple[tuple[Tensor], GRUGates]:
    """One spiking GRU step; returns ``((state [B, H],), GRUGates)``.

    ``gates="heaviside"``: ``r = Θ(u_r)``, ``z = Θ(u_z)``, ``n = Θ(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h' = (1 - z) * n + z * h``; the state is ``h`` (0/1 spikes).

    ``gates="sigmoid"``: the state is an analog ``s``; with the spikes ``h = state_spikes(s)`` fed back,
    ``r, z = sigmoid(u_r, u_z)``, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``s' = (1 - z) * n + z * s``, and the step emits ``GRUGates.h = state_spikes(s')``.
    """
    if gates == "sigmoid":
        (s,) = state
        x_r, x_z, x_n = F.linear(x, w_ih, b_ih).chunk(3, dim=1)
        h_r, h_z, h_n = F.linear(state_spikes(s, spike, spike_threshold), w_hh, b_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        s = (1.0 - z) * n + z * s
        return (s,), GRUGates(r, z, n, state_spikes(s, spike, spike_threshold))
    if gates != "heaviside":
        raise ValueError(f"gates must be one of {GATE_FORMS}, got {gates!r}")
    (h,) = state
    x_r, x_z, x_n = F.linear(x, w_ih, b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=1)
    r = spike(x_r + h_r)
    z = spike(x_z + h_z)
    n = spike_n(x_n + r * h_n)
    h = (1.0 - z) * n + z * h
    return (h,), GRUGates(r, z, n, h)


def gru_step(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None, b_hh: Tensor | None, *, spike: SpikeFn, spike_n: SpikeFn,
             gates: str = DEFAULT_GATES,
             spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> tuple[Tensor]:
    """One spiking GRU step; returns ``(state [B, H],)`` (:func:`gru_step_gates` without the gates)."""
    return gru_step_gates(x, state, w_ih, w_hh, b_ih, b_hh, spike=spike, spike_n=spike_n, gates=gates,
                          spike_threshold=spike_threshold)[0]


def rnn_step_gates(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
                   b_ih: Tensor | None, b_hh: Tensor | None, *, spike: SpikeFn,
                   leak: float | None = DEFAULT_LEAK,
                   spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> tuple[tuple[Tensor], RNNGates]:
    """One spiking vanilla RNN step; returns ``((state [B, H],), RNNGates)``.

    ``leak=β`` (a number): the state is the analog membrane ``v``; with the spikes ``h = state_spikes(v)``
    fed back, ``u = W_ih x + b_ih + W_hh h + b_hh``, ``v' = β v + (1 - β) u``, and the step emits
    ``RNNGates.h = state_spikes(v')``. ``leak=None``: the seed's cell, ``h' = Θ(u)``, whose state is ``h``.
    """
    if leak is None:
        (h,) = state
        h = spike(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh))
        return (h,), RNNGates(h)
    (v,) = state
    u = F.linear(x, w_ih, b_ih) + F.linear(state_spikes(v, spike, spike_threshold), w_hh, b_hh)
    v = leak * v + (1.0 - leak) * u
    return (v,), RNNGates(state_spikes(v, spike, spike_threshold))


def rnn_step(x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None, b_hh: Tensor | None, *, spike: SpikeFn,
             leak: float | None = DEFAULT_LEAK,
             spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> tuple[Tensor]:
    """One spiking vanilla RNN step; returns ``(state [B, H],)`` (:func:`rnn_step_gates` without the gates)."""
    return rnn_step_gates(x, state, w_ih, w_hh, b_ih, b_hh, spike=spike, leak=leak,
                          spike_threshold=spike_threshold)[0]
