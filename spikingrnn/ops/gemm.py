"""GEMM helpers shared by the backends."""
from __future__ import annotations

import torch
from torch import Tensor


def summed_bias(*biases: Tensor | None) -> Tensor | None:
    """The sum of the given biases (``None`` entries skipped), or ``None`` when there are none."""
    bias = None
    for b in biases:
        if b is not None:
            bias = b if bias is None else bias + b
    return bias


def projection(x: Tensor, weight: Tensor, *biases: Tensor | None, out: Tensor | None = None) -> Tensor:
    """``x [..., I] @ weight.T + sum(biases)`` as one GEMM: ``[..., G]`` (e.g. all steps' input projections),
    written into ``out`` (contiguous, ``x.numel() / I * G`` values) when given."""
    bias = summed_bias(*biases)
    flat = x.reshape(-1, x.shape[-1])
    target = None if out is None else out.view(flat.shape[0], weight.shape[0])
    if bias is None:
        result = torch.mm(flat, weight.t(), out=target)
    else:
        result = torch.addmm(bias, flat, weight.t(), out=target)
    return result.view(*x.shape[:-1], weight.shape[0])
