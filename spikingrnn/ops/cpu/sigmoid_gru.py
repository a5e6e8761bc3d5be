"""Sigmoid-form spiking GRU (``gates="sigmoid"``) over a whole sequence with hand-written BPTT.

With the spikes ``h = Θ(s - θ)`` of the analog state ``s`` fed back: ``r, z = sigmoid(u_r, u_z)``,
``n = tanh(x_n + r h_n)``, ``s' = (1 - z) n + z s``; the step emits ``Θ(s' - θ)``
(:func:`spikingrnn.functional.cells.gru_step_gates`), one layer, one direction. Forward, chunk by
chunk: one product for the chunk's input projections, then per step the event-driven product with
the spikes and one fused pointwise pass (C++, csrc/sigmoid_gru.cpp, or the same loop in PyTorch).
Kept for backward: the input, ``s0`` unless all zeros, the output spikes, ``s`` after each step and
(default) ``r|z|n|h_n``; with ``low_memory`` the input and output as bits when 0/1 and no gates:
backward recomputes them with two products per chunk. Backward, chunk by chunk from the end: the
reverse loop (one fused pass and one GEMM per step; the C++ pass evaluates a built-in surrogate's
derivative at ``s - θ`` itself, a user-defined surrogate's comes from PyTorch for the chunk), the weight
gradients; the gradient reaching the first step's input spikes
``Θ(s0 - θ)`` goes on to ``s0`` through the surrogate.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..gemm import projection
from ..storage import StepStore, is_binary, restore_zero, zero_or_kept
from . import common
from .common import (GradSums, InputProjection, SequenceConfig, Workspace, add_first_spikes_grad, before,
                     before_and_after, carried, chunks, new_output, rows, spikes_of)
from .extension import loops


def sigmoid_gru_forward(x, s0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
    """Returns ``(y [T, B, H] spikes, s_n, gates, states)``: when ``config.save``, ``states [T, B, H]`` (s after
    each step) and, with ``keep_pre``, ``gates [T, B, 4H]`` (``r|z|n|h_n``); ``None`` otherwise."""
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0] // 3
    dtype = x.dtype
    s = s0.contiguous().clone()
    h = spikes_of(s0, config).contiguous()
    y = new_output(config, steps, batch, hidden, dtype=dtype)
    states = new_output(config, steps, batch, hidden, dtype=dtype) if config.save else None
    gates = new_output(config, steps, batch, 4 * hidden, dtype=dtype) if config.save and config.keep_pre else None
    scratch = torch.empty(batch, 3 * hidden, dtype=dtype)
    compiled = loops()
    project = InputProjection(w_ih, b_ih)
    w_hh_tiles = common.column_tiles(w_hh, common.EVENT_DENSITY)
    w_hh_t = w_hh.t() if w_hh_tiles is not None else w_hh.t().contiguous()
    for t0, t1 in chunks(steps, batch, 3 * hidden, x.element_size()):
        xp = project(x[t0:t1])
        if compiled is not None:
            compiled.sigmoid_gru_forward_steps(xp, t0, config.batch_sizes or [], h, s, w_hh_t, w_hh_tiles, b_hh,
                                               config.spike_threshold, y, gates, states, scratch,
                                               common.EVENT_DENSITY)
        else:
            _forward_steps(xp, t0, config, h, s, w_hh_t, b_hh, y, gates, states)
    return y, s, gates, states


def _activate(xp: Tensor, hp: Tensor) -> Tensor:
    """``r|z|n|h_n`` ``[..., 4H]`` from ``xp = W_ih x + b_ih`` and ``hp = W_hh h + b_hh`` (``[..., 3H]`` each)."""
    x_r, x_z, x_n = xp.chunk(3, dim=-1)
    h_r, h_z, h_n = hp.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    return torch.cat([r, torch.sigmoid(x_z + h_z), torch.tanh(x_n + r * h_n), h_n], dim=-1)


def _forward_steps(xp, t0, config, h, s, w_hh_t, b_hh, y, gates, states):
    """PyTorch version of the C++ ``sigmoid_gru_forward_steps`` (same contract)."""
    chunk, batch, three_hidden = xp.shape
    hidden = three_hidden // 3
    for k in range(chunk):
        t = t0 + k
        n = rows(config, t, batch)
        hp = torch.mm(h[:n], w_hh_t) if b_hh is None else torch.addmm(b_hh, h[:n], w_hh_t)
        a = _activate(xp[k, :n], hp)
        r, z, new, _ = a.split(hidden, dim=1)
        s_new = (1 - z) * new + z * s[:n]
        s[:n] = s_new
        spikes = spikes_of(s_new, config)
        h[:n] = spikes
        y[t, :n] = spikes
        if gates is not None:
            gates[t, :n] = a
        if states is not None:
            states[t, :n] = s_new


def _backward_steps(gates, s_prev, spike_deriv, dy, t0, config, w_hh, dh_carry, ds_carry, d_hidden_pre,
                    d_input_pre):
    """PyTorch version of the C++ ``sigmoid_gru_backward_steps`` (same contract)."""
    chunk, batch, four_hidden = gates.shape
    hidden = four_hidden // 4
    r, z, new, h_n = gates.view(chunk, batch, 4, hidden).unbind(2)
    hidden_pre = d_hidden_pre.view(chunk, batch, 3, hidden)
    input_pre = d_input_pre.view(chunk, batch, 3, hidden)
    for k in range(chunk - 1, -1, -1):
        n = rows(config, t0 + k, batch)
        rk, zk, nk = r[k, :n], z[k, :n], new[k, :n]
        ds = ds_carry[:n].add_((dh_carry[:n] + dy[k, :n]) * spike_deriv[k, :n])
        du_n = ds * (1 - zk) * (1 - nk * nk)
        du_z = ds * (s_prev[k, :n] - nk) * zk * (1 - zk)
        du_r = du_n * h_n[k, :n] * rk * (1 - rk)
        hidden_pre[k, :n, 0] = du_r
        hidden_pre[k, :n, 1] = du_z
        hidden_pre[k, :n, 2] = du_n * rk
        input_pre[k, :n, 0] = du_r
        input_pre[k, :n, 1] = du_z
        input_pre[k, :n, 2] = du_n
        ds.mul_(zk)
        torch.mm(d_hidden_pre[k, :n], w_hh, out=dh_carry[:n])


class SigmoidGRUSequence(torch.autograd.Function):
    """``(x [T, B, I], s0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H] spikes, s_n)`` of the sigmoid
    form. Rows past their length keep their state and output zeros."""

    @staticmethod
    def forward(ctx, x, s0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
        y, s_n, gates, states = sigmoid_gru_forward(x, s0, w_ih, w_hh, b_ih, b_hh, config)
        if config.save:
            compact = not config.keep_pre  # bits only in low-memory mode (see lstm.py)
            x_store, x_kept = StepStore.wrap(x, compact and is_binary(x))
            y_store, y_kept = StepStore.wrap(y, compact)  # spikes: always 0/1
            ctx.config = config
            ctx.stores = (x_store, y_store)
            ctx.state_shape = tuple(s0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(s0), w_ih, w_hh, b_ih, b_hh, y_kept, gates, states)
        return y, s_n

    @staticmethod
    def backward(ctx, dy, ds_n):
        x_kept, s0, w_ih, w_hh, b_ih, b_hh, y_kept, gates_kept, states = ctx.saved_tensors
        s0 = restore_zero(s0, ctx.state_shape, w_hh)
        config = ctx.config
        x_store, y_store = ctx.stores
        dtype = s0.dtype
        steps, (batch, hidden) = states.shape[0], s0.shape
        compiled = loops()
        sums = GradSums(ctx, ("x", "s0", "w_ih", "w_hh", "b_ih", "b_hh"),
                        dict(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh))
        dx = sums.input_grad(steps, batch, w_ih.shape[1], dtype)
        ds_carry = carried(ds_n, s0)
        dh_carry = torch.zeros_like(s0)  # dL/d(spikes fed to the next step): none after the last
        dy = dy.contiguous()
        w_hh_c = w_hh.contiguous()
        project_x = InputProjection(w_ih, b_ih)
        project_h = InputProjection(w_hh, b_hh)
        work = Workspace()
        plain = StepStore(states.shape[1:], False)
        h0 = spikes_of(s0, config)
        kind = common.spike_surrogate_kind(config) if compiled is not None else None
        for t0, t1 in reversed(chunks(steps, batch, 3 * hidden, s0.element_size())):
            chunk = t1 - t0
            x = x_store.rows(x_kept, t0, t1, dtype)
            h_prev = before(h0, y_store, y_kept, t0, t1, dtype)
            if gates_kept is not None:
                gates = gates_kept[t0:t1]
            else:  # low memory: r|z|n|h_n again from the inputs of the chunk's steps
                gates = _activate(project_x(x), project_h(h_prev))
            s_prev, s_after = before_and_after(s0, plain, states, t0, t1, dtype)
            # the C++ loop evaluates a built-in surrogate's derivative itself
            spike_deriv = config.derivative1(s_after - config.spike_threshold, config.alpha1) if kind is None else None
            packed = config.batch_sizes is not None  # rows past their length are never written: zeros
            d_hidden_pre = work.take("d_hidden_pre", chunk, batch, 3 * hidden, dtype=dtype, zero=packed)
            d_input_pre = work.take("d_input_pre", chunk, batch, 3 * hidden, dtype=dtype, zero=packed)
            if compiled is not None:
                compiled.sigmoid_gru_backward_steps(gates.contiguous(), s_prev.contiguous(), s_after.contiguous(),
                                                    None if spike_deriv is None else spike_deriv.contiguous(),
                                                    dy[t0:t1], t0, config.batch_sizes or [], w_hh_c, dh_carry,
                                                    ds_carry, d_hidden_pre, d_input_pre, config.spike_threshold,
                                                    *(kind or (-1, 0.0)))
            else:
                _backward_steps(gates, s_prev, spike_deriv, dy[t0:t1], t0, config, w_hh_c, dh_carry, ds_carry,
                                d_hidden_pre, d_input_pre)
            if dx is not None:
                projection(d_input_pre, w_ih.t(), out=dx[t0:t1])
            sums.add_chunk(x, h_prev, d_input_pre, d_hidden_pre)
        add_first_spikes_grad(ds_carry, dh_carry, s0, config)
        grads = sums.grads
        return dx, ds_carry, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"], None
