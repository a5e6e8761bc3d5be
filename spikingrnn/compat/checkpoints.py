"""SpikingJelly checkpoints -> spikingrnn modules.

SpikingJelly's spiking RNNs (``spikingjelly.activation_based.rnn`` in 2.0, and the older
``spikingjelly.clock_driven.rnn``) keep one ``nn.Linear`` pair per layer and direction::

    cells.{layer}.linear_ih.weight    [G*H, I or D*H]      ->  weight_ih_l{layer}
    cells.{layer}.linear_ih.bias      [G*H]                ->  bias_ih_l{layer}
    cells.{layer}.linear_hh.weight    [G*H, H]             ->  weight_hh_l{layer}
    cells.{layer}.linear_hh.bias      [G*H]                ->  bias_hh_l{layer}
    cells_reverse.{layer}.linear_...                       ->  ..._l{layer}_reverse

with ``G`` = 4 (LSTM, gate rows ``i|f|g|o``), 3 (GRU, ``r|z|n``) or 1 (vanilla RNN): the same
row order as torch, so the conversion is a renaming; the tensors are not reordered or copied.

What was checked against SpikingJelly's own code:

* 2.0 (``activation_based/rnn.py``, the version installed here): the names and shapes above,
  layer ``l > 0`` of either direction reads ``D * H`` features (``D = 2`` when bidirectional).
* ``clock_driven/rnn.py`` (SpikingJelly < 0.0.0.0.14, read from its repository history): the
  same names and shapes, so its checkpoints convert the same way, with two caveats.
  (1) In early versions ``create_cells`` built ``SpikingLSTMCell`` for every *unidirectional*
  stack whatever the class, so a unidirectional ``SpikingGRU``/``SpikingVanillaRNN``
  checkpoint of those versions holds LSTM weights (``4H`` rows): it is detected as an LSTM,
  and ``mode="GRU"``/``"RNN"`` is refused with the offending key. (2) Its unidirectional
  multi-layer forward fed layer ``l`` at step ``t`` from the *previous* step's state of layer
  ``l - 1`` (and its GRU cell once applied ``linear_hh`` to ``x``), so a converted model
  computes what SpikingJelly 2.0 and spikingrnn compute, not what the old code computed.

Mode inference: the hidden size ``H`` is the second dimension of ``cells.0.linear_hh.weight``;
its row count ``G*H`` then gives ``G`` and the mode. Sizes, ``num_layers``,
``bidirectional`` and ``bias`` follow from the keys and shapes, and every tensor is checked.

Accepted containers: a module (``state_dict()`` is taken), a state dict, a state dict whose
keys carry a DataParallel/DistributedDataParallel ``module.`` prefix, or one nested under a
``"state_dict"`` or ``"model"`` key (as training scripts save them). ``prefix="encoder.rnn."``
picks the RNN out of a larger model's state dict.
"""
from __future__ import annotations

import copy
import os
import re
from collections import OrderedDict
from collections.abc import Mapping

from torch import Tensor, nn

from ..nn import SpikingGRU, SpikingLSTM, SpikingRNN
from ..ops.spec import GATES_PER_MODE

__all__ = ["convert_spikingjelly_state_dict", "infer_spikingjelly_config", "from_spikingjelly",
           "unwrap_state_dict", "SPIKING_CLASSES"]

SPIKING_CLASSES = {"LSTM": SpikingLSTM, "GRU": SpikingGRU, "RNN": SpikingRNN}
_MODE_BY_GATES = {gates: mode for mode, gates in GATES_PER_MODE.items()}
_MODE_ALIASES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "vanillarnn": "RNN", "vanilla_rnn": "RNN"}
# SpikingJelly's class names (both generations)
_SJ_CLASS_MODES = {"SpikingLSTM": "LSTM", "SpikingGRU": "GRU", "SpikingVanillaRNN": "RNN"}

_SJ_KEY = re.compile(r"^(cells|cells_reverse)\.(0|[1-9][0-9]*)\.linear_(ih|hh)\.(weight|bias)$")
_WRAPPER_KEYS = ("state_dict", "model")
_DATA_PARALLEL = "module."
_CONFIG_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "bidirectional", "proj_size", "nonlinearity")


def _sj_key(direction: int, layer: int, kind: str, what: str) -> str:
    return f"{'cells_reverse' if direction else 'cells'}.{layer}.linear_{kind}.{what}"


def _torch_key(direction: int, layer: int, kind: str, what: str) -> str:
    return f"{what}_{kind}_l{layer}{'_reverse' if direction else ''}"


def _normalize_mode(mode) -> str | None:
    if mode is None:
        return None
    normalized = _MODE_ALIASES.get(mode.lower()) if isinstance(mode, str) else None
    if normalized is None:
        raise ValueError(f"mode must be None, 'LSTM', 'GRU' or 'RNN' (or 'VanillaRNN'), got {mode!r}")
    return normalized


def unwrap_state_dict(obj, prefix: str | None = None) -> "OrderedDict[str, object]":
    """The flat state dict inside ``obj``.

    Descends into ``obj["state_dict"]`` / ``obj["model"]`` when ``obj`` is such a wrapper (a
    mapping whose own keys are not parameter names), strips ``module.`` prefixes left by
    DataParallel, then keeps the keys under ``prefix`` (stripped), when given.
    """
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for _ in range(4):  # {"model": {"state_dict": ...}} at most a few levels deep
        if not isinstance(obj, Mapping):
            raise TypeError(f"expected a state dict (a mapping of names to tensors) or a module, "
                            f"got {type(obj).__name__}")
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None or any(isinstance(v, Tensor) for v in obj.values()):
            break
        obj = inner
    flat: OrderedDict[str, object] = OrderedDict()
    origin: dict[str, str] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"state dict keys must be strings, got {key!r} ({type(key).__name__})")
        name = key
        while name.startswith(_DATA_PARALLEL):
            name = name[len(_DATA_PARALLEL):]
        if prefix:
            if not name.startswith(prefix):
                continue
            name = name[len(prefix):]
        if name in flat:
            raise ValueError(f"keys {origin[name]!r} and {key!r} both name {name!r} once the "
                             f"'module.' prefix{' and ' + repr(prefix) if prefix else ''} is removed")
        flat[name] = value
        origin[name] = key
    if prefix and not flat:
        raise ValueError(f"no key of the state dict starts with prefix {prefix!r} "
                         f"(keys: {_preview(list(obj))})")
    return flat


def _preview(keys: list, count: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:count])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > count else "")


def _parse(state_dict, mode, prefix):
    """``(config, torch-layout state dict)`` of a SpikingJelly rnn state dict; every key and shape checked."""
    mode = _normalize_mode(mode)
    flat = unwrap_state_dict(state_dict, prefix)
    if not flat:
        raise ValueError("the state dict is empty: no SpikingJelly rnn parameters "
                         "(keys like 'cells.0.linear_ih.weight')")
    entries: dict[tuple, tuple[str, Tensor]] = {}
    for key, value in flat.items():
        match = _SJ_KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected key {key!r}: not a SpikingJelly rnn parameter (expected "
                             "'cells.{layer}.linear_ih.weight', 'cells_reverse.{layer}.linear_hh.bias', ...); "
                             "use prefix= to pick the RNN out of a larger model")
        if not isinstance(value, Tensor):
            raise TypeError(f"{key!r}: expected a tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{key!r}: expected a floating-point tensor, got {value.dtype}")
        stack, layer, kind, what = match.groups()
        entries[(int(stack == "cells_reverse"), int(layer), kind, what)] = (key, value)

    forward_layers = {layer for direction, layer, _, _ in entries if direction == 0}
    if not forward_layers:
        raise ValueError(f"no forward-direction parameters ('cells.0.linear_ih.weight', ...); "
                         f"found only {_preview(sorted(key for key, _ in entries.values()))}")
    num_layers = max(forward_layers) + 1
    bidirectional = any(direction == 1 for direction, _, _, _ in entries)
    directions = 2 if bidirectional else 1
    bias = any(what == "bias" for _, _, _, what in entries)
    whats = ("weight", "bias") if bias else ("weight",)
    # torch's order: per layer and direction w_ih, w_hh, b_ih, b_hh
    required = [(d, layer, kind, what) for layer in range(num_layers) for d in range(directions)
                for what in whats for kind in ("ih", "hh")]
    for item in entries:
        if item not in required:  # a reverse layer beyond the forward ones
            direction, layer, kind, what = item
            raise ValueError(f"unexpected key {entries[item][0]!r}: the checkpoint has forward layers "
                             f"0..{num_layers - 1} only (no {_sj_key(0, layer, kind, what)!r})")
    for item in required:
        if item not in entries:
            present = "a bias" if bias else "weights"
            raise ValueError(f"missing key {_sj_key(*item)!r}: the checkpoint has {num_layers} layer(s), "
                             f"{directions} direction(s) and {present} elsewhere")

    hh_key, w_hh = entries[(0, 0, "hh", "weight")]
    ih_key, w_ih = entries[(0, 0, "ih", "weight")]
    for key, weight in ((hh_key, w_hh), (ih_key, w_ih)):
        if weight.dim() != 2 or 0 in weight.shape:
            raise ValueError(f"{key!r} must be a non-empty 2-D weight, got shape {tuple(weight.shape)}")
    rows, hidden_size = w_hh.shape
    gates = rows // hidden_size
    if rows % hidden_size or gates not in _MODE_BY_GATES:
        raise ValueError(f"{hh_key!r} has shape {tuple(w_hh.shape)}: its {rows} rows are not 4, 3 or 1 times "
                         f"hidden_size {hidden_size} (its second dimension), so it is no LSTM, GRU or RNN weight")
    inferred = _MODE_BY_GATES[gates]
    if mode is not None and mode != inferred:
        expected_rows = GATES_PER_MODE[mode] * hidden_size
        raise ValueError(f"mode={mode!r} expects {GATES_PER_MODE[mode]} x hidden_size = {expected_rows} rows in "
                         f"{hh_key!r}, but it has shape {tuple(w_hh.shape)}: {gates} x hidden_size {hidden_size}, "
                         f"the layout of a{'n' if inferred == 'LSTM' else ''} {inferred}")
    mode = inferred
    input_size = w_ih.shape[1]

    converted: OrderedDict[str, Tensor] = OrderedDict()
    for item in required:
        _, layer, kind, what = item
        key, tensor = entries[item]
        columns = (input_size if layer == 0 else directions * hidden_size) if kind == "ih" else hidden_size
        expected = (gates * hidden_size, columns) if what == "weight" else (gates * hidden_size,)
        if tuple(tensor.shape) != expected:
            raise ValueError(f"{key!r} has shape {tuple(tensor.shape)}, expected {expected} for a {mode} with "
                             f"input_size={input_size}, hidden_size={hidden_size}, {num_layers} layer(s) and "
                             f"{directions} direction(s) (inferred from {ih_key!r} and {hh_key!r})")
        converted[_torch_key(*item)] = tensor
    config = {"mode": mode, "input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers,
              "bidirectional": bidirectional, "bias": bias}
    return config, converted


def convert_spikingjelly_state_dict(state_dict, mode: str | None = None, *,
                                    prefix: str | None = None) -> "OrderedDict[str, Tensor]":
    """A SpikingJelly rnn state dict renamed to torch's (and spikingrnn's) layout.

    Args:
        state_dict: a SpikingJelly ``SpikingLSTM``/``SpikingGRU``/``SpikingVanillaRNN`` state
            dict or module (see the module docstring for the accepted containers).
        mode: ``"LSTM"``, ``"GRU"`` or ``"RNN"`` to check the checkpoint against; ``None``
            infers it from the shapes.
        prefix: keep only the keys under this prefix (e.g. ``"encoder.rnn."``), stripped.

    Returns:
        ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (and
        ``_reverse``) in torch's parameter order. The tensors are the input's own (no copy);
        ``load_state_dict`` copies them.

    Raises:
        ValueError: an unknown, missing or duplicated key, a shape that does not fit the
            others, or a ``mode`` that the shapes contradict; the message names the key.
        TypeError: a value that is not a floating-point tensor.
    """
    return _parse(state_dict, mode, prefix)[1]


def infer_spikingjelly_config(state_dict, mode: str | None = None, *, prefix: str | None = None) -> dict:
    """``{"mode", "input_size", "hidden_size", "num_layers", "bidirectional", "bias"}`` of a
    SpikingJelly rnn state dict (checked like :func:`convert_spikingjelly_state_dict`)."""
    return _parse(state_dict, mode, prefix)[0]


def _translate_surrogate(surrogate):
    """spikingrnn's equivalent of a SpikingJelly surrogate (same class name, alpha and spiking
    flag, hence the same forward and backward); anything else deep-copied as it is."""
    from .. import surrogate as ours
    if surrogate is None:
        return None
    cls = getattr(ours, type(surrogate).__name__, None)
    params = tuple(getattr(surrogate, "_sg_param_names", None) or ("alpha",))
    if (type(surrogate).__module__.startswith("spikingjelly.") and isinstance(cls, type)
            and issubclass(cls, ours.SurrogateFunction) and params == ("alpha",)
            and isinstance(getattr(surrogate, "spiking", None), bool)):
        try:
            return cls(alpha=float(surrogate.alpha), spiking=surrogate.spiking)
        except (TypeError, ValueError, AttributeError):
            pass
    return copy.deepcopy(surrogate)


def _module_settings(module: nn.Module, mode: str) -> dict:
    """Dropout and surrogates of a SpikingJelly(-style) module, as spikingrnn arguments."""
    settings = {}
    if isinstance(getattr(module, "dropout_p", None), (int, float)):
        settings["dropout"] = float(module.dropout_p)
    if isinstance(getattr(module, "invariant_dropout_mask", None), bool):
        settings["invariant_dropout_mask"] = module.invariant_dropout_mask
    cells = getattr(module, "cells", None)
    cell = cells[0] if isinstance(cells, nn.Sequential) and len(cells) else None
    if cell is not None:
        if mode == "RNN":
            first = getattr(cell, "surrogate_function", getattr(cell, "surrogate_function1", None))
            second = None
        else:
            first = getattr(cell, "surrogate_function1", None)
            second = getattr(cell, "surrogate_function2", None)
        if first is not None:
            settings["surrogate_function1"] = _translate_surrogate(first)
        if second is not None:
            settings["surrogate_function2"] = _translate_surrogate(second)
    return settings


def from_spikingjelly(sj_module_or_state_dict, mode: str | None = None, *, prefix: str | None = None,
                      **kwargs) -> nn.Module:
    """A :class:`~spikingrnn.SpikingLSTM`/``SpikingGRU``/``SpikingRNN`` with a SpikingJelly model's weights.

    Args:
        sj_module_or_state_dict: a SpikingJelly rnn module (2.0 or ``clock_driven``, or
            :mod:`spikingrnn.compat.spikingjelly`'s), its state dict (see the module docstring
            for wrappers and prefixes), or the path of a checkpoint file, read with
            :func:`spikingrnn.io.load_checkpoint` (safetensors, or a ``.pt`` loaded with
            ``weights_only=True``).
        mode: ``"LSTM"``, ``"GRU"`` or ``"RNN"``; ``None`` infers it (from a module's class
            name, else from the shapes). The shapes must agree with it.
        prefix: keep only the keys under this prefix, stripped.
        **kwargs: arguments of the spikingrnn class (``batch_first``, ``backend``,
            ``surrogate_function1``, ``device``, ``dtype``, ...). The sizes, ``num_layers``,
            ``bias`` and ``bidirectional`` come from the checkpoint. From a module,
            ``dropout_p``, ``invariant_dropout_mask`` and the first cell's surrogates carry
            over unless given (SpikingJelly's built-in surrogates become spikingrnn's of the
            same name and ``alpha``). Device and dtype default to the weights'.

    Returns:
        The new module, holding copies of the weights (loaded strictly), in the source module's
        training mode (training for a state dict).
    """
    source = sj_module_or_state_dict
    if isinstance(source, (str, os.PathLike)):
        from ..io import load_checkpoint
        source = load_checkpoint(source)[0]
    module = source.module if isinstance(source, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else source
    if mode is None and isinstance(module, nn.Module) and prefix is None:
        mode = _SJ_CLASS_MODES.get(type(module).__name__)
    config, converted = _parse(source, mode, prefix)
    clashing = sorted(set(_CONFIG_ARGS) & set(kwargs))
    if clashing:
        raise TypeError(f"from_spikingjelly: {clashing} come from the checkpoint "
                        f"({', '.join(f'{k}={v!r}' for k, v in config.items())}) and cannot be passed")
    settings = _module_settings(module, config["mode"]) if isinstance(module, nn.Module) and prefix is None else {}
    settings.update(kwargs)
    first = next(iter(converted.values()))
    settings.setdefault("device", first.device)
    settings.setdefault("dtype", first.dtype)
    cls = SPIKING_CLASSES[config["mode"]]
    model = cls(config["input_size"], config["hidden_size"], num_layers=config["num_layers"], bias=config["bias"],
                bidirectional=config["bidirectional"], **settings)
    model.load_state_dict(converted, strict=True)
    if isinstance(module, nn.Module):
        model.train(module.training)
    return model
