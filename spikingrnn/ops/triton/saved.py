"""What the triton backend's Functions keep for backward beyond their weights.

In low-memory mode every tensor that holds only 0 and 1 (a spiking input, the outputs, the LSTM's
cell states) is kept as bit rows, one row of ``ceil(n / 8)`` bytes per step (the cpu backend's
:mod:`~spikingrnn.ops.cpu.storage`, plain torch ops on any device); in every mode an all-zero initial
state is not kept. :func:`compact` records how each tensor was kept, :func:`restore` undoes it.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..cpu.storage import is_binary, pack_rows, unpack_rows


class Layout(NamedTuple):
    """A ``[T, ...]`` tensor kept as bit rows: its shape and dtype."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def compact(tensors: Sequence[Tensor | None], low_memory: bool) -> tuple[list[Tensor | None], list[Layout | None]]:
    """The tensors to save (bit rows where ``low_memory`` and 0/1, else themselves) and their layouts
    (``None`` where kept as they are)."""
    kept, layouts = [], []
    for t in tensors:
        if low_memory and t is not None and t.dim() >= 2 and t.numel() and is_binary(t):
            kept.append(pack_rows(t))
            layouts.append(Layout(tuple(t.shape), t.dtype))
        else:
            kept.append(t)
            layouts.append(None)
    return kept, layouts


def restore(kept: Sequence[Tensor | None], layouts: Sequence[Layout | None]) -> list[Tensor | None]:
    """The tensors :func:`compact` was given."""
    return [t if layout is None else unpack_rows(t, layout.shape[1:], layout.dtype).reshape(layout.shape)
            for t, layout in zip(kept, layouts)]
