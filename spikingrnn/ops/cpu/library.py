"""The cpu backend's sequence operations as ``torch.library`` custom operators.

One operator per cell runs one (layer, direction) over a whole sequence, and one more its backward:

* ``spikingrnn::lstm_sequence(x, h0, c0, w_ih, w_hh, b_ih?, b_hh?, w_hr?, ...) -> (y, h_n, c_n, pre, cells)``
* ``spikingrnn::gru_sequence(x, h0, w_ih, w_hh, b_ih?, b_hh?, ...) -> (y, h_n, pre)``
* ``spikingrnn::rnn_sequence(x, h0, w_ih, w_hh, b_ih?, b_hh?, ...) -> (y, h_n, pre)``
* ``spikingrnn::sigmoid_lstm_sequence(...) -> (y, h_n, c_n, gates, cells)`` and
  ``spikingrnn::sigmoid_gru_sequence(...) -> (y, s_n, gates, states)`` (``gates="sigmoid"``)
* ``spikingrnn::leaky_rnn_sequence(...) -> (y, v_n, states)`` (the vanilla RNN with ``leak``)

and a ``_backward`` operator for each. They run the same C++ loops (or their Python
fallbacks) as the eager autograd Functions of :mod:`.lstm`, :mod:`.gru` and :mod:`.vanilla`, whose
forward and backward they call, so their results are bitwise the same. What differs is what they keep
for backward: outputs of fixed shape (``pre`` the pre-activations ``[T, B, G*H]``, ``cells`` the LSTM
cell state after each step ``[T, B, H]``; empty ``[0]`` when ``save`` is false), where the eager
Functions choose bits or floats from the data. Fixed shapes are what a compiler needs: with the shape
functions (``register_fake``) and the backward (``register_autograd``) registered, ``torch.compile``
traces a model without a graph break, ``torch.export`` keeps the time and batch dimensions symbolic,
and ``torch.jit.trace`` records one node per (layer, direction) instead of unrolling the loop.
(``torch.onnx.export`` does not meet them: under an ONNX export every backend runs the reference
step in a ``scan``, see :mod:`spikingrnn.ops.scanned`.)

:func:`sequence` picks the operator while a graph is being captured (``torch.compile``,
``torch.export``, ``torch.jit.trace``) and the eager Function otherwise, which keeps less
memory (bit rows for 0/1 values, low-memory mode) and skips the operator dispatch.

Surrogates cross the operator boundary as kernel ids of :data:`spikingrnn.surrogate.KERNEL_IDS`
and their ``alpha``; the LSTM's cell-state rule as a code of
:data:`spikingrnn.functional.cells.CELL_STATE_CODES`.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import torch
from torch import Tensor

from ...functional.cells import CELL_STATE_CODES
from ...surrogate import KERNEL_IDS
from ..capture import JIT_TRACE_UNSUPPORTED, capturing
from ..storage import StepStore, unpack_rows
from .common import SequenceConfig
from .gru import GRUSequence, gru_forward
from .leaky_rnn import LeakyRNNSequence, leaky_rnn_forward
from .lstm import LSTMSequence, lstm_forward
from .sigmoid_gru import SigmoidGRUSequence, sigmoid_gru_forward
from .sigmoid_lstm import SigmoidLSTMSequence, sigmoid_lstm_forward
from .vanilla import RNNSequence, rnn_forward

__all__ = ["sequence", "surrogate_ids"]

_CELL_STATES = {code: name for name, code in CELL_STATE_CODES.items()}
_DERIVATIVES = {kernel_id: kind.derivative for kind, kernel_id in KERNEL_IDS.items()}  # kernel id -> formula
_KERNEL_IDS = {derivative: kernel_id for kernel_id, derivative in _DERIVATIVES.items()}
_EMPTY = (0,)


def surrogate_ids(config: SequenceConfig) -> tuple[int, int] | None:
    """The kernel ids of the two surrogate derivatives of ``config``, or ``None`` when one has none (a
    user-defined surrogate: the operators cannot take it, the eager Functions can)."""
    first, second = _KERNEL_IDS.get(config.derivative1), _KERNEL_IDS.get(config.derivative2)
    return None if first is None or second is None else (first, second)


def _config(batch_sizes: list[int], surrogate1: int, alpha1: float, surrogate2: int, alpha2: float,
            save: bool, cell_state: int = 0, threshold: float = 0.0) -> SequenceConfig:
    """The eager Functions' configuration from the operators' scalar arguments (pre-activations kept)."""
    return SequenceConfig(batch_sizes or None, _DERIVATIVES[surrogate1], alpha1, _DERIVATIVES[surrogate2], alpha2,
                          _CELL_STATES[cell_state], threshold, save, True)


def _or_empty(t: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(_EMPTY) if t is None else t


def _grad_or_empty(grads: tuple, like: Tensor) -> list[Tensor]:
    """The backward Functions' gradients with ``None`` as an empty tensor (operators return tensors)."""
    return [like.new_empty(_EMPTY) if g is None else g for g in grads]


def _backward_context(needs: list[bool], saved: tuple, **attributes) -> SimpleNamespace:
    """What the eager Functions' ``backward`` reads from its ``ctx``."""
    return SimpleNamespace(needs_input_grad=tuple(needs), saved_tensors=saved, **attributes)


# ----------------------------------------------------------------------------------------------- LSTM

@torch.library.custom_op("spikingrnn::lstm_sequence", mutates_args=())
def lstm_sequence(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                  b_hh: Optional[Tensor], w_hr: Optional[Tensor], batch_sizes: list[int], surrogate1: int,
                  alpha1: float, surrogate2: int, alpha2: float, cell_state: int, threshold: float,
                  save: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``x [T, B, I]``, ``h0 [B, P]``, ``c0 [B, H]`` -> ``(y [T, B, P], h_n, c_n, pre [T, B, 4H], cells [T, B, H])``;
    ``pre`` and ``cells`` are ``[0]`` unless ``save``."""
    config = _config(batch_sizes, surrogate1, alpha1, surrogate2, alpha2, save, cell_state, threshold)
    y, h_n, c_n, kept = lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config)
    if not save:
        return y, h_n, c_n, x.new_empty(_EMPTY), x.new_empty(_EMPTY)
    cells = unpack_rows(kept.cells, tuple(c0.shape), x.dtype) if kept.cells_binary else kept.cells
    return y, h_n, c_n, kept.pre, cells


@lstm_sequence.register_fake
def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, surrogate1, alpha1, surrogate2, alpha2, cell_state,
      threshold, save):
    steps, batch = x.shape[0], x.shape[1]
    y = x.new_empty(steps, batch, h0.shape[1])
    if not save:
        return y, h0.new_empty(h0.shape), c0.new_empty(c0.shape), x.new_empty(_EMPTY), x.new_empty(_EMPTY)
    return (y, h0.new_empty(h0.shape), c0.new_empty(c0.shape), x.new_empty(steps, batch, w_ih.shape[0]),
            x.new_empty(steps, batch, c0.shape[1]))


@torch.library.custom_op("spikingrnn::lstm_sequence_backward", mutates_args=())
def lstm_sequence_backward(dy: Optional[Tensor], dh_n: Optional[Tensor], dc_n: Optional[Tensor], x: Tensor, h0: Tensor,
                           c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                           w_hr: Optional[Tensor], y: Tensor, pre: Tensor, cells: Tensor, batch_sizes: list[int],
                           surrogate1: int, alpha1: float, surrogate2: int, alpha2: float, cell_state: int,
                           threshold: float, needs: list[bool]) -> list[Tensor]:
    """Gradients ``[dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr]`` of :func:`lstm_sequence` (``[0]`` where
    ``needs`` is false or the weight is absent)."""
    config = _config(batch_sizes, surrogate1, alpha1, surrogate2, alpha2, True, cell_state, threshold)
    batch, hidden = c0.shape
    ctx = _backward_context(
        needs, (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, None, None, cells, pre), config=config,
        state_shapes=(tuple(h0.shape), tuple(c0.shape)),
        stores=(StepStore(x.shape[1:], False), StepStore(y.shape[1:], False), None, StepStore((batch, hidden), False)))
    dy = torch.zeros_like(y) if dy is None else dy
    return _grad_or_empty(LSTMSequence.backward(ctx, dy, dh_n, dc_n)[:8], x)


@lstm_sequence_backward.register_fake
def _(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, pre, cells, batch_sizes, surrogate1, alpha1,
      surrogate2, alpha2, cell_state, threshold, needs):
    return _fake_grads(needs, (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr))


def _setup_lstm(ctx, inputs, output):
    (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, surrogate1, alpha1, surrogate2, alpha2, cell_state,
     threshold, save) = inputs
    y, _, _, pre, cells = output
    ctx.scalars = (batch_sizes, surrogate1, alpha1, surrogate2, alpha2, cell_state, threshold)
    ctx.mark_non_differentiable(pre, cells)
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, pre, cells)


def _lstm_backward(ctx, dy, dh_n, dc_n, _d_pre, _d_cells):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, pre, cells = ctx.saved_tensors
    needs = list(ctx.needs_input_grad[:8])
    grads = lstm_sequence_backward(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, pre, cells,
                                   *ctx.scalars, needs)
    return (*_present(grads, needs), *([None] * 8))


lstm_sequence.register_autograd(_lstm_backward, setup_context=_setup_lstm)


# ------------------------------------------------------------------------------------------ GRU, RNN

@torch.library.custom_op("spikingrnn::gru_sequence", mutates_args=())
def gru_sequence(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                 batch_sizes: list[int], surrogate1: int, alpha1: float, surrogate2: int, alpha2: float,
                 save: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``x [T, B, I]``, ``h0 [B, H]`` -> ``(y [T, B, H], h_n, pre [T, B, 4H])`` (``u_r|u_z|u_n|h_n``; ``[0]``
    unless ``save``)."""
    config = _config(batch_sizes, surrogate1, alpha1, surrogate2, alpha2, save)
    y, h_n, _, pre = gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config)
    return y, h_n, _or_empty(pre, x)


@gru_sequence.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, surrogate1, alpha1, surrogate2, alpha2, save):
    steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
    pre = x.new_empty(steps, batch, 4 * hidden) if save else x.new_empty(_EMPTY)
    return x.new_empty(steps, batch, hidden), h0.new_empty(h0.shape), pre


@torch.library.custom_op("spikingrnn::rnn_sequence", mutates_args=())
def rnn_sequence(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                 batch_sizes: list[int], surrogate1: int, alpha1: float, surrogate2: int, alpha2: float,
                 save: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``x [T, B, I]``, ``h0 [B, H]`` -> ``(y [T, B, H], h_n, pre [T, B, H])`` (``[0]`` unless ``save``)."""
    config = _config(batch_sizes, surrogate1, alpha1, surrogate2, alpha2, save)
    y, h_n, pre = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config)
    return y, h_n, _or_empty(pre, x)


@rnn_sequence.register_fake
def _(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, surrogate1, alpha1, surrogate2, alpha2, save):
    steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
    pre = x.new_empty(steps, batch, hidden) if save else x.new_empty(_EMPTY)
    return x.new_empty(steps, batch, hidden), h0.new_empty(h0.shape), pre


def _one_state_backward(function):
    """The backward operator of :func:`gru_sequence` or :func:`rnn_sequence` (``function``: its eager Function)."""

    def backward(dy: Optional[Tensor], dh_n: Optional[Tensor], x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor,
                 b_ih: Optional[Tensor], b_hh: Optional[Tensor], y: Tensor, pre: Tensor, batch_sizes: list[int],
                 surrogate1: int, alpha1: float, surrogate2: int, alpha2: float, needs: list[bool]) -> list[Tensor]:
        config = _config(batch_sizes, surrogate1, alpha1, surrogate2, alpha2, True)
        stores: tuple[StepStore | None, ...] = (StepStore(x.shape[1:], False), StepStore(y.shape[1:], False))
        saved: tuple[Tensor | None, ...] = (x, h0, w_ih, w_hh, b_ih, b_hh, y, pre)
        if function is GRUSequence:
            stores, saved = (*stores, None), (*saved[:7], None, pre)
        ctx = _backward_context(needs, saved, config=config, stores=stores, state_shape=tuple(h0.shape))
        dy = torch.zeros_like(y) if dy is None else dy
        return _grad_or_empty(function.backward(ctx, dy, dh_n)[:6], x)

    return backward


def _register_one_state(forward, name: str, function) -> None:
    """Register the backward operator and the autograd formula of a GRU or RNN sequence operator."""
    backward_op = torch.library.custom_op(f"spikingrnn::{name}_backward", mutates_args=())(
        _one_state_backward(function))

    @backward_op.register_fake
    def _(dy, dh_n, x, h0, w_ih, w_hh, b_ih, b_hh, y, pre, batch_sizes, surrogate1, alpha1, surrogate2, alpha2,
          needs):
        return _fake_grads(needs, (x, h0, w_ih, w_hh, b_ih, b_hh))

    def setup(ctx, inputs, output):
        x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, surrogate1, alpha1, surrogate2, alpha2, save = inputs
        y, _, pre = output
        ctx.scalars = (batch_sizes, surrogate1, alpha1, surrogate2, alpha2)
        ctx.mark_non_differentiable(pre)
        ctx.save_for_backward(x, h0, w_ih, w_hh, b_ih, b_hh, y, pre)

    def autograd_backward(ctx, dy, dh_n, _d_pre):
        x, h0, w_ih, w_hh, b_ih, b_hh, y, pre = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[:6])
        grads = backward_op(dy, dh_n, x, h0, w_ih, w_hh, b_ih, b_hh, y, pre, *ctx.scalars, needs)
        return (*_present(grads, needs), *([None] * 6))

    forward.register_autograd(autograd_backward, setup_context=setup)


_register_one_state(gru_sequence, "gru_sequence", GRUSequence)
_register_one_state(rnn_sequence, "rnn_sequence", RNNSequence)


def _fake_grads(needs: list[bool], inputs: tuple) -> list[Tensor]:
    """Shapes of the backward operators' outputs: each input's shape where needed and present, else ``[0]``."""
    like = inputs[0]
    return [t.new_empty(t.shape) if need and t is not None else like.new_empty(_EMPTY)
            for need, t in zip(needs, inputs)]


def _present(grads: list[Tensor], needs: list[bool]) -> list[Tensor | None]:
    """The backward operators' outputs with the unneeded (empty) gradients as ``None``."""
    return [g if need else None for g, need in zip(grads, needs)]


# ------------------------------------------------------------------------------------ sigmoid form

def _sigmoid_config(batch_sizes: list[int], surrogate1: int, alpha1: float, spike_threshold: float,
                    save: bool) -> SequenceConfig:
    """The sigmoid-form Functions' configuration (gates kept): one surrogate, that of the emitted spikes."""
    derivative = _DERIVATIVES[surrogate1]
    return SequenceConfig(batch_sizes or None, derivative, alpha1, derivative, alpha1, "accumulate", 0.0, save, True,
                          spike_threshold, "sigmoid")


@torch.library.custom_op("spikingrnn::sigmoid_lstm_sequence", mutates_args=())
def sigmoid_lstm_sequence(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                          b_hh: Optional[Tensor], w_hr: Optional[Tensor], batch_sizes: list[int], surrogate1: int,
                          alpha1: float, spike_threshold: float,
                          save: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``x [T, B, I]``, ``h0 [B, P]``, ``c0 [B, H]`` -> ``(y [T, B, P], h_n, c_n, gates [T, B, 4H], cells [T, B, H])``;
    ``gates`` and ``cells`` are ``[0]`` unless ``save``."""
    config = _sigmoid_config(batch_sizes, surrogate1, alpha1, spike_threshold, save)
    y, h_n, c_n, gates, cells = sigmoid_lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config)
    return y, h_n, c_n, _or_empty(gates, x), _or_empty(cells, x)


@sigmoid_lstm_sequence.register_fake
def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, surrogate1, alpha1, spike_threshold, save):
    steps, batch = x.shape[0], x.shape[1]
    kept = ((x.new_empty(steps, batch, w_ih.shape[0]), x.new_empty(steps, batch, c0.shape[1])) if save
            else (x.new_empty(_EMPTY), x.new_empty(_EMPTY)))
    return (x.new_empty(steps, batch, h0.shape[1]), h0.new_empty(h0.shape), c0.new_empty(c0.shape), *kept)


@torch.library.custom_op("spikingrnn::sigmoid_lstm_sequence_backward", mutates_args=())
def sigmoid_lstm_sequence_backward(dy: Optional[Tensor], dh_n: Optional[Tensor], dc_n: Optional[Tensor], x: Tensor,
                                   h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                                   b_hh: Optional[Tensor], w_hr: Optional[Tensor], y: Tensor, gates: Tensor,
                                   cells: Tensor, batch_sizes: list[int], surrogate1: int, alpha1: float,
                                   spike_threshold: float, needs: list[bool]) -> list[Tensor]:
    """Gradients ``[dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr]`` of :func:`sigmoid_lstm_sequence`."""
    config = _sigmoid_config(batch_sizes, surrogate1, alpha1, spike_threshold, True)
    ctx = _backward_context(needs, (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, gates, cells), config=config,
                            state_shapes=(tuple(h0.shape), tuple(c0.shape)),
                            stores=(StepStore(x.shape[1:], False), StepStore(y.shape[1:], False)))
    dy = torch.zeros_like(y) if dy is None else dy
    return _grad_or_empty(SigmoidLSTMSequence.backward(ctx, dy, dh_n, dc_n)[:8], x)


@sigmoid_lstm_sequence_backward.register_fake
def _(dy, dh_n, dc_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, gates, cells, batch_sizes, surrogate1, alpha1,
      spike_threshold, needs):
    return _fake_grads(needs, (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr))


def _setup_sigmoid_lstm(ctx, inputs, output):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, surrogate1, alpha1, spike_threshold, save = inputs
    y, _, _, gates, cells = output
    ctx.scalars = (batch_sizes, surrogate1, alpha1, spike_threshold)
    ctx.mark_non_differentiable(gates, cells)
    ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, gates, cells)


def _sigmoid_lstm_backward(ctx, dy, dh_n, dc_n, _d_gates, _d_cells):
    saved = ctx.saved_tensors
    needs = list(ctx.needs_input_grad[:8])
    grads = sigmoid_lstm_sequence_backward(dy, dh_n, dc_n, *saved, *ctx.scalars, needs)
    return (*_present(grads, needs), *([None] * 5))


sigmoid_lstm_sequence.register_autograd(_sigmoid_lstm_backward, setup_context=_setup_sigmoid_lstm)


@torch.library.custom_op("spikingrnn::sigmoid_gru_sequence", mutates_args=())
def sigmoid_gru_sequence(x: Tensor, s0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                         b_hh: Optional[Tensor], batch_sizes: list[int], surrogate1: int, alpha1: float,
                         spike_threshold: float, save: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``x [T, B, I]``, ``s0 [B, H]`` -> ``(y [T, B, H], s_n, gates [T, B, 4H], states [T, B, H])`` (``[0]`` unless
    ``save``)."""
    config = _sigmoid_config(batch_sizes, surrogate1, alpha1, spike_threshold, save)
    y, s_n, gates, states = sigmoid_gru_forward(x, s0, w_ih, w_hh, b_ih, b_hh, config)
    return y, s_n, _or_empty(gates, x), _or_empty(states, x)


@sigmoid_gru_sequence.register_fake
def _(x, s0, w_ih, w_hh, b_ih, b_hh, batch_sizes, surrogate1, alpha1, spike_threshold, save):
    steps, batch, hidden = x.shape[0], x.shape[1], s0.shape[1]
    kept = ((x.new_empty(steps, batch, 4 * hidden), x.new_empty(steps, batch, hidden)) if save
            else (x.new_empty(_EMPTY), x.new_empty(_EMPTY)))
    return (x.new_empty(steps, batch, hidden), s0.new_empty(s0.shape), *kept)


@torch.library.custom_op("spikingrnn::sigmoid_gru_sequence_backward", mutates_args=())
def sigmoid_gru_sequence_backward(dy: Optional[Tensor], ds_n: Optional[Tensor], x: Tensor, s0: Tensor, w_ih: Tensor,
                                  w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], y: Tensor,
                                  gates: Tensor, states: Tensor, batch_sizes: list[int], surrogate1: int,
                                  alpha1: float, spike_threshold: float, needs: list[bool]) -> list[Tensor]:
    """Gradients ``[dx, ds0, dw_ih, dw_hh, db_ih, db_hh]`` of :func:`sigmoid_gru_sequence`."""
    config = _sigmoid_config(batch_sizes, surrogate1, alpha1, spike_threshold, True)
    ctx = _backward_context(needs, (x, s0, w_ih, w_hh, b_ih, b_hh, y, gates, states), config=config,
                            state_shape=tuple(s0.shape),
                            stores=(StepStore(x.shape[1:], False), StepStore(y.shape[1:], False)))
    dy = torch.zeros_like(y) if dy is None else dy
    return _grad_or_empty(SigmoidGRUSequence.backward(ctx, dy, ds_n)[:6], x)


@sigmoid_gru_sequence_backward.register_fake
def _(dy, ds_n, x, s0, w_ih, w_hh, b_ih, b_hh, y, gates, states, batch_sizes, surrogate1, alpha1, spike_threshold,
      needs):
    return _fake_grads(needs, (x, s0, w_ih, w_hh, b_ih, b_hh))


def _setup_sigmoid_gru(ctx, inputs, output):
    x, s0, w_ih, w_hh, b_ih, b_hh, batch_sizes, surrogate1, alpha1, spike_threshold, save = inputs
    y, _, gates, states = output
    ctx.scalars = (batch_sizes, surrogate1, alpha1, spike_threshold)
    ctx.mark_non_differentiable(gates, states)
    ctx.save_for_backward(x, s0, w_ih, w_hh, b_ih, b_hh, y, gates, states)


def _sigmoid_gru_backward(ctx, dy, ds_n, _d_gates, _d_states):
    needs = list(ctx.needs_input_grad[:6])
    grads = sigmoid_gru_sequence_backward(dy, ds_n, *ctx.saved_tensors, *ctx.scalars, needs)
    return (*_present(grads, needs), *([None] * 5))


sigmoid_gru_sequence.register_autograd(_sigmoid_gru_backward, setup_context=_setup_sigmoid_gru)


# -------------------------------------------------------------------------------------- leaky RNN

def _leaky_config(batch_sizes: list[int], surrogate1: int, alpha1: float, leak: float, spike_threshold: float,
                  save: bool) -> SequenceConfig:
    """The leaky RNN Function's configuration: one surrogate, that of the emitted spikes."""
    derivative = _DERIVATIVES[surrogate1]
    return SequenceConfig(batch_sizes or None, derivative, alpha1, derivative, alpha1, "clamp", 0.0, save, True,
                          spike_threshold, "heaviside", leak)


@torch.library.custom_op("spikingrnn::leaky_rnn_sequence", mutates_args=())
def leaky_rnn_sequence(x: Tensor, v0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                       b_hh: Optional[Tensor], batch_sizes: list[int], surrogate1: int, alpha1: float, leak: float,
                       spike_threshold: float, save: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``x [T, B, I]``, ``v0 [B, H]`` -> ``(y [T, B, H], v_n, states [T, B, H])`` (``[0]`` unless ``save``)."""
    config = _leaky_config(batch_sizes, surrogate1, alpha1, leak, spike_threshold, save)
    y, v_n, states = leaky_rnn_forward(x, v0, w_ih, w_hh, b_ih, b_hh, config)
    return y, v_n, _or_empty(states, x)


@leaky_rnn_sequence.register_fake
def _(x, v0, w_ih, w_hh, b_ih, b_hh, batch_sizes, surrogate1, alpha1, leak, spike_threshold, save):
    steps, batch, hidden = x.shape[0], x.shape[1], v0.shape[1]
    states = x.new_empty(steps, batch, hidden) if save else x.new_empty(_EMPTY)
    return x.new_empty(steps, batch, hidden), v0.new_empty(v0.shape), states


@torch.library.custom_op("spikingrnn::leaky_rnn_sequence_backward", mutates_args=())
def leaky_rnn_sequence_backward(dy: Optional[Tensor], dv_n: Optional[Tensor], x: Tensor, v0: Tensor, w_ih: Tensor,
                                w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], y: Tensor,
                                states: Tensor, batch_sizes: list[int], surrogate1: int, alpha1: float, leak: float,
                                spike_threshold: float, needs: list[bool]) -> list[Tensor]:
    """Gradients ``[dx, dv0, dw_ih, dw_hh, db_ih, db_hh]`` of :func:`leaky_rnn_sequence`."""
    config = _leaky_config(batch_sizes, surrogate1, alpha1, leak, spike_threshold, True)
    ctx = _backward_context(needs, (x, v0, w_ih, w_hh, b_ih, b_hh, y, states), config=config,
                            state_shape=tuple(v0.shape),
                            stores=(StepStore(x.shape[1:], False), StepStore(y.shape[1:], False)))
    dy = torch.zeros_like(y) if dy is None else dy
    return _grad_or_empty(LeakyRNNSequence.backward(ctx, dy, dv_n)[:6], x)


@leaky_rnn_sequence_backward.register_fake
def _(dy, dv_n, x, v0, w_ih, w_hh, b_ih, b_hh, y, states, batch_sizes, surrogate1, alpha1, leak, spike_threshold,
      needs):
    return _fake_grads(needs, (x, v0, w_ih, w_hh, b_ih, b_hh))


def _setup_leaky_rnn(ctx, inputs, output):
    x, v0, w_ih, w_hh, b_ih, b_hh, batch_sizes, surrogate1, alpha1, leak, spike_threshold, save = inputs
    y, _, states = output
    ctx.scalars = (batch_sizes, surrogate1, alpha1, leak, spike_threshold)
    ctx.mark_non_differentiable(states)
    ctx.save_for_backward(x, v0, w_ih, w_hh, b_ih, b_hh, y, states)


def _leaky_rnn_backward(ctx, dy, dv_n, _d_states):
    needs = list(ctx.needs_input_grad[:6])
    grads = leaky_rnn_sequence_backward(dy, dv_n, *ctx.saved_tensors, *ctx.scalars, needs)
    return (*_present(grads, needs), *([None] * 6))


leaky_rnn_sequence.register_autograd(_leaky_rnn_backward, setup_context=_setup_leaky_rnn)


# ------------------------------------------------------------------------------------------- launcher

def sequence(mode: str, x: Tensor, state: tuple[Tensor, ...], weights: tuple,
             config: SequenceConfig) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run one (layer, direction) over ``x [T, B, I]``: the custom operator while a graph is captured (when the
    surrogates have kernel ids), else the eager Function; returns ``(y, final state)``."""
    w_ih, w_hh, b_ih, b_hh, w_hr = weights
    ids = surrogate_ids(config) if capturing() else None
    if ids is None and torch.jit.is_tracing():
        raise RuntimeError(JIT_TRACE_UNSUPPORTED)
    if config.gates == "sigmoid" and mode != "RNN":
        return _sigmoid_sequence(mode, x, state, weights, config, ids)
    if mode == "RNN" and config.leak is not None:
        if ids is None:
            y, v = LeakyRNNSequence.apply(x, state[0], w_ih, w_hh, b_ih, b_hh, config)
            return y, (v,)
        save = config.save or torch.jit.is_tracing()
        y, v, _ = leaky_rnn_sequence(x, state[0], w_ih, w_hh, b_ih, b_hh, config.batch_sizes or [], ids[0],
                                     float(config.alpha1), float(config.leak), float(config.spike_threshold), save)
        return y, (v,)
    if ids is None:
        if mode == "LSTM":
            y, h, c = LSTMSequence.apply(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh, w_hr, config)
            return y, (h, c)
        function = GRUSequence if mode == "GRU" else RNNSequence
        y, h = function.apply(x, state[0], w_ih, w_hh, b_ih, b_hh, config)
        return y, (h,)
    scalars = (config.batch_sizes or [], ids[0], float(config.alpha1), ids[1], float(config.alpha2))
    # a traced graph keeps what backward needs whatever the grad mode it was traced in: it must not depend on it
    # (torch.jit.trace checks its graph by tracing again without gradients)
    save = config.save or torch.jit.is_tracing()
    if mode == "LSTM":
        y, h, c, _, _ = lstm_sequence(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh, w_hr, *scalars,
                                      CELL_STATE_CODES[config.cell_state], float(config.threshold), save)
        return y, (h, c)
    operator = gru_sequence if mode == "GRU" else rnn_sequence
    y, h, _ = operator(x, state[0], w_ih, w_hh, b_ih, b_hh, *scalars, save)
    return y, (h,)


def _sigmoid_sequence(mode: str, x: Tensor, state: tuple[Tensor, ...], weights: tuple, config: SequenceConfig,
                      ids: tuple[int, int] | None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """:func:`sequence` of the sigmoid form (``ids``: the surrogates' kernel ids while capturing, else ``None``)."""
    w_ih, w_hh, b_ih, b_hh, w_hr = weights
    if ids is None:
        if mode == "LSTM":
            y, h, c = SigmoidLSTMSequence.apply(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh, w_hr, config)
            return y, (h, c)
        y, s = SigmoidGRUSequence.apply(x, state[0], w_ih, w_hh, b_ih, b_hh, config)
        return y, (s,)
    scalars = (config.batch_sizes or [], ids[0], float(config.alpha1), float(config.spike_threshold))
    save = config.save or torch.jit.is_tracing()  # see sequence()
    if mode == "LSTM":
        y, h, c, _, _ = sigmoid_lstm_sequence(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh, w_hr, *scalars, save)
        return y, (h, c)
    y, s, _, _ = sigmoid_gru_sequence(x, state[0], w_ih, w_hh, b_ih, b_hh, *scalars, save)
    return y, (s,)
