"""Persistent spiking-GRU forward and backward on Triton: the whole time loop in ONE launch.

The same scheme as the LSTM's (:mod:`.persistent`): one program owns ``BLOCK_B`` batch rows for all
steps. Forward, per step and tile of ``BLOCK_H`` units: the hidden-side projections
``hp = h_{t-1} W_hh^T + b_hh`` of the three gates (``tl.dot``, the weights streaming from L2), then
``r = Θ(x_r + h_r)``, ``z = Θ(x_z + h_z)``, ``n = Θ(x_n + r h_n)``, ``h_t = (1 - z) n + z h_{t-1}``
written to ``y[t]``, where the next step reads it; ``hp`` is stored when backward needs it.
Backward, per step from the end: phase 1 the input-side and hidden-side pre-activation gradients
and the direct part ``z dh`` of the carried gradient, phase 2 adds ``dh_pre[t] W_hh``.
Used for ``hidden <= PERSISTENT_MAX_HIDDEN``.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .kernels import gru_cell, gru_cell_backward, load_three, store_three
from .persistent import (BLOCK_B, BLOCK_H, BLOCK_K, as_stored, dot_add, full_precision, last_outputs, previous_state,
                         row_products, rows_valid, step_rows, step_sizes)


@triton.jit
def _gru_persistent_forward(xp_ptr, w_ptr, b_ptr, h0_ptr, y_ptr, hp_ptr, sizes_ptr, steps, batch, H,
                            HAS_BIAS: tl.constexpr, SAVE_HP: tl.constexpr, PACKED: tl.constexpr, IEEE: tl.constexpr,
                            BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps. ``xp [T, B, 3H]`` (input projections with
    ``b_ih``), ``w [H, 3H]`` (``W_hh^T``, contiguous), ``b [3H]`` (``b_hh``, read when ``HAS_BIAS``),
    ``h0 [B, H]``; ``y [T, B, H]`` out, ``hp [T, B, 3H]`` out when saved; ``sizes [T]`` rows valid per
    step when packed."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    three_h = 3 * H
    for t in range(steps):
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        for j0 in range(0, H, BLOCK_H):
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            a_r = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            a_z = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            a_n = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            for k0 in range(0, H, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                k_ok = ks < H
                h = previous_state(h0_ptr, y_ptr, t, batch, H, rows, ks, row_ok[:, None] & k_ok[None, :])
                w_rows = w_ptr + ks[:, None] * three_h + cols[None, :]
                w_mask = k_ok[:, None] & col_ok[None, :]
                a_r = dot_add(a_r, h, tl.load(w_rows, mask=w_mask, other=0.0), IEEE)
                a_z = dot_add(a_z, h, tl.load(w_rows + H, mask=w_mask, other=0.0), IEEE)
                a_n = dot_add(a_n, h, tl.load(w_rows + 2 * H, mask=w_mask, other=0.0), IEEE)
            if HAS_BIAS:
                b_r, b_z, b_n = load_three(b_ptr, cols, H, col_ok)
                a_r += b_r[None, :]
                a_z += b_z[None, :]
                a_n += b_n[None, :]
            # the projections as stored: backward recomputes the gates from them
            a_r, a_z, a_n = as_stored(a_r, y_ptr), as_stored(a_z, y_ptr), as_stored(a_n, y_ptr)
            mask = row_ok[:, None] & col_ok[None, :]
            gate = step_rows(t, batch, rows)[:, None] * three_h + cols[None, :]
            if SAVE_HP:
                store_three(hp_ptr, gate, H, a_r, a_z, a_n, mask)
            x_r, x_z, x_n = load_three(xp_ptr, gate, H, mask)
            h_prev = previous_state(h0_ptr, y_ptr, t, batch, H, rows, cols, mask).to(tl.float32)
            h_new = gru_cell(x_r, x_z, x_n, a_r, a_z, a_n, h_prev)
            tl.store(y_ptr + step_rows(t, batch, rows)[:, None] * H + cols[None, :], h_new.to(y_ptr.dtype.element_ty),
                     mask=mask)
        tl.debug_barrier()  # y[t] complete before any thread of this program reads it as h_t


def gru_persistent_forward(xp, h0, w_hh, b_hh, y, hp, batch_sizes, tf32: bool = False):
    """Run all steps: ``y [T, B, H]`` filled (zeros past each row's length when packed; they must be
    there beforehand), the hidden-side projections ``hp [T, B, 3H]`` too when given; float32 products
    in TF32 when ``tf32``. Returns ``h_n``."""
    steps, batch, _ = xp.shape
    hidden = h0.shape[1]
    _gru_persistent_forward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        xp, w_hh.t().contiguous(), b_hh.contiguous() if b_hh is not None else xp, h0.contiguous(), y,
        hp if hp is not None else xp, step_sizes(batch_sizes, batch, xp.device), steps, batch, hidden,
        HAS_BIAS=b_hh is not None, SAVE_HP=hp is not None, PACKED=batch_sizes is not None,
        IEEE=full_precision(xp.dtype, tf32), BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=BLOCK_K)
    return last_outputs(y, h0, batch_sizes)


@triton.jit
def _gru_persistent_backward(xp_ptr, hp_ptr, h0_ptr, y_ptr, dy_ptr, w_ptr, dh_ptr, dx_pre_ptr, dh_pre_ptr,
                             sizes_ptr, steps, batch, H, alpha1, alpha2,
                             KIND1: tl.constexpr, KIND2: tl.constexpr, PACKED: tl.constexpr, IEEE: tl.constexpr,
                             BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps, last first. ``xp``, ``hp [T, B, 3H]`` the
    input-side and hidden-side projections, ``h0 [B, H]``, ``y [T, B, H]`` the outputs (``h_{t-1}``),
    ``dy [T, B, H]``, ``w [3H, H]`` (``W_hh``, contiguous); ``dh [B, H]`` carried, updated in place
    (rows past a step's length keep theirs); ``dx_pre``, ``dh_pre [T, B, 3H]`` out."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    three_h = 3 * H
    for step in range(steps):
        t = steps - 1 - step
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        for j0 in range(0, H, BLOCK_H):  # phase 1: the pre-activation gradients, dh <- z dh
            cols = j0 + tl.arange(0, BLOCK_H)
            mask = row_ok[:, None] & (cols < H)[None, :]
            unit = rows[:, None] * H + cols[None, :]
            gate = step_rows(t, batch, rows)[:, None] * three_h + cols[None, :]
            x_r, x_z, x_n = load_three(xp_ptr, gate, H, mask)
            h_r, h_z, h_n = load_three(hp_ptr, gate, H, mask)
            h_prev = previous_state(h0_ptr, y_ptr, t, batch, H, rows, cols, mask).to(tl.float32)
            dh = (tl.load(dh_ptr + unit, mask=mask, other=0.0).to(tl.float32)
                  + tl.load(dy_ptr + step_rows(t, batch, rows)[:, None] * H + cols[None, :], mask=mask, other=0.0).to(
                      tl.float32))
            d_r, d_z, d_n, r, z = gru_cell_backward(x_r, x_z, x_n, h_r, h_z, h_n, h_prev, dh, alpha1, alpha2, KIND1,
                                                    KIND2)
            store_three(dx_pre_ptr, gate, H, d_r, d_z, d_n, mask)
            store_three(dh_pre_ptr, gate, H, d_r, d_z, d_n * r, mask)
            tl.store(dh_ptr + unit, (dh * z).to(dh_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # dh_pre[t] and z dh complete before phase 2 reads them
        for j0 in range(0, H, BLOCK_H):  # phase 2: dh += dh_pre[t] W_hh
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            out_mask = row_ok[:, None] & col_ok[None, :]
            acc = tl.load(dh_ptr + rows[:, None] * H + cols[None, :], mask=out_mask, other=0.0).to(tl.float32)
            acc = row_products(acc, dh_pre_ptr, step_rows(t, batch, rows), row_ok, three_h, w_ptr, H, cols, col_ok,
                               IEEE, BLOCK_K)
            tl.store(dh_ptr + rows[:, None] * H + cols[None, :], acc.to(dh_ptr.dtype.element_ty), mask=out_mask)
        tl.debug_barrier()  # dh complete before the next step's phase 1 reads it


def gru_persistent_backward(xp, hp, h0, y, dy, w_hh, dh, dx_pre, dh_pre, batch_sizes, alpha1: float, alpha2: float,
                            kind1: int, kind2: int, tf32: bool = False) -> None:
    """Run the reverse loop over all steps: ``dx_pre``, ``dh_pre [T, B, 3H]`` filled (zeros past each
    row's length must be there beforehand when packed), ``dh [B, H]`` carried in place down to
    ``dh0``. float32 products in full precision (as torch.mm) unless ``tf32``, half types with float32
    sums."""
    steps, batch, three_h = xp.shape
    _gru_persistent_backward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        xp, hp, h0.contiguous(), y, dy, w_hh.contiguous(), dh, dx_pre, dh_pre,
        step_sizes(batch_sizes, batch, xp.device), steps, batch, three_h // 3, float(alpha1), float(alpha2),
        KIND1=kind1, KIND2=kind2, PACKED=batch_sizes is not None, IEEE=full_precision(xp.dtype, tf32),
        BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=BLOCK_K)
