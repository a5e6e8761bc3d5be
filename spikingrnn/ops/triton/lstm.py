"""Spiking LSTM over a whole sequence on Triton (one layer, one direction), design v0.

Without ``proj_size`` and for ``hidden <= persistent.PERSISTENT_MAX_HIDDEN`` the forward runs as one
persistent kernel (:mod:`spikingrnn.ops.triton.persistent`), and so does the backward's reverse loop;
otherwise "GEMM + fused pointwise": the input projections of all
steps are one GEMM; per step the recurrent GEMM (written straight into the saved pre-activations)
and ONE Triton kernel doing the step's pointwise work (gates ``u >= 0``, the ``cell_state`` rule,
``m = o * c``; with ``gates="sigmoid"`` sigmoid/tanh gates, an analog ``c`` and the spikes
``m = Θ(o tanh(c) - θ)``, ``TritonConfig.sigmoid``). With ``proj_size`` the projection
``h = m W_hr^T`` is a GEMM. Every GEMM is
:func:`.matmul.mm`: torch's, or in TF32 a Triton GEMM (see :mod:`.matmul`). Kept for backward: the pre-activations ``[T, B, 4H]``, ``c`` after every step, the output and
(with ``proj_size``) ``m``. Backward per step (where not persistent), from the end: one Triton
kernel turns the saved pre-activations into the pre-activation gradients (surrogate derivative
selected by a constexpr id) and the carried cell gradient, then one GEMM gives the carried
``dh``; the weight gradients are single large GEMMs after the loop. With ``low_memory`` the
pre-activations are not kept; ``c`` (computed as uint8 when it is 0/1: clamp from a 0/1 ``c0``, or the
spiking cell; the sigmoid form's analog ``c`` is not kept, backward recomputes it with the
pre-activations, replaying forward in order), the input, the output and ``m`` are kept as bit
rows when 0/1 (:mod:`.saved`), and backward
recomputes the pre-activations the way forward computed them, so that they fire the same gates: the
input projections (one GEMM), then the persistent forward kernel replayed, or per step one GEMM
with the kept outputs. An all-zero ``h0`` or ``c0`` is not kept.
Kernels are kernel -> launcher -> autograd.Function, in that order.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ...functional.cells import CELL_STATE_CODES
from ..storage import is_binary, restore_zero, zero_or_kept
from . import persistent
from .kernels import BLOCK, carried, grid, load_gates, lstm_cell, lstm_cell_backward, rows, store_gates
from .matmul import mm, mm_into, project
from .saved import compact, restore


@triton.jit
def _lstm_forward_step(u_ptr, c_ptr, c_out_ptr, m_out_ptr, n_elem, H, threshold,
                       CELL: tl.constexpr, SIGMOID: tl.constexpr, BLOCK: tl.constexpr):
    """Rows ``[0, n)`` of one step: ``u [n, 4H]`` -> ``c`` (in place, and copied to ``c_out``) and the output
    ``m`` before any projection (``o * c``, or with ``SIGMOID`` the spikes ``Θ(o tanh(c) - threshold)``)."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    row = e // H
    base = row * (4 * H) + (e - row * H)
    u_i, u_f, u_g, u_o = load_gates(u_ptr, base, H, mask)
    c, m = lstm_cell(u_i, u_f, u_g, u_o, tl.load(c_ptr + e, mask=mask, other=0.0).to(tl.float32), threshold, CELL,
                    SIGMOID)
    tl.store(c_ptr + e, c.to(c_ptr.dtype.element_ty), mask=mask)
    tl.store(c_out_ptr + e, c.to(c_out_ptr.dtype.element_ty), mask=mask)
    tl.store(m_out_ptr + e, m.to(m_out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lstm_backward_step(u_ptr, c_prev_ptr, c_after_ptr, dm_ptr, dc_ptr, d_pre_ptr, n_elem, H, threshold,
                        alpha1, alpha2, CELL: tl.constexpr, KIND1: tl.constexpr, KIND2: tl.constexpr,
                        SIGMOID: tl.constexpr, BLOCK: tl.constexpr):
    """Rows ``[0, n)`` of one step backward: ``d_pre [n, 4H]`` and the carried ``dc`` (in place) from the
    saved ``u``, ``c`` before/after, ``dm = dL/dm`` (the step's output before any projection) and the
    incoming ``dc``."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    row = e // H
    base = row * (4 * H) + (e - row * H)
    u_i, u_f, u_g, u_o = load_gates(u_ptr, base, H, mask)
    c_prev = tl.load(c_prev_ptr + e, mask=mask, other=0.0).to(tl.float32)
    c_after = tl.load(c_after_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dm = tl.load(dm_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dc = tl.load(dc_ptr + e, mask=mask, other=0.0).to(tl.float32)
    d_i, d_f, d_g, d_o, dc = lstm_cell_backward(u_i, u_f, u_g, u_o, c_prev, c_after, dm, dc, threshold, alpha1, alpha2,
                                                CELL, KIND1, KIND2, SIGMOID)
    store_gates(d_pre_ptr, base, H, d_i, d_f, d_g, d_o, mask)
    tl.store(dc_ptr + e, dc.to(dc_ptr.dtype.element_ty), mask=mask)


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config):
    """Returns ``(y [T, B, P], h_n, c_n, pre, c_all, m_all)``; ``pre`` and ``c_all`` are ``None`` unless
    ``config.save``, ``m_all`` (``o * c`` before the projection) unless ``w_hr`` is given. The running
    ``c`` (and ``c_n``) is float32 for half types (:func:`.kernels.carry_dtype`); ``c_all`` keeps the
    input's dtype: a copy per step for backward, rounded once, never summed on."""
    steps, batch, _ = x.shape
    hidden = c0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros  # rows past their length must read as zero
    like = dict(dtype=x.dtype, device=x.device)
    xp = project(x, w_ih, b_ih, b_hh, tf32=config.tf32)
    y = new(steps, batch, h0.shape[1], **like)
    h, c = h0.contiguous().clone(), carried(c0, x.dtype)
    keep_pre = config.save and not config.low_memory
    pre = new(steps, batch, 4 * hidden, **like) if keep_pre else None
    c_like = like
    if config.low_memory and not config.sigmoid and (
            config.cell_state == "spike" or (config.cell_state == "clamp" and is_binary(c0))):
        c_like = dict(like, dtype=torch.uint8)  # 0/1: one byte instead of four
    # the sigmoid form's analog c is not kept in low memory: backward recomputes it (_replay_sigmoid)
    keep_c = config.save and not (config.low_memory and config.sigmoid)
    c_all = new(steps, batch, hidden, **c_like) if keep_c else None
    m_all = new(steps, batch, hidden, **like) if w_hr is not None else None
    scratch = None if keep_pre else torch.empty(batch, 4 * hidden, **like)
    if w_hr is None and hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # the whole loop in one launch
        h = persistent.lstm_persistent_forward(xp.contiguous(), h0, c, w_hh, y, pre, c_all, bs,
                                               CELL_STATE_CODES[config.cell_state], config.kernel_threshold,
                                               config.tf32, sigmoid=config.sigmoid)
        return y, h, c, pre, c_all, m_all
    w_hh_t = w_hh.t()
    w_hr_t = None if w_hr is None else w_hr.t()
    for t in range(steps):
        n = rows(bs, t, batch)
        if n == 0:
            continue
        u = pre[t, :n] if pre is not None else scratch[:n]
        mm(h[:n], w_hh_t, add=xp[t, :n], out=u, tf32=config.tf32)
        c_out = c_all[t, :n] if c_all is not None else c[:n]
        m = m_all[t, :n] if m_all is not None else y[t, :n]
        _lstm_forward_step[grid(n * hidden)](u, c, c_out, m, n * hidden, hidden, float(config.kernel_threshold),
                                             CELL=CELL_STATE_CODES[config.cell_state], SIGMOID=config.sigmoid,
                                             BLOCK=BLOCK)
        if w_hr_t is not None:
            mm(m, w_hr_t, out=y[t, :n], tf32=config.tf32)
        h[:n] = y[t, :n]
    return y, h, c, pre, c_all, m_all


def _replay_sigmoid(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, config):
    """Low memory, sigmoid form: the pre-activations ``[T, B, 4H]`` and the cells ``[T, B, H]`` of every
    step, recomputed exactly as forward computed them (the persistent forward kernel replayed, or per
    step the very GEMM call of forward on the kept outputs and its pointwise kernel), in order (each
    ``c`` needs the one before)."""
    steps, batch, _ = x.shape
    hidden = c0.shape[1]
    bs = config.batch_sizes
    new = torch.empty if bs is None else torch.zeros
    like = dict(dtype=x.dtype, device=x.device)
    xp = project(x, w_ih, b_ih, b_hh, tf32=config.tf32)
    c = carried(c0, x.dtype)
    c_all = new(steps, batch, hidden, **like)
    cell = CELL_STATE_CODES[config.cell_state]
    if w_hr is None and hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # it writes u over xp, which it reads first
        pre = xp.contiguous()
        persistent.lstm_persistent_forward(pre, h0, c, w_hh, new(steps, batch, hidden, **like), pre, c_all, bs, cell,
                                           config.kernel_threshold, config.tf32, sigmoid=True)
        return pre, c_all
    pre = new(steps, batch, 4 * hidden, **like)
    # buffers like forward's: its running h, its scratch u (the same GEMM call, operands alike)
    h_step = torch.empty_like(h0, memory_format=torch.contiguous_format)
    u_step = torch.empty(batch, 4 * hidden, **like)
    m_step = torch.empty(batch, hidden, **like)
    w_hh_t = w_hh.t()
    for t in range(steps):
        n = rows(bs, t, batch)
        if n == 0:
            continue
        h_step[:n] = (h0 if t == 0 else y[t - 1])[:n]
        mm(h_step[:n], w_hh_t, add=xp[t, :n], out=u_step[:n], tf32=config.tf32)
        _lstm_forward_step[grid(n * hidden)](u_step[:n], c, c_all[t, :n], m_step[:n], n * hidden, hidden,
                                             float(config.kernel_threshold), CELL=cell, SIGMOID=True, BLOCK=BLOCK)
        pre[t, :n] = u_step[:n]
    return pre, c_all


def lstm_backward(saved, dy, dh_n, dc_n, needs, config):
    """Gradients ``(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr)`` (``None`` where not needed)."""
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, pre, c_all, m_all = saved
    if pre is None and config.sigmoid:  # low memory, sigmoid form: u and the analog c recomputed
        pre, c_all = _replay_sigmoid(x, h0, c0.contiguous(), w_ih, w_hh, b_ih, b_hh, w_hr, y, config)
    steps, batch, _ = x.shape
    hidden = c0.shape[1]
    bs = config.batch_sizes
    like = dict(dtype=x.dtype, device=x.device)
    new = torch.empty if bs is None else torch.zeros
    d_pre = new(steps, batch, 4 * hidden, **like)
    # the carried gradients in float32 for half types (see carry_dtype), returned in the states' dtype
    dh = carried(dh_n if dh_n is not None else torch.zeros_like(h0), x.dtype)
    dc = carried(dc_n if dc_n is not None else torch.zeros_like(c0), x.dtype)
    dy = torch.zeros_like(y) if dy is None else dy.contiguous()
    dh_all = torch.zeros(steps, batch, h0.shape[1], **like) if w_hr is not None else None
    w_hh_c = w_hh.contiguous()
    c0_c = c0.contiguous()  # float even where the kept states are uint8 (the kernel reads either)
    xp = u_step = w_hh_t = None
    if pre is None and w_hr is None and hidden <= persistent.PERSISTENT_MAX_HIDDEN:
        # low memory after a persistent forward: replay that kernel (its products are not those of
        # a torch GEMM), so that the recomputed u fire exactly the forward's gates; it writes u over
        # the input projections, which it reads first
        pre = project(x, w_ih, b_ih, b_hh, tf32=config.tf32).contiguous()
        replayed_y = new(steps, batch, hidden, **like)
        persistent.lstm_persistent_forward(pre, h0, carried(c0_c, x.dtype), w_hh, replayed_y, pre, None, bs,
                                           CELL_STATE_CODES[config.cell_state], config.kernel_threshold,
                                           config.tf32, sigmoid=config.sigmoid)
    if pre is not None and w_hr is None and hidden <= persistent.PERSISTENT_MAX_HIDDEN:  # one launch
        persistent.lstm_persistent_backward(pre, c_all, c0_c, dy, w_hh_c, dh, dc, d_pre, bs,
                                            CELL_STATE_CODES[config.cell_state], config.kernel_threshold,
                                            config.alpha1, config.alpha2, config.kind1, config.kind2, config.tf32,
                                            sigmoid=config.sigmoid)
        steps_left = range(0)
    else:
        steps_left = range(steps - 1, -1, -1)
    if pre is None:  # low memory: recompute u[t] = x[t] W_ih^T + b + h[t-1] W_hh^T step by step
        xp = project(x, w_ih, b_ih, b_hh, tf32=config.tf32)
        u_step = torch.empty(batch, 4 * hidden, **like)
        # h[t-1] copied into a buffer like the forward's running state: the very GEMM call of forward
        # (operands alike down to their alignment, which a GEMM library may choose its kernel by)
        h_step = torch.empty_like(h0, memory_format=torch.contiguous_format)
        w_hh_t = w_hh.t()
    for t in steps_left:
        n = rows(bs, t, batch)
        if n == 0:
            continue
        if pre is None:
            u = u_step[:n]
            h_step[:n] = (h0 if t == 0 else y[t - 1])[:n]
            mm(h_step[:n], w_hh_t, add=xp[t, :n], out=u, tf32=config.tf32)
        else:
            u = pre[t, :n]
        dh_t = dh[:n].add_(dy[t, :n])
        if w_hr is not None:
            dh_all[t, :n] = dh_t
            dm = mm(dh_t.to(x.dtype), w_hr, tf32=config.tf32)
        else:
            dm = dh_t
        c_prev = c0_c[:n] if t == 0 else c_all[t - 1, :n]
        _lstm_backward_step[grid(n * hidden)](u, c_prev, c_all[t, :n], dm, dc, d_pre[t, :n], n * hidden,
                                              hidden, float(config.kernel_threshold), float(config.alpha1),
                                              float(config.alpha2), CELL=CELL_STATE_CODES[config.cell_state],
                                              KIND1=config.kind1, KIND2=config.kind2, SIGMOID=config.sigmoid,
                                              BLOCK=BLOCK)
        mm_into(d_pre[t, :n], w_hh_c, dh[:n], tf32=config.tf32)
    flat = d_pre.view(-1, 4 * hidden)
    dx = mm(flat, w_ih, tf32=config.tf32).view(steps, batch, w_ih.shape[1]) if needs[0] else None
    dw_ih = mm(flat.t(), x.reshape(-1, x.shape[2]), tf32=config.tf32) if needs[3] else None
    dw_hh = None
    if needs[4]:
        h_prev = torch.cat([h0.unsqueeze(0), y[:-1]])  # rows past their length meet d_pre == 0
        dw_hh = mm(flat.t(), h_prev.reshape(-1, h0.shape[1]), tf32=config.tf32)
    db = flat.sum(0) if (needs[5] and b_ih is not None) or (needs[6] and b_hh is not None) else None
    dw_hr = None
    if w_hr is not None and needs[7]:
        dw_hr = mm(dh_all.view(-1, h0.shape[1]).t(), m_all.view(-1, hidden), tf32=config.tf32)
    return (dx, dh.to(h0.dtype) if needs[1] else None, dc.to(c0.dtype) if needs[2] else None, dw_ih, dw_hh,
            db if needs[5] and b_ih is not None else None, db if needs[6] and b_hh is not None else None, dw_hr)


class LSTMSequence(torch.autograd.Function):
    """``(x [T, B, I], h0 [B, P], c0 [B, H], w_ih, w_hh, b_ih, b_hh, w_hr, config) -> (y [T, B, P], h_n, c_n)``.

    Rows past their length keep their state and output zeros.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config):
        y, h_n, c_n, pre, c_all, m_all = lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config)
        c_n = c_n.to(c0.dtype)  # the running c is float32 for half types
        if config.save:
            ctx.config = config
            # m (before the projection: the sigmoid form's spikes) as bit rows too where it is 0/1
            (x_kept, y_kept, c_kept, m_kept), ctx.kept = compact((x, y, c_all, m_all), config.low_memory)
            ctx.state_shapes = (tuple(h0.shape), tuple(c0.shape))
            ctx.save_for_backward(x_kept, zero_or_kept(h0), zero_or_kept(c0), w_ih, w_hh, b_ih, b_hh, w_hr, y_kept,
                                  pre, c_kept, m_kept)
        return y, h_n, c_n

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, pre, c_all, m_all = ctx.saved_tensors
        x, y, c_all, m_all = restore((x, y, c_all, m_all), ctx.kept)
        h0, c0 = (restore_zero(s, shape, w_hh) for s, shape in zip((h0, c0), ctx.state_shapes))
        grads = lstm_backward((x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, pre, c_all, m_all), dy, dh_n, dc_n,
                              ctx.needs_input_grad, ctx.config)
        return (*grads, None)
