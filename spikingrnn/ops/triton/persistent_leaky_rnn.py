"""Persistent leaky spiking vanilla RNN (``leak=β``) forward and backward on Triton: the whole time loop in ONE launch.

The same scheme as the seed's vanilla RNN (:mod:`.persistent_rnn`): one program owns ``BLOCK_B`` batch rows
for all steps. The state is an analog membrane ``v [B, H]``; what the cell sends, to the next layer and to
itself, is its spikes ``h = Θ(v - θ)``. Forward, per step and tile of ``BLOCK_H`` units:
``u = xp[t] + h_{t-1} W_hh^T`` (``tl.dot``, the weights streaming from L2; ``h_{-1}`` is ``Θ(v_0 - θ)``,
given), ``v_t = β v_{t-1} + (1 - β) u`` updated in place in ``v`` (and stored in ``v_all[t]`` when backward
needs it), and the spikes ``Θ(v_t - θ)`` written to ``y[t]``, where the next step reads them. Backward, per
step from the end: phase 1 ``total = dv + (dh + dy[t]) Θ'(v_t - θ)``, ``d_pre[t] = (1 - β) total`` and the
carried ``dv <- β total``; phase 2 the spikes' gradient of the previous step ``dh = d_pre[t] W_hh``. The
initial spikes' part of ``dv_0`` (``dh Θ'(v_0 - θ)``) is added by the caller (:mod:`.leaky_rnn`). Used for
``hidden <= PERSISTENT_MAX_HIDDEN``.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .kernels import leaky_rnn_cell, leaky_rnn_cell_backward
from .persistent import (BLOCK_B, BLOCK_H, BLOCK_K, as_stored, dot_add, full_precision, previous_state, row_products,
                         rows_valid, step_rows, step_sizes)


@triton.jit
def _leaky_rnn_persistent_forward(xp_ptr, w_ptr, h0_ptr, v_ptr, y_ptr, v_all_ptr, sizes_ptr, steps, batch, H, leak,
                                  gain, threshold, SAVE_V: tl.constexpr, PACKED: tl.constexpr, IEEE: tl.constexpr,
                                  BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps. ``xp [T, B, H]`` (input projections and both
    biases), ``w [H, H]`` (``W_hh^T``, contiguous), ``h0 [B, H]`` the initial spikes ``Θ(v_0 - θ)``,
    ``v [B, H]`` the membrane (updated in place); ``y [T, B, H]`` the spikes out, ``v_all [T, B, H]`` the
    membrane after each step out when ``SAVE_V``; ``sizes [T]`` rows valid per step when packed;
    ``leak``, ``gain = 1 - leak`` and ``threshold`` as :func:`.kernels.leaky_rnn_cell` takes them."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    for t in range(steps):
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        for j0 in range(0, H, BLOCK_H):
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            u = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            for k0 in range(0, H, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                k_ok = ks < H
                h = previous_state(h0_ptr, y_ptr, t, batch, H, rows, ks, row_ok[:, None] & k_ok[None, :])
                w = tl.load(w_ptr + ks[:, None] * H + cols[None, :], mask=k_ok[:, None] & col_ok[None, :], other=0.0)
                u = dot_add(u, h, w, IEEE)
            mask = row_ok[:, None] & col_ok[None, :]
            unit = rows[:, None] * H + cols[None, :]
            at_t = step_rows(t, batch, rows)[:, None] * H + cols[None, :]  # [T, B, H] offsets of step t
            # u rounded as the per-step path stores it (its GEMM writes u in the sequence's dtype)
            u = as_stored(u + tl.load(xp_ptr + at_t, mask=mask, other=0.0).to(tl.float32), y_ptr)
            v = tl.load(v_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            v, spikes = leaky_rnn_cell(u, v, leak, gain, threshold)
            tl.store(v_ptr + unit, v.to(v_ptr.dtype.element_ty), mask=mask)
            if SAVE_V:
                tl.store(v_all_ptr + at_t, v.to(v_all_ptr.dtype.element_ty), mask=mask)
            tl.store(y_ptr + at_t, spikes.to(y_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # y[t] complete before any thread of this program reads it as h_t


def leaky_rnn_persistent_forward(xp, h0, v, w_hh, y, v_all, batch_sizes, leak: float, gain: float, threshold: float,
                                 tf32: bool = False) -> None:
    """Run all steps: ``v [B, H]`` (contiguous, the running membrane from ``v_0``) updated in place to each
    row's last membrane, ``y [T, B, H]`` filled with the spikes (zeros past each row's length when packed;
    they must be there beforehand), ``v_all [T, B, H]`` too when given. ``xp [T, B, H]``: the input
    projections with both biases, contiguous; ``h0 [B, H]``: the initial spikes ``Θ(v_0 - threshold)``.
    float32 products in TF32 when ``tf32``; compiled without floating-point contraction (see
    :func:`.kernels.leaky_rnn_cell`)."""
    steps, batch, hidden = xp.shape
    _leaky_rnn_persistent_forward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        xp, w_hh.t().contiguous(), h0.contiguous(), v, y, v_all if v_all is not None else y,
        step_sizes(batch_sizes, batch, xp.device), steps, batch, hidden, float(leak), float(gain), float(threshold),
        SAVE_V=v_all is not None, PACKED=batch_sizes is not None, IEEE=full_precision(xp.dtype, tf32),
        BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=BLOCK_K, enable_fp_fusion=False)


@triton.jit
def _leaky_rnn_persistent_backward(v_all_ptr, dy_ptr, w_ptr, dv_ptr, dh_ptr, d_pre_ptr, sizes_ptr, steps, batch, H,
                                   leak, gain, threshold, alpha1, KIND1: tl.constexpr, PACKED: tl.constexpr,
                                   IEEE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                                   BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps, last first. ``v_all [T, B, H]`` the membranes
    after each step, ``dy [T, B, H]``, ``w [H, H]`` (``W_hh``, contiguous); ``dv`` (the membrane's gradient)
    and ``dh`` (the gradient of the spikes the next step read) ``[B, H]`` carried, updated in place (rows
    past a step's length keep theirs; on return ``dh`` is the gradient of ``Θ(v_0 - θ)``); ``d_pre [T, B, H]``
    out (the pre-activations' gradients)."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    for step in range(steps):
        t = steps - 1 - step
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        for j0 in range(0, H, BLOCK_H):  # phase 1: d_pre[t], dv <- leak * total
            cols = j0 + tl.arange(0, BLOCK_H)
            mask = row_ok[:, None] & (cols < H)[None, :]
            unit = rows[:, None] * H + cols[None, :]
            at_t = step_rows(t, batch, rows)[:, None] * H + cols[None, :]  # [T, B, H] offsets of step t
            v = tl.load(v_all_ptr + at_t, mask=mask, other=0.0).to(tl.float32)
            dv = tl.load(dv_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            dh = (tl.load(dh_ptr + unit, mask=mask, other=0.0).to(tl.float32)
                  + tl.load(dy_ptr + at_t, mask=mask, other=0.0).to(tl.float32))
            d_u, dv = leaky_rnn_cell_backward(v, dv, dh, leak, gain, threshold, alpha1, KIND1)
            tl.store(d_pre_ptr + at_t, d_u.to(d_pre_ptr.dtype.element_ty), mask=mask)
            tl.store(dv_ptr + unit, dv.to(dv_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # d_pre[t] complete (and dh read) before phase 2 reads d_pre and writes dh
        for j0 in range(0, H, BLOCK_H):  # phase 2: dh = d_pre[t] W_hh
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            acc = row_products(tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32), d_pre_ptr, step_rows(t, batch, rows),
                               row_ok, H, w_ptr, H, cols, col_ok, IEEE, BLOCK_K)
            tl.store(dh_ptr + rows[:, None] * H + cols[None, :], acc.to(dh_ptr.dtype.element_ty),
                     mask=row_ok[:, None] & col_ok[None, :])
        tl.debug_barrier()  # dh complete before the next step's phase 1 reads it


def leaky_rnn_persistent_backward(v_all, dy, w_hh, dv, dh, d_pre, batch_sizes, leak: float, gain: float,
                                  threshold: float, alpha1: float, kind1: int, tf32: bool = False) -> None:
    """Run the reverse loop over all steps: ``d_pre [T, B, H]`` filled (zeros past each row's length must
    be there beforehand when packed); ``dv``, ``dh [B, H]`` (contiguous) carried in place: on return ``dv``
    holds the gradient of ``v_0`` through the leak and ``dh`` that of the initial spikes
    ``Θ(v_0 - threshold)``. float32 products in full precision (as torch.mm) unless ``tf32``, half types
    with float32 sums."""
    steps, batch, hidden = v_all.shape
    _leaky_rnn_persistent_backward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        v_all, dy, w_hh.contiguous(), dv, dh, d_pre, step_sizes(batch_sizes, batch, v_all.device), steps, batch,
        hidden, float(leak), float(gain), float(threshold), float(alpha1), KIND1=kind1,
        PACKED=batch_sizes is not None, IEEE=full_precision(v_all.dtype, tf32), BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H,
        BLOCK_K=BLOCK_K)
