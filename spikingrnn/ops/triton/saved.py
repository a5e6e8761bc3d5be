"""What the triton backend's Functions keep for backward beyond their weights.

In low-memory mode every tensor that holds only 0 and 1 (a spiking input, the outputs, the LSTM's
cell states, the sigmoid form's spikes before a projection) is kept as bit rows: the backends' shared
:class:`~spikingrnn.ops.storage.StepStore`,
plain torch ops on any device. (In every mode an all-zero initial state is not kept:
``zero_or_kept`` of the same module.) :func:`compact` records how each tensor was kept,
:func:`restore` undoes it.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..storage import StepStore, is_binary

Kept = Optional[tuple[StepStore, torch.dtype]]


def compact(tensors: Sequence[Optional[Tensor]], low_memory: bool) -> tuple[list[Optional[Tensor]], list[Kept]]:
    """The ``[T, ...]`` tensors to save (bit rows where ``low_memory`` and 0/1, else themselves; ``None``
    stays ``None``) and how to restore them."""
    saved: list[Optional[Tensor]] = []
    kept: list[Kept] = []
    for t in tensors:
        if t is None:
            saved.append(None)
            kept.append(None)
            continue
        store, stored = StepStore.wrap(t, low_memory and t.numel() > 0 and is_binary(t))
        saved.append(stored)
        kept.append((store, t.dtype))
    return saved, kept


def restore(saved: Sequence[Optional[Tensor]], kept: Sequence[Kept]) -> list[Optional[Tensor]]:
    """The tensors :func:`compact` was given, in their dtypes (``None`` where it was given ``None``)."""
    # (t is None exactly where how is None)
    return [None if how is None or t is None else how[0].rows(t, 0, t.shape[0], how[1]) for t, how in zip(saved, kept)]
