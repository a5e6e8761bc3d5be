"""Persistent spiking vanilla-RNN forward and backward on Triton: the whole time loop in ONE launch.

The same scheme as the LSTM's (:mod:`.persistent`): one program owns ``BLOCK_B`` batch rows for all
steps. Forward, per step and tile of ``BLOCK_H`` units: ``u = xp[t] + h_{t-1} W_hh^T`` (``tl.dot``,
the weights streaming from L2), ``h_t = Θ(u)`` written to ``y[t]``, where the next step reads it.
Backward, per step from the end: phase 1 ``d_pre[t] = (dh + dy[t]) * derivative(u)``, phase 2 the
carried ``dh = d_pre[t] W_hh``. Used for ``hidden <= PERSISTENT_MAX_HIDDEN``.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .kernels import surrogate_derivative
from .persistent import (BLOCK_B, BLOCK_H, BLOCK_K, as_stored, dot_add, full_precision, last_outputs, previous_state,
                         row_products, rows_valid, step_rows, step_sizes)


@triton.jit
def _rnn_persistent_forward(xp_ptr, w_ptr, h0_ptr, y_ptr, pre_ptr, sizes_ptr, steps, batch, H,
                            SAVE_PRE: tl.constexpr, PACKED: tl.constexpr, IEEE: tl.constexpr, BLOCK_B: tl.constexpr,
                            BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps. ``xp [T, B, H]`` (input projections and both
    biases), ``w [H, H]`` (``W_hh^T``, contiguous), ``h0 [B, H]``; ``y [T, B, H]`` out, ``pre [T, B, H]``
    out when saved; ``sizes [T]`` rows valid per step when packed."""
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
            unit = step_rows(t, batch, rows)[:, None] * H + cols[None, :]
            u = as_stored(u + tl.load(xp_ptr + unit, mask=mask, other=0.0).to(tl.float32), y_ptr)
            if SAVE_PRE:
                tl.store(pre_ptr + unit, u.to(pre_ptr.dtype.element_ty), mask=mask)
            tl.store(y_ptr + unit, tl.where(u >= 0, 1.0, 0.0).to(y_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # y[t] complete before any thread of this program reads it as h_t


def rnn_persistent_forward(xp, h0, w_hh, y, pre, batch_sizes, tf32: bool = False):
    """Run all steps: ``y [T, B, H]`` filled (zeros past each row's length when packed; they must be
    there beforehand), ``pre`` too when given (may be ``xp`` itself: each value is read before it is
    overwritten); float32 products in TF32 when ``tf32``. Returns ``h_n [B, H]``."""
    steps, batch, hidden = xp.shape
    _rnn_persistent_forward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        xp, w_hh.t().contiguous(), h0.contiguous(), y, pre if pre is not None else y,
        step_sizes(batch_sizes, batch, xp.device), steps, batch, hidden, SAVE_PRE=pre is not None,
        PACKED=batch_sizes is not None, IEEE=full_precision(xp.dtype, tf32), BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H,
        BLOCK_K=BLOCK_K)
    return last_outputs(y, h0, batch_sizes)


@triton.jit
def _rnn_persistent_backward(pre_ptr, dy_ptr, w_ptr, dh_ptr, d_pre_ptr, sizes_ptr, steps, batch, H, alpha,
                             KIND: tl.constexpr, PACKED: tl.constexpr, IEEE: tl.constexpr, BLOCK_B: tl.constexpr,
                             BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps, last first. ``pre [T, B, H]`` the
    pre-activations, ``dy [T, B, H]``, ``w [H, H]`` (``W_hh``, contiguous); ``dh [B, H]`` carried,
    updated in place (rows past a step's length keep theirs); ``d_pre [T, B, H]`` out."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    for step in range(steps):
        t = steps - 1 - step
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        for j0 in range(0, H, BLOCK_H):  # phase 1: d_pre[t]
            cols = j0 + tl.arange(0, BLOCK_H)
            mask = row_ok[:, None] & (cols < H)[None, :]
            unit = rows[:, None] * H + cols[None, :]
            at_t = step_rows(t, batch, rows)[:, None] * H + cols[None, :]  # [T, B, H] offsets of step t
            u = tl.load(pre_ptr + at_t, mask=mask, other=0.0).to(tl.float32)
            dm = (tl.load(dh_ptr + unit, mask=mask, other=0.0).to(tl.float32)
                  + tl.load(dy_ptr + at_t, mask=mask, other=0.0).to(tl.float32))
            d = dm * surrogate_derivative(u, alpha, KIND)
            tl.store(d_pre_ptr + at_t, d.to(d_pre_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # d_pre[t] complete (and dh read) before phase 2 reads d_pre and writes dh
        for j0 in range(0, H, BLOCK_H):  # phase 2: dh = d_pre[t] W_hh
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            acc = row_products(tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32), d_pre_ptr, step_rows(t, batch, rows),
                               row_ok, H, w_ptr, H, cols, col_ok, IEEE, BLOCK_K)
            tl.store(dh_ptr + rows[:, None] * H + cols[None, :], acc.to(dh_ptr.dtype.element_ty),
                     mask=row_ok[:, None] & col_ok[None, :])
        tl.debug_barrier()  # dh complete before the next step's phase 1 reads it


def rnn_persistent_backward(pre, dy, w_hh, dh, d_pre, batch_sizes, alpha: float, kind: int, tf32: bool = False) -> None:
    """Run the reverse loop over all steps: ``d_pre [T, B, H]`` filled (zeros past each row's length
    must be there beforehand when packed), ``dh [B, H]`` carried in place down to ``dh0``. float32
    products in full precision (as torch.mm) unless ``tf32``, half types with float32 sums."""
    steps, batch, hidden = pre.shape
    _rnn_persistent_backward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        pre, dy, w_hh.contiguous(), dh, d_pre, step_sizes(batch_sizes, batch, pre.device), steps, batch, hidden,
        float(alpha), KIND=kind, PACKED=batch_sizes is not None, IEEE=full_precision(pre.dtype, tf32),
        BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=BLOCK_K)
