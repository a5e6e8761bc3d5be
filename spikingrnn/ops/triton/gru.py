"""Spiking GRU over a whole sequence on Triton (one layer, one direction), design v0.

``r = Θ(x_r + h_r)``, ``z = Θ(x_z + h_z)``, ``n = Θ(x_n + r * h_n)``, ``h' = (1 - z) * n + z * h`` with
``x_* = x W_i*^T + b_i*`` (one GEMM for all steps) and ``h_* = h W_h*^T + b_h*``. For
``hidden <= PERSISTENT_MAX_HIDDEN`` the whole forward loop is one persistent kernel, and so is the
backward's reverse loop (:mod:`.persistent_gru`); otherwise per step one GEMM gives ``h_*`` and
one Triton kernel does the pointwise work, and backward per step one Triton kernel gives the
input-side and hidden-side pre-activation gradients and the direct ``z * dh`` part of the carried
``dh``, one GEMM adds the recurrent part. Weight gradients are GEMMs after the loop. Every GEMM is
:func:`.matmul.mm` (torch's, or in TF32 a Triton GEMM).
Kept for backward: the input-side and hidden-side projections ``[T, B, 3H]`` and the outputs (with
``low_memory`` the outputs only, as bit rows: backward recomputes the projections the way forward
computed them, one GEMM for the input side, then the persistent forward kernel replayed or one GEMM
per step for the hidden side, so that the same gates fire).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..storage import restore_zero, zero_or_kept
from . import persistent, persistent_gru
from .kernels import BLOCK, carried, grid, gru_cell, gru_cell_backward, load_three, rows, store_three
from .matmul import mm, mm_into, project
from .saved import compact, restore


@triton.jit
def _gru_forward_step(xp_ptr, hp_ptr, h_ptr, y_ptr, n_elem, H, BLOCK: tl.constexpr):
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    row = e // H
    base = row * (3 * H) + (e - row * H)
    x_r, x_z, x_n = load_three(xp_ptr, base, H, mask)
    h_r, h_z, h_n = load_three(hp_ptr, base, H, mask)
    h = gru_cell(x_r, x_z, x_n, h_r, h_z, h_n, tl.load(h_ptr + e, mask=mask, other=0.0).to(tl.float32))
    tl.store(h_ptr + e, h.to(h_ptr.dtype.element_ty), mask=mask)
    tl.store(y_ptr + e, h.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gru_backward_step(xp_ptr, hp_ptr, h_prev_ptr, dh_ptr, dy_ptr, dx_pre_ptr, dh_pre_ptr, n_elem, H,
                       alpha1, alpha2, KIND1: tl.constexpr, KIND2: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    row = e // H
    base = row * (3 * H) + (e - row * H)
    x_r, x_z, x_n = load_three(xp_ptr, base, H, mask)
    h_r, h_z, h_n = load_three(hp_ptr, base, H, mask)
    h_prev = tl.load(h_prev_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dh = tl.load(dh_ptr + e, mask=mask, other=0.0).to(tl.float32) + tl.load(dy_ptr + e, mask=mask, other=0.0).to(
        tl.float32)
    d_r, d_z, d_n, r, z = gru_cell_backward(x_r, x_z, x_n, h_r, h_z, h_n, h_prev, dh, alpha1, alpha2, KIND1, KIND2)
    store_three(dx_pre_ptr, base, H, d_r, d_z, d_n, mask)
    store_three(dh_pre_ptr, base, H, d_r, d_z, d_n * r, mask)
    tl.store(dh_ptr + e, (dh * z).to(dh_ptr.dtype.element_ty), mask=mask)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config):
    """Returns ``(y [T, B, H], h_n, xp, hp)``; ``hp`` (hidden-side projections) is ``None`` unless ``config.save``."""
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    like = dict(dtype=x.dtype, device=x.device)
    xp = project(x, w_ih, b_ih, tf32=config.tf32)
    y = new(steps, batch, hidden, **like)
    h = h0.contiguous().clone()
    keep = config.save and not config.low_memory
    hp_all = new(steps, batch, 3 * hidden, **like) if keep else None
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # the whole loop in one launch
        h = persistent_gru.gru_persistent_forward(xp.contiguous(), h0, w_hh, b_hh, y, hp_all, bs, config.tf32)
        return y, h, (xp if keep else None), hp_all
    scratch = None if keep else torch.empty(batch, 3 * hidden, **like)
    w_hh_t = w_hh.t()
    for t in range(steps):
        n = rows(bs, t, batch)
        if n == 0:
            continue
        hp = hp_all[t, :n] if hp_all is not None else scratch[:n]
        mm(h[:n], w_hh_t, bias=b_hh, out=hp, tf32=config.tf32)
        _gru_forward_step[grid(n * hidden)](xp[t, :n], hp, h, y[t, :n], n * hidden, hidden, BLOCK=BLOCK)
    return y, h, (xp if keep else None), hp_all


def gru_backward(saved, dy, dh_n, needs, config):
    """Gradients ``(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)`` (``None`` where not needed)."""
    x, h0, w_ih, w_hh, b_ih, b_hh, y, xp, hp_all = saved
    steps, batch, _ = x.shape
    hidden = h0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    like = dict(dtype=x.dtype, device=x.device)
    dx_pre = new(steps, batch, 3 * hidden, **like)
    dh_pre = new(steps, batch, 3 * hidden, **like)
    # the carried gradient in float32 for half types (see kernels.carry_dtype), returned in h0's dtype:
    # through z = 1 it sums dy over many steps
    dh = carried(dh_n if dh_n is not None else torch.zeros_like(h0), x.dtype)
    dy = torch.zeros_like(y) if dy is None else dy.contiguous()
    w_hh_c = w_hh.contiguous()
    h0_c = h0.contiguous()
    hp_step = None
    steps_left = range(steps - 1, -1, -1)
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:
        if hp_all is None:  # low memory after a persistent forward: replay that kernel (see lstm.py)
            xp = project(x, w_ih, b_ih, tf32=config.tf32).contiguous()
            hp_all = new(steps, batch, 3 * hidden, **like)
            persistent_gru.gru_persistent_forward(xp, h0_c, w_hh, b_hh, new(steps, batch, hidden, **like), hp_all, bs,
                                                  config.tf32)
        persistent_gru.gru_persistent_backward(xp, hp_all, h0_c, y, dy, w_hh_c, dh, dx_pre, dh_pre, bs, config.alpha1,
                                               config.alpha2, config.kind1, config.kind2, config.tf32)
        steps_left = range(0)  # the reverse loop ran in one launch
    elif hp_all is None:  # low memory: recompute the projections (all input ones, the hidden ones per step)
        xp = project(x, w_ih, b_ih, tf32=config.tf32)
        hp_step = torch.empty(batch, 3 * hidden, **like)
        h_step = torch.empty_like(h0_c)  # h[t-1] as in forward's state buffer (see lstm.py)
    for t in steps_left:
        n = rows(bs, t, batch)
        if n == 0:
            continue
        h_prev = h0_c[:n] if t == 0 else y[t - 1, :n]
        if hp_step is None:
            hp = hp_all[t, :n]
        else:
            hp = hp_step[:n]
            h_step[:n] = h_prev
            h_prev = h_step[:n]
            mm(h_prev, w_hh.t(), bias=b_hh, out=hp, tf32=config.tf32)
        _gru_backward_step[grid(n * hidden)](xp[t, :n], hp, h_prev, dh, dy[t, :n], dx_pre[t, :n],
                                             dh_pre[t, :n], n * hidden, hidden, float(config.alpha1),
                                             float(config.alpha2), KIND1=config.kind1, KIND2=config.kind2,
                                             BLOCK=BLOCK)
        mm_into(dh_pre[t, :n], w_hh_c, dh[:n], accumulate=True, tf32=config.tf32)
    flat_x = dx_pre.view(-1, 3 * hidden)
    flat_h = dh_pre.view(-1, 3 * hidden)
    dx = mm(flat_x, w_ih, tf32=config.tf32).view(steps, batch, w_ih.shape[1]) if needs[0] else None
    dw_ih = mm(flat_x.t(), x.reshape(-1, x.shape[2]), tf32=config.tf32) if needs[2] else None
    dw_hh = None
    if needs[3]:
        h_prev = torch.cat([h0.unsqueeze(0), y[:-1]])  # rows past their length meet zero gradients
        dw_hh = mm(flat_h.t(), h_prev.reshape(-1, hidden), tf32=config.tf32)
    db_ih = flat_x.sum(0) if needs[4] and b_ih is not None else None
    db_hh = flat_h.sum(0) if needs[5] and b_hh is not None else None
    return dx, dh.to(h0.dtype) if needs[1] else None, dw_ih, dw_hh, db_ih, db_hh


class GRUSequence(torch.autograd.Function):
    """``(x [T, B, I], h0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H], h_n)``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, config):
        y, h_n, xp, hp_all = gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config)
        if config.save:
            ctx.config = config
            (x_kept, y_kept), ctx.kept = compact((x, y), config.low_memory)
            ctx.state_shape = tuple(h0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(h0), w_ih, w_hh, b_ih, b_hh, y_kept, xp, hp_all)
        return y, h_n

    @staticmethod
    def backward(ctx, dy, dh_n):
        x, h0, w_ih, w_hh, b_ih, b_hh, y, xp, hp_all = ctx.saved_tensors
        x, y = restore((x, y), ctx.kept)
        h0 = restore_zero(h0, ctx.state_shape, w_hh)
        grads = gru_backward((x, h0, w_ih, w_hh, b_ih, b_hh, y, xp, hp_all), dy, dh_n, ctx.needs_input_grad,
                             ctx.config)
        return (*grads, None)
