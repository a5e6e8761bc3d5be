"""Triton pieces shared by the cells: surrogate derivatives selected by a constexpr id, the LSTM's and the
GRU's pointwise step and its backward (per-step and persistent kernels alike), launch helpers."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 256


def grid(count: int):
    return (triton.cdiv(max(count, 1), BLOCK),)


@triton.jit
def surrogate_derivative(x, alpha, KIND: tl.constexpr):
    """``derivative(x, alpha)`` in fp32 of the built-in surrogate whose kernel id is ``KIND``
    (:data:`spikingrnn.surrogate.KERNEL_IDS`; same formulas as its ``derivative``)."""
    if KIND == 0:  # Erf
        ax = alpha * x
        d = tl.exp(-(ax * ax)) * (alpha * 0.5641895835477563)  # 1/sqrt(pi)
    elif KIND == 1:  # Sigmoid
        s = 1.0 / (1.0 + tl.exp(-(alpha * x)))
        d = s * (1.0 - s) * alpha
    elif KIND == 2:  # ATan
        v = 1.5707963267948966 * alpha * x
        d = (alpha * 0.5) / (1.0 + v * v)
    elif KIND == 3:  # PiecewiseQuadratic
        d = tl.maximum(alpha - alpha * alpha * tl.abs(x), 0.0)
    elif KIND == 4:  # PiecewiseExp
        d = (alpha * 0.5) * tl.exp(-alpha * tl.abs(x))
    elif KIND == 5:  # SoftSign
        v = 1.0 / alpha + tl.abs(x)
        d = 1.0 / (2.0 * alpha * v * v)
    elif KIND == 6:  # SuperSpike
        v = 1.0 + tl.abs(x)
        d = alpha / (v * v)
    else:  # Rect
        d = tl.where(tl.abs(x) < 0.5 / alpha, alpha, 0.0)
    return d


@triton.jit
def load_gates(ptr, offset, H, mask):
    """The four gate blocks ``i|f|g|o`` of ``[..., 4H]`` rows at ``ptr + offset`` (+ H, 2H, 3H), in fp32
    (0 where masked)."""
    return (tl.load(ptr + offset, mask=mask, other=0.0).to(tl.float32),
            tl.load(ptr + offset + H, mask=mask, other=0.0).to(tl.float32),
            tl.load(ptr + offset + 2 * H, mask=mask, other=0.0).to(tl.float32),
            tl.load(ptr + offset + 3 * H, mask=mask, other=0.0).to(tl.float32))


@triton.jit
def store_gates(ptr, offset, H, v_i, v_f, v_g, v_o, mask):
    """Stores four gate blocks at ``ptr + offset`` (+ H, 2H, 3H) in ``ptr``'s dtype: the inverse of
    :func:`load_gates`."""
    ty = ptr.dtype.element_ty
    tl.store(ptr + offset, v_i.to(ty), mask=mask)
    tl.store(ptr + offset + H, v_f.to(ty), mask=mask)
    tl.store(ptr + offset + 2 * H, v_g.to(ty), mask=mask)
    tl.store(ptr + offset + 3 * H, v_o.to(ty), mask=mask)


@triton.jit
def lstm_cell(u_i, u_f, u_g, u_o, c, threshold, CELL: tl.constexpr):
    """One LSTM step's pointwise work in fp32: the gates fired from the pre-activations ``u_*``, the
    cell ``c`` updated by the ``cell_state`` rule ``CELL`` (its code in
    :data:`spikingrnn.functional.cells.CELL_STATE_CODES`: 0 clamp, 1 accumulate, 2 spike).
    Returns ``(c', o * c')``."""
    c = c * tl.where(u_f >= 0, 1.0, 0.0) + tl.where(u_i >= 0, 1.0, 0.0) * tl.where(u_g >= 0, 1.0, 0.0)
    if CELL == 0:
        c = tl.minimum(c, 1.0)
    elif CELL == 2:
        c = tl.where(c - threshold >= 0, 1.0, 0.0)
    return c, c * tl.where(u_o >= 0, 1.0, 0.0)


@triton.jit
def lstm_cell_backward(u_i, u_f, u_g, u_o, c_prev, c_after, dm, dc, threshold, alpha1, alpha2,
                       CELL: tl.constexpr, KIND1: tl.constexpr, KIND2: tl.constexpr):
    """Backward of :func:`lstm_cell` in fp32, from the pre-activations, the cell before and after the
    step, ``dm = dL/d(o*c)`` and the incoming cell gradient ``dc``. Returns the pre-activation
    gradients and the cell gradient carried to the previous step: ``(d_i, d_f, d_g, d_o, dc_prev)``."""
    i = tl.where(u_i >= 0, 1.0, 0.0)
    f = tl.where(u_f >= 0, 1.0, 0.0)
    g = tl.where(u_g >= 0, 1.0, 0.0)
    dc = dc + dm * tl.where(u_o >= 0, 1.0, 0.0)
    if CELL == 2:  # c = spike(f*c_prev + i*g - threshold); clamp passes straight through
        dc = dc * surrogate_derivative(c_prev * f + i * g - threshold, alpha1, KIND1)
    return (dc * g * surrogate_derivative(u_i, alpha1, KIND1), dc * c_prev * surrogate_derivative(u_f, alpha1, KIND1),
            dc * i * surrogate_derivative(u_g, alpha2, KIND2), dm * c_after * surrogate_derivative(u_o, alpha1, KIND1),
            dc * f)


@triton.jit
def load_three(ptr, offset, H, mask):
    """The three gate blocks ``r|z|n`` of ``[..., 3H]`` rows at ``ptr + offset`` (+ H, 2H), in fp32
    (0 where masked)."""
    return (tl.load(ptr + offset, mask=mask, other=0.0).to(tl.float32),
            tl.load(ptr + offset + H, mask=mask, other=0.0).to(tl.float32),
            tl.load(ptr + offset + 2 * H, mask=mask, other=0.0).to(tl.float32))


@triton.jit
def store_three(ptr, offset, H, v_r, v_z, v_n, mask):
    """Stores three gate blocks at ``ptr + offset`` (+ H, 2H) in ``ptr``'s dtype: the inverse of
    :func:`load_three`."""
    ty = ptr.dtype.element_ty
    tl.store(ptr + offset, v_r.to(ty), mask=mask)
    tl.store(ptr + offset + H, v_z.to(ty), mask=mask)
    tl.store(ptr + offset + 2 * H, v_n.to(ty), mask=mask)


@triton.jit
def gru_cell(x_r, x_z, x_n, h_r, h_z, h_n, h_prev):
    """One GRU step's pointwise work in fp32 from the input-side ``x_*`` and hidden-side ``h_*``
    projections: ``r``, ``z``, ``n`` fired, returns ``h' = (1 - z) n + z h_prev``."""
    r = tl.where(x_r + h_r >= 0, 1.0, 0.0)
    z = tl.where(x_z + h_z >= 0, 1.0, 0.0)
    n = tl.where(x_n + r * h_n >= 0, 1.0, 0.0)
    return (1.0 - z) * n + z * h_prev


@triton.jit
def gru_cell_backward(x_r, x_z, x_n, h_r, h_z, h_n, h_prev, dh, alpha1, alpha2,
                      KIND1: tl.constexpr, KIND2: tl.constexpr):
    """Backward of :func:`gru_cell` in fp32 from the projections, ``h_prev`` and ``dh = dL/dh'``.
    Returns ``(d_r, d_z, d_n, r, z)``: the input-side pre-activation gradients (the hidden side's n
    gradient is ``d_n * r``) and the gates the caller needs for it and for the direct ``z * dh``."""
    u_r = x_r + h_r
    u_z = x_z + h_z
    r = tl.where(u_r >= 0, 1.0, 0.0)
    z = tl.where(u_z >= 0, 1.0, 0.0)
    u_n = x_n + r * h_n
    n = tl.where(u_n >= 0, 1.0, 0.0)
    d_n = dh * (1.0 - z) * surrogate_derivative(u_n, alpha2, KIND2)
    d_z = dh * (h_prev - n) * surrogate_derivative(u_z, alpha1, KIND1)
    d_r = d_n * h_n * surrogate_derivative(u_r, alpha1, KIND1)
    return d_r, d_z, d_n, r, z


def carry_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of a running state or carried gradient (the LSTM's ``c``, the carried ``dh`` and ``dc``)
    of a recurrence in ``dtype``: float32 for the half types, else ``dtype``. Stored in a half type
    every step, an accumulating ``c`` would stop growing (bfloat16 ``256 + 1 == 256``) and a carried
    gradient would lose its small terms; the kernels compute in float32 anyway."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def carried(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A contiguous copy of ``t`` in ``carry_dtype(dtype)``, to be updated in place."""
    return torch.empty(t.shape, dtype=carry_dtype(dtype), device=t.device).copy_(t)


def rows(batch_sizes, t: int, batch: int) -> int:
    """Rows valid at step ``t`` (the leading rows of a packed batch)."""
    return batch if batch_sizes is None else batch_sizes[t]
