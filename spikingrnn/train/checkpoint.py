"""Training checkpoints: model, optimizer, RNG states and epoch in one file, written atomically."""
from __future__ import annotations

import os
import secrets

import torch


def save_training_checkpoint(path: str, state: dict) -> None:
    """``torch.save(state)`` to a temporary file beside ``path``, fsync, then ``os.replace``.

    A failure at any point (disk full, a kill) leaves the previous file at ``path`` untouched and
    removes the temporary file. ``state`` must hold only tensors and plain Python values so that
    :func:`load_training_checkpoint` can read it with ``weights_only=True``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load_training_checkpoint(path: str) -> dict:
    """Read a checkpoint of :func:`save_training_checkpoint` with ``torch.load(weights_only=True)`` (no pickled code)."""
    return torch.load(path, map_location="cpu", weights_only=True)
