"""``torch.load`` restricted to tensors and plain containers, and refused where that restriction can be bypassed.

``torch.load(weights_only=True)`` only unpickles tensors, plain containers and allow-listed types,
so a ``.pt`` file cannot run code while it loads, except before torch 2.6, where that mode could be
bypassed to run arbitrary code (CVE-2025-32434). Below :data:`SAFE_TORCH` every ``.pt`` file is
refused with :class:`UnsafeCheckpointError` saying so; safetensors files do not unpickle and load
with any torch.
"""
from __future__ import annotations

import re
import warnings
from typing import Any

import torch

from .errors import UnsafeCheckpointError

__all__ = ["SAFE_TORCH", "torch_version", "require_safe_torch", "load_weights_only"]

SAFE_TORCH = (2, 6)  # the first torch whose torch.load(weights_only=True) cannot be made to run code


def torch_version() -> tuple[int, int]:
    """``(major, minor)`` of the running torch (``"2.6.0+cpu"`` -> ``(2, 6)``)."""
    numbers = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(numbers.group(1)), int(numbers.group(2))) if numbers else (0, 0)


def require_safe_torch(path: str) -> None:
    """Raise :class:`UnsafeCheckpointError` naming ``path`` when this torch cannot unpickle safely."""
    if torch_version() < SAFE_TORCH:
        raise UnsafeCheckpointError(
            f"{path}: refused: torch {torch.__version__} cannot load .pt files safely: before torch "
            f"{SAFE_TORCH[0]}.{SAFE_TORCH[1]}, torch.load(weights_only=True) can be made to run code from the file "
            f"(CVE-2025-32434). Upgrade torch (pip install 'torch>={SAFE_TORCH[0]}.{SAFE_TORCH[1]}'), or use a "
            f"safetensors file (spikingrnn.io.save_checkpoint), which never unpickles")


def load_weights_only(path: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, map_location, weights_only=True)`` after :func:`require_safe_torch`.

    Raises ``pickle.UnpicklingError`` for a file that carries code (the caller words the error).
    """
    require_safe_torch(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note about pickle protocols
        return torch.load(path, map_location=map_location, weights_only=True)
