"""Persistent sigmoid-form GRU (``gates="sigmoid"``) forward and backward on Triton: the whole time loop in ONE launch.

The same scheme as the heaviside GRU's (:mod:`.persistent_gru`): one program owns ``BLOCK_B`` batch rows
for all steps. The state is an analog ``s [B, H]``; what the cell sends, to the next layer and to
itself, is its spikes ``h = Θ(s - θ)``. Forward, per step and tile of ``BLOCK_H`` units: the
hidden-side projections ``hp = h_{t-1} W_hh^T + b_hh`` of the spikes (``tl.dot``; ``h_{-1}`` is
``Θ(s_0 - θ)``, given), then ``r = sigmoid(x_r + h_r)``, ``z = sigmoid(x_z + h_z)``,
``n = tanh(x_n + r h_n)``, ``s_t = (1 - z) n + z s_{t-1}`` updated in place in ``s`` (and stored in
``s_all[t]`` when backward needs it), and the spikes ``Θ(s_t - θ)`` written to ``y[t]``, where the
next step reads them. Backward, per step from the end: phase 1 the input-side and hidden-side
pre-activation gradients from the carried state gradient ``ds`` and the spikes' gradient
``dh + dy[t]`` (surrogate derivative at ``s_t - θ``), and ``ds <- z ds``; phase 2 the spikes'
gradient of the previous step ``dh = dh_pre[t] W_hh``. The initial spikes' part of ``ds_0``
(``dh Θ'(s_0 - θ)``) is added by the caller (:mod:`.gru_sigmoid`). Used for
``hidden <= PERSISTENT_MAX_HIDDEN``.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .kernels import gru_sigmoid_cell, gru_sigmoid_cell_backward, load_three, store_three
from .persistent import (BLOCK_B, BLOCK_H, BLOCK_K, as_stored, dot_add, full_precision, previous_state, row_products,
                         rows_valid, step_rows, step_sizes)


@triton.jit
def _gru_sigmoid_persistent_forward(xp_ptr, w_ptr, b_ptr, h0_ptr, s_ptr, y_ptr, hp_ptr, s_all_ptr, sizes_ptr,
                                    steps, batch, H, threshold,
                                    HAS_BIAS: tl.constexpr, SAVE_HP: tl.constexpr, SAVE_S: tl.constexpr,
                                    PACKED: tl.constexpr, IEEE: tl.constexpr, BLOCK_B: tl.constexpr,
                                    BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps. ``xp [T, B, 3H]`` (input projections with
    ``b_ih``), ``w [H, 3H]`` (``W_hh^T``, contiguous), ``b [3H]`` (``b_hh``, read when ``HAS_BIAS``),
    ``h0 [B, H]`` the initial spikes ``Θ(s_0 - θ)``, ``s [B, H]`` the analog state (updated in place);
    ``y [T, B, H]`` the spikes out, ``hp [T, B, 3H]`` and ``s_all [T, B, H]`` out when saved;
    ``sizes [T]`` rows valid per step when packed."""
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
            unit = rows[:, None] * H + cols[None, :]
            at_t = step_rows(t, batch, rows)[:, None] * H + cols[None, :]  # [T, B, H] offsets of step t
            s_prev = tl.load(s_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            s_new, h_new = gru_sigmoid_cell(x_r, x_z, x_n, a_r, a_z, a_n, s_prev, threshold)
            tl.store(s_ptr + unit, s_new.to(s_ptr.dtype.element_ty), mask=mask)
            if SAVE_S:
                tl.store(s_all_ptr + at_t, s_new.to(s_all_ptr.dtype.element_ty), mask=mask)
            tl.store(y_ptr + at_t, h_new.to(y_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # y[t] complete before any thread of this program reads it as h_t


def gru_sigmoid_persistent_forward(xp, h0, s, w_hh, b_hh, y, hp, s_all, batch_sizes, threshold: float,
                                   tf32: bool = False) -> None:
    """Run all steps: ``s [B, H]`` (contiguous, the running analog state from ``s_0``) updated in place to
    each row's last state, ``y [T, B, H]`` filled with the spikes (zeros past each row's length when
    packed; they must be there beforehand), ``hp [T, B, 3H]`` and ``s_all [T, B, H]`` too when given.
    ``h0 [B, H]``: the initial spikes ``Θ(s_0 - threshold)``. float32 products in TF32 when ``tf32``."""
    steps, batch, _ = xp.shape
    hidden = h0.shape[1]
    _gru_sigmoid_persistent_forward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        xp, w_hh.t().contiguous(), b_hh.contiguous() if b_hh is not None else xp, h0.contiguous(), s, y,
        hp if hp is not None else xp, s_all if s_all is not None else y, step_sizes(batch_sizes, batch, xp.device),
        steps, batch, hidden, float(threshold), HAS_BIAS=b_hh is not None, SAVE_HP=hp is not None,
        SAVE_S=s_all is not None, PACKED=batch_sizes is not None, IEEE=full_precision(xp.dtype, tf32),
        BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=BLOCK_K)


@triton.jit
def _gru_sigmoid_persistent_backward(xp_ptr, hp_ptr, s0_ptr, s_all_ptr, dy_ptr, w_ptr, ds_ptr, dh_ptr, dx_pre_ptr,
                                     dh_pre_ptr, sizes_ptr, steps, batch, H, threshold, alpha1,
                                     KIND1: tl.constexpr, PACKED: tl.constexpr, IEEE: tl.constexpr,
                                     BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps, last first. ``xp``, ``hp [T, B, 3H]`` the
    input-side and hidden-side projections, ``s0 [B, H]``, ``s_all [T, B, H]`` the states after each
    step, ``dy [T, B, H]``, ``w [3H, H]`` (``W_hh``, contiguous); ``ds`` (the state's gradient) and
    ``dh`` (the gradient of the spikes the next step read) ``[B, H]`` carried, updated in place (rows
    past a step's length keep theirs; on return ``dh`` is the gradient of ``Θ(s_0 - θ)``);
    ``dx_pre``, ``dh_pre [T, B, 3H]`` out."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    three_h = 3 * H
    for step in range(steps):
        t = steps - 1 - step
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        for j0 in range(0, H, BLOCK_H):  # phase 1: the pre-activation gradients, ds <- z ds
            cols = j0 + tl.arange(0, BLOCK_H)
            mask = row_ok[:, None] & (cols < H)[None, :]
            unit = rows[:, None] * H + cols[None, :]
            at_t = step_rows(t, batch, rows)[:, None] * H + cols[None, :]  # [T, B, H] offsets of step t
            gate = step_rows(t, batch, rows)[:, None] * three_h + cols[None, :]
            x_r, x_z, x_n = load_three(xp_ptr, gate, H, mask)
            h_r, h_z, h_n = load_three(hp_ptr, gate, H, mask)
            if t == 0:
                s_prev = tl.load(s0_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            else:
                s_prev = tl.load(s_all_ptr + step_rows(t - 1, batch, rows)[:, None] * H + cols[None, :], mask=mask,
                                 other=0.0).to(tl.float32)
            s = tl.load(s_all_ptr + at_t, mask=mask, other=0.0).to(tl.float32)
            ds = tl.load(ds_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            dh = (tl.load(dh_ptr + unit, mask=mask, other=0.0).to(tl.float32)
                  + tl.load(dy_ptr + at_t, mask=mask, other=0.0).to(tl.float32))
            d_r, d_z, d_n, r, ds = gru_sigmoid_cell_backward(x_r, x_z, x_n, h_r, h_z, h_n, s_prev, s, ds, dh,
                                                             threshold, alpha1, KIND1)
            store_three(dx_pre_ptr, gate, H, d_r, d_z, d_n, mask)
            store_three(dh_pre_ptr, gate, H, d_r, d_z, d_n * r, mask)
            tl.store(ds_ptr + unit, ds.to(ds_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # dh_pre[t] complete (and dh read) before phase 2 reads dh_pre and writes dh
        for j0 in range(0, H, BLOCK_H):  # phase 2: dh = dh_pre[t] W_hh
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            acc = row_products(tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32), dh_pre_ptr, step_rows(t, batch, rows),
                               row_ok, three_h, w_ptr, H, cols, col_ok, IEEE, BLOCK_K)
            tl.store(dh_ptr + rows[:, None] * H + cols[None, :], acc.to(dh_ptr.dtype.element_ty),
                     mask=row_ok[:, None] & col_ok[None, :])
        tl.debug_barrier()  # dh complete before the next step's phase 1 reads it


def gru_sigmoid_persistent_backward(xp, hp, s0, s_all, dy, w_hh, ds, dh, dx_pre, dh_pre, batch_sizes,
                                    threshold: float, alpha1: float, kind1: int, tf32: bool = False) -> None:
    """Run the reverse loop over all steps: ``dx_pre``, ``dh_pre [T, B, 3H]`` filled (zeros past each
    row's length must be there beforehand when packed); ``ds``, ``dh [B, H]`` (contiguous) carried in
    place: on return ``ds`` holds the gradient of ``s_0`` through ``z`` and ``dh`` that of the initial
    spikes ``Θ(s_0 - threshold)``. float32 products in full precision (as torch.mm) unless ``tf32``, half
    types with float32 sums."""
    steps, batch, three_h = xp.shape
    _gru_sigmoid_persistent_backward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        xp, hp, s0.contiguous(), s_all, dy, w_hh.contiguous(), ds, dh, dx_pre, dh_pre,
        step_sizes(batch_sizes, batch, xp.device), steps, batch, three_h // 3, float(threshold), float(alpha1),
        KIND1=kind1, PACKED=batch_sizes is not None, IEEE=full_precision(xp.dtype, tf32),
        BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=BLOCK_K)
