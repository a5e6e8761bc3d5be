"""Safe checkpoints: safetensors tensors plus JSON metadata, written atomically.

::

    from spikingrnn.io import save_checkpoint, load_checkpoint, load_model

    save_checkpoint("lstm.safetensors", model, metadata={"epoch": 12, "val_loss": 0.31})
    model = load_model("lstm.safetensors")                 # a SpikingLSTM again, no code needed
    state_dict, metadata = load_checkpoint("lstm.safetensors")

File format: one `safetensors <https://github.com/huggingface/safetensors>`_ file. Its header's
``__metadata__`` holds one entry, ``"spikingrnn"``, a JSON document::

    {"format": "spikingrnn.checkpoint", "format_version": 1,
     "spikingrnn_version": "0.1.0", "torch_version": "2.x",
     "model": {"class": "SpikingLSTM", "config": {"input_size": 40, ...}} or null,
     "user": {...the metadata argument...},
     "sha256": "<digest of every tensor's name, dtype, shape and bytes>",
     "order": [state_dict keys in their original order]}

``config`` holds the constructor arguments of :class:`~spikingrnn.SpikingLSTM`, ``SpikingGRU``,
``SpikingRNN`` and the cells (built-in surrogates as ``{"name", "alpha", "spiking"}``), so
:func:`load_model` rebuilds the module. The digest catches corrupted tensor bytes, which the
safetensors format itself does not check.

Safety: nothing here unpickles. :func:`load_checkpoint` also reads torch ``.pt`` files (zip or
legacy) through ``torch.load(weights_only=True)`` and refuses, with
:class:`UnsafeCheckpointError`, one that carries pickled code (a whole pickled module, a custom
class, a ``__reduce__`` payload). Every load error is a :class:`CheckpointError` (a
``ValueError``) naming the path. :func:`load_model` builds a fresh module and returns it only
once every tensor loaded strictly; :func:`load_into` checks every key and shape before it
touches the target module.

Writes go to a temporary file in the destination directory, are flushed to disk, and replace
the destination with ``os.replace``: a failure leaves the previous file (or none) and no
temporary file behind.

Requires the ``safetensors`` package (the ``io`` extra).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import secrets
import warnings
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "load_model", "load_into", "model_config",
           "CheckpointError", "UnsafeCheckpointError", "MODEL_CLASSES", "FORMAT", "FORMAT_VERSION"]

FORMAT = "spikingrnn.checkpoint"
FORMAT_VERSION = 1
_METADATA_KEY = "spikingrnn"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: not a checkpoint, truncated, corrupted, inconsistent."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle checkpoint that carries code (classes, functions, ``__reduce__`` payloads)."""


def _model_classes() -> dict[str, type]:
    from .nn import SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN, SpikingRNNCell
    return {cls.__name__: cls for cls in (SpikingLSTM, SpikingGRU, SpikingRNN,
                                          SpikingLSTMCell, SpikingGRUCell, SpikingRNNCell)}


MODEL_CLASSES = tuple(_model_classes())  # the classes load_model rebuilds

# constructor arguments recorded per class (besides the surrogates)
_STACK_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
               "invariant_dropout_mask", "backend", "low_memory")
_CONFIG_ARGS = {
    "SpikingLSTM": _STACK_ARGS + ("proj_size", "cell_state", "cell_threshold"),
    "SpikingGRU": _STACK_ARGS,
    "SpikingRNN": _STACK_ARGS,
    "SpikingLSTMCell": ("input_size", "hidden_size", "bias", "cell_state", "cell_threshold"),
    "SpikingGRUCell": ("input_size", "hidden_size", "bias"),
    "SpikingRNNCell": ("input_size", "hidden_size", "bias"),
}
_SURROGATE_ARGS = {"SpikingRNN": ("surrogate_function1",), "SpikingRNNCell": ("surrogate_function1",)}


def _safetensors():
    try:
        import safetensors
        import safetensors.torch
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("spikingrnn.io needs the 'safetensors' package: pip install safetensors "
                          "(or spikingrnn[io])") from error
    return safetensors


# ----------------------------------------------------------------------------- metadata


def _encode_surrogate(surrogate):
    from .surrogate import SURROGATES
    if surrogate is None:
        return None
    for name, cls in SURROGATES.items():
        if type(surrogate) is cls:
            return {"name": name, "alpha": surrogate.alpha, "spiking": surrogate.spiking}
    # a custom callable: recorded by description; load_model needs it passed again
    return {"name": None, "repr": repr(surrogate)[:200]}


def _decode_surrogate(spec, argument: str, path) -> object:
    from .surrogate import SURROGATES
    if spec is None:
        return None
    name = spec.get("name") if isinstance(spec, Mapping) else None
    if name is None:
        description = spec.get("repr", "?") if isinstance(spec, Mapping) else spec
        raise CheckpointError(f"{path}: the model was saved with a custom {argument} ({description}), which a "
                              f"checkpoint cannot hold; pass it again: load_model(path, {argument}=...)")
    if name not in SURROGATES:
        raise CheckpointError(f"{path}: unknown surrogate {name!r} for {argument}; known: {sorted(SURROGATES)}")
    return SURROGATES[name](alpha=spec.get("alpha"), spiking=spec.get("spiking", True))


def model_config(model: nn.Module) -> dict | None:
    """``{"class": name, "config": constructor arguments}`` of a spikingrnn module that
    :func:`load_model` can rebuild; ``{"class": qualified name, "config": None}`` for any other."""
    name = type(model).__name__
    classes = _model_classes()
    if classes.get(name) is not type(model):
        return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "config": None}
    config = {arg: getattr(model, arg) for arg in _CONFIG_ARGS[name]}
    for argument in _SURROGATE_ARGS.get(name, ("surrogate_function1", "surrogate_function2")):
        config[argument] = _encode_surrogate(getattr(model, argument))
    return {"class": name, "config": config}


def _json(value, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} must be JSON-serializable (dicts with str keys, lists, str, numbers, bool, "
                        f"None): {error}") from None


# ----------------------------------------------------------------------------- tensors


def _digest(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 of every tensor's name, dtype, shape and bytes, in name order."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        sha.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        if tensor.numel():
            sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def _cpu_tensors(state_dict: Mapping, what: str) -> "OrderedDict[str, Tensor]":
    tensors: OrderedDict[str, Tensor] = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{what}: keys must be strings, got {key!r}")
        if not isinstance(value, Tensor):
            raise TypeError(f"{what}[{key!r}]: expected a tensor, got {type(value).__name__}")
        # own contiguous CPU storage per tensor: safetensors refuses shared or strided tensors
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
    return tensors


# ----------------------------------------------------------------------------- writing


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, flush it, then ``os.replace`` it."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open()
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def save_checkpoint(path, model: nn.Module | None = None, state_dict: Mapping | None = None,
                    metadata: dict | None = None) -> None:
    """Save a model's (or a state dict's) tensors and metadata to ``path``, atomically.

    Args:
        path: destination file (conventionally ``*.safetensors``); its directory must exist.
        model: a module; its ``state_dict()`` is saved, and for spikingrnn's modules the
            constructor configuration too, so that :func:`load_model` rebuilds it.
        state_dict: tensors to save instead of a model (exactly one of the two).
        metadata: JSON-serializable dict stored alongside (returned as ``metadata["user"]``).

    Tensors are saved from CPU copies; tensors sharing storage are saved separately.
    """
    safetensors = _safetensors()
    if (model is None) == (state_dict is None):
        raise ValueError("save_checkpoint: pass exactly one of model= and state_dict=")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"save_checkpoint: model must be a torch.nn.Module, got {type(model).__name__}")
    if state_dict is not None and not isinstance(state_dict, Mapping):
        raise TypeError(f"save_checkpoint: state_dict must be a mapping, got {type(state_dict).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"save_checkpoint: metadata must be a dict or None, got {type(metadata).__name__}")
    tensors = _cpu_tensors(model.state_dict() if model is not None else state_dict, "state_dict")
    from . import __version__
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "spikingrnn_version": __version__, "torch_version": torch.__version__,
        "model": model_config(model) if model is not None else None,
        "user": metadata if metadata is not None else {},
        "sha256": _digest(tensors),
        "order": list(tensors),  # safetensors lists names sorted; this restores the state_dict's order
    }
    text = _json(header, "save_checkpoint: metadata and the model configuration")
    data = safetensors.torch.save(tensors, metadata={_METADATA_KEY: text})
    atomic_write(os.fspath(path), data)


# ----------------------------------------------------------------------------- reading


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


def _device(map_location) -> str:
    if map_location is None:
        return "cpu"
    if isinstance(map_location, (str, torch.device)):
        return str(torch.device(map_location))
    raise TypeError(f"map_location must be None, a str or a torch.device, got {type(map_location).__name__}")


def _read_safetensors(path: str, device: str):
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
    if _METADATA_KEY not in raw_metadata:  # a safetensors file from elsewhere
        return tensors, {"format": "safetensors", "model": None, "user": dict(raw_metadata)}
    try:
        metadata = json.loads(raw_metadata[_METADATA_KEY])
    except ValueError as error:
        raise CheckpointError(f"{path}: corrupted spikingrnn metadata ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: corrupted spikingrnn metadata (not a {FORMAT} document)")
    version = metadata.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: corrupted spikingrnn metadata (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {metadata['format_version']} is newer than this "
                              f"spikingrnn reads ({FORMAT_VERSION}); upgrade spikingrnn")
    expected = metadata.get("sha256")
    if expected is not None and _digest(tensors) != expected:
        raise CheckpointError(f"{path}: corrupted checkpoint: the tensors do not match the checksum saved with them")
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


def _read_torch(path: str, device: str):
    from .compat.checkpoints import unwrap_state_dict
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note about pickle protocols
            obj = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"{path}: refused: the file carries pickled code (classes, functions or other objects beyond "
            f"tensors and plain containers, e.g. a whole pickled nn.Module or a __reduce__ payload) that "
            f"torch.load(weights_only=True) will not run; loading it could execute arbitrary code. Re-save "
            f"only the state_dict (or use save_checkpoint) from a trusted environment. "
            f"torch said: {_unpickling_reason(error)}") from None
    except Exception as error:  # zip/pickle framing errors of a damaged file
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise CheckpointError(f"{path}: truncated or corrupted torch checkpoint "
                              f"({type(error).__name__}: {reason})") from None
    try:
        flat = unwrap_state_dict(obj)
    except TypeError as error:
        raise CheckpointError(f"{path}: not a state dict: {error}") from None
    for key, value in flat.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                                  "expected a state dict (optionally under 'state_dict' or 'model')")
    return flat, {"format": "torch", "model": None, "user": {}}


def load_checkpoint(path, map_location=None) -> tuple["OrderedDict[str, Tensor]", dict]:
    """Read a checkpoint: ``(state_dict, metadata)``.

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
        UnsafeCheckpointError: a pickle that carries code (refused, never run).
        CheckpointError: anything else that is not a complete, intact checkpoint.
        FileNotFoundError: no such file.
    """
    path = os.fspath(path)
    device = _device(map_location)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if _kind(path) == "torch":
        return _read_torch(path, device)
    return _read_safetensors(path, device)


def _first_floating(state_dict: Mapping[str, Tensor]):
    return next((t.dtype for t in state_dict.values() if t.is_floating_point()), None)


def load_model(path, map_location=None, **overrides) -> nn.Module:
    """Rebuild the spikingrnn module saved by ``save_checkpoint(path, model)``.

    Args:
        path: the checkpoint.
        map_location: device of the new module (``None``: CPU).
        **overrides: constructor arguments replacing the saved ones (e.g. ``backend="cpu"``,
            or a custom surrogate that the checkpoint could not hold).

    Returns:
        A fresh module of the saved class and configuration, in the saved dtype, with every
        tensor loaded strictly, in training mode (call ``.eval()`` for inference). Nothing is
        returned unless all of that succeeded.
    """
    state_dict, metadata = load_checkpoint(path, map_location)
    path = os.fspath(path)
    info = metadata.get("model")
    if not isinstance(info, Mapping) or info.get("config") is None:
        what = info.get("class") if isinstance(info, Mapping) else None
        raise CheckpointError(
            f"{path}: the checkpoint holds no spikingrnn model configuration "
            f"({'saved from ' + what if what else 'saved as a state dict or by another tool'}); load its tensors "
            f"with load_checkpoint() or load_into(), or re-save with save_checkpoint(path, model) from one of "
            f"{', '.join(MODEL_CLASSES)}")
    name, config = info.get("class"), info.get("config")
    classes = _model_classes()
    if name not in classes or not isinstance(config, Mapping):
        raise CheckpointError(f"{path}: unknown model class {name!r}; load_model rebuilds {', '.join(MODEL_CLASSES)}")
    kwargs = dict(config)
    for argument in _SURROGATE_ARGS.get(name, ("surrogate_function1", "surrogate_function2")):
        if argument not in overrides:
            kwargs[argument] = _decode_surrogate(kwargs.get(argument), argument, path)
    kwargs.update(overrides)
    kwargs.setdefault("dtype", _first_floating(state_dict))
    kwargs.setdefault("device", _device(map_location))
    try:
        model = classes[name](**kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot rebuild {name} from the saved configuration: {error}") from None
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the tensors do not fit the saved {name} configuration: "
                              f"{' '.join(str(error).split())}") from None
    return model


def load_into(model: nn.Module, path, strict: bool = True, map_location=None) -> dict:
    """Load a checkpoint's tensors into ``model``, all or nothing.

    Every key, shape and dtype kind is checked before ``model`` is touched: on any error
    ``model`` keeps all its parameters. ``map_location`` defaults to the device of ``model``'s
    first parameter. Returns the checkpoint's metadata.
    """
    if map_location is None:
        first = next(iter(model.parameters()), None)
        map_location = first.device if first is not None else None
    state_dict, metadata = load_checkpoint(path, map_location)
    path = os.fspath(path)
    own = model.state_dict()
    problems = []
    if strict:
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
    for key, value in state_dict.items():
        if key in own:
            if value.shape != own[key].shape:
                problems.append(f"{key!r} has shape {tuple(value.shape)} in the checkpoint, "
                                f"{tuple(own[key].shape)} in the model")
            elif value.is_floating_point() != own[key].is_floating_point():
                problems.append(f"{key!r} is {value.dtype} in the checkpoint, {own[key].dtype} in the model")
    if problems:
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}, nothing was loaded: "
                              + "; ".join(problems))
    model.load_state_dict(state_dict, strict=strict)
    return metadata
