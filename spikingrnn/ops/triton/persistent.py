"""Persistent spiking-LSTM forward and backward on Triton: the whole time loop in ONE kernel launch.

The v0 path launches a GEMM and a pointwise kernel per step, so a long sequence on a GPU is bound
by launch latency (2 launches x T steps). Here one program owns ``BLOCK_B`` batch rows for all T
steps: per step and per tile of ``BLOCK_H`` hidden units it computes the four gate pre-activations
``u = xp[t] + h_{t-1} W_hh^T`` with ``tl.dot`` (the weights stream from L2, the rows' state never
leaves the program), fires the gates, updates ``c`` in place and writes ``h_t = o * c`` (with
``gates="sigmoid"``: sigmoid/tanh gates and the spikes ``h_t = Θ(o tanh(c) - θ)``) into the
output ``y[t]``, which is also where the next step reads ``h_t`` from (so no extra state buffer,
and rows past their length simply stop being written). ``pre`` (the pre-activations) and ``c``
after every step are stored when backward needs them.

The backward kernel runs the reverse loop the same way: per step, phase 1 turns the carried ``dh``
(plus ``dy[t]``) and ``dc`` into the step's pre-activation gradients ``d_pre[t]`` (written out:
the weight gradients need them anyway) and the next ``dc``; phase 2 reads ``d_pre[t]`` back and
computes the carried ``dh = d_pre[t] W_hh`` with ``tl.dot``, tile by tile. The weight gradients
stay single large GEMMs after the kernel. It needs the kept pre-activations (not ``low_memory``).

Used for the LSTM without ``proj_size`` when ``hidden <= PERSISTENT_MAX_HIDDEN``; everything else
takes the v0 path. The tile sizes are untuned (no GPU has run this yet); the interpreter tests
check both kernels against the reference. The jit helpers and launch helpers below the tile sizes
are shared with the GRU's and the vanilla RNN's persistent kernels (:mod:`.persistent_gru`,
:mod:`.persistent_rnn`).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .kernels import load_gates, lstm_cell, lstm_cell_backward, store_gates

PERSISTENT_MAX_HIDDEN = 256
BLOCK_B, BLOCK_H, BLOCK_K = 16, 32, 32


@triton.jit
def as_stored(v, ptr):
    """``v`` rounded to the element type of ``ptr`` and back to float32: a kernel fires its spikes from
    the values it stores, so that backward, reading them, fires the same ones (a float16
    pre-activation of -1e-8 is stored as -0.0, which fires)."""
    return v.to(ptr.dtype.element_ty).to(tl.float32)


@triton.jit
def step_rows(t, batch, rows):
    """``t * batch + rows``: the rows of step ``t`` in a ``[T, B, ...]`` tensor, in int64. ``t`` and
    ``batch`` are int32: their product alone passes 2^31 at T * B > 2^31, so ``t`` is widened first."""
    return tl.cast(t, tl.int64) * batch + rows  # tl.cast: t is a Python int under the interpreter


@triton.jit
def previous_state(h0_ptr, y_ptr, t, batch, H, rows, units, mask):
    """``h_{t-1}[rows, units]``: ``h0`` at step 0, else the previous step's output, written by this
    program (0 where masked). ``rows`` are int64 (offsets into ``[T, B, H]`` may pass 2^31)."""
    if t == 0:
        h = tl.load(h0_ptr + rows[:, None] * H + units[None, :], mask=mask, other=0.0)
    else:
        h = tl.load(y_ptr + step_rows(t - 1, batch, rows)[:, None] * H + units[None, :], mask=mask, other=0.0)
    return h


@triton.jit
def dot_add(acc, a, b, IEEE: tl.constexpr):
    """``acc + a @ b`` with float32 sums: products in full precision when ``IEEE``, else in TF32. Both
    are named, never Triton's default (which ``TRITON_F32_DEFAULT`` changes): the host decided the
    precision (:func:`full_precision`) and the Triton GEMM and a low-memory replay must agree with it.
    Half-type operands take ``IEEE`` (their products are exact either way; AMD's Triton backend
    refuses TF32 outside gfx942)."""
    if IEEE:
        acc += tl.dot(a, b, input_precision="ieee")
    else:
        acc += tl.dot(a, b, input_precision="tf32")
    return acc


@triton.jit
def row_products(acc, a_ptr, rows, row_ok, K, w_ptr, N, cols, col_ok, IEEE: tl.constexpr, BLOCK_K: tl.constexpr):
    """``acc + a[rows, :] @ w[:, cols]`` for ``a [*, K]`` and ``w [K, N]`` (row-major, contiguous), over
    tiles of ``BLOCK_K`` (0 where rows or columns are masked); ``rows`` int64, e.g. ``t * B + b``."""
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < K
        a = tl.load(a_ptr + rows[:, None] * K + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(w_ptr + ks[:, None] * N + cols[None, :], mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        acc = dot_add(acc, a, w, IEEE)
    return acc


@triton.jit
def rows_valid(rows, sizes_ptr, t, batch, PACKED: tl.constexpr):
    """Which of ``rows`` run step ``t``: those below ``sizes[t]`` when packed, else below ``batch``."""
    if PACKED:
        valid = tl.load(sizes_ptr + t)
    else:
        valid = batch
    return rows < valid


@triton.jit
def _lstm_persistent_forward(xp_ptr, w_ptr, h0_ptr, c_ptr, y_ptr, pre_ptr, c_all_ptr, sizes_ptr,
                             steps, batch, H, threshold,
                             CELL: tl.constexpr, SIGMOID: tl.constexpr, SAVE_PRE: tl.constexpr, SAVE_C: tl.constexpr,
                             PACKED: tl.constexpr, IEEE: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                             BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps. ``xp [T, B, 4H]`` (input projections and
    biases), ``w [H, 4H]`` (``W_hh^T``, contiguous), ``h0 [B, H]``, ``c [B, H]`` (updated in place),
    ``y [T, B, H]`` out; ``pre [T, B, 4H]`` and ``c_all [T, B, H]`` out when saved; ``sizes [T]``
    rows valid per step when packed."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    four_h = 4 * H
    for t in range(steps):
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        for j0 in range(0, H, BLOCK_H):
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            u_i = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            u_f = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            u_g = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            u_o = tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32)
            for k0 in range(0, H, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                k_ok = ks < H
                h = previous_state(h0_ptr, y_ptr, t, batch, H, rows, ks, row_ok[:, None] & k_ok[None, :])
                w_rows = w_ptr + ks[:, None] * four_h + cols[None, :]
                w_mask = k_ok[:, None] & col_ok[None, :]
                u_i = dot_add(u_i, h, tl.load(w_rows, mask=w_mask, other=0.0), IEEE)
                u_f = dot_add(u_f, h, tl.load(w_rows + H, mask=w_mask, other=0.0), IEEE)
                u_g = dot_add(u_g, h, tl.load(w_rows + 2 * H, mask=w_mask, other=0.0), IEEE)
                u_o = dot_add(u_o, h, tl.load(w_rows + 3 * H, mask=w_mask, other=0.0), IEEE)
            mask = row_ok[:, None] & col_ok[None, :]
            gate = step_rows(t, batch, rows)[:, None] * four_h + cols[None, :]
            x_i, x_f, x_g, x_o = load_gates(xp_ptr, gate, H, mask)
            u_i = as_stored(u_i + x_i, y_ptr)
            u_f = as_stored(u_f + x_f, y_ptr)
            u_g = as_stored(u_g + x_g, y_ptr)
            u_o = as_stored(u_o + x_o, y_ptr)
            if SAVE_PRE:
                store_gates(pre_ptr, gate, H, u_i, u_f, u_g, u_o, mask)
            unit = rows[:, None] * H + cols[None, :]
            at_t = step_rows(t, batch, rows)[:, None] * H + cols[None, :]  # [T, B, H] offsets of step t
            c = tl.load(c_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            c, h_new = lstm_cell(u_i, u_f, u_g, u_o, c, threshold, CELL, SIGMOID)
            tl.store(c_ptr + unit, c.to(c_ptr.dtype.element_ty), mask=mask)
            if SAVE_C:
                tl.store(c_all_ptr + at_t, c.to(c_all_ptr.dtype.element_ty), mask=mask)
            tl.store(y_ptr + at_t, h_new.to(y_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # y[t] complete before any thread of this program reads it as h_t


def step_sizes(batch_sizes, batch: int, device) -> torch.Tensor:
    """The kernels' ``sizes`` argument: rows valid per step when packed (else ``[batch]``, unread)."""
    return torch.tensor(batch_sizes if batch_sizes is not None else [batch], dtype=torch.int32, device=device)


def last_outputs(y, h0, batch_sizes):
    """Each row's output at its last valid step (``y [T, B, H]``): the final hidden state; ``h0``
    when there are no steps."""
    steps, batch = y.shape[:2]
    if steps == 0:
        return h0.clone()
    if batch_sizes is None:
        return y[-1].clone()
    # every packed row has at least one step
    lengths = (torch.tensor(batch_sizes, device=y.device).unsqueeze(1) > torch.arange(batch, device=y.device)).sum(0)
    return y[lengths - 1, torch.arange(batch, device=y.device)].clone()


def full_precision(dtype: torch.dtype, tf32: bool) -> bool:
    """The kernels' ``IEEE`` flag: float32 products in full precision unless ``tf32``; half types always
    (exact products either way, and the only precision every Triton backend accepts for them)."""
    return not (tf32 and dtype == torch.float32)


def lstm_persistent_forward(xp, h0, c, w_hh, y, pre, c_all, batch_sizes, cell_mode: int, threshold: float,
                            tf32: bool = False, *, sigmoid: bool = False):
    """Run all steps; ``c`` is updated in place, ``y [T, B, H]`` (zeros past each row's length when
    packed) filled, ``pre``/``c_all`` filled when given; float32 products in TF32 when ``tf32``.
    ``sigmoid``: the sigmoid gate form, ``threshold`` then the spike threshold θ (else the cell rule's).
    Returns ``h_n [B, H]``."""
    steps, batch, _ = xp.shape
    hidden = h0.shape[1]
    _lstm_persistent_forward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        xp, w_hh.t().contiguous(), h0.contiguous(), c, y, pre if pre is not None else y,
        c_all if c_all is not None else c, step_sizes(batch_sizes, batch, xp.device), steps, batch, hidden,
        float(threshold), CELL=cell_mode, SIGMOID=sigmoid, SAVE_PRE=pre is not None, SAVE_C=c_all is not None,
        PACKED=batch_sizes is not None, IEEE=full_precision(xp.dtype, tf32), BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H,
        BLOCK_K=BLOCK_K)
    return last_outputs(y, h0, batch_sizes)


@triton.jit
def _lstm_persistent_backward(pre_ptr, c_all_ptr, c0_ptr, dy_ptr, w_ptr, dh_ptr, dc_ptr, d_pre_ptr, sizes_ptr,
                              steps, batch, H, threshold, alpha1, alpha2,
                              CELL: tl.constexpr, KIND1: tl.constexpr, KIND2: tl.constexpr, SIGMOID: tl.constexpr,
                              PACKED: tl.constexpr, IEEE: tl.constexpr, BLOCK_B: tl.constexpr,
                              BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows ``[pid * BLOCK_B, +BLOCK_B)`` for all steps, last first. ``pre [T, B, 4H]`` kept
    pre-activations, ``c_all [T, B, H]`` cell states after each step, ``c0 [B, H]``, ``dy [T, B, H]``,
    ``w [4H, H]`` (``W_hh``, contiguous); ``dh``, ``dc [B, H]`` carried gradients, updated in place
    (rows past a step's length keep theirs); ``d_pre [T, B, 4H]`` out (left untouched past each
    row's length)."""
    rows = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)  # offsets may pass 2^31
    four_h = 4 * H
    for step in range(steps):
        t = steps - 1 - step
        row_ok = rows_valid(rows, sizes_ptr, t, batch, PACKED)
        # phase 1: d_pre[t] and the carried dc, tile by tile of hidden units
        for j0 in range(0, H, BLOCK_H):
            cols = j0 + tl.arange(0, BLOCK_H)
            mask = row_ok[:, None] & (cols < H)[None, :]
            unit = rows[:, None] * H + cols[None, :]
            gate = step_rows(t, batch, rows)[:, None] * four_h + cols[None, :]
            u_i, u_f, u_g, u_o = load_gates(pre_ptr, gate, H, mask)
            if t == 0:
                c_prev = tl.load(c0_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            else:
                c_prev = tl.load(c_all_ptr + step_rows(t - 1, batch, rows)[:, None] * H + cols[None, :], mask=mask,
                                 other=0.0).to(tl.float32)
            at_t = step_rows(t, batch, rows)[:, None] * H + cols[None, :]  # [T, B, H] offsets of step t
            c_after = tl.load(c_all_ptr + at_t, mask=mask, other=0.0).to(tl.float32)
            dm = (tl.load(dh_ptr + unit, mask=mask, other=0.0).to(tl.float32)
                  + tl.load(dy_ptr + at_t, mask=mask, other=0.0).to(tl.float32))
            dc = tl.load(dc_ptr + unit, mask=mask, other=0.0).to(tl.float32)
            d_i, d_f, d_g, d_o, dc = lstm_cell_backward(u_i, u_f, u_g, u_o, c_prev, c_after, dm, dc, threshold,
                                                        alpha1, alpha2, CELL, KIND1, KIND2, SIGMOID)
            store_gates(d_pre_ptr, gate, H, d_i, d_f, d_g, d_o, mask)
            tl.store(dc_ptr + unit, dc.to(dc_ptr.dtype.element_ty), mask=mask)
        tl.debug_barrier()  # d_pre[t] complete (and dh read) before phase 2 reads d_pre and writes dh
        # phase 2: dh = d_pre[t] W_hh, tile by tile of output units
        for j0 in range(0, H, BLOCK_H):
            cols = j0 + tl.arange(0, BLOCK_H)
            col_ok = cols < H
            acc = row_products(tl.full((BLOCK_B, BLOCK_H), 0.0, tl.float32), d_pre_ptr, step_rows(t, batch, rows),
                               row_ok, four_h, w_ptr, H, cols, col_ok, IEEE, BLOCK_K)
            tl.store(dh_ptr + rows[:, None] * H + cols[None, :], acc.to(dh_ptr.dtype.element_ty),
                     mask=row_ok[:, None] & col_ok[None, :])
        tl.debug_barrier()  # dh complete before the next step's phase 1 reads it


def lstm_persistent_backward(pre, c_all, c0, dy, w_hh, dh, dc, d_pre, batch_sizes, cell_mode: int, threshold: float,
                             alpha1: float, alpha2: float, kind1: int, kind2: int, tf32: bool = False, *,
                             sigmoid: bool = False) -> None:
    """Run the reverse loop over all steps: ``d_pre [T, B, 4H]`` filled (zeros past each row's length
    must be there beforehand when packed), ``dh``/``dc [B, H]`` carried in place down to ``dh0``/``dc0``;
    ``sigmoid`` and ``threshold`` as in :func:`lstm_persistent_forward`.
    float32 products in full precision (as torch.mm) unless ``tf32``, half types with float32 sums."""
    steps, batch, four_h = pre.shape
    _lstm_persistent_backward[(triton.cdiv(max(batch, 1), BLOCK_B),)](
        pre, c_all, c0.contiguous(), dy, w_hh.contiguous(), dh, dc, d_pre, step_sizes(batch_sizes, batch, pre.device),
        steps, batch, four_h // 4, float(threshold), float(alpha1), float(alpha2), CELL=cell_mode, KIND1=kind1,
        KIND2=kind2, SIGMOID=sigmoid, PACKED=batch_sizes is not None,
        IEEE=full_precision(pre.dtype, tf32), BLOCK_B=BLOCK_B, BLOCK_H=BLOCK_H, BLOCK_K=BLOCK_K)
