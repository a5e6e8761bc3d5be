"""Spiking vanilla RNN over a whole sequence with hand-written BPTT (one layer, one direction).

``h' = Θ(W_ih x + b_ih + W_hh h + b_hh)``: per step one GEMM written into the output and one
threshold. Kept for backward: the input, ``h0`` and ``h`` after each step, as bits.
"""
from __future__ import annotations

import torch

from ..gemm import projection
from ..storage import StepStore, is_binary, restore_zero, zero_or_kept
from . import common
from .common import GradSums, InputProjection, SequenceConfig, Workspace, before, carried, chunks, new_output, rows
from .extension import loops


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
    """Returns ``(y [T, B, H], h_n, pre)``; ``pre [T, B, H]`` (pre-activations) when ``config.save``
    and ``config.keep_pre``, else ``None``."""
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0]
    h = h0.contiguous().clone()
    y = new_output(config, steps, batch, hidden, dtype=x.dtype)
    pre = new_output(config, steps, batch, hidden, dtype=x.dtype) if config.save and config.keep_pre else None
    w_hh_t = w_hh.t().contiguous()  # about half of h fires: mostly per-step GEMMs, faster on a contiguous W_hh^T
    compiled = loops()
    project = InputProjection(w_ih, b_ih, b_hh)
    w_hh_tiles = common.column_tiles(w_hh, common.EVENT_DENSITY)
    for t0, t1 in chunks(steps, batch, hidden, x.element_size()):
        xp = project(x[t0:t1])
        if compiled is not None:
            compiled.rnn_forward_steps(xp, t0, config.batch_sizes or [], h, w_hh_t, w_hh_tiles, y, pre,
                                       common.EVENT_DENSITY)
            continue
        for k in range(t1 - t0):
            n = rows(config, t0 + k, batch)
            u = torch.addmm(xp[k, :n], h[:n], w_hh_t)
            if pre is not None:
                pre[t0 + k, :n] = u
            h_new = u.ge_(0)
            h[:n] = h_new
            y[t0 + k, :n] = h_new
    return y, h, pre


class RNNSequence(torch.autograd.Function):
    """``(x [T, B, I], h0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H], h_n)``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
        y, h_n, pre = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config)
        if config.save:
            compact = not config.keep_pre  # bits only in low-memory mode (see lstm.py)
            x_store, x_kept = StepStore.wrap(x, compact and is_binary(x))
            y_store, y_kept = StepStore.wrap(y, compact)
            ctx.config = config
            ctx.stores = (x_store, y_store)
            ctx.state_shape = tuple(h0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(h0), w_ih, w_hh, b_ih, b_hh, y_kept, pre)
        return y, h_n

    @staticmethod
    def backward(ctx, dy, dh_n):
        x_kept, h0, w_ih, w_hh, b_ih, b_hh, y_kept, pre = ctx.saved_tensors
        h0 = restore_zero(h0, ctx.state_shape, w_hh)
        config = ctx.config
        x_store, y_store = ctx.stores
        dtype = h0.dtype
        steps, (batch, hidden) = y_kept.shape[0], h0.shape
        compiled = loops()
        sums = GradSums(ctx, ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"),
                        dict(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh))
        dx = sums.input_grad(steps, batch, w_ih.shape[1], dtype)
        dh_carry = carried(dh_n, h0)
        dy = dy.contiguous()
        w_hh_c = w_hh.contiguous()
        project_x = InputProjection(w_ih, b_ih, b_hh)
        project_h = InputProjection(w_hh)
        work = Workspace()
        for t0, t1 in reversed(chunks(steps, batch, hidden, h0.element_size())):
            x = x_store.rows(x_kept, t0, t1, dtype)
            h_prev = before(h0, y_store, y_kept, t0, t1, dtype)
            u = pre[t0:t1] if pre is not None else project_x(x) + project_h(h_prev)
            scale = config.derivative1(u, config.alpha1)
            d_pre = work.take("d_pre", t1 - t0, batch, hidden, dtype=dtype, zero=config.batch_sizes is not None)
            if compiled is not None:
                compiled.rnn_backward_steps(scale.contiguous(), dy[t0:t1], t0, config.batch_sizes or [], w_hh_c,
                                            dh_carry, d_pre)
            else:
                for k in range(t1 - t0 - 1, -1, -1):
                    n = rows(config, t0 + k, batch)
                    du = torch.mul(dh_carry[:n] + dy[t0 + k, :n], scale[k, :n], out=d_pre[k, :n])
                    torch.mm(du, w_hh_c, out=dh_carry[:n])
            if dx is not None:
                projection(d_pre, w_ih.t(), out=dx[t0:t1])
            sums.add_chunk(x, h_prev, d_pre)
        grads = sums.grads
        return dx, dh_carry, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"], None
