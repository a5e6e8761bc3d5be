"""Leaky spiking vanilla RNN (``leak=β``, SpikingRNN's default) over a whole sequence on Triton (one layer,
one direction).

The state is an analog membrane ``v [B, H]``; the cell emits, and feeds back, its spikes ``h = Θ(v - θ)``
(:func:`spikingrnn.functional.cells.rnn_step_gates`): with ``h_{t-1} = Θ(v_{t-1} - θ)`` (``Θ(v_0 - θ)`` at
the first step) and ``xp = x W_ih^T + b_ih + b_hh`` (one GEMM for all steps),

    u_t = xp_t + h_{t-1} W_hh^T,  v_t = β v_{t-1} + (1 - β) u_t,  y_t = Θ(v_t - θ).

The output sequence is ``y`` (0/1), the final state ``v`` (analog; each row's last, packed). For
``hidden <= PERSISTENT_MAX_HIDDEN`` the forward loop is one persistent kernel and so is the backward's
reverse loop (:mod:`.persistent_leaky_rnn`); otherwise per step one GEMM gives ``u`` and one Triton kernel
the pointwise work (:func:`.kernels.leaky_rnn_cell`), and backward per step one Triton kernel gives the
pre-activation gradient ``d_u = (1 - β) total`` and the carried membrane gradient ``β total``
(``total = dv + (dh + dy) Θ'(v_t - θ)``), one GEMM the gradient of the spikes fed back (``d_u W_hh``). Both
paths then add the initial spikes' part ``dh Θ'(v_0 - θ)`` to the gradient of ``v_0``
(:func:`.kernels.spike_input_backward`). The running ``v`` and the carried gradients are float32 for half
types (:func:`.kernels.carry_dtype`). Every GEMM is :func:`.matmul.mm` (torch's, or in TF32 a Triton GEMM).
The forward kernels are compiled without floating-point contraction: ``β v + (1 - β) u`` is rounded as the
reference's three tensor operations round it (no fused multiply-add on a GPU).

Kept for backward: the input, the outputs and the membranes ``v`` after every step (analog; nothing else:
``v`` is linear in ``u``); with ``low_memory`` only the input and the outputs (as bit rows where 0/1,
:mod:`.saved`): backward first recomputes the membranes by running forward again, with the same kernels and
GEMM calls on the same operands (so the same values), then runs as without ``low_memory``. An all-zero
``v_0`` is not kept.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..storage import restore_zero, zero_or_kept
from . import persistent, persistent_leaky_rnn
from .kernels import (BLOCK, carried, carry_dtype, grid, initial_spikes, leaky_rnn_cell, leaky_rnn_cell_backward, rows,
                      spike_input_backward)
from .matmul import mm, mm_into, project
from .saved import compact, restore


@triton.jit
def _leaky_rnn_forward_step(u_ptr, v_ptr, v_out_ptr, h_ptr, y_ptr, n_elem, leak, gain, threshold,
                            BLOCK: tl.constexpr):
    """Elements ``[0, n)`` of one step (rows ``[0, n / H)``): ``u [n]`` -> the membrane ``v`` (in place, and
    copied to ``v_out``) and the spikes ``Θ(v - threshold)`` into ``h`` (the next step's input) and ``y``."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    u = tl.load(u_ptr + e, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + e, mask=mask, other=0.0).to(tl.float32)
    v, spikes = leaky_rnn_cell(u, v, leak, gain, threshold)
    tl.store(v_ptr + e, v.to(v_ptr.dtype.element_ty), mask=mask)
    tl.store(v_out_ptr + e, v.to(v_out_ptr.dtype.element_ty), mask=mask)
    tl.store(h_ptr + e, spikes.to(h_ptr.dtype.element_ty), mask=mask)
    tl.store(y_ptr + e, spikes.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _leaky_rnn_backward_step(v_ptr, dv_ptr, dh_ptr, dy_ptr, d_pre_ptr, n_elem, leak, gain, threshold, alpha1,
                             KIND1: tl.constexpr, BLOCK: tl.constexpr):
    """Elements ``[0, n)`` of one step backward: ``d_pre`` and the carried membrane gradient ``dv`` (in place)
    from the membrane ``v`` after the step, ``dv`` and the spikes' gradient ``dh + dy``."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    v = tl.load(v_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dv = tl.load(dv_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dh = tl.load(dh_ptr + e, mask=mask, other=0.0).to(tl.float32) + tl.load(dy_ptr + e, mask=mask, other=0.0).to(
        tl.float32)
    d_u, dv = leaky_rnn_cell_backward(v, dv, dh, leak, gain, threshold, alpha1, KIND1)
    tl.store(d_pre_ptr + e, d_u.to(d_pre_ptr.dtype.element_ty), mask=mask)
    tl.store(dv_ptr + e, dv.to(dv_ptr.dtype.element_ty), mask=mask)


def leak_and_gain(config) -> tuple[float, float]:
    """``(β, 1 - β)`` of ``config.leak``, the second computed on the host in double precision, as the reference
    computes ``1.0 - leak`` before torch rounds it to the tensors' dtype (the kernels take both as float32)."""
    leak = float(config.leak)
    return leak, 1.0 - leak


def leaky_rnn_forward(x, v0, w_ih, w_hh, b_ih, b_hh, config, keep_states: bool):
    """Returns ``(y [T, B, H], v_n [B, H], v_all)``: the spikes (zeros past each row's length), each row's last
    membrane (float32 for half types) and, when ``keep_states``, the membranes after every step
    ``[T, B, H]`` in ``x``'s dtype (else ``None``). ``x [T, B, I]``, ``v0 [B, H]``."""
    steps, batch, _ = x.shape
    hidden = v0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros  # rows past their length must read as zero
    like = dict(dtype=x.dtype, device=x.device)
    leak, gain = leak_and_gain(config)
    threshold = float(config.spike_threshold)
    xp = project(x, w_ih, b_ih, b_hh, tf32=config.tf32).contiguous()
    y = new(steps, batch, hidden, **like)
    v = carried(v0, x.dtype)
    h = initial_spikes(v0, threshold, x.dtype)
    v_all = new(steps, batch, hidden, **like) if keep_states else None
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # the whole loop in one launch
        persistent_leaky_rnn.leaky_rnn_persistent_forward(xp, h, v, w_hh, y, v_all, bs, leak, gain, threshold,
                                                          config.tf32)
        return y, v, v_all
    u = torch.empty(batch, hidden, **like)  # scratch: u is never kept
    w_hh_t = w_hh.t()
    for t in range(steps):
        n = rows(bs, t, batch)
        if n == 0:
            continue
        mm(h[:n], w_hh_t, add=xp[t, :n], out=u[:n], tf32=config.tf32)
        v_out = v_all[t, :n] if v_all is not None else v[:n]
        _leaky_rnn_forward_step[grid(n * hidden)](u, v, v_out, h, y[t, :n], n * hidden, leak, gain, threshold,
                                                  BLOCK=BLOCK, enable_fp_fusion=False)
    return y, v, v_all


def leaky_rnn_backward(saved, dy, dv_n, needs, config):
    """Gradients ``(dx, dv0, dw_ih, dw_hh, db_ih, db_hh)`` (``None`` where not needed) from ``saved = (x, v0,
    w_ih, w_hh, b_ih, b_hh, y, v_all)`` (``v_all`` ``None`` in low memory: recomputed first), ``dy [T, B, H]``
    and ``dv_n [B, H]`` (either may be ``None``)."""
    x, v0, w_ih, w_hh, b_ih, b_hh, y, v_all = saved
    steps, batch, _ = x.shape
    hidden = v0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    leak, gain = leak_and_gain(config)
    threshold = float(config.spike_threshold)
    v0_c = v0.contiguous()
    if v_all is None:  # low memory: forward run again, its membranes kept this time
        v_all = leaky_rnn_forward(x, v0_c, w_ih, w_hh, b_ih, b_hh, config, keep_states=True)[2]
    d_pre = new(steps, batch, hidden, dtype=x.dtype, device=x.device)
    # the carried gradients in float32 for half types (see kernels.carry_dtype), returned in v0's dtype
    dv = carried(dv_n if dv_n is not None else torch.zeros_like(v0), x.dtype)
    dh = torch.zeros(batch, hidden, dtype=carry_dtype(x.dtype), device=x.device)  # of the spikes fed back
    dy = torch.zeros_like(y) if dy is None else dy.contiguous()
    w_hh_c = w_hh.contiguous()
    if hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # the reverse loop in one launch
        persistent_leaky_rnn.leaky_rnn_persistent_backward(v_all, dy, w_hh_c, dv, dh, d_pre, bs, leak, gain, threshold,
                                                           config.alpha1, config.kind1, config.tf32)
    else:
        for t in range(steps - 1, -1, -1):
            n = rows(bs, t, batch)
            if n == 0:
                continue
            _leaky_rnn_backward_step[grid(n * hidden)](v_all[t, :n], dv, dh, dy[t, :n], d_pre[t, :n], n * hidden,
                                                       leak, gain, threshold, float(config.alpha1),
                                                       KIND1=config.kind1, BLOCK=BLOCK)
            mm_into(d_pre[t, :n], w_hh_c, dh[:n], tf32=config.tf32)
    if steps:  # the first step read Θ(v_0 - θ): its gradient dh reaches v_0 through the surrogate
        spike_input_backward[grid(batch * hidden)](v0_c, dh, dv, batch * hidden, threshold, float(config.alpha1),
                                                   KIND1=config.kind1, BLOCK=BLOCK)
    flat = d_pre.view(-1, hidden)
    dx = mm(flat, w_ih, tf32=config.tf32).view(steps, batch, w_ih.shape[1]) if needs[0] else None
    dw_ih = mm(flat.t(), x.reshape(-1, x.shape[2]), tf32=config.tf32) if needs[2] else None
    dw_hh = None
    if needs[3]:
        h0 = initial_spikes(v0_c, threshold, x.dtype)
        h_prev = torch.cat([h0.unsqueeze(0), y[:-1]])  # rows past their length meet d_pre == 0
        dw_hh = mm(flat.t(), h_prev.reshape(-1, hidden), tf32=config.tf32)
    db = flat.sum(0) if needs[4] or needs[5] else None
    return (dx, dv.to(v0.dtype) if needs[1] else None, dw_ih, dw_hh, db if needs[4] and b_ih is not None else None,
            db if needs[5] and b_hh is not None else None)


class LeakyRNNSequence(torch.autograd.Function):
    """``(x [T, B, I], v0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H], v_n [B, H])``: the leaky
    vanilla RNN; ``y`` the 0/1 spikes ``Θ(v_t - θ)`` (zeros past each row's length), ``v_n`` each row's last
    membrane (``v0`` for rows without steps). ``config.leak`` is β, ``config.spike_threshold`` θ."""

    @staticmethod
    def forward(ctx, x, v0, w_ih, w_hh, b_ih, b_hh, config):
        keep = config.save and not config.low_memory
        y, v_n, v_all = leaky_rnn_forward(x, v0, w_ih, w_hh, b_ih, b_hh, config, keep_states=keep)
        v_n = v_n.to(v0.dtype)  # the running v is float32 for half types
        if config.save:
            ctx.config = config
            (x_kept, y_kept, v_kept), ctx.kept = compact((x, y, v_all), config.low_memory)
            ctx.state_shape = tuple(v0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(v0), w_ih, w_hh, b_ih, b_hh, y_kept, v_kept)
        return y, v_n

    @staticmethod
    def backward(ctx, dy, dv_n):
        x, v0, w_ih, w_hh, b_ih, b_hh, y, v_all = ctx.saved_tensors
        x, y, v_all = restore((x, y, v_all), ctx.kept)
        v0 = restore_zero(v0, ctx.state_shape, w_hh)
        grads = leaky_rnn_backward((x, v0, w_ih, w_hh, b_ih, b_hh, y, v_all), dy, dv_n, ctx.needs_input_grad,
                                   ctx.config)
        return (*grads, None)
