"""Bytes that autograd keeps for backward, counted with ``torch.autograd.graph.saved_tensors_hooks``.

Every tensor packed for backward during a forward pass is seen by the pack hook. The counter adds
``untyped_storage().nbytes()`` once per storage (deduplicated by ``(device, data_ptr)``: views and
repeated saves of one buffer count once) and skips the module's parameters (matched by identity
or by storage pointer, so a saved ``weight.t()`` is not counted either). Tensors kept outside
``save_for_backward`` (plain ``ctx`` attributes) are invisible to this method.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor


def _storage_key(t: Tensor) -> tuple[tuple[str, int], int]:
    """``((device, storage data_ptr), storage nbytes)``; falls back to the tensor's own size."""
    try:
        storage = t.untyped_storage()
        return (str(t.device), storage.data_ptr()), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # tensor subclasses / sparse layouts without a storage
        return (str(t.device), id(t)), t.numel() * t.element_size()


class SavedTensorCounter:
    """Context manager counting the bytes saved for backward while it is active.

    Example::

        with SavedTensorCounter(exclude=module.parameters()) as counter:
            module(x)
        counter.total_bytes
    """

    def __init__(self, exclude: Iterable[Tensor] = ()) -> None:
        excluded = list(exclude)
        self._excluded_ids = {id(t) for t in excluded}
        self._excluded_keys = {_storage_key(t)[0] for t in excluded}
        self.storages: dict[tuple[str, int], int] = {}
        self.packed = 0  # every pack call, parameters and duplicates included
        self.skipped_parameters = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: Tensor) -> Tensor:
        self.packed += 1
        key, nbytes = _storage_key(t)
        if id(t) in self._excluded_ids or key in self._excluded_keys:
            self.skipped_parameters += 1
            return t
        self.storages[key] = max(nbytes, self.storages.get(key, 0))
        return t

    @staticmethod
    def _unpack(t: Tensor) -> Tensor:
        return t

    @property
    def total_bytes(self) -> int:
        """Sum of the distinct non-parameter storages saved so far."""
        return sum(self.storages.values())

    def __enter__(self) -> "SavedTensorCounter":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def saved_bytes(forward: Callable[[], object], parameters: Iterable[Tensor] = ()) -> int:
    """Bytes saved for backward by one call of ``forward()`` (grad enabled), parameters excluded.

    The result of ``forward`` (and so the autograd graph) is dropped before returning.
    """
    with torch.enable_grad(), SavedTensorCounter(exclude=parameters) as counter:
        result = forward()
    del result
    return counter.total_bytes


def module_saved_bytes(module: torch.nn.Module, x: Tensor) -> int:
    """Bytes saved for backward by ``module(x)``, not counting ``module``'s parameters."""
    return saved_bytes(lambda: module(x), module.parameters())
