"""``save_checkpoint`` / ``load_checkpoint``: tensors in a safetensors file, a JSON header beside them, one digest over both.

File format: one `safetensors <https://github.com/huggingface/safetensors>`_ file. Its header's
``__metadata__`` holds one entry, ``"spikingrnn"``, a JSON document::

    {"format": "spikingrnn.checkpoint", "format_version": 2,
     "spikingrnn_version": "0.1.0", "torch_version": "2.x",
     "model": {"class": "SpikingLSTM", "config": {"input_size": 40, ...}} or null,
     "user": {...the metadata argument...},
     "order": [state_dict keys in their original order],
     "sha256": "<digest of every tensor's name, dtype, shape and bytes AND of this document>"}

The digest (:func:`~spikingrnn.io.digest.header_digest`) covers the configuration as well as the
tensors: a flipped bit in ``alpha`` or ``cell_threshold`` is refused like one in a weight.
Version 1 files (digest over the tensors only) still load, with a warning that their
configuration is not covered.

``.pt`` files are read with ``torch.load(weights_only=True)`` and only with a torch where that is
safe (:mod:`~spikingrnn.io.safe_torch_load`).
"""
from __future__ import annotations

import json
import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from types import ModuleType
from typing import Any, cast

import torch
from torch import Tensor, nn

from .digest import header_digest, tensors_digest
from .errors import CheckpointError, UnsafeCheckpointError
from .files import atomic_write
from .model_configs import model_config
from .safe_torch_load import load_weights_only
from .state_dicts import unwrap_state_dict

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT", "FORMAT_VERSION"]

FORMAT = "spikingrnn.checkpoint"
FORMAT_VERSION = 2  # 2: the digest covers the header too; 1: the tensors only
METADATA_KEY = "spikingrnn"


def _safetensors() -> ModuleType:
    try:
        import safetensors
        import safetensors.torch
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("spikingrnn.io needs the 'safetensors' package: pip install safetensors "
                          "(or spikingrnn[io])") from error
    return safetensors


def _json(value: object, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} must be JSON-serializable (dicts with str keys, lists, str, numbers, bool, "
                        f"None): {error}") from None


def _cpu_tensors(state_dict: Mapping[Any, Any], what: str) -> "OrderedDict[str, Tensor]":
    tensors: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{what}: keys must be strings, got {key!r}")
        if not isinstance(value, Tensor):
            raise TypeError(f"{what}[{key!r}]: expected a tensor, got {type(value).__name__}")
        # own contiguous CPU storage per tensor: safetensors refuses shared or strided tensors
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
    return tensors


def write_checkpoint(path: str | os.PathLike[str], tensors: "OrderedDict[str, Tensor]",
                     header: Mapping[str, Any]) -> None:
    """Write ``tensors`` with ``header`` (its ``"sha256"`` computed here) to ``path``, atomically."""
    safetensors = _safetensors()
    header = dict(header)
    header["sha256"] = header_digest(tensors, header)
    text = _json(header, "save_checkpoint: metadata and the model configuration")
    atomic_write(os.fspath(path), safetensors.torch.save(tensors, metadata={METADATA_KEY: text}))


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module | None = None,
                    state_dict: Mapping[str, Tensor] | None = None, metadata: dict[str, Any] | None = None) -> None:
    """Save a model's (or a state dict's) tensors and metadata to ``path``, atomically.

    Args:
        path: destination file (conventionally ``*.safetensors``); its directory must exist.
        model: a module; its ``state_dict()`` is saved, and for spikingrnn's modules the
            constructor configuration too, so that :func:`~spikingrnn.io.load_model` rebuilds it.
        state_dict: tensors to save instead of a model (exactly one of the two).
        metadata: JSON-serializable dict stored alongside (returned as ``metadata["user"]``).

    Tensors are saved from CPU copies; tensors sharing storage are saved separately.
    """
    if (model is None) == (state_dict is None):
        raise ValueError("save_checkpoint: pass exactly one of model= and state_dict=")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"save_checkpoint: model must be a torch.nn.Module, got {type(model).__name__}")
    if state_dict is not None and not isinstance(state_dict, Mapping):
        raise TypeError(f"save_checkpoint: state_dict must be a mapping, got {type(state_dict).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"save_checkpoint: metadata must be a dict or None, got {type(metadata).__name__}")
    source = model.state_dict() if model is not None else state_dict
    assert source is not None  # exactly one of model and state_dict: checked above
    tensors = _cpu_tensors(source, "state_dict")
    from .. import __version__
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "spikingrnn_version": __version__, "torch_version": torch.__version__,
        "model": model_config(model) if model is not None else None,
        "user": metadata if metadata is not None else {},
        "order": list(tensors),  # safetensors lists names sorted; this restores the state_dict's order
    }
    write_checkpoint(path, tensors, header)


def _kind(path: str) -> str:
    """``"safetensors"`` or ``"torch"`` from the file's first bytes (not its name)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9:
        header_size = int.from_bytes(head[:8], "little")
        if head[8:9] == b"{" and 8 + header_size <= size:
            return "safetensors"
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return "torch"
    return "safetensors"  # let safetensors say what is wrong


def device_of(map_location: object) -> str:
    """The device string of a ``map_location`` argument (``None``: ``"cpu"``)."""
    if map_location is None:
        return "cpu"
    if isinstance(map_location, (str, torch.device)):
        return str(torch.device(map_location))
    raise TypeError(f"map_location must be None, a str or a torch.device, got {type(map_location).__name__}")


def _read_safetensors(path: str, device: str) -> tuple["OrderedDict[str, Tensor]", dict[str, Any]]:
    safetensors = _safetensors()
    try:
        with safetensors.safe_open(path, framework="pt", device=device) as handle:
            raw_metadata = handle.metadata() or {}
            tensors = OrderedDict((key, handle.get_tensor(key)) for key in handle.keys())
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as error:
        if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise CheckpointError(f"{path}: not a valid checkpoint: neither a readable safetensors file nor a torch "
                              f"zip/pickle file, or it is truncated or corrupted ({error})") from None
    if METADATA_KEY not in raw_metadata:  # a safetensors file from elsewhere
        return tensors, {"format": "safetensors", "model": None, "user": dict(raw_metadata)}
    try:
        metadata = json.loads(raw_metadata[METADATA_KEY])
    except ValueError as error:
        raise CheckpointError(f"{path}: corrupted spikingrnn metadata ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: corrupted spikingrnn metadata (not a {FORMAT} document)")
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: corrupted spikingrnn metadata (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this "
                              f"spikingrnn reads ({FORMAT_VERSION}); upgrade spikingrnn")
    expected = metadata.get("sha256")
    if version >= 2:
        if expected != header_digest(tensors, metadata):
            raise CheckpointError(f"{path}: corrupted checkpoint: the tensors or the configuration do not match "
                                  f"the checksum saved with them")
    else:
        if expected is not None and expected != tensors_digest(tensors):
            raise CheckpointError(f"{path}: corrupted checkpoint: the tensors do not match the checksum saved "
                                  f"with them")
        warnings.warn(f"{path}: checkpoint format version 1: its configuration is not covered by its checksum "
                      f"(only its tensors are); re-save it with save_checkpoint to protect both", stacklevel=3)
    order = metadata.get("order")
    if isinstance(order, list) and sorted(order) == sorted(tensors):
        tensors = OrderedDict((key, tensors[key]) for key in order)
    return tensors, metadata


def _unpickling_reason(error: BaseException) -> str:
    context = error.__context__ or error.__cause__
    reason = str(context) if context is not None else str(error)
    reason = reason.strip().splitlines()[0] if reason.strip() else type(error).__name__
    # keep what torch refused, not its advice on allow-listing it
    for cut in (" was not an allowed global", ". Please use"):
        reason = reason.split(cut)[0]
    return reason[:300]


def refused_pickle(path: str, error: BaseException) -> UnsafeCheckpointError:
    """The error for a ``.pt`` file that ``torch.load(weights_only=True)`` refused to unpickle."""
    return UnsafeCheckpointError(
        f"{path}: refused: the file carries pickled code (classes, functions or other objects beyond "
        f"tensors and plain containers, e.g. a whole pickled nn.Module or a __reduce__ payload) that "
        f"torch.load(weights_only=True) will not run; loading it could execute arbitrary code. Re-save "
        f"only the state_dict (or use save_checkpoint) from a trusted environment. "
        f"torch said: {_unpickling_reason(error)}")


def read_torch_file(path: str, device: str = "cpu") -> Any:
    """The object in a ``.pt`` file, unpickled with ``weights_only=True``; every failure a
    :class:`CheckpointError` naming ``path``."""
    try:
        return load_weights_only(path, map_location=device)
    except pickle.UnpicklingError as error:
        raise refused_pickle(path, error) from None
    except CheckpointError:
        raise
    except Exception as error:  # zip/pickle framing errors of a damaged file
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise CheckpointError(f"{path}: truncated or corrupted torch checkpoint "
                              f"({type(error).__name__}: {reason})") from None


def _read_torch(path: str, device: str) -> tuple["OrderedDict[str, Tensor]", dict[str, Any]]:
    try:
        flat = unwrap_state_dict(read_torch_file(path, device))
    except TypeError as error:
        raise CheckpointError(f"{path}: not a state dict: {error}") from None
    for key, value in flat.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                                  "expected a state dict (optionally under 'state_dict' or 'model')")
    return cast("OrderedDict[str, Tensor]", flat), {"format": "torch", "model": None, "user": {}}  # all tensors


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device | None = None
                    ) -> tuple["OrderedDict[str, Tensor]", dict[str, Any]]:
    """Read a checkpoint: ``(state_dict, metadata)``, every digest checked.

    Args:
        path: a file written by :func:`save_checkpoint`, any safetensors file, or a torch
            ``.pt`` file holding a state dict (optionally under ``"state_dict"``/``"model"``,
            ``module.`` prefixes removed). The format is told from the content, not the name.
        map_location: ``None`` (CPU), a device string or a ``torch.device``.

    Returns:
        The tensors, and the metadata: for :func:`save_checkpoint`'s files the JSON document
        described in the module docstring (``metadata["user"]`` is what was passed,
        ``metadata["model"]`` the class and configuration); for other files
        ``{"format": "safetensors" | "torch", "model": None, "user": {...}}``.

    Raises:
        UnsafeCheckpointError: a pickle that carries code (refused, never run), or any ``.pt``
            file under a torch older than 2.6 (whose ``weights_only`` can be bypassed).
        CheckpointError: anything else that is not a complete, intact checkpoint.
        FileNotFoundError: no such file.
    """
    path = os.fspath(path)
    device = device_of(map_location)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if _kind(path) == "torch":
        return _read_torch(path, device)
    return _read_safetensors(path, device)
