"""Sigmoid-form spiking GRU (``gates="sigmoid"``) over a whole sequence on Triton (one layer, one direction).

The state is an analog ``s [B, H]``; the cell emits, and feeds back, its spikes ``h = Θ(s - θ)``
(:func:`spikingrnn.functional.cells.gru_step_gates`): with ``h_{t-1} = Θ(s_{t-1} - θ)`` (``Θ(s_0 - θ)``
at the first step), ``x_* = x W_i*^T + b_i*`` (one GEMM for all steps) and ``h_* = h_{t-1} W_h*^T + b_h*``,

    r = sigmoid(x_r + h_r),  z = sigmoid(x_z + h_z),  n = tanh(x_n + r h_n),
    s_t = (1 - z) n + z s_{t-1},  y_t = Θ(s_t - θ).

The output sequence is ``y`` (0/1), the final state ``s`` (analog; each row's last, packed). For
``hidden <= PERSISTENT_MAX_HIDDEN`` the forward loop is one persistent kernel and so is the backward's
reverse loop (:mod:`.persistent_gru_sigmoid`); otherwise per step one GEMM gives ``h_*`` and one Triton
kernel the pointwise work, and backward per step one Triton kernel gives the pre-activation gradients
and the carried state gradient ``z ds``, one GEMM the gradient of the spikes fed back
(``dh_pre W_hh``). Both paths then add the initial spikes' part ``dh Θ'(s_0 - θ)`` to the gradient of
``s_0`` (:func:`.kernels.spike_input_backward`). The running ``s`` and the carried gradients are float32 for
half types (:func:`.kernels.carry_dtype`). Every GEMM is :func:`.matmul.mm` (torch's, or in TF32 a
Triton GEMM).

Kept for backward: the input-side and hidden-side projections ``[T, B, 3H]``, the states ``s`` after
every step (analog) and the outputs; with ``low_memory`` only the input and the outputs (as bit rows
where 0/1, :mod:`.saved`): backward first recomputes the projections and the states exactly as forward
computed them (one GEMM for the input side, then the persistent forward kernel replayed, or per step
the very GEMM call of forward on the kept spikes and its pointwise kernel), then runs as without
``low_memory``. An all-zero ``s_0`` is not kept.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..storage import restore_zero, zero_or_kept
from . import persistent, persistent_gru_sigmoid
from .kernels import (BLOCK, carried, carry_dtype, grid, gru_sigmoid_cell, gru_sigmoid_cell_backward, initial_spikes,
                      load_three, rows, spike_input_backward, store_three)
from .matmul import mm, mm_into, project
from .saved import compact, restore


@triton.jit
def _gru_sigmoid_forward_step(xp_ptr, hp_ptr, s_ptr, s_out_ptr, y_ptr, n_elem, H, threshold, BLOCK: tl.constexpr):
    """Rows ``[0, n)`` of one step: ``xp``, ``hp [n, 3H]`` -> the state ``s`` (in place, and copied to
    ``s_out``) and the spikes ``y = Θ(s - threshold)``."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    row = e // H
    base = row * (3 * H) + (e - row * H)
    x_r, x_z, x_n = load_three(xp_ptr, base, H, mask)
    h_r, h_z, h_n = load_three(hp_ptr, base, H, mask)
    s, h = gru_sigmoid_cell(x_r, x_z, x_n, h_r, h_z, h_n, tl.load(s_ptr + e, mask=mask, other=0.0).to(tl.float32),
                            threshold)
    tl.store(s_ptr + e, s.to(s_ptr.dtype.element_ty), mask=mask)
    tl.store(s_out_ptr + e, s.to(s_out_ptr.dtype.element_ty), mask=mask)
    tl.store(y_ptr + e, h.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gru_sigmoid_backward_step(xp_ptr, hp_ptr, s_prev_ptr, s_ptr, ds_ptr, dh_ptr, dy_ptr, dx_pre_ptr, dh_pre_ptr,
                               n_elem, H, threshold, alpha1, KIND1: tl.constexpr, BLOCK: tl.constexpr):
    """Rows ``[0, n)`` of one step backward: ``dx_pre``, ``dh_pre [n, 3H]`` and the carried state gradient
    ``ds <- z ds`` (in place) from the projections, the state before and after the step, ``ds`` and the
    spikes' gradient ``dh + dy``."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    row = e // H
    base = row * (3 * H) + (e - row * H)
    x_r, x_z, x_n = load_three(xp_ptr, base, H, mask)
    h_r, h_z, h_n = load_three(hp_ptr, base, H, mask)
    s_prev = tl.load(s_prev_ptr + e, mask=mask, other=0.0).to(tl.float32)
    s = tl.load(s_ptr + e, mask=mask, other=0.0).to(tl.float32)
    ds = tl.load(ds_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dh = tl.load(dh_ptr + e, mask=mask, other=0.0).to(tl.float32) + tl.load(dy_ptr + e, mask=mask, other=0.0).to(
        tl.float32)
    d_r, d_z, d_n, r, ds = gru_sigmoid_cell_backward(x_r, x_z, x_n, h_r, h_z, h_n, s_prev, s, ds, dh, threshold,
                                                     alpha1, KIND1)
    store_three(dx_pre_ptr, base, H, d_r, d_z, d_n, mask)
    store_three(dh_pre_ptr, base, H, d_r, d_z, d_n * r, mask)
    tl.store(ds_ptr + e, ds.to(ds_ptr.dtype.element_ty), mask=mask)


def gru_sigmoid_forward(x, s0, w_ih, w_hh, b_ih, b_hh, config):
    """Returns ``(y [T, B, H], s_n [B, H], xp, hp, s_all)``: the spikes, the final state (float32 for half
    types), and for backward the projections and the states after each step ``[T, B, H]`` (``None``
    unless ``config.save`` and not ``config.low_memory``)."""
    steps, batch, _ = x.shape
    hidden = s0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros  # rows past their length must read as zero
    like = dict(dtype=x.dtype, device=x.device)
    threshold = config.spike_threshold
    xp = project(x, w_ih, b_ih, tf32=config.tf32).contiguous()
    y = new(steps, batch, hidden, **like)
    s = carried(s0, x.dtype)
    h = initial_spikes(s0, threshold, x.dtype)
    keep = config.save and not config.low_memory
    hp_all = new(steps, batch, 3 * hidden, **like) if keep else None
    s_all = new(steps, batch, hidden, **like) if keep else None
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # the whole loop in one launch
        persistent_gru_sigmoid.gru_sigmoid_persistent_forward(xp, h, s, w_hh, b_hh, y, hp_all, s_all, bs, threshold,
                                                              config.tf32)
        return y, s, (xp if keep else None), hp_all, s_all
    scratch = None if keep else torch.empty(batch, 3 * hidden, **like)
    w_hh_t = w_hh.t()
    for t in range(steps):
        n = rows(bs, t, batch)
        if n == 0:
            continue
        hp = hp_all[t, :n] if hp_all is not None else scratch[:n]
        mm(h[:n], w_hh_t, bias=b_hh, out=hp, tf32=config.tf32)
        s_out = s_all[t, :n] if s_all is not None else s[:n]
        _gru_sigmoid_forward_step[grid(n * hidden)](xp[t, :n], hp, s, s_out, y[t, :n], n * hidden, hidden,
                                                    float(threshold), BLOCK=BLOCK)
        h[:n] = y[t, :n]  # the spikes the next step reads
    return y, s, (xp if keep else None), hp_all, s_all


def _replay(x, s0, h0, w_ih, w_hh, b_ih, b_hh, y, config):
    """Low memory: ``(xp, hp, s_all)`` as forward computed them, recomputed exactly (the persistent forward
    kernel replayed, or per step the very GEMM call of forward on the kept spikes ``y`` and its pointwise
    kernel), in order (each state needs the one before). ``h0``: the initial spikes."""
    steps, batch, _ = x.shape
    hidden = s0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    like = dict(dtype=x.dtype, device=x.device)
    threshold = config.spike_threshold
    xp = project(x, w_ih, b_ih, tf32=config.tf32).contiguous()
    s = carried(s0, x.dtype)
    hp_all = new(steps, batch, 3 * hidden, **like)
    s_all = new(steps, batch, hidden, **like)
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:
        persistent_gru_sigmoid.gru_sigmoid_persistent_forward(xp, h0, s, w_hh, b_hh, new(steps, batch, hidden, **like),
                                                              hp_all, s_all, bs, threshold, config.tf32)
        return xp, hp_all, s_all
    # buffers like forward's: its spike buffer and its scratch projections (the same GEMM call, operands alike)
    h_step = torch.empty_like(h0)
    hp_step = torch.empty(batch, 3 * hidden, **like)
    y_step = torch.empty(batch, hidden, **like)
    w_hh_t = w_hh.t()
    for t in range(steps):
        n = rows(bs, t, batch)
        if n == 0:
            continue
        h_step[:n] = (h0 if t == 0 else y[t - 1])[:n]
        mm(h_step[:n], w_hh_t, bias=b_hh, out=hp_step[:n], tf32=config.tf32)
        _gru_sigmoid_forward_step[grid(n * hidden)](xp[t, :n], hp_step[:n], s, s_all[t, :n], y_step[:n], n * hidden,
                                                    hidden, float(threshold), BLOCK=BLOCK)
        hp_all[t, :n] = hp_step[:n]
    return xp, hp_all, s_all


def gru_sigmoid_backward(saved, dy, ds_n, needs, config):
    """Gradients ``(dx, ds0, dw_ih, dw_hh, db_ih, db_hh)`` (``None`` where not needed)."""
    x, s0, w_ih, w_hh, b_ih, b_hh, y, xp, hp_all, s_all = saved
    steps, batch, _ = x.shape
    hidden = s0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    like = dict(dtype=x.dtype, device=x.device)
    threshold = config.spike_threshold
    s0_c = s0.contiguous()
    h0 = initial_spikes(s0_c, threshold, x.dtype)
    if s_all is None:  # low memory: the projections and the states recomputed first
        xp, hp_all, s_all = _replay(x, s0_c, h0, w_ih, w_hh, b_ih, b_hh, y, config)
    dx_pre = new(steps, batch, 3 * hidden, **like)
    dh_pre = new(steps, batch, 3 * hidden, **like)
    # the carried gradients in float32 for half types (see kernels.carry_dtype), returned in s0's dtype
    ds = carried(ds_n if ds_n is not None else torch.zeros_like(s0), x.dtype)
    dh = torch.zeros(batch, hidden, dtype=carry_dtype(x.dtype), device=x.device)  # of the spikes fed back
    dy = torch.zeros_like(y) if dy is None else dy.contiguous()
    w_hh_c = w_hh.contiguous()
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # the reverse loop in one launch
        persistent_gru_sigmoid.gru_sigmoid_persistent_backward(xp, hp_all, s0_c, s_all, dy, w_hh_c, ds, dh, dx_pre,
                                                               dh_pre, bs, threshold, config.alpha1, config.kind1,
                                                               config.tf32)
    else:
        for t in range(steps - 1, -1, -1):
            n = rows(bs, t, batch)
            if n == 0:
                continue
            s_prev = s0_c[:n] if t == 0 else s_all[t - 1, :n]
            _gru_sigmoid_backward_step[grid(n * hidden)](xp[t, :n], hp_all[t, :n], s_prev, s_all[t, :n], ds, dh,
                                                         dy[t, :n], dx_pre[t, :n], dh_pre[t, :n], n * hidden, hidden,
                                                         float(threshold), float(config.alpha1), KIND1=config.kind1,
                                                         BLOCK=BLOCK)
            mm_into(dh_pre[t, :n], w_hh_c, dh[:n], tf32=config.tf32)
    if steps:  # the first step read Θ(s_0 - θ): its gradient dh reaches s_0 through the surrogate
        spike_input_backward[grid(batch * hidden)](s0_c, dh, ds, batch * hidden, float(threshold), float(config.alpha1),
                                                   KIND1=config.kind1, BLOCK=BLOCK)
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
    return dx, ds.to(s0.dtype) if needs[1] else None, dw_ih, dw_hh, db_ih, db_hh


class GRUSigmoidSequence(torch.autograd.Function):
    """``(x [T, B, I], s0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H], s_n [B, H])``: the
    sigmoid-form GRU; ``y`` the 0/1 spikes ``Θ(s_t - θ)`` (zeros past each row's length), ``s_n`` each
    row's last analog state (``s0`` for rows without steps)."""

    @staticmethod
    def forward(ctx, x, s0, w_ih, w_hh, b_ih, b_hh, config):
        y, s_n, xp, hp_all, s_all = gru_sigmoid_forward(x, s0, w_ih, w_hh, b_ih, b_hh, config)
        s_n = s_n.to(s0.dtype)  # the running s is float32 for half types
        if config.save:
            ctx.config = config
            (x_kept, y_kept, s_kept), ctx.kept = compact((x, y, s_all), config.low_memory)
            ctx.state_shape = tuple(s0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(s0), w_ih, w_hh, b_ih, b_hh, y_kept, xp, hp_all, s_kept)
        return y, s_n

    @staticmethod
    def backward(ctx, dy, ds_n):
        x, s0, w_ih, w_hh, b_ih, b_hh, y, xp, hp_all, s_all = ctx.saved_tensors
        x, y, s_all = restore((x, y, s_all), ctx.kept)
        s0 = restore_zero(s0, ctx.state_shape, w_hh)
        grads = gru_sigmoid_backward((x, s0, w_ih, w_hh, b_ih, b_hh, y, xp, hp_all, s_all), dy, ds_n,
                                     ctx.needs_input_grad, ctx.config)
        return (*grads, None)
