"""The reference backend: a plain time loop over the pure step functions.

It is the oracle every fast backend is tested against: obviously correct, autograd does the
backward, one step function call per (layer, direction, time step).

Conventions shared by all backends (see :func:`reference_rnn`):

* ``x`` is time-major ``[T, B, I]``; ``lengths`` (``None`` or int64 ``[B]``) gives the valid
  steps of each row for packed sequences. A row's state stops changing after its last valid step;
  the reverse direction of a row starts at its own last valid step. Outputs past a row's length
  are zero.
* ``states`` is a tuple (``(h, c)`` for LSTM, ``(h,)`` otherwise) of tensors ``[L*D, B, *]``,
  layer-major like torch: index ``layer * D + direction``.
* ``weights[k]`` is ``(w_ih, w_hh, b_ih, b_hh, w_hr)`` for ``k = layer * D + direction``,
  absent entries ``None``; ``surrogates[k]`` is ``(spike, spike_g)``.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional.cells import gru_step, lstm_step, rnn_step
from .spec import RNNSpec


def make_step(spec: RNNSpec, spike, spike_g):
    """The step function ``step(x_t, state, w_ih, w_hh, b_ih, b_hh, w_hr) -> state`` of one cell."""
    if spec.mode == "LSTM":
        return partial(lstm_step, spike=spike, spike_g=spike_g,
                       cell_state=spec.cell_state, threshold=spec.cell_threshold)
    step = partial(gru_step, spike=spike, spike_n=spike_g) if spec.mode == "GRU" else partial(rnn_step, spike=spike)
    return lambda x, state, w_ih, w_hh, b_ih, b_hh, w_hr: step(x, state, w_ih, w_hh, b_ih, b_hh)


def run_direction(step, x: Tensor, state: tuple[Tensor, ...], weights: tuple,
                  valid: Tensor | None, reverse: bool) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one cell over ``x [T, B, I]``; returns ``(h for every step [T, B, H_out], final state)``.

    ``valid`` (``[T, B, 1]`` bool or ``None``) marks the steps that update a row.
    """
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs: list[Tensor | None] = [None] * x.shape[0]
    for t in steps:
        new_state = step(x[t], state, *weights)
        if valid is not None:
            new_state = tuple(torch.where(valid[t], new, old) for new, old in zip(new_state, state))
            outputs[t] = torch.where(valid[t], new_state[0], torch.zeros_like(new_state[0]))
        else:
            outputs[t] = new_state[0]
        state = new_state
    return torch.stack(outputs), state


def inter_layer_dropout(y: Tensor, spec: RNNSpec, training: bool) -> Tensor:
    """Dropout on a layer's output ``[T, B, F]`` (fresh mask per step, or one per sequence)."""
    if not training or spec.dropout == 0:
        return y
    if spec.invariant_dropout_mask:
        mask = F.dropout(y.new_ones(y.shape[1:]), p=spec.dropout, training=True)
        return y * mask
    return F.dropout(y, p=spec.dropout, training=True)


def run_stack(x: Tensor, states: tuple[Tensor, ...], spec: RNNSpec, training: bool,
              run_cell) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Layers, directions and inter-layer dropout around ``run_cell(k, y, state, reverse) -> (out, state)``,
    which runs cell ``k = layer * D + direction`` over ``y [T, B, F]``; every backend shares this."""
    num_dirs = spec.num_directions
    final: list[tuple[Tensor, ...]] = []
    y = x
    for layer in range(spec.num_layers):
        outputs = []
        for direction in range(num_dirs):
            k = layer * num_dirs + direction
            out, state = run_cell(k, y, tuple(s[k] for s in states), direction == 1)
            outputs.append(out)
            final.append(state)
        y = torch.cat(outputs, dim=2) if num_dirs == 2 else outputs[0]
        if layer < spec.num_layers - 1:
            y = inter_layer_dropout(y, spec, training)
    return y, tuple(torch.stack([f[i] for f in final]) for i in range(spec.num_states))


def reference_rnn(x: Tensor, states: tuple[Tensor, ...], weights: list[tuple], spec: RNNSpec,
                  surrogates: list[tuple], *, lengths: Tensor | None = None,
                  training: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the stack; returns ``(output [T, B, D*H_out], final states [L*D, B, *] each)``."""
    valid = None
    if lengths is not None:
        steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
        valid = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(2)

    def run_cell(k, y, state, reverse):
        return run_direction(make_step(spec, *surrogates[k]), y, state, weights[k], valid, reverse)

    return run_stack(x, states, spec, training, run_cell)
