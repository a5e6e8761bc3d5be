"""Compact storage of what a spiking layer keeps for backward, shared by the backends.

Gates, and in most configurations ``h``, ``c`` and the layer input, hold only 0 and 1: they are
kept as bit rows, one row of ``ceil(n / 8)`` bytes per time step (bit ``i`` of byte ``b`` is
element ``8b + i``), so that backward can restore any chunk of steps. Packing reads each group of
eight 0/1 bytes as one little-endian int64 and multiplies by a constant that gathers their low
bits into the top byte; unpacking looks bytes up in a 256 x 8 table. An all-zero initial state is
not kept at all (:func:`zero_or_kept`).

Plain PyTorch on any device; a backend may register a faster unpacking of its own
(:func:`register_fast_unpack`: the cpu backend's C++ table lookup).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

_GATHER_BITS = 0x0102040810204080
_TABLES: dict[torch.device, Tensor] = {}
FastUnpack = Callable[[Tensor, tuple, torch.dtype], Optional[Tensor]]
_fast_unpack: FastUnpack | None = None


def register_fast_unpack(unpack: FastUnpack | None) -> None:
    """Make :func:`unpack_rows` try ``unpack(bits [K, words], shape, dtype)`` first: it returns the
    ``[K, *shape]`` 0/1 values in ``dtype``, or ``None`` where it does not apply (then the PyTorch
    lookup runs). One function at a time; ``None`` removes it. Its results must equal the PyTorch
    lookup's."""
    global _fast_unpack
    _fast_unpack = unpack


def _unpack_table(device: torch.device) -> Tensor:
    if device not in _TABLES:
        _TABLES[device] = ((torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1).to(torch.uint8).to(device)
    return _TABLES[device]


def is_binary(t: Tensor) -> bool:
    """Whether every element of ``t`` is 0 or 1."""
    return bool(((t == 0) | (t == 1)).all())


def words(count: int) -> int:
    """Bytes of a bit row holding ``count`` values."""
    return (count + 7) // 8


def bit_rows(steps: int, count: int) -> Tensor:
    """Zeroed storage for ``steps`` bit rows of ``count`` values: uint8 ``[steps, words(count)]``."""
    return torch.zeros(steps, words(count), dtype=torch.uint8)


def pack_rows(t: Tensor) -> Tensor:
    """``t [K, ...]`` (nonzero = 1) as bit rows: uint8 ``[K, words(numel / K)]``."""
    per_step = 1
    for size in t.shape[1:]:
        per_step *= size
    if per_step == 0:
        return torch.zeros(t.shape[0], 0, dtype=torch.uint8, device=t.device)
    flat = t.reshape(t.shape[0], per_step).to(torch.bool)
    pad = (-flat.shape[1]) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(flat.shape[0], pad)], dim=1)
    grouped = flat.contiguous().view(torch.uint8).view(torch.int64)
    return ((grouped * _GATHER_BITS) >> 56).to(torch.uint8)


def unpack_rows(bits: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Inverse of :func:`pack_rows`: a contiguous ``[K, *shape]`` of 0/1 in ``dtype`` from ``bits [K, words]``
    (the registered fast unpacking where it applies, else a PyTorch table lookup). Contiguous: kernels
    read it as a dense ``[K, *shape]`` array."""
    if _fast_unpack is not None:
        out = _fast_unpack(bits, tuple(shape), dtype)
        if out is not None:
            return out
    count = 1
    for size in shape:
        count *= size
    values = _unpack_table(bits.device).index_select(0, bits.reshape(-1).long()).view(bits.shape[0], bits.shape[1] * 8)
    # values[:, :count] is a view with the row stride of whole bytes: copy it whenever the dtype does not
    return values[:, :count].reshape(bits.shape[0], *shape).to(dtype).contiguous()


class StepStore:
    """Per-step values ``[T, *shape]`` kept for backward: bit rows when ``binary``, else the tensor itself.

    ``StepStore.wrap(t, binary)`` makes one from a whole tensor; ``.tensor`` goes through
    ``ctx.save_for_backward``; ``.rows(stored, t0, t1, dtype)`` restores steps ``[t0, t1)``.
    """

    def __init__(self, shape: tuple[int, ...], binary: bool):
        self.shape = tuple(shape)
        self.binary = binary

    @classmethod
    def wrap(cls, t: Tensor, binary: bool) -> tuple["StepStore", Tensor]:
        store = cls(t.shape[1:], binary)
        return store, pack_rows(t) if binary else t

    def rows(self, stored: Tensor, t0: int, t1: int, dtype: torch.dtype) -> Tensor:
        if self.binary:
            return unpack_rows(stored[t0:t1], self.shape, dtype)
        return stored[t0:t1]


def zero_or_kept(state: Tensor) -> Tensor:
    """An initial state to save for backward: itself, or an empty tensor standing for it when it is all
    zeros (the default initial state: nothing to keep). :func:`restore_zero` undoes it."""
    return state if bool(state.any()) else state.new_empty(0)


def restore_zero(kept: Tensor, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """The initial state ``shape`` saved by :func:`zero_or_kept` (zeros of ``like``'s dtype and device)."""
    return kept if tuple(kept.shape) == tuple(shape) else torch.zeros(shape, dtype=like.dtype, device=like.device)
