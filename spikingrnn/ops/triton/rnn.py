"""Spiking vanilla RNN over a whole sequence on Triton (one layer, one direction), design v0.

``h' = Θ(u)``, ``u = x W_ih^T + b_ih + h W_hh^T + b_hh``: the input projections are one GEMM;
for ``hidden <= PERSISTENT_MAX_HIDDEN`` the whole forward loop is one persistent kernel, and so is the
backward's reverse loop (:mod:`.persistent_rnn`); otherwise per step one GEMM writes ``u`` into
the saved pre-activations and one Triton kernel fires the spikes, and backward per step one Triton
kernel ``d_u = (dh + dy) * derivative(u)`` and one GEMM for the carried ``dh``. Weight gradients
are single GEMMs after the loop. Every GEMM is :func:`.matmul.mm` (torch's, or in TF32 a Triton GEMM). With ``low_memory`` ``u`` is not kept: backward recomputes it
the way forward computed it (one GEMM for the input projections, then the persistent forward kernel
replayed, or one GEMM per step), so that the same spikes fire.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..storage import restore_zero, zero_or_kept
from . import persistent, persistent_rnn
from .kernels import BLOCK, carried, grid, rows, surrogate_derivative
from .matmul import mm, mm_into, project
from .saved import compact, restore


@triton.jit
def _rnn_forward_step(u_ptr, h_ptr, y_ptr, n_elem, BLOCK: tl.constexpr):
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    s = tl.where(tl.load(u_ptr + e, mask=mask, other=0.0).to(tl.float32) >= 0, 1.0, 0.0)
    tl.store(h_ptr + e, s.to(h_ptr.dtype.element_ty), mask=mask)
    tl.store(y_ptr + e, s.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rnn_backward_step(u_ptr, dh_ptr, dy_ptr, d_pre_ptr, n_elem, alpha, KIND: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    u = tl.load(u_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dh = tl.load(dh_ptr + e, mask=mask, other=0.0).to(tl.float32) + tl.load(dy_ptr + e, mask=mask, other=0.0).to(
        tl.float32)
    tl.store(d_pre_ptr + e, (dh * surrogate_derivative(u, alpha, KIND)).to(d_pre_ptr.dtype.element_ty), mask=mask)


def rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config):
    """Returns ``(y [T, B, H], h_n, pre)``; ``pre`` is ``None`` unless ``config.save``."""
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    like = dict(dtype=x.dtype, device=x.device)
    xp = project(x, w_ih, b_ih, b_hh, tf32=config.tf32)
    y = new(steps, batch, hidden, **like)
    h = h0.contiguous().clone()
    keep = config.save and not config.low_memory
    pre = new(steps, batch, hidden, **like) if keep else None
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # the whole loop in one launch
        return y, persistent_rnn.rnn_persistent_forward(xp.contiguous(), h0, w_hh, y, pre, bs, config.tf32), pre
    scratch = None if keep else torch.empty(batch, hidden, **like)
    w_hh_t = w_hh.t()
    for t in range(steps):
        n = rows(bs, t, batch)
        if n == 0:
            continue
        u = pre[t, :n] if pre is not None else scratch[:n]
        mm(h[:n], w_hh_t, add=xp[t, :n], out=u, tf32=config.tf32)
        _rnn_forward_step[grid(n * hidden)](u, h, y[t, :n], n * hidden, BLOCK=BLOCK)
    return y, h, pre


def rnn_backward(saved, dy, dh_n, needs, config):
    """Gradients ``(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)`` (``None`` where not needed)."""
    x, h0, w_ih, w_hh, b_ih, b_hh, y, pre = saved
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    d_pre = new(steps, batch, hidden, dtype=x.dtype, device=x.device)
    # the carried gradient in float32 for half types (see kernels.carry_dtype), returned in h0's dtype
    dh = carried(dh_n if dh_n is not None else torch.zeros_like(h0), x.dtype)
    dy = torch.zeros_like(y) if dy is None else dy.contiguous()
    w_hh_c = w_hh.contiguous()
    xp = u_step = None
    persistent_loop = hidden <= persistent.PERSISTENT_MAX_HIDDEN
    if pre is None and persistent_loop:
        # low memory after a persistent forward: replay that kernel (see lstm.py), u written over xp
        pre = project(x, w_ih, b_ih, b_hh, tf32=config.tf32).contiguous()
        persistent_rnn.rnn_persistent_forward(pre, h0, w_hh, new(steps, batch, hidden, dtype=x.dtype, device=x.device),
                                              pre, bs, config.tf32)
    steps_left = range(steps - 1, -1, -1)
    if persistent_loop:  # the reverse loop in one launch
        persistent_rnn.rnn_persistent_backward(pre, dy, w_hh_c, dh, d_pre, bs, config.alpha1, config.kind1, config.tf32)
        steps_left = range(0)
    elif pre is None:  # low memory: recompute u[t] = x[t] W_ih^T + b + h[t-1] W_hh^T step by step
        xp = project(x, w_ih, b_ih, b_hh, tf32=config.tf32)
        u_step = torch.empty(batch, hidden, dtype=x.dtype, device=x.device)
        h_step = torch.empty_like(h0, memory_format=torch.contiguous_format)  # as forward's state (see lstm.py)
    for t in steps_left:
        n = rows(bs, t, batch)
        if n == 0:
            continue
        if pre is None:
            u = u_step[:n]
            h_step[:n] = (h0 if t == 0 else y[t - 1])[:n]
            mm(h_step[:n], w_hh.t(), add=xp[t, :n], out=u, tf32=config.tf32)
        else:
            u = pre[t, :n]
        _rnn_backward_step[grid(n * hidden)](u, dh, dy[t, :n], d_pre[t, :n], n * hidden,
                                             float(config.alpha1), KIND=config.kind1, BLOCK=BLOCK)
        mm_into(d_pre[t, :n], w_hh_c, dh[:n], tf32=config.tf32)
    flat = d_pre.view(-1, hidden)
    dx = mm(flat, w_ih, tf32=config.tf32).view(steps, batch, w_ih.shape[1]) if needs[0] else None
    dw_ih = mm(flat.t(), x.reshape(-1, x.shape[2]), tf32=config.tf32) if needs[2] else None
    dw_hh = None
    if needs[3]:
        h_prev = torch.cat([h0.unsqueeze(0), y[:-1]])  # rows past their length meet d_pre == 0
        dw_hh = mm(flat.t(), h_prev.reshape(-1, hidden), tf32=config.tf32)
    db = flat.sum(0) if needs[4] or needs[5] else None
    return (dx, dh.to(h0.dtype) if needs[1] else None, dw_ih, dw_hh, db if needs[4] and b_ih is not None else None,
            db if needs[5] and b_hh is not None else None)


class RNNSequence(torch.autograd.Function):
    """``(x [T, B, I], h0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H], h_n)``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, config):
        y, h_n, pre = rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config)
        if config.save:
            ctx.config = config
            (x_kept, y_kept), ctx.kept = compact((x, y), config.low_memory)
            ctx.state_shape = tuple(h0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(h0), w_ih, w_hh, b_ih, b_hh, y_kept, pre)
        return y, h_n

    @staticmethod
    def backward(ctx, dy, dh_n):
        x, h0, w_ih, w_hh, b_ih, b_hh, y, pre = ctx.saved_tensors
        x, y = restore((x, y), ctx.kept)
        h0 = restore_zero(h0, ctx.state_shape, w_hh)
        grads = rnn_backward((x, h0, w_ih, w_hh, b_ih, b_hh, y, pre), dy, dh_n, ctx.needs_input_grad, ctx.config)
        return (*grads, None)
