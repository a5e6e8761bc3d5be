"""SHA-256 digests of what a checkpoint holds: tensors, JSON headers and nested training states.

A digest is stored in the file beside what it covers and checked on every load, so a flipped bit
in a tensor, in a configuration value or in an optimizer state is an error, never a silently
different model. The digests are canonical: they depend on the values, not on the order in which
dicts were filled or on the device the tensors were on.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["tensors_digest", "header_digest", "tree_digest"]


class _Hash(Protocol):
    """What the digests use of a ``hashlib`` hash object."""

    def update(self, data: bytes, /) -> None: ...


def _update_tensor(sha: _Hash, tensor: Tensor, name: str | None = None) -> None:
    tensor = tensor.detach().to("cpu").contiguous()
    described = [str(tensor.dtype), list(tensor.shape)]
    sha.update(json.dumps(described if name is None else [name] + described).encode())
    if tensor.numel():
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def tensors_digest(tensors: Mapping[str, Tensor]) -> str:
    """Hex SHA-256 of every tensor's name, dtype, shape and bytes, in name order."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        _update_tensor(sha, tensors[name], name)
    return sha.hexdigest()


def canonical_json(value: object) -> str:
    """The one JSON text of ``value`` (sorted keys, no spaces), as digested."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def header_digest(tensors: Mapping[str, Tensor], header: Mapping[str, object]) -> str:
    """Hex SHA-256 over the tensors (as :func:`tensors_digest`) and the header's canonical JSON
    without its ``"sha256"`` entry: the configuration is covered as well as the weights."""
    body = {key: value for key, value in header.items() if key != "sha256"}
    text = tensors_digest(tensors) + "\n" + canonical_json(body)
    return hashlib.sha256(text.encode()).hexdigest()


def _update_tree(sha: _Hash, value: object) -> None:
    """Feed ``value`` (tensors, plain scalars, strings, bytes, and lists, tuples and dicts of those)
    into ``sha`` with its type, so that ``1``, ``1.0``, ``True`` and ``"1"`` differ."""
    if isinstance(value, Tensor):
        sha.update(b"T")
        _update_tensor(sha, value)
    elif value is None or isinstance(value, (bool, int, float, str)):
        sha.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (bytes, bytearray)):
        sha.update(b"b%d:" % len(value) + bytes(value))
    elif isinstance(value, (list, tuple)):
        sha.update(f"{type(value).__name__}[{len(value)}]".encode())
        for item in value:
            _update_tree(sha, item)
    elif isinstance(value, Mapping):
        sha.update(f"dict[{len(value)}]".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _update_tree(sha, key)
            _update_tree(sha, value[key])
    else:
        raise TypeError(f"tree_digest: cannot digest a {type(value).__name__} ({value!r:.80})")


def tree_digest(value: object) -> str:
    """Hex SHA-256 of a nested training state (tensors and plain Python values, any nesting)."""
    sha = hashlib.sha256()
    _update_tree(sha, value)
    return sha.hexdigest()
