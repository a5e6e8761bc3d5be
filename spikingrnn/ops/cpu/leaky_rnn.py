"""Leaky spiking vanilla RNN (``leak=β``) over a whole sequence with hand-written BPTT.

With the spikes ``h = Θ(v - θ)`` of the membrane ``v`` fed back: ``u = W_ih x + b_ih + W_hh h + b_hh``,
``v' = β v + (1 - β) u``; the step emits ``Θ(v' - θ)`` (:func:`spikingrnn.functional.cells.rnn_step_gates`),
one layer, one direction. Forward, chunk by chunk: one product for the chunk's input projections, then
per step the event-driven product with the spikes and one pointwise pass (C++, csrc/leaky_rnn.cpp, or
the same loop in PyTorch). Kept for backward: the input, ``v0`` unless all zeros, the output spikes (bits
in low-memory mode, and the input too when 0/1) and ``v`` after each step (analog; nothing else is
needed: ``v`` is linear in ``u``). Backward, chunk by chunk from the end: the reverse loop (one pass
and one GEMM per step; the C++ pass evaluates a built-in surrogate's derivative at ``v - θ`` itself, a
user-defined surrogate's comes from PyTorch for the chunk), the weight gradients; the gradient reaching the first step's input spikes ``Θ(v0 - θ)`` goes on to ``v0``.
"""
from __future__ import annotations

import torch

from ..gemm import projection
from ..storage import StepStore, is_binary, restore_zero, zero_or_kept
from . import common
from .common import (GradSums, InputProjection, SequenceConfig, Workspace, add_first_spikes_grad, before,
                     before_and_after, carried, chunks, new_output, rows, spikes_of)
from .extension import loops


def leaky_rnn_forward(x, v0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
    """Returns ``(y [T, B, H] spikes, v_n, states)``; ``states [T, B, H]`` (v after each step) when
    ``config.save``, else ``None``."""
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0]
    dtype = x.dtype
    leak = config.leak
    assert leak is not None  # a leaky RNN's config always has its leak
    v = v0.contiguous().clone()
    h = spikes_of(v0, config).contiguous()
    y = new_output(config, steps, batch, hidden, dtype=dtype)
    states = new_output(config, steps, batch, hidden, dtype=dtype) if config.save else None
    scratch = torch.empty(batch, hidden, dtype=dtype)
    compiled = loops()
    project = InputProjection(w_ih, b_ih, b_hh)
    w_hh_tiles = common.column_tiles(w_hh, common.EVENT_DENSITY)
    w_hh_t = w_hh.t() if w_hh_tiles is not None else w_hh.t().contiguous()
    for t0, t1 in chunks(steps, batch, hidden, x.element_size()):
        xp = project(x[t0:t1])
        if compiled is not None:
            compiled.leaky_rnn_forward_steps(xp, t0, config.batch_sizes or [], h, v, w_hh_t, w_hh_tiles, leak,
                                             config.spike_threshold, y, states, scratch, common.EVENT_DENSITY)
            continue
        for k in range(t1 - t0):
            t = t0 + k
            n = rows(config, t, batch)
            v_new = leak * v[:n] + (1 - leak) * torch.addmm(xp[k, :n], h[:n], w_hh_t)
            v[:n] = v_new
            spikes = spikes_of(v_new, config)
            h[:n] = spikes
            y[t, :n] = spikes
            if states is not None:
                states[t, :n] = v_new
    return y, v, states


def _backward_steps(spike_deriv, dy, t0, config, w_hh, dh_carry, dv_carry, d_pre):
    """PyTorch version of the C++ ``leaky_rnn_backward_steps`` (same contract)."""
    for k in range(spike_deriv.shape[0] - 1, -1, -1):
        n = rows(config, t0 + k, spike_deriv.shape[1])
        total = dv_carry[:n] + (dh_carry[:n] + dy[k, :n]) * spike_deriv[k, :n]
        torch.mul(total, 1 - config.leak, out=d_pre[k, :n])
        torch.mul(total, config.leak, out=dv_carry[:n])
        torch.mm(d_pre[k, :n], w_hh, out=dh_carry[:n])


class LeakyRNNSequence(torch.autograd.Function):
    """``(x [T, B, I], v0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H] spikes, v_n)``. Rows past their
    length keep their state and output zeros."""

    @staticmethod
    def forward(ctx, x, v0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
        y, v_n, states = leaky_rnn_forward(x, v0, w_ih, w_hh, b_ih, b_hh, config)
        if config.save:
            compact = not config.keep_pre  # bits only in low-memory mode (see lstm.py)
            x_store, x_kept = StepStore.wrap(x, compact and is_binary(x))
            y_store, y_kept = StepStore.wrap(y, compact)  # spikes: always 0/1
            ctx.config = config
            ctx.stores = (x_store, y_store)
            ctx.state_shape = tuple(v0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(v0), w_ih, w_hh, b_ih, b_hh, y_kept, states)
        return y, v_n

    @staticmethod
    def backward(ctx, dy, dv_n):
        x_kept, v0, w_ih, w_hh, b_ih, b_hh, y_kept, states = ctx.saved_tensors
        v0 = restore_zero(v0, ctx.state_shape, w_hh)
        config = ctx.config
        x_store, y_store = ctx.stores
        dtype = v0.dtype
        steps, (batch, hidden) = states.shape[0], v0.shape
        compiled = loops()
        sums = GradSums(ctx, ("x", "v0", "w_ih", "w_hh", "b_ih", "b_hh"),
                        dict(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh))
        dx = sums.input_grad(steps, batch, w_ih.shape[1], dtype)
        dv_carry = carried(dv_n, v0)
        dh_carry = torch.zeros_like(v0)  # dL/d(spikes fed to the next step): none after the last
        dy = dy.contiguous()
        w_hh_c = w_hh.contiguous()
        work = Workspace()
        plain = StepStore(states.shape[1:], False)
        h0 = spikes_of(v0, config)
        kind = common.spike_surrogate_kind(config) if compiled is not None else None
        for t0, t1 in reversed(chunks(steps, batch, hidden, v0.element_size())):
            chunk = t1 - t0
            x = x_store.rows(x_kept, t0, t1, dtype)
            h_prev = before(h0, y_store, y_kept, t0, t1, dtype)
            _, v_after = before_and_after(v0, plain, states, t0, t1, dtype)
            # the C++ loop evaluates a built-in surrogate's derivative itself
            spike_deriv = None if kind is not None else \
                config.derivative1(v_after - config.spike_threshold, config.alpha1).contiguous()
            d_pre = work.take("d_pre", chunk, batch, hidden, dtype=dtype, zero=config.batch_sizes is not None)
            if compiled is not None:
                compiled.leaky_rnn_backward_steps(v_after.contiguous(), spike_deriv, dy[t0:t1], t0,
                                                  config.batch_sizes or [], w_hh_c, config.leak, dh_carry, dv_carry,
                                                  d_pre, config.spike_threshold, *(kind or (-1, 0.0)))
            else:
                _backward_steps(spike_deriv, dy[t0:t1], t0, config, w_hh_c, dh_carry, dv_carry, d_pre)
            if dx is not None:
                projection(d_pre, w_ih.t(), out=dx[t0:t1])
            sums.add_chunk(x, h_prev, d_pre)
        add_first_spikes_grad(dv_carry, dh_carry, v0, config)
        grads = sums.grads
        return dx, dv_carry, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"], None
