"""Triton pieces shared by the cells: surrogate derivatives selected by a constexpr id, the LSTM's and the
GRU's pointwise step and its backward (per-step and persistent kernels alike), in both gate forms
(``gates="heaviside"``: 0/1 gates; ``gates="sigmoid"``: sigmoid/tanh gates, an analog state, 0/1
emitted spikes, see :mod:`spikingrnn.functional.cells`), the leaky vanilla RNN's (``leak=β``), what the
cells with an analog state and emitted spikes share (:func:`initial_spikes`,
:func:`spike_input_backward`), launch helpers."""
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
def sigmoid(x):
    """``1 / (1 + exp(-x))`` in fp32, from ``e = exp(-|x|)`` (no overflow): ``1 / (1 + e)`` for ``x >= 0``,
    ``e / (1 + e)`` below."""
    e = tl.exp(-tl.abs(x))
    return tl.where(x >= 0, 1.0, e) / (1.0 + e)


@triton.jit
def tanh(x):
    """``tanh(x)`` in fp32 from one exponential, ``sign(x) (1 - e) / (1 + e)`` with ``e = exp(-2|x|)``:
    no overflow, within a few 1e-8 of the exact value (Triton has no portable ``tanh``: libdevice is
    CUDA's, and the interpreter has neither)."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def lstm_cell(u_i, u_f, u_g, u_o, c, threshold, CELL: tl.constexpr, SIGMOID: tl.constexpr):
    """One LSTM step's pointwise work in fp32 from the pre-activations ``u_*`` and the cell ``c``.
    Returns ``(c', h)``, ``h`` the layer's output before any projection.

    ``SIGMOID`` (``gates="sigmoid"``): ``c' = sigmoid(u_f) c + sigmoid(u_i) tanh(u_g)`` and the spikes
    ``h = Θ(sigmoid(u_o) tanh(c') - threshold)`` (``threshold`` is the spike threshold θ; ``CELL`` is
    accumulate). Else (``gates="heaviside"``) the gates fire (``u >= 0``), ``c'`` follows the
    ``cell_state`` rule ``CELL`` (its code in :data:`spikingrnn.functional.cells.CELL_STATE_CODES`:
    0 clamp, 1 accumulate, 2 spike with ``threshold``) and ``h = o * c'``."""
    if SIGMOID:
        c = sigmoid(u_f) * c + sigmoid(u_i) * tanh(u_g)
        h = tl.where(sigmoid(u_o) * tanh(c) - threshold >= 0, 1.0, 0.0)
    else:
        c = c * tl.where(u_f >= 0, 1.0, 0.0) + tl.where(u_i >= 0, 1.0, 0.0) * tl.where(u_g >= 0, 1.0, 0.0)
        if CELL == 0:
            c = tl.minimum(c, 1.0)
        elif CELL == 2:
            c = tl.where(c - threshold >= 0, 1.0, 0.0)
        h = c * tl.where(u_o >= 0, 1.0, 0.0)
    return c, h


@triton.jit
def lstm_cell_backward(u_i, u_f, u_g, u_o, c_prev, c_after, dm, dc, threshold, alpha1, alpha2,
                       CELL: tl.constexpr, KIND1: tl.constexpr, KIND2: tl.constexpr, SIGMOID: tl.constexpr):
    """Backward of :func:`lstm_cell` in fp32, from the pre-activations, the cell before and after the
    step, ``dm = dL/dh`` (the gradient of the step's output ``h`` before any projection) and the
    incoming cell gradient ``dc``. Returns the pre-activation gradients and the cell gradient carried
    to the previous step: ``(d_i, d_f, d_g, d_o, dc_prev)``. With ``SIGMOID`` the spike's derivative
    is surrogate ``KIND1``'s at ``o tanh(c') - threshold`` (``KIND2`` is not used)."""
    if SIGMOID:
        i = sigmoid(u_i)
        f = sigmoid(u_f)
        g = tanh(u_g)
        o = sigmoid(u_o)
        tc = tanh(c_after)
        dv = dm * surrogate_derivative(o * tc - threshold, alpha1, KIND1)  # through h = Θ(o tanh(c') - θ)
        dc = dc + dv * o * (1.0 - tc * tc)
        d_i = dc * g * (i * (1.0 - i))
        d_f = dc * c_prev * (f * (1.0 - f))
        d_g = dc * i * (1.0 - g * g)
        d_o = dv * tc * (o * (1.0 - o))
    else:
        i = tl.where(u_i >= 0, 1.0, 0.0)
        f = tl.where(u_f >= 0, 1.0, 0.0)
        g = tl.where(u_g >= 0, 1.0, 0.0)
        dc = dc + dm * tl.where(u_o >= 0, 1.0, 0.0)
        if CELL == 2:  # c = spike(f*c_prev + i*g - threshold); clamp passes straight through
            dc = dc * surrogate_derivative(c_prev * f + i * g - threshold, alpha1, KIND1)
        d_i = dc * g * surrogate_derivative(u_i, alpha1, KIND1)
        d_f = dc * c_prev * surrogate_derivative(u_f, alpha1, KIND1)
        d_g = dc * i * surrogate_derivative(u_g, alpha2, KIND2)
        d_o = dm * c_after * surrogate_derivative(u_o, alpha1, KIND1)
    return d_i, d_f, d_g, d_o, dc * f


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


@triton.jit
def gru_sigmoid_cell(x_r, x_z, x_n, h_r, h_z, h_n, s_prev, threshold):
    """One sigmoid-form GRU step (``gates="sigmoid"``) in fp32 from the input-side ``x_*`` and hidden-side
    ``h_*`` projections (the latter of the spikes fed back) and the analog state ``s_prev``:
    ``r, z = sigmoid(x_r + h_r, x_z + h_z)``, ``n = tanh(x_n + r h_n)``, ``s' = (1 - z) n + z s_prev``.
    Returns ``(s', Θ(s' - threshold))``: the new state and the spikes it emits."""
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    s = (1.0 - z) * n + z * s_prev
    return s, tl.where(s - threshold >= 0, 1.0, 0.0)


@triton.jit
def gru_sigmoid_cell_backward(x_r, x_z, x_n, h_r, h_z, h_n, s_prev, s, ds, dh, threshold, alpha1,
                              KIND1: tl.constexpr):
    """Backward of :func:`gru_sigmoid_cell` in fp32 from the projections, the state before and after the
    step, the carried gradient ``ds = dL/ds'`` (through later states) and ``dh = dL/dΘ(s' - θ)`` (the
    emitted spikes: output and next step's recurrent input), whose derivative is surrogate ``KIND1``'s
    at ``s' - threshold``. Returns ``(d_r, d_z, d_n, r, ds_prev)``: the input-side pre-activation
    gradients (the hidden side's n gradient is ``d_n * r``), ``r`` for it, and the gradient carried to
    ``s_prev`` directly (``z ds``; its spikes' part comes through ``W_hh``)."""
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    ds = ds + dh * surrogate_derivative(s - threshold, alpha1, KIND1)
    d_n = ds * (1.0 - z) * (1.0 - n * n)
    d_z = ds * (s_prev - n) * (z * (1.0 - z))
    d_r = d_n * h_n * (r * (1.0 - r))
    return d_r, d_z, d_n, r, ds * z


@triton.jit
def leaky_rnn_cell(u, v, leak, gain, threshold):
    """One leaky vanilla RNN step (``leak=β``) in fp32 from the pre-activation ``u = W_ih x + b_ih + W_hh h
    + b_hh`` (``h`` the spikes fed back) and the membrane ``v``: ``v' = leak v + gain u`` with
    ``gain = 1 - leak`` (both given as the reference rounds them: float32 of the host's ``leak`` and
    ``1 - leak``; each product and the sum rounded once, as the reference's three tensor operations are,
    where the kernel is compiled without floating-point contraction). Returns ``(v', Θ(v' - threshold))``:
    the new membrane and the spikes it emits."""
    v = leak * v + gain * u
    return v, tl.where(v - threshold >= 0, 1.0, 0.0)


@triton.jit
def leaky_rnn_cell_backward(v, dv, dh, leak, gain, threshold, alpha1, KIND1: tl.constexpr):
    """Backward of :func:`leaky_rnn_cell` in fp32 from the membrane ``v`` after the step, the gradient
    ``dv = dL/dv'`` carried through later membranes and ``dh = dL/dΘ(v' - θ)`` (the emitted spikes: output
    and next step's recurrent input), whose derivative is surrogate ``KIND1``'s at ``v - threshold``.
    Returns ``(d_u, dv_prev)``: the pre-activation gradient ``gain * total`` and the gradient carried to
    the previous membrane ``leak * total``, ``total = dv + dh Θ'(v - θ)``."""
    total = dv + dh * surrogate_derivative(v - threshold, alpha1, KIND1)
    return gain * total, leak * total


@triton.jit
def spike_input_backward(s0_ptr, dh_ptr, ds_ptr, n_elem, threshold, alpha1, KIND1: tl.constexpr,
                         BLOCK: tl.constexpr):
    """``ds += dh * derivative(s0 - threshold)`` over ``n`` elements (``s0``, ``dh``, ``ds`` ``[B, H]``,
    contiguous): the gradient of an analog initial state ``s_0`` (the sigmoid-form GRU's ``s``, the leaky
    RNN's ``v``) through the initial spikes ``Θ(s_0 - threshold)`` that the first step read (``dh`` their
    gradient)."""
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n_elem
    s0 = tl.load(s0_ptr + e, mask=mask, other=0.0).to(tl.float32)
    dh = tl.load(dh_ptr + e, mask=mask, other=0.0).to(tl.float32)
    ds = tl.load(ds_ptr + e, mask=mask, other=0.0).to(tl.float32)
    ds = ds + dh * surrogate_derivative(s0 - threshold, alpha1, KIND1)
    tl.store(ds_ptr + e, ds.to(ds_ptr.dtype.element_ty), mask=mask)


def initial_spikes(s0: torch.Tensor, threshold: float, dtype: torch.dtype) -> torch.Tensor:
    """The spikes ``Θ(s_0 - threshold)`` ``[B, H]`` the first step reads from an analog initial state ``s_0``,
    in ``dtype``, contiguous (computed in float32, as the kernels compute the later ones)."""
    return (s0.float() - float(threshold) >= 0).to(dtype).contiguous()


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
