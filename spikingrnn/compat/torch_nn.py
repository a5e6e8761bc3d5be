"""Conversion between ``torch.nn`` recurrent layers and spikingrnn's spiking ones.

:func:`from_torch` turns a ``torch.nn.LSTM``/``GRU``/``RNN`` (or ``LSTMCell``/``GRUCell``/
``RNNCell``) into the matching spiking module with the same configuration and a copy of its
weights, on the same device and in the same dtype; :func:`to_torch` goes the other way::

    from spikingrnn.compat.torch_nn import from_torch, to_torch

    lstm = torch.nn.LSTM(40, 128, num_layers=2, bidirectional=True)
    spiking = from_torch(lstm, surrogate_function1="atan")   # a SpikingLSTM, weights copied
    back = to_torch(spiking)                                 # a torch.nn.LSTM again

Plain ``state_dict`` loading works both ways too, without these helpers: the spiking modules
name, shape and order their parameters exactly like torch (``weight_ih_l0``,
``weight_hh_l0_reverse``, ``weight_hr_l1``, ``bias_ih`` of a cell, ...), so::

    spiking = spikingrnn.SpikingLSTM(40, 128, num_layers=2, bidirectional=True)
    spiking.load_state_dict(lstm.state_dict())      # torch -> spiking, strict
    lstm.load_state_dict(spiking.state_dict())      # spiking -> torch, strict

What does not carry over: a torch ``RNN``'s ``nonlinearity`` (``tanh``/``relu``) becomes the
spike (``"heaviside"``) of :class:`~spikingrnn.SpikingRNN`, and :func:`to_torch` drops the
spiking-only settings (surrogates, ``cell_state``, ``invariant_dropout_mask``, ``backend``,
``low_memory``), which torch's modules do not have. The converted module gets the source's
``training`` flag. The weights are copies: the two modules share no storage.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ..nn import (SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN, SpikingRNNBase,
                  SpikingRNNCell)
from ..nn.base import ALL_MODES, CONSTRUCTOR_ARGUMENTS, constructor_arguments, constructor_parameters
from ..nn.cells import SpikingCellBase

__all__ = ["from_torch", "to_torch", "TORCH_TO_SPIKING", "SPIKING_TO_TORCH"]

# exact classes only: a subclass may add parameters or change the math
TORCH_TO_SPIKING: dict[type, type] = {
    nn.LSTM: SpikingLSTM,
    nn.GRU: SpikingGRU,
    nn.RNN: SpikingRNN,
    nn.LSTMCell: SpikingLSTMCell,
    nn.GRUCell: SpikingGRUCell,
    nn.RNNCell: SpikingRNNCell,
}
SPIKING_TO_TORCH: dict[type, type] = {spiking: torch_cls for torch_cls, spiking in TORCH_TO_SPIKING.items()}

# Each side copies the other's configuration: the constructor arguments of role "config" in
# spikingrnn.nn.base.CONSTRUCTOR_ARGUMENTS (everything else is spiking-only or torch-only).
# from_torch also refuses, as coming from the source: device and dtype (role "factory"), what the
# spiking class fixes (role "fixed": nonlinearity), and the configuration torch.nn.RNNBase takes for every
# mode but spikingrnn only for some (proj_size: LSTM only).
_FROM_SOURCE = tuple(a.name for a in CONSTRUCTOR_ARGUMENTS
                     if a.role in ("factory", "fixed") or (a.role == "config" and a.modes != ALL_MODES))
_TORCH_NONLINEARITIES = ("tanh", "relu")


def _supported(mapping: dict[type, type]) -> str:
    return ", ".join(f"{cls.__module__.split('.')[0]}.nn.{cls.__name__}"
                     if cls.__module__.startswith("torch") else f"spikingrnn.{cls.__name__}"
                     for cls in mapping)


def _lookup(module: nn.Module, mapping: dict[type, type], function: str, hint: str) -> type:
    target = mapping.get(type(module))
    if target is None:
        raise TypeError(f"{function}: unsupported module type {type(module).__module__}.{type(module).__qualname__}; "
                        f"supported (exact classes): {_supported(mapping)}.{hint}")
    return target


def _device_dtype(module: nn.Module, function: str) -> dict[str, Any]:
    """The single device and dtype of ``module``'s parameters."""
    devices = {p.device for p in module.parameters()}
    dtypes = {p.dtype for p in module.parameters()}
    if len(devices) != 1 or len(dtypes) != 1:
        raise ValueError(f"{function}: the parameters of {type(module).__name__} must share one device and one dtype, "
                         f"got devices {sorted(map(str, devices))} and dtypes {sorted(map(str, dtypes))}")
    return {"device": devices.pop(), "dtype": dtypes.pop()}


def _config(module: nn.Module, spiking_class: type[nn.Module]) -> dict[str, Any]:
    """The torch.nn configuration of ``module`` (a torch or a spiking module) that ``spiking_class`` takes."""
    return constructor_arguments(module, ("config",), spiking_class)


def _copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Strict load of ``source``'s state_dict into ``target`` (a copy, names and shapes checked)."""
    target.load_state_dict(source.state_dict(), strict=True)
    target.train(source.training)


def from_torch(module: nn.Module, **spiking_kwargs: Any) -> nn.Module:
    """The spiking counterpart of a torch recurrent module, with its configuration and weights.

    Args:
        module: an instance of exactly ``torch.nn.LSTM``, ``GRU``, ``RNN``, ``LSTMCell``,
            ``GRUCell`` or ``RNNCell``.
        **spiking_kwargs: the spiking-only keyword arguments of the target class
            (``surrogate_function1``, ``surrogate_function2``, ``invariant_dropout_mask``, ``gates``,
            ``spike_threshold``, ``forget_bias``, ``chrono_steps``, ``cell_state``, ``cell_threshold``,
            ``leak``, ``backend``, ``low_memory``, as the class takes them). ``forget_bias`` (and
            ``chrono_steps``) only initialise biases, and the copied biases replace them: they do not
            change the copied weights. The
            configuration (sizes, ``num_layers``, ``bias``, ``batch_first``,
            ``dropout``, ``bidirectional``, ``proj_size``) and the device and dtype come from
            ``module`` and cannot be passed.

    Returns:
        A :class:`~spikingrnn.SpikingLSTM`, ``SpikingGRU``, ``SpikingRNN`` or the matching cell,
        holding a copy of ``module``'s weights, in ``module``'s training mode. A torch ``RNN``'s
        ``nonlinearity`` is replaced by the spike. This copies weights; it does not convert a
        trained network into an equivalent spiking one (the spiking module computes something
        else with the same weights and needs training or fine-tuning).

    Raises:
        TypeError: ``module`` is not one of the supported classes, or a keyword argument
            duplicates the copied configuration.
    """
    target = _lookup(module, TORCH_TO_SPIKING, "from_torch",
                     " To convert a spiking module back use to_torch()." if isinstance(
                         module, (SpikingRNNBase, SpikingCellBase)) else "")
    config = _config(module, target)
    reserved = set(config) | set(_FROM_SOURCE)
    clashing = sorted(reserved & set(spiking_kwargs))
    if clashing:
        raise TypeError(f"from_torch: {clashing} come from the {type(module).__name__} being converted; "
                        "pass only spiking arguments (surrogates, cell_state, backend, ...)")
    keyword_only = {a.name for a in constructor_parameters(target, ("spiking", "surrogate"))}
    unknown = sorted(set(spiking_kwargs) - keyword_only)
    if unknown:
        raise TypeError(f"from_torch: {target.__name__} takes no argument(s) {unknown}; "
                        f"its spiking arguments are {sorted(keyword_only)}")
    spiking = target(**config, **_device_dtype(module, "from_torch"), **spiking_kwargs)
    _copy_weights(module, spiking)
    return spiking


def to_torch(module: nn.Module, nonlinearity: str | None = None) -> nn.Module:
    """The ``torch.nn`` counterpart of a spiking module, with its configuration and weights.

    Args:
        module: an instance of exactly :class:`~spikingrnn.SpikingLSTM`, ``SpikingGRU``,
            ``SpikingRNN``, ``SpikingLSTMCell``, ``SpikingGRUCell`` or ``SpikingRNNCell``.
        nonlinearity: for ``SpikingRNN``/``SpikingRNNCell`` only, the activation of the torch
            module, ``"tanh"`` (default) or ``"relu"``.

    Returns:
        A ``torch.nn.LSTM``/``GRU``/``RNN`` or cell on ``module``'s device and dtype, holding a copy
        of its weights, in its training mode. Spiking-only settings (surrogates, ``cell_state``,
        ``invariant_dropout_mask``, ``backend``, ``low_memory``) have no torch equivalent and
        are dropped.

    Raises:
        TypeError: ``module`` is not one of the supported classes.
        ValueError: ``nonlinearity`` is not ``"tanh"``/``"relu"``, or is given for an LSTM/GRU.
    """
    from .spikingjelly import SpikingRNNBase as _SJBase
    hint = (" A SpikingJelly-style module converts with "
            "spikingrnn.compat.checkpoints.from_spikingjelly() first." if isinstance(module, _SJBase) else "")
    target = _lookup(module, SPIKING_TO_TORCH, "to_torch", hint)
    config = _config(module, type(module))
    if target in (nn.RNN, nn.RNNCell):
        nonlinearity = "tanh" if nonlinearity is None else nonlinearity
        if nonlinearity not in _TORCH_NONLINEARITIES:
            raise ValueError(f"to_torch: nonlinearity must be one of {_TORCH_NONLINEARITIES}, got {nonlinearity!r}")
        config["nonlinearity"] = nonlinearity
    elif nonlinearity is not None:
        raise ValueError(f"to_torch: nonlinearity applies to SpikingRNN/SpikingRNNCell only, "
                         f"not {type(module).__name__}")
    converted = target(**config, **_device_dtype(module, "to_torch"))
    _copy_weights(module, converted)
    return converted
