"""Sigmoid-form spiking LSTM (``gates="sigmoid"``) over a whole sequence with hand-written BPTT.

``i, f, o = sigmoid(u_i, u_f, u_o)``, ``g = tanh(u_g)``, ``c' = f c + i g`` (analog) and the spikes
``h = Θ(o tanh(c') - θ)`` (:func:`spikingrnn.functional.cells.lstm_step_gates`), one layer, one
direction. Forward, chunk by chunk: one product for the chunk's input projections, then per step the
product with the spikes ``h`` (event-driven without a projection) and one fused pointwise pass (C++,
csrc/sigmoid_lstm.cpp, or the same loop in PyTorch). Kept for backward: the input, the initial states
unless all zeros, the output, ``c`` after each step and (default) the gates ``i|f|g|o``; with
``low_memory`` the input and output as bits when 0/1 and no gates: backward recomputes them with two
products per chunk. Backward, chunk by chunk from the end: the reverse loop (one fused pass and one
GEMM per step; the C++ pass evaluates ``tanh(c)`` and a built-in surrogate's derivative at
``o tanh(c) - θ`` itself, a user-defined surrogate's come from PyTorch for the chunk), then the weight
gradients (one GEMM each, or event-driven sums for 0/1 inputs).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..gemm import projection
from ..storage import StepStore, is_binary, restore_zero, zero_or_kept
from . import common
from .common import (GradSums, InputProjection, SequenceConfig, Workspace, before, before_and_after, carried, chunks,
                     new_output, rows)
from .extension import loops


def sigmoid_lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config: SequenceConfig):
    """Returns ``(y [T, B, P], h_n, c_n, gates, cells)``: when ``config.save``, ``cells [T, B, H]`` (c after
    each step) and, with ``keep_pre``, ``gates [T, B, 4H]`` (``i|f|g|o``); ``None`` otherwise."""
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0] // 4
    dtype = x.dtype
    h, c = h0.contiguous().clone(), c0.contiguous().clone()
    y = new_output(config, steps, batch, h0.shape[1], dtype=dtype)
    cells = new_output(config, steps, batch, hidden, dtype=dtype) if config.save else None
    gates = new_output(config, steps, batch, 4 * hidden, dtype=dtype) if config.save and config.keep_pre else None
    scratch = torch.empty(batch, 4 * hidden, dtype=dtype)
    m = torch.empty(batch, hidden, dtype=dtype)
    w_hr_t = None if w_hr is None else w_hr.t().contiguous()
    compiled = loops()
    project = InputProjection(w_ih, b_ih, b_hh)
    # the spikes h are 0/1 without a projection (and from a 0/1 h0; the C++ product checks every row)
    event_density = common.EVENT_DENSITY if w_hr is None else 0.0
    w_hh_tiles = common.column_tiles(w_hh, event_density)
    w_hh_t = w_hh.t() if w_hh_tiles is not None else w_hh.t().contiguous()
    for t0, t1 in chunks(steps, batch, 4 * hidden, x.element_size()):
        xp = project(x[t0:t1])
        if compiled is not None:
            compiled.sigmoid_lstm_forward_steps(xp, t0, config.batch_sizes or [], h, c, w_hh_t, w_hh_tiles, w_hr_t,
                                                config.spike_threshold, y, gates, cells, scratch, m, event_density)
        else:
            _forward_steps(xp, t0, config, h, c, w_hh_t, w_hr_t, y, gates, cells)
    return y, h, c, gates, cells


def _activate(u: Tensor) -> Tensor:
    """The gates ``i|f|g|o`` ``[..., 4H]`` from their pre-activations ``u`` (sigmoid, sigmoid, tanh, sigmoid)."""
    hidden = u.shape[-1] // 4
    gates = torch.sigmoid(u)
    gates[..., 2 * hidden:3 * hidden] = torch.tanh(u[..., 2 * hidden:3 * hidden])
    return gates


def _forward_steps(xp, t0, config, h, c, w_hh_t, w_hr_t, y, gates, cells):
    """PyTorch version of the C++ ``sigmoid_lstm_forward_steps`` (same contract)."""
    chunk, batch, four_hidden = xp.shape
    hidden = four_hidden // 4
    for k in range(chunk):
        t = t0 + k
        n = rows(config, t, batch)
        a = _activate(torch.addmm(xp[k, :n], h[:n], w_hh_t))
        i, f, g, o = a.split(hidden, dim=1)
        c_new = f * c[:n] + i * g
        c[:n] = c_new
        spikes = (o * torch.tanh(c_new) - config.spike_threshold >= 0).to(xp.dtype)
        h_new = spikes if w_hr_t is None else torch.mm(spikes, w_hr_t)
        h[:n] = h_new
        y[t, :n] = h_new
        if gates is not None:
            gates[t, :n] = a
        if cells is not None:
            cells[t, :n] = c_new


def _backward_steps(gates, c_prev, tanh_c, spike_deriv, dy, t0, config, w_hh, w_hr, dh_carry, dc_carry, d_pre,
                    dh_all):
    """PyTorch version of the C++ ``sigmoid_lstm_backward_steps`` (same contract)."""
    chunk, batch, four_hidden = gates.shape
    hidden = four_hidden // 4
    i, f, g, o = gates.view(chunk, batch, 4, hidden).unbind(2)
    for k in range(chunk - 1, -1, -1):
        n = rows(config, t0 + k, batch)
        dh = dh_carry[:n].add_(dy[k, :n])
        if w_hr is None:
            dm = dh
        else:
            dh_all[k, :n] = dh
            dm = torch.mm(dh, w_hr)
        dv = dm * spike_deriv[k, :n]
        tc = tanh_c[k, :n]
        ik, fk, gk, ok = i[k, :n], f[k, :n], g[k, :n], o[k, :n]
        dc = dc_carry[:n].add_(dv * ok * (1 - tc * tc))
        step = d_pre[k, :n].view(n, 4, hidden)
        step[:, 0] = dc * gk * ik * (1 - ik)
        step[:, 1] = dc * c_prev[k, :n] * fk * (1 - fk)
        step[:, 2] = dc * ik * (1 - gk * gk)
        step[:, 3] = dv * tc * ok * (1 - ok)
        dc.mul_(fk)
        torch.mm(d_pre[k, :n], w_hh, out=dh_carry[:n])


class SigmoidLSTMSequence(torch.autograd.Function):
    """``(x [T, B, I], h0 [B, P], c0 [B, H], w_ih, w_hh, b_ih, b_hh, w_hr, config) -> (y [T, B, P], h_n, c_n)``
    of the sigmoid form. Rows past their length keep their state and output zeros."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config: SequenceConfig):
        y, h_n, c_n, gates, cells = sigmoid_lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config)
        if config.save:
            compact = not config.keep_pre  # bits only in low-memory mode (see lstm.py)
            x_store, x_kept = StepStore.wrap(x, compact and is_binary(x))
            y_store, y_kept = StepStore.wrap(y, compact and w_hr is None and is_binary(h0))
            ctx.config = config
            ctx.state_shapes = (tuple(h0.shape), tuple(c0.shape))
            ctx.stores = (x_store, y_store)
            ctx.save_for_backward(x_kept, zero_or_kept(h0), zero_or_kept(c0), w_ih, w_hh, b_ih, b_hh, w_hr, y_kept,
                                  gates, cells)
        return y, h_n, c_n

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        x_kept, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y_kept, gates_kept, cells = ctx.saved_tensors
        config = ctx.config
        x_store, y_store = ctx.stores
        dtype = w_hh.dtype
        h0 = restore_zero(h0, ctx.state_shapes[0], w_hh)
        c0 = restore_zero(c0, ctx.state_shapes[1], w_hh)
        steps, batch, hidden = cells.shape
        compiled = loops()
        sums = GradSums(ctx, ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr"),
                        dict(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr))
        dx = sums.input_grad(steps, batch, w_ih.shape[1], dtype)
        dh_carry = carried(dh_n, h0)
        dc_carry = carried(dc_n, c0)
        dy = dy.contiguous()
        w_hh_c = w_hh.contiguous()
        w_hr_c = None if w_hr is None else w_hr.contiguous()
        project_x = InputProjection(w_ih, b_ih, b_hh)
        project_h = InputProjection(w_hh)
        work = Workspace()
        plain = StepStore(cells.shape[1:], False)
        kind = common.spike_surrogate_kind(config) if compiled is not None else None
        for t0, t1 in reversed(chunks(steps, batch, 4 * hidden, h0.element_size())):
            chunk = t1 - t0
            x = x_store.rows(x_kept, t0, t1, dtype)
            h_prev = before(h0, y_store, y_kept, t0, t1, dtype)
            if gates_kept is not None:
                gates = gates_kept[t0:t1]
            else:  # low memory: the gates again from the inputs of the chunk's steps
                gates = _activate(project_x(x).add_(project_h(h_prev)))
            c_prev, c_after = before_and_after(c0, plain, cells, t0, t1, dtype)
            tanh_c = v = spike_deriv = None  # the C++ loop evaluates tanh(c) and a built-in surrogate itself
            if kind is None or w_hr is not None:
                tanh_c = torch.tanh(c_after)
                v = gates[:, :, 3 * hidden:] * tanh_c - config.spike_threshold
            if kind is None:
                spike_deriv = config.derivative1(v, config.alpha1)
            d_pre = work.take("d_pre", chunk, batch, 4 * hidden, dtype=dtype, zero=config.batch_sizes is not None)
            dh_all = torch.zeros(chunk, batch, h0.shape[1], dtype=dtype) if w_hr is not None else None
            if compiled is not None:
                dm_buffer = torch.empty(batch, hidden, dtype=dtype) if w_hr is not None else None
                compiled.sigmoid_lstm_backward_steps(gates.contiguous(), c_prev.contiguous(), c_after.contiguous(),
                                                     None if spike_deriv is None else spike_deriv.contiguous(),
                                                     dy[t0:t1], t0, config.batch_sizes or [], w_hh_c, w_hr_c,
                                                     dh_carry, dc_carry, d_pre, dh_all, dm_buffer,
                                                     config.spike_threshold, *(kind or (-1, 0.0)))
            else:
                _backward_steps(gates, c_prev, tanh_c, spike_deriv, dy[t0:t1], t0, config, w_hh_c, w_hr_c,
                                dh_carry, dc_carry, d_pre, dh_all)
            if dx is not None:
                projection(d_pre, w_ih.t(), out=dx[t0:t1])
            sums.add_chunk(x, h_prev, d_pre)
            if dh_all is not None:
                sums.add_weight("w_hr", dh_all, (v >= 0).to(dtype))
        grads = sums.grads
        return (dx, dh_carry, dc_carry, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"], grads["w_hr"],
                None)
