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
from typing import Any

from torch import Tensor, nn

from ..nn import SpikingGRU, SpikingLSTM, SpikingRNN
from ..io.state_dicts import preview_keys, unwrap_state_dict
from ..ops.spec import GATES_PER_MODE

__all__ = ["convert_spikingjelly_state_dict", "infer_spikingjelly_config", "from_spikingjelly",
           "unwrap_state_dict", "SPIKING_CLASSES", "LAYOUTS"]

SPIKING_CLASSES = {"LSTM": SpikingLSTM, "GRU": SpikingGRU, "RNN": SpikingRNN}
_MODE_BY_GATES = {gates: mode for mode, gates in GATES_PER_MODE.items()}
_MODE_ALIASES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "vanillarnn": "RNN", "vanilla_rnn": "RNN"}
# SpikingJelly's class names (both generations)
_SJ_CLASS_MODES = {"SpikingLSTM": "LSTM", "SpikingGRU": "GRU", "SpikingVanillaRNN": "RNN"}

_SJ_KEY = re.compile(r"^(cells|cells_reverse)\.(0|[1-9][0-9]*)\.linear_(ih|hh)\.(weight|bias)$")
_CONFIG_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "bidirectional", "proj_size", "nonlinearity")


def _sj_key(direction: int, layer: int, kind: str, what: str) -> str:
    return f"{'cells_reverse' if direction else 'cells'}.{layer}.linear_{kind}.{what}"


def _torch_key(direction: int, layer: int, kind: str, what: str) -> str:
    return f"{what}_{kind}_l{layer}{'_reverse' if direction else ''}"


def _normalize_mode(mode: object) -> str | None:
    if mode is None:
        return None
    normalized = _MODE_ALIASES.get(mode.lower()) if isinstance(mode, str) else None
    if normalized is None:
        raise ValueError(f"mode must be None, 'LSTM', 'GRU' or 'RNN' (or 'VanillaRNN'), got {mode!r}")
    return normalized


def _parse(state_dict: object, mode: str | None,
           prefix: str | None) -> tuple[dict[str, Any], OrderedDict[str, Tensor]]:
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
                         f"found only {preview_keys(sorted(key for key, _ in entries.values()))}")
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


def convert_spikingjelly_state_dict(state_dict: object, mode: str | None = None, *,
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


def infer_spikingjelly_config(state_dict: object, mode: str | None = None, *,
                              prefix: str | None = None) -> dict[str, Any]:
    """``{"mode", "input_size", "hidden_size", "num_layers", "bidirectional", "bias"}`` of a
    SpikingJelly rnn state dict (checked like :func:`convert_spikingjelly_state_dict`)."""
    return _parse(state_dict, mode, prefix)[0]


def _translate_surrogate(surrogate: object) -> object:
    """spikingrnn's equivalent of a SpikingJelly built-in surrogate (same class name, alpha and
    spiking flag, hence the same forward and backward); anything else deep-copied as it is."""
    from ..surrogate import builtin_equivalent
    if surrogate is None:
        return None
    equivalent = builtin_equivalent(surrogate)
    return equivalent if equivalent is not None else copy.deepcopy(surrogate)


def _module_settings(module: object, mode: str) -> dict[str, Any]:
    """Dropout and surrogates of a SpikingJelly(-style) module, as spikingrnn arguments."""
    settings: dict[str, Any] = {}
    dropout_p = getattr(module, "dropout_p", None)
    if isinstance(dropout_p, (int, float)):
        settings["dropout"] = float(dropout_p)
    invariant_dropout_mask = getattr(module, "invariant_dropout_mask", None)
    if isinstance(invariant_dropout_mask, bool):
        settings["invariant_dropout_mask"] = invariant_dropout_mask
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


LAYOUTS = ("torch", "spikingjelly")
_SJ_DEFAULTS = "SpikingJelly's defaults are surrogate_function1=surrogate.Erf() (alpha=2.0) and surrogate_function2=None"


def _layout(layout: str | None, config: dict[str, Any]) -> str:
    """``layout`` checked; ``None`` is ``"torch"`` where both layouts order the states alike, an error where not."""
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"from_spikingjelly: layout must be 'torch', 'spikingjelly' or None, got {layout!r}")
    if layout is None:
        if config["bidirectional"] and config["num_layers"] > 1:
            mode, layers = config["mode"], config["num_layers"]
            raise ValueError(
                f"from_spikingjelly: a bidirectional {layers}-layer model orders its initial and final states "
                f"differently in SpikingJelly (direction-major: [layer] forward, [layer + num_layers] reverse) and "
                f"in torch.nn.{mode} (layer-major: [2 * layer + direction]); say which your code passes: "
                f"layout='spikingjelly' (spikingrnn.compat.spikingjelly's class, SpikingJelly's interface) or "
                f"layout='torch' (spikingrnn.Spiking{mode}, torch.nn.{mode}'s interface)")
        return "torch"
    return layout


def _require_surrogates(mode: str, layout: str, kwargs: dict[str, Any]) -> None:
    """A state dict does not record the surrogates: they must be passed, never guessed."""
    names: tuple[str, ...]
    if mode == "RNN":
        names = ("surrogate_function",) if layout == "spikingjelly" else ("surrogate_function1",)
        if "surrogate_function1" in kwargs or "surrogate_function" in kwargs:
            return
    else:
        names = ("surrogate_function1", "surrogate_function2")
        if all(name in kwargs for name in names):
            return
    raise ValueError(
        f"from_spikingjelly: a state dict or checkpoint file does not record the surrogate functions the model was "
        f"trained with, and another one changes its gradients: pass {' and '.join(names)} as in training "
        f"({_SJ_DEFAULTS}{', i.e. Erf for every gate' if mode != 'RNN' else ''}; pass those to get them), or "
        f"convert the SpikingJelly module itself, whose surrogates carry over")


def _spikingjelly_module(config: dict[str, Any], flat: dict[str, Any], settings: dict[str, Any]) -> nn.Module:
    """spikingrnn.compat.spikingjelly's class of ``config["mode"]`` holding ``flat`` (SpikingJelly's names)."""
    from . import spikingjelly as sj
    mode = config["mode"]
    settings = dict(settings)
    device, dtype, backend = settings.pop("device"), settings.pop("dtype"), settings.pop("backend", None)
    if "dropout" in settings:
        settings["dropout_p"] = settings.pop("dropout")
    if mode == "RNN" and "surrogate_function1" in settings:
        settings["surrogate_function"] = settings.pop("surrogate_function1")
    cls = {"LSTM": sj.SpikingLSTM, "GRU": sj.SpikingGRU, "RNN": sj.SpikingVanillaRNN}[mode]
    model = cls(config["input_size"], config["hidden_size"], config["num_layers"], bias=config["bias"],
                bidirectional=config["bidirectional"], **settings).to(device=device, dtype=dtype)
    if backend is not None:
        model.backend = backend
    model.load_state_dict(flat, strict=True)
    return model


def from_spikingjelly(sj_module_or_state_dict: object, mode: str | None = None, *, prefix: str | None = None,
                      layout: str | None = None, **kwargs: Any) -> nn.Module:
    """A spikingrnn module with a SpikingJelly model's weights.

    Args:
        sj_module_or_state_dict: a SpikingJelly rnn module (2.0 or ``clock_driven``, or
            :mod:`spikingrnn.compat.spikingjelly`'s), its state dict (see the module docstring
            for wrappers and prefixes), or the path of a checkpoint file, read with
            :func:`spikingrnn.io.load_checkpoint` (safetensors, or a ``.pt`` loaded with
            ``weights_only=True``).
        mode: ``"LSTM"``, ``"GRU"`` or ``"RNN"``; ``None`` infers it (from a module's class
            name, else from the shapes). The shapes must agree with it.
        prefix: keep only the keys under this prefix, stripped.
        layout: the interface of the result, which decides how its initial and final states are
            ordered: ``"torch"``: :class:`~spikingrnn.SpikingLSTM`/``SpikingGRU``/``SpikingRNN``
            (torch.nn's, layer-major ``[2 * layer + direction]``); ``"spikingjelly"``:
            :mod:`spikingrnn.compat.spikingjelly`'s class of the same name as SpikingJelly's
            (direction-major ``[layer]`` forward, ``[layer + num_layers]`` reverse, SpikingJelly's
            arguments). ``None``: ``"torch"`` where the two agree (one layer, or one direction);
            for a bidirectional multi-layer model it is an error, so that a SpikingJelly user's
            ``(h0, c0)`` can never be read in the other order.
        **kwargs: arguments of the new class (``batch_first``, ``backend``,
            ``surrogate_function1``, ``device``, ``dtype``, ...). The sizes, ``num_layers``,
            ``bias`` and ``bidirectional`` come from the checkpoint. From a module,
            ``dropout_p``, ``invariant_dropout_mask`` and the first cell's surrogates carry over
            unless given (SpikingJelly's built-in surrogates become spikingrnn's of the same name
            and ``alpha``). From a state dict or a file, which do not record them, the surrogates
            must be given (``surrogate_function1``, and ``surrogate_function2`` for LSTM and GRU,
            ``None`` being SpikingJelly's default): a guessed surrogate would silently change the
            gradients. An LSTM gets SpikingJelly's cell rule (``cell_state="clamp"``) unless given.
            Device and dtype default to the weights'.

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
    layout = _layout(layout, config)
    from_module = isinstance(module, nn.Module) and prefix is None
    if not from_module:
        _require_surrogates(config["mode"], layout, kwargs)
    settings = _module_settings(module, config["mode"]) if from_module else {}
    settings.update(kwargs)
    first = next(iter(converted.values()))
    settings.setdefault("device", first.device)
    settings.setdefault("dtype", first.dtype)
    if layout == "spikingjelly":
        model = _spikingjelly_module(config, unwrap_state_dict(source, prefix), settings)
    else:
        if config["mode"] in ("LSTM", "GRU"):  # SpikingJelly's cell, whatever spikingrnn's defaults
            settings.setdefault("gates", "heaviside")
            settings.setdefault("forget_bias", None)
        if config["mode"] == "RNN":
            settings.setdefault("leak", None)
        if config["mode"] == "LSTM":
            settings.setdefault("cell_state", "clamp")
        settings.setdefault("rate_penalty", 0.0)  # SpikingJelly's gradients: the loss's alone
        cls = SPIKING_CLASSES[config["mode"]]
        model = cls(config["input_size"], config["hidden_size"], num_layers=config["num_layers"],
                    bias=config["bias"], bidirectional=config["bidirectional"], **settings)
        model.load_state_dict(converted, strict=True)
    if isinstance(module, nn.Module):
        model.train(module.training)
    return model
