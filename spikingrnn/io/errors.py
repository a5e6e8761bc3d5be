"""The errors of :mod:`spikingrnn.io`."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: not a checkpoint, truncated, corrupted, inconsistent."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle checkpoint that carries code, or one that this torch cannot read safely."""
