"""GEMM helpers shared by the backends."""
from __future__ import annotations

import torch
from torch import Tensor


def projection(x: Tensor, weight: Tensor, *biases: Tensor | None) -> Tensor:
    """``x [..., I] @ weight.T + sum(biases)`` as one GEMM: ``[..., G]`` (e.g. all steps' input projections)."""
    bias = None
    for b in biases:
        if b is not None:
            bias = b if bias is None else bias + b
    flat = x.reshape(-1, x.shape[-1])
    out = torch.mm(flat, weight.t()) if bias is None else torch.addmm(bias, flat, weight.t())
    return out.view(*x.shape[:-1], weight.shape[0])
