"""What a checkpoint records to rebuild a module, and how the module is rebuilt from it.

``model_config(model)`` gives ``{"class": name, "config": {...}}``: the constructor arguments of
:class:`~spikingrnn.SpikingLSTM`, ``SpikingGRU``, ``SpikingRNN`` and the cells (built-in
surrogates as ``{"name", "alpha", "spiking"}``), or, for
:class:`~spikingrnn.train.SpikingClassifier` (what ``spikingrnn train`` saves), its input size,
class count and training configuration. :func:`construct` builds the module back, on any device
(``"meta"`` to check the shapes without allocating).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from .errors import CheckpointError

if TYPE_CHECKING:
    from ..surrogate import SurrogateFunction
    from ..train.model import SpikingClassifier

__all__ = ["MODEL_CLASSES", "model_config", "model_classes", "construct", "stack_size"]


def model_classes() -> dict[str, type[nn.Module]]:
    """``{name: class}`` of the modules :func:`~spikingrnn.io.load_model` rebuilds."""
    from ..nn import SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN, SpikingRNNCell
    from ..train.model import SpikingClassifier
    return {cls.__name__: cls for cls in (SpikingLSTM, SpikingGRU, SpikingRNN, SpikingLSTMCell, SpikingGRUCell,
                                          SpikingRNNCell, SpikingClassifier)}


MODEL_CLASSES = ("SpikingLSTM", "SpikingGRU", "SpikingRNN", "SpikingLSTMCell", "SpikingGRUCell", "SpikingRNNCell",
                 "SpikingClassifier")

# What a checkpoint records of a spiking module: its constructor arguments of roles "config" and
# "spiking" as they are, and its surrogates (role "surrogate") encoded; the arguments and their roles
# are listed once, in spikingrnn.nn.base.CONSTRUCTOR_ARGUMENTS.
_RECORDED_ROLES = ("config", "spiking")


def _surrogate_arguments(name: str) -> tuple[str, ...]:
    from ..nn.base import constructor_parameters
    return tuple(argument.name for argument in constructor_parameters(model_classes()[name], ("surrogate",)))


def _encode_surrogate(surrogate: Any) -> dict[str, Any] | None:
    from ..surrogate import SURROGATES
    if surrogate is None:
        return None
    for name, cls in SURROGATES.items():
        if type(surrogate) is cls:
            return {"name": name, "alpha": surrogate.alpha, "spiking": surrogate.spiking}
    # a custom callable: recorded by description; load_model needs it passed again
    return {"name": None, "repr": repr(surrogate)[:200]}


def _decode_surrogate(spec: Any, argument: str, path: str) -> SurrogateFunction | None:
    from ..surrogate import SURROGATES
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


def model_config(model: nn.Module) -> dict[str, Any]:
    """``{"class": name, "config": constructor arguments}`` of a module that
    :func:`~spikingrnn.io.load_model` can rebuild; ``{"class": qualified name, "config": None}``
    for any other."""
    name = type(model).__name__
    if model_classes().get(name) is not type(model):
        return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "config": None}
    if name == "SpikingClassifier":
        return {"class": name, "config": cast("SpikingClassifier", model).checkpoint_config()}
    from ..nn.base import constructor_arguments
    config = constructor_arguments(model, _RECORDED_ROLES)
    for argument in _surrogate_arguments(name):
        config[argument] = _encode_surrogate(getattr(model, argument))
    return {"class": name, "config": config}


def _count(config: Mapping[str, Any], key: str, path: str) -> int:
    value = config.get(key, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(f"{path}: corrupted configuration: {key} must be an integer >= 1, got {value!r}")
    return value


def stack_size(name: str, config: Mapping[str, Any], path: str) -> int:
    """How many (layer, direction) pairs the configuration asks for: each holds at least two
    weight tensors, so a file with fewer tensors is refused before anything is built."""
    if name == "SpikingClassifier":
        train = config.get("train")
        if not isinstance(train, Mapping):
            raise CheckpointError(f"{path}: corrupted configuration: no training configuration for {name}")
        return _count(train, "layers", path) * (2 if train.get("bidirectional") else 1)
    if name.endswith("Cell"):
        return 1
    return _count(config, "num_layers", path) * (2 if config.get("bidirectional") else 1)


def legacy_settings(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments that a saved configuration lacks because the version that wrote it had
    no such option, with the value that version ran: an LSTM or GRU saved before ``gates`` existed
    had Heaviside gates and torch's init (today's defaults: the sigmoid form, ``forget_bias`` 1), a
    vanilla RNN saved before ``leak`` existed was the seed's cell (``leak=None``; today's: 0.9), and a
    stack saved before ``rate_penalty`` existed trained without the penalty (``0.0``; today's: 0.2)."""
    settings: dict[str, Any] = {}
    if name in ("SpikingLSTM", "SpikingGRU", "SpikingRNN") and "rate_penalty" not in config:
        settings["rate_penalty"] = 0.0
    if name.replace("Cell", "") in ("SpikingLSTM", "SpikingGRU") and "gates" not in config:
        settings.update(gates="heaviside", forget_bias=None)
    if name.replace("Cell", "") == "SpikingRNN" and "leak" not in config:
        settings["leak"] = None
    return settings


def construct(name: str, config: Mapping[str, Any], overrides: Mapping[str, Any], path: str,
              device: str | torch.device, dtype: torch.dtype | None) -> nn.Module:
    """Build class ``name`` from its saved ``config`` with ``overrides``, on ``device`` in ``dtype``
    (``device="meta"`` allocates nothing). Any refusal of the constructor is a
    :class:`CheckpointError` naming ``path``."""
    cls = model_classes()[name]
    try:
        if name == "SpikingClassifier":
            with torch.device(device):
                model = cast("type[SpikingClassifier]", cls).from_checkpoint_config(config, **overrides)
            return model.to(dtype=dtype) if dtype is not None else model
        kwargs = {**legacy_settings(name, config), **config}
        for argument in _surrogate_arguments(name):
            if argument not in overrides:
                kwargs[argument] = _decode_surrogate(kwargs.get(argument), argument, path)
        kwargs.update(overrides)
        kwargs.setdefault("dtype", dtype)
        kwargs.setdefault("device", device)
        return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: sizes past what a tensor can have
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: cannot rebuild {name} from the saved configuration: {error}") from None
