"""``load_model`` (rebuild a saved module) and ``load_into`` (fill an existing one), all or nothing."""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoints import device_of, load_checkpoint
from .errors import CheckpointError
from .model_configs import MODEL_CLASSES, construct, stack_size

__all__ = ["load_model", "load_into"]


def _first_floating(state_dict: Mapping[str, Tensor]) -> torch.dtype | None:
    return next((t.dtype for t in state_dict.values() if t.is_floating_point()), None)


def _legacy_classifier(metadata: Mapping[str, Any], state_dict: Mapping[str, Tensor], path: str
                       ) -> tuple[str, dict[str, Any]] | None:
    """``(class, config)`` of a ``best.safetensors`` that ``spikingrnn train`` wrote before it recorded
    its model: the training configuration is in the user metadata, the sizes in the tensors."""
    user = metadata.get("user")
    train = user.get("config") if isinstance(user, Mapping) else None
    encoder, readout = state_dict.get("encoder.weight"), state_dict.get("readout.weight")
    if not (isinstance(train, Mapping) and "task" in train and encoder is not None and readout is not None
            and encoder.dim() == 2 and readout.dim() == 2):
        return None
    warnings.warn(f"{path}: written by an older spikingrnn train: rebuilt from its training configuration "
                  f"(not covered by its checksum)", stacklevel=3)
    return "SpikingClassifier", {"input_size": int(encoder.shape[1]), "num_classes": int(readout.shape[0]),
                                 "train": dict(train)}


def _misfit(own: Mapping[str, Tensor], state_dict: Mapping[str, Tensor], target: str,
            strict: bool = True) -> list[str]:
    """What keeps ``state_dict`` from loading into a module whose state dict is ``own`` (names when
    ``strict``, shapes, and floating-point versus integer dtypes); ``target`` names the module's side."""
    problems = []
    if strict:
        for label, keys in (("missing", [k for k in own if k not in state_dict]),
                            ("unexpected", [k for k in state_dict if k not in own])):
            if keys:
                problems.append(f"{label} keys {keys[:8]}{' ...' if len(keys) > 8 else ''}")
    for key, value in state_dict.items():
        if key not in own:
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            problems.append(f"{key!r} has shape {tuple(value.shape)} in the file, {tuple(own[key].shape)} in {target}")
        elif value.is_floating_point() != own[key].is_floating_point():
            problems.append(f"{key!r} is {value.dtype} in the file, {own[key].dtype} in {target}")
    return problems


def load_model(path: str | os.PathLike[str], map_location: str | torch.device | None = None,
               **overrides: Any) -> nn.Module:
    """Rebuild the module saved by ``save_checkpoint(path, model)`` or by ``spikingrnn train``.

    Args:
        path: the checkpoint (e.g. ``runs/x/best.safetensors``).
        map_location: device of the new module (``None``: CPU).
        **overrides: constructor arguments replacing the saved ones (e.g. ``backend="cpu"``, or a
            custom surrogate that the checkpoint could not hold; for the classifier that
            ``spikingrnn train`` saves, fields of :class:`~spikingrnn.train.TrainConfig`).

    Returns:
        A fresh module of the saved class and configuration, in the saved dtype, with every
        tensor loaded strictly, in training mode (call ``.eval()`` for inference).

    The checksum over the tensors and the configuration is checked first; then the configuration
    is checked against the tensors without allocating (the layer count against the number of
    tensors, then every name and shape on a module built on the ``meta`` device): a corrupted or
    forged configuration is a :class:`CheckpointError`, never a huge allocation.
    """
    state_dict, metadata = load_checkpoint(path, map_location)
    path = os.fspath(path)
    info = metadata.get("model")
    found: tuple[Any, Any] | None = None
    if isinstance(info, Mapping) and isinstance(info.get("config"), Mapping):
        found = info.get("class"), info["config"]
    elif info is None:
        found = _legacy_classifier(metadata, state_dict, path)
    if found is None:
        what = info.get("class") if isinstance(info, Mapping) else None
        raise CheckpointError(
            f"{path}: the checkpoint holds no spikingrnn model configuration "
            f"({'saved from ' + what if what else 'saved as a state dict or by another tool'}); load its tensors "
            f"with load_checkpoint() or load_into(), or re-save with save_checkpoint(path, model) from one of "
            f"{', '.join(MODEL_CLASSES)}")
    name, config = found
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"{path}: unknown model class {name!r}; load_model rebuilds {', '.join(MODEL_CLASSES)}")
    pairs = stack_size(name, config, path)
    if 2 * pairs > len(state_dict):
        raise CheckpointError(f"{path}: the tensors do not fit the saved {name} configuration: it asks for "
                              f"{pairs} layer-directions (2 weight tensors each) but the file holds "
                              f"{len(state_dict)} tensors")
    overrides = dict(overrides)
    device = overrides.pop("device", device_of(map_location))
    dtype = overrides.pop("dtype", _first_floating(state_dict))
    problems = _misfit(construct(name, config, overrides, path, "meta", dtype).state_dict(), state_dict,
                       "the configuration")
    if problems:
        raise CheckpointError(f"{path}: the tensors do not fit the saved {name} configuration: "
                              + "; ".join(problems))
    model = construct(name, config, overrides, path, device, dtype)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: the tensors do not fit the saved {name} configuration: "
                              f"{' '.join(str(error).split())}") from None
    return model


def load_into(model: nn.Module, path: str | os.PathLike[str], strict: bool = True,
              map_location: str | torch.device | None = None) -> dict[str, Any]:
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
    problems = _misfit(model.state_dict(), state_dict, "the model", strict)
    if problems:
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}, nothing was loaded: "
                              + "; ".join(problems))
    model.load_state_dict(state_dict, strict=strict)
    return metadata
