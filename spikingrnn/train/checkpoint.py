"""Training checkpoints: model, optimizer, RNG states and epoch in one file, written atomically."""
from __future__ import annotations

import io

import torch

from ..io import atomic_write


def save_training_checkpoint(path: str, state: dict) -> None:
    """``torch.save(state)`` written atomically (temporary file beside ``path``, fsync, ``os.replace``).

    A failure at any point (disk full, a kill) leaves the previous file at ``path`` untouched and
    no temporary file behind. ``state`` must hold only tensors and plain Python values so that
    :func:`load_training_checkpoint` can read it with ``weights_only=True``.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def load_training_checkpoint(path: str) -> dict:
    """Read a checkpoint of :func:`save_training_checkpoint` with ``torch.load(weights_only=True)`` (no pickled code)."""
    return torch.load(path, map_location="cpu", weights_only=True)
