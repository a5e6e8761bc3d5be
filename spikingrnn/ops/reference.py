"""The reference backend: a plain time loop over the pure step functions.

It is the oracle every fast backend is tested against: obviously correct, autograd does the
backward, one step function call per (layer, direction, time step).

Conventions shared by all backends (see :func:`reference_rnn`):

* ``x`` is time-major ``[T, B, I]``; ``lengths`` (``None`` or int64 ``[B]``, non-increasing as
  packed sequences are) gives the valid steps of each row for packed sequences. A row's state stops
  changing after its last valid step; the reverse direction of a row starts at its own last valid
  step. Outputs past a row's length are zero.
* ``states`` is a tuple (``(h, c)`` for LSTM, ``(h,)`` otherwise) of tensors ``[L*D, B, *]``,
  layer-major like torch: index ``layer * D + direction``.
* ``weights[k]`` is ``(w_ih, w_hh, b_ih, b_hh, w_hr)`` for ``k = layer * D + direction``,
  absent entries ``None``; ``surrogates[k]`` is ``(spike, spike_g)``.

Layers, directions and dropout are :func:`spikingrnn.ops.stack.run_stack`'s, as in every backend.
"""
from __future__ import annotations

from functools import partial
from typing import cast

import torch
from torch import Tensor

from ..functional.cells import gru_step, lstm_step, rnn_step, state_spikes
from .spec import RNNSpec
from .stack import packed_batch_sizes, run_stack


def first_state(state: tuple[Tensor, ...]) -> Tensor:
    """A step's output when it is the first state (``h``): every cell but those of ``spec.emits_state_spikes``."""
    return state[0]


def make_step(spec: RNNSpec, spike, spike_g):
    """``(step, emit)`` of one cell: ``step(x_t, state, w_ih, w_hh, b_ih, b_hh, w_hr) -> state`` and
    ``emit(state) -> output [B, H_out]`` (the sigmoid-form GRU and the leaky RNN emit the spikes of their
    analog state)."""
    if spec.mode == "LSTM":
        return partial(lstm_step, spike=spike, spike_g=spike_g, cell_state=spec.cell_state,
                       threshold=spec.cell_threshold, gates=spec.gates,
                       spike_threshold=spec.spike_threshold), first_state
    if spec.mode == "GRU":
        step = partial(gru_step, spike=spike, spike_n=spike_g, gates=spec.gates, spike_threshold=spec.spike_threshold)
    else:
        step = partial(rnn_step, spike=spike, leak=spec.leak, spike_threshold=spec.spike_threshold)
    emit = partial(_emit_state_spikes, spike=spike, spike_threshold=spec.spike_threshold) \
        if spec.emits_state_spikes else first_state
    return (lambda x, state, w_ih, w_hh, b_ih, b_hh, w_hr: step(x, state, w_ih, w_hh, b_ih, b_hh)), emit


def _emit_state_spikes(state: tuple[Tensor], spike, spike_threshold: float) -> Tensor:
    return state_spikes(state[0], spike, spike_threshold)


def run_direction(step, x: Tensor, state: tuple[Tensor, ...], weights: tuple,
                  batch_sizes: list[int] | None, reverse: bool, emit=first_state) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one cell over ``x [T, B, I]``; returns ``(emit(state) for every step [T, B, H_out], final state)``.

    ``batch_sizes[t]`` (``None``: ``B`` at every step) is the number of leading rows that step ``t``
    updates (packed sequences). Only those rows go through the step: the others keep their state and
    output zeros, and a padded step never enters the autograd graph (a huge or infinite value at a
    padded position cannot turn a gradient into ``0 * inf = NaN``).
    """
    batch = x.shape[1]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs: list[Tensor | None] = [None] * x.shape[0]
    for t in steps:
        n = batch if batch_sizes is None else batch_sizes[t]
        if n == batch:
            state = step(x[t], state, *weights)
            outputs[t] = emit(state)
        else:
            new_state = step(x[t, :n], tuple(s[:n] for s in state), *weights)
            state = tuple(torch.cat([new, old[n:]]) for new, old in zip(new_state, state))
            out = emit(new_state)
            outputs[t] = torch.cat([out, out.new_zeros(batch - n, out.shape[1])])
    return torch.stack(cast("list[Tensor]", outputs)), state  # every step filled its slot


def reference_rnn(x: Tensor, states: tuple[Tensor, ...], weights: list[tuple], spec: RNNSpec,
                  surrogates: list[tuple], *, lengths: Tensor | None = None,
                  training: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the stack; returns ``(output [T, B, D*H_out], final states [L*D, B, *] each)``."""
    sizes = packed_batch_sizes(lengths, x.shape[0])

    def run_cell(k, y, state, reverse):
        step, emit = make_step(spec, *surrogates[k])
        return run_direction(step, y, state, weights[k], sizes, reverse, emit)

    return run_stack(x, states, spec, training, run_cell, lengths)
