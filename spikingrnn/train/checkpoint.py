"""Training checkpoints: model, optimizer, RNG states and epoch in one file, digested and written atomically.

The file is ``torch.save`` of ``{"format": "spikingrnn.training_checkpoint", "format_version": 1,
"sha256": <digest of the state>, "state": state}``. The digest
(:func:`spikingrnn.io.digest.tree_digest`) covers every tensor's bytes and every plain value, so a
flipped bit anywhere is refused on load instead of silently resuming with different weights.
Files written before the digest existed (the bare state) still load, with a warning.
"""
from __future__ import annotations

import io
import os
import warnings

import torch

from ..io import CheckpointError, atomic_write
from ..io.checkpoints import read_torch_file
from ..io.digest import tree_digest

FORMAT = "spikingrnn.training_checkpoint"
FORMAT_VERSION = 1


def save_training_checkpoint(path: str, state: dict) -> None:
    """``torch.save`` of ``state`` with its digest, written atomically (temporary file beside
    ``path``, fsync, ``os.replace``).

    A failure at any point (disk full, a kill) leaves the previous file at ``path`` untouched and
    no temporary file behind. ``state`` must hold only tensors and plain Python values (dicts,
    lists, tuples, str, numbers, bool, None) so that :func:`load_training_checkpoint` can read it
    with ``weights_only=True`` and digest it.
    """
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "sha256": tree_digest(state), "state": state},
               buffer)
    atomic_write(path, buffer.getvalue())


def load_training_checkpoint(path: str) -> dict:
    """The state saved by :func:`save_training_checkpoint`, read with ``torch.load(weights_only=True)``
    (no pickled code) and checked against its digest.

    Raises:
        CheckpointError: naming ``path``, for a corrupted, truncated or foreign file.
        UnsafeCheckpointError: for a file that carries code, or any file under torch < 2.6.
    """
    path = os.fspath(path)
    saved = read_torch_file(path)
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: not a spikingrnn training checkpoint (a {type(saved).__name__})")
    if saved.get("format") != FORMAT:
        if "model" in saved and "optimizer" in saved and "epoch" in saved:  # written before the digest
            warnings.warn(f"{path}: a training checkpoint without a checksum (written by an older spikingrnn): "
                          f"its integrity cannot be checked", stacklevel=2)
            return saved
        raise CheckpointError(f"{path}: not a spikingrnn training checkpoint")
    version = saved.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: training checkpoint format version {version!r} is not one this "
                              f"spikingrnn reads (<= {FORMAT_VERSION}); upgrade spikingrnn")
    state = saved.get("state")
    try:
        intact = isinstance(state, dict) and saved.get("sha256") == tree_digest(state)
    except TypeError:  # a value the digest does not know: not what save_training_checkpoint wrote
        intact = False
    if not intact:
        raise CheckpointError(f"{path}: corrupted training checkpoint: its contents do not match the checksum "
                              f"saved with them; resume from a copy, or start the run again")
    assert isinstance(state, dict)  # for mypy: `intact` checked it
    return state
