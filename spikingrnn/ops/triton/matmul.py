"""The triton backend's matrix products, with TF32 where cuDNN's RNNs would use it.

``torch.nn.LSTM`` on CUDA runs cuDNN, whose float32 RNNs multiply in TF32 unless the user turns
that off (``torch.backends.cudnn.rnn.fp32_precision``, default ``"tf32"``; the older
``torch.backends.cudnn.allow_tf32``). torch's own GEMMs follow another switch, off by default, that
this backend must not flip (a process-wide setting, and torch refuses mixes of its old and new
APIs). So float32 products on CUDA with TF32 allowed run in a Triton GEMM with ``tl.dot`` in TF32
(:func:`mm`); every other case (half types, TF32 off, the CPU) runs ``torch.mm``. Forward and
backward of a Function decide once (``TritonConfig.tf32``), so that a low-memory backward
recomputes exactly what forward computed.
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..gemm import projection, summed_bias

BLOCK_M, BLOCK_N, BLOCK_K = 64, 64, 32


def tf32_allowed(x: Tensor) -> bool:
    """Whether a float32 recurrence on ``x``'s device multiplies in TF32, as cuDNN's RNNs would: on NVIDIA
    GPUs only. ROCm reports its GPUs as device type ``"cuda"`` too, but its MIOpen RNNs have no TF32
    and Triton's AMD backend refuses ``tl.dot`` in TF32 on most of them (all but gfx942)."""
    if not x.is_cuda or x.dtype != torch.float32 or getattr(torch.version, "hip", None):
        return False
    rnn = getattr(torch.backends.cudnn, "rnn", None)
    if rnn is not None and hasattr(rnn, "fp32_precision"):
        return rnn.fp32_precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)


@triton.jit
def _matmul(a_ptr, b_ptr, c_ptr, add_ptr, bias_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
            stride_cm, stride_cn, stride_addm, stride_addn,
            HAS_ADD: tl.constexpr, HAS_BIAS: tl.constexpr, TF32: tl.constexpr,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """``c = a @ b (+ add) (+ bias)`` for ``a [M, K]``, ``b [K, N]``, ``c``, ``add [M, N]`` (any strides),
    ``bias [N]``; float32 sums; float32 products in TF32 when ``TF32`` else in full precision (half
    types: not ``TF32``, their products are exact either way and AMD refuses TF32)."""
    # int64 offsets: a weight gradient's K runs over all T * B rows, times a stride of 4H
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    cols = (tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    row_ok, col_ok = rows < M, cols < N
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = (k0 + tl.arange(0, BLOCK_K)).to(tl.int64)
        k_ok = ks < K
        a = tl.load(a_ptr + rows[:, None] * stride_am + ks[None, :] * stride_ak, mask=row_ok[:, None] & k_ok[None, :],
                    other=0.0)
        b = tl.load(b_ptr + ks[:, None] * stride_bk + cols[None, :] * stride_bn, mask=k_ok[:, None] & col_ok[None, :],
                    other=0.0)
        if TF32:
            acc += tl.dot(a, b, input_precision="tf32")
        else:
            acc += tl.dot(a, b, input_precision="ieee")
    mask = row_ok[:, None] & col_ok[None, :]
    if HAS_ADD:
        acc += tl.load(add_ptr + rows[:, None] * stride_addm + cols[None, :] * stride_addn, mask=mask,
                       other=0.0).to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, acc.to(c_ptr.dtype.element_ty), mask=mask)


def triton_mm(a: Tensor, b: Tensor, *, out: Tensor | None = None, add: Tensor | None = None,
              bias: Tensor | None = None, tf32: bool = True) -> Tensor:
    """``a [M, K] @ b [K, N] (+ add [M, N]) (+ bias [N])`` in one Triton launch, into ``out`` when
    given (``out`` may be ``add``: each value is read before it is written)."""
    (m, k), n = a.shape, b.shape[1]
    if b.shape[0] != k:
        raise ValueError(f"triton_mm: a is [{m}, {k}] but b has {b.shape[0]} rows")
    for name, t in (("out", out), ("add", add)):
        if t is not None and tuple(t.shape) != (m, n):
            raise ValueError(f"triton_mm: {name} must be [{m}, {n}], got {list(t.shape)}")
    if out is None:
        out = torch.empty(m, n, dtype=a.dtype, device=a.device)
    if bias is not None:
        bias = bias.contiguous()
    if m == 0 or n == 0:
        return out
    if k == 0:  # no products: the sum of nothing
        out.copy_(torch.zeros_like(out) if add is None else add)
        if bias is not None:
            out.add_(bias)
        return out
    extra = add if add is not None else out
    _matmul[(triton.cdiv(m, BLOCK_M), triton.cdiv(n, BLOCK_N))](
        a, b, out, extra, bias if bias is not None else out, m, n, k, a.stride(0), a.stride(1), b.stride(0),
        b.stride(1), out.stride(0), out.stride(1), extra.stride(0), extra.stride(1),
        HAS_ADD=add is not None, HAS_BIAS=bias is not None,
        TF32=tf32 and a.dtype == torch.float32, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        BLOCK_K=BLOCK_K)
    return out


def _few_long_tiles(a: Tensor, m: int, n: int, k: int) -> bool:
    """Whether ``[m, n]`` has too few output tiles to fill the GPU while ``k`` is long (a weight gradient,
    ``k = T * B``): one program per tile would loop over all of ``k``; torch's GEMM splits ``k``."""
    if not a.is_cuda:
        return False
    tiles = triton.cdiv(m, BLOCK_M) * triton.cdiv(n, BLOCK_N)
    return k >= 16 * max(m, n) and 4 * tiles < _multiprocessors(a.device.index)


@functools.lru_cache(maxsize=None)
def _multiprocessors(index: int | None) -> int:
    """The streaming multiprocessors of CUDA device ``index`` (asked once: the per-step GEMMs ask too)."""
    return torch.cuda.get_device_properties(index if index is not None else torch.cuda.current_device()
                                            ).multi_processor_count


def mm(a: Tensor, b: Tensor, *, out: Tensor | None = None, add: Tensor | None = None, bias: Tensor | None = None,
       tf32: bool = False) -> Tensor:
    """``a @ b (+ add) (+ bias)``: the Triton GEMM in TF32 when ``tf32``, else torch's GEMM
    (``torch.mm``/``torch.addmm``, whose float32 products are full precision by default). A product
    with few output tiles and a long ``k`` takes torch's GEMM either way (untuned: no GPU has timed
    the choice yet). Same operands, same choice: a recomputation gives the same values."""
    if tf32 and not _few_long_tiles(a, a.shape[0], b.shape[1], a.shape[1]):
        return triton_mm(a, b, out=out, add=add, bias=bias, tf32=True)
    if add is None and bias is None:
        return torch.mm(a, b, out=out)
    if add is not None and bias is not None:
        add = add + bias
    base = add if add is not None else bias
    assert base is not None  # add and bias are not both None here
    if out is not None and add is not None and out.data_ptr() == add.data_ptr() and out.stride() == add.stride():
        return out.addmm_(a, b)
    return torch.addmm(base, a, b, out=out)


def mm_into(a: Tensor, b: Tensor, out: Tensor, *, accumulate: bool = False, tf32: bool = False) -> Tensor:
    """``out = a @ b`` (``out += a @ b`` when ``accumulate``) through :func:`mm`, also for an ``out`` in a wider
    dtype than ``a`` and ``b`` (a float32 carry of half-type products): the product is then formed in
    their dtype and added in ``out``'s."""
    if out.dtype == a.dtype:
        return mm(a, b, add=out if accumulate else None, out=out, tf32=tf32)
    product = mm(a, b, tf32=tf32)
    return out.add_(product) if accumulate else out.copy_(product)


def project(x: Tensor, weight: Tensor, *biases: Tensor | None, tf32: bool = False) -> Tensor:
    """:func:`spikingrnn.ops.gemm.projection` (``x [..., I] @ weight.T + sum(biases)``, all steps'
    input projections in one GEMM) through :func:`mm`."""
    if not tf32:
        return projection(x, weight, *biases)
    flat = x.reshape(-1, x.shape[-1])
    return mm(flat, weight.t(), bias=summed_bias(*biases), tf32=True).view(*x.shape[:-1], weight.shape[0])
