"""Recompute a spiking RNN's gates with its own weights and count spikes, ACs and MACs.

See :mod:`spikingrnn.monitor` for the counting rules.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Literal, Optional, Tuple, Union, cast, overload

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..functional.cells import state_spikes, gru_step_gates, lstm_step_gates, rnn_step_gates
from ..nn.base import SpikingRNNBase
from ..nn.surrogates import surrogate_pair
from ..ops.spec import GATES_PER_MODE
from ..ops.storage import is_binary
from ..surrogate import heaviside

AC_PJ = 0.9   # pJ per accumulate, 32-bit float add, 45 nm (Horowitz 2014)
MAC_PJ = 4.6  # pJ per multiply-accumulate, 32-bit float mult (3.7) + add (0.9), 45 nm (Horowitz 2014)

GATE_NAMES = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n"), "RNN": ()}


def energy_pj(ac: float, mac: float) -> float:
    """Energy in picojoules of ``ac`` accumulates and ``mac`` multiply-accumulates: ``0.9*ac + 4.6*mac``."""
    return AC_PJ * ac + MAC_PJ * mac


def spiking_modules(model: nn.Module) -> dict[str, SpikingRNNBase]:
    """The spiking RNN stacks inside ``model`` by qualified name (``""`` for ``model`` itself)."""
    return {name: module for name, module in model.named_modules() if isinstance(module, SpikingRNNBase)}


def _nnz(t: Tensor) -> int:
    return int(torch.count_nonzero(t))


class _Tally:
    """Running sums of spikes, elements and operations of one module (mergeable across calls)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.spikes: dict[tuple[int, str], float] = defaultdict(float)
        self.elements: dict[tuple[int, str], int] = defaultdict(int)
        self.layer_ops: dict[int, dict[str, int]] = defaultdict(lambda: {"ac": 0, "mac": 0, "dense_mac": 0})
        self.layer_binary_input: dict[int, bool] = {}
        self.samples = 0
        self.sample_steps = 0
        self.calls = 0

    def gate(self, layer: int, name: str, values: Tensor) -> None:
        self.spikes[(layer, name)] += float(values.sum())
        self.elements[(layer, name)] += values.numel()

    def ops(self, layer: int, ac: int = 0, mac: int = 0, dense_mac: int = 0) -> None:
        counts = self.layer_ops[layer]
        counts["ac"] += ac
        counts["mac"] += mac
        counts["dense_mac"] += dense_mac

    def summary(self) -> dict:
        layers = sorted(self.layer_ops)
        rates: dict[str, dict[str, float]] = {}
        for (layer, name), total in self.spikes.items():
            rates.setdefault(f"layer{layer}", {})[name] = total / max(self.elements[(layer, name)], 1)
        ac = sum(self.layer_ops[l]["ac"] for l in layers)
        mac = sum(self.layer_ops[l]["mac"] for l in layers)
        dense = sum(self.layer_ops[l]["dense_mac"] for l in layers)
        spikes = sum(self.spikes.values())
        elements = sum(self.elements.values())
        energy, dense_energy = energy_pj(ac, mac), energy_pj(0, dense)
        n = max(self.samples, 1)
        return {
            "mode": self.mode,
            "calls": self.calls,
            "samples": self.samples,
            "sample_steps": self.sample_steps,
            "rates": {key: dict(sorted(value.items())) for key, value in sorted(rates.items())},
            "mean_rate": spikes / max(elements, 1),
            "ac": ac, "mac": mac, "synops": ac + mac, "dense_mac": dense,
            "energy_pj": energy, "dense_energy_pj": dense_energy,
            "energy_ratio": energy / dense_energy if dense_energy else float("nan"),
            "per_sample": {"ac": ac / n, "mac": mac / n, "dense_mac": dense / n,
                           "energy_pj": energy / n, "dense_energy_pj": dense_energy / n},
            "layers": [dict(layer=l, input_binary=self.layer_binary_input.get(l, False), **self.layer_ops[l])
                       for l in layers],
        }


# hx as SpikingLSTM/GRU/RNN.forward takes it: h, (h, c) for an LSTM, or None for zeros
_Hx = Optional[Union[Tensor, Tuple[Tensor, Tensor]]]
# a cell's step: (x [B, I], state, layer weights) -> (new state, the gates of the mode's NamedTuple)
_Step = Callable[[Tensor, Any, Tuple[Any, ...]], Tuple[Any, Any]]


def _time_major(rnn: SpikingRNNBase, input: object, hx: _Hx) -> tuple[Tensor, list[Tensor]]:
    """``x [T, B, I]`` and the per-cell initial states (zeros when ``hx`` is ``None``)."""
    if isinstance(input, PackedSequence):
        raise TypeError("spikingrnn.monitor: PackedSequence input is not supported; pass a padded tensor")
    if not isinstance(input, Tensor) or input.dim() not in (2, 3):
        raise ValueError(f"spikingrnn.monitor: input must be a 2-D or 3-D tensor, got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    batched = input.dim() == 3
    x = input if batched else input.unsqueeze(1)
    if batched and rnn.batch_first:
        x = x.transpose(0, 1)
    if hx is None:
        states = [x.new_zeros(size) for size in rnn.state_sizes(x.shape[1])]
    else:
        states = list(hx) if rnn.mode == "LSTM" else [cast(Tensor, hx)]
        if not batched:
            states = [s.unsqueeze(1) for s in states]
    return x, states


def _step_gates(rnn: SpikingRNNBase) -> _Step:
    """``step(x [B, I], state, weights) -> (state, gates)``: the functional step of ``rnn``'s cell with its
    surrogates and cell-state rule, the reference backend's formulas (see :mod:`spikingrnn.functional.cells`)."""
    spike, spike_g = surrogate_pair(rnn)
    if rnn.mode == "LSTM":
        return lambda x, state, weights: lstm_step_gates(x, state, *weights, spike=spike, spike_g=spike_g,
                                                         cell_state=rnn.cell_state, threshold=rnn.cell_threshold,
                                                         gates=rnn.gates, spike_threshold=rnn.spike_threshold)
    if rnn.mode == "GRU":
        return lambda x, state, weights: gru_step_gates(x, state, *weights[:4], spike=spike, spike_n=spike_g,
                                                        gates=rnn.gates, spike_threshold=rnn.spike_threshold)
    return lambda x, state, weights: rnn_step_gates(x, state, *weights[:4], spike=spike, leak=rnn.leak,
                                                    spike_threshold=rnn.spike_threshold)


def _run_cell(rnn: SpikingRNNBase, tally: _Tally, layer: int, y: Tensor, state: tuple[Tensor, ...],
              weights: tuple, reverse: bool) -> Tensor:
    """One layer and direction over ``y [T, B, I_l]``, recording gates and operations; returns ``h [T, B, H_out]``."""
    w_ih, w_hh, b_ih, b_hh, w_hr = weights
    step = _step_gates(rnn)
    # the sigmoid form's gates are analog values, not spikes: only its output h fires
    sigmoid = rnn.mode != "RNN" and rnn.gates == "sigmoid"
    mode, names = rnn.mode, () if sigmoid else GATE_NAMES[rnn.mode]
    # the sigmoid-form GRU's and the leaky RNN's state is analog: what they send (output and recurrent
    # input) are its spikes
    sends_spikes_of_state = rnn.spec().emits_state_spikes
    steps, batch, fan_in = y.shape
    fan_out = w_ih.shape[0]  # G*H
    hidden, h_out = rnn.hidden_size, rnn.real_hidden_size
    outputs: list[Tensor | None] = [None] * steps
    previous_h, pre_projection, cells = [], [], []
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    sent = state_spikes(state[0], heaviside, rnn.spike_threshold) if sends_spikes_of_state else state[0]
    for t in order:
        previous_h.append(sent)
        state, gates = step(y[t], state, weights)
        sent = gates.h if sends_spikes_of_state else state[0]
        for name in names:
            tally.gate(layer, name, getattr(gates, name))
        tally.gate(layer, "h", gates.h)  # with a projection: o*c, before W_hr
        if mode == "LSTM":
            cells.append(gates.c)
            if w_hr is not None:
                pre_projection.append(gates.h)
        outputs[t] = sent
    if mode == "LSTM" and rnn.cell_state == "spike" and not sigmoid:
        tally.gate(layer, "c", torch.stack(cells))
    # input projection W_ih x
    binary_input = is_binary(y)
    tally.layer_binary_input[layer] = binary_input
    if binary_input:
        tally.ops(layer, ac=_nnz(y) * fan_out)
    else:
        tally.ops(layer, mac=steps * batch * fan_in * fan_out)
    # recurrent projection W_hh h_{t-1}
    recurrent = torch.stack(previous_h)
    if is_binary(recurrent):
        tally.ops(layer, ac=_nnz(recurrent) * fan_out)
    else:
        tally.ops(layer, mac=steps * batch * h_out * fan_out)
    dense = steps * batch * fan_out * (fan_in + h_out)
    # LSTM projection W_hr (o*c)
    if pre_projection:
        projected = torch.stack(pre_projection)
        if is_binary(projected):
            tally.ops(layer, ac=_nnz(projected) * h_out)
        else:
            tally.ops(layer, mac=steps * batch * hidden * h_out)
        dense += steps * batch * hidden * h_out
    tally.ops(layer, dense_mac=dense)
    return torch.stack(cast("list[Tensor]", outputs))  # every step filled its slot


def _tally_rnn(rnn: SpikingRNNBase, input: object, hx: _Hx = None,
               tally: _Tally | None = None) -> tuple[_Tally, Tensor]:
    tally = tally if tally is not None else _Tally(rnn.mode)
    with torch.no_grad():
        x, states = _time_major(rnn, input, hx)
        weights = rnn.layer_weights()
        num_dirs = rnn.num_directions
        y = x
        for layer in range(rnn.num_layers):
            outputs = []
            for direction in range(num_dirs):
                k = layer * num_dirs + direction
                outputs.append(_run_cell(rnn, tally, layer, y, tuple(s[k] for s in states), weights[k],
                                         reverse=direction == 1))
            y = torch.cat(outputs, dim=2) if num_dirs == 2 else outputs[0]
        tally.samples += x.shape[1]
        tally.sample_steps += x.shape[0] * x.shape[1]
        tally.calls += 1
    return tally, y


@overload
def measure_rnn(rnn: SpikingRNNBase, input: Tensor, hx: _Hx = None,
                return_output: Literal[False] = False) -> dict[str, Any]: ...
@overload
def measure_rnn(rnn: SpikingRNNBase, input: Tensor, hx: _Hx = None, *,
                return_output: Literal[True]) -> tuple[dict[str, Any], Tensor]: ...
@overload
def measure_rnn(rnn: SpikingRNNBase, input: Tensor, hx: _Hx = None,
                return_output: bool = False) -> dict[str, Any] | tuple[dict[str, Any], Tensor]: ...


def measure_rnn(rnn: SpikingRNNBase, input: Tensor, hx: _Hx = None,
                return_output: bool = False) -> dict[str, Any] | tuple[dict[str, Any], Tensor]:
    """Firing rates and operation counts of one spiking RNN stack on ``input`` (its forward's arguments).

    Dropout between layers is not applied (the numbers are those of evaluation mode). Returns the
    summary dict (see :func:`measure`), and the recomputed time-major output ``[T, B, D*H_out]``
    as a second value when ``return_output``.
    """
    if not isinstance(rnn, SpikingRNNBase):
        raise TypeError(f"measure_rnn: expected a SpikingLSTM/GRU/RNN, got {type(rnn).__name__}")
    tally, output = _tally_rnn(rnn, input, hx)
    return (tally.summary(), output) if return_output else tally.summary()


def _forward_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    input = args[0] if args else kwargs.get("input")
    hx = args[1] if len(args) > 1 else kwargs.get("hx")
    return input, hx


def measure(model: nn.Module, *inputs: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``model(*inputs, **kwargs)`` once (no gradients, evaluation mode) and measure every spiking RNN in it.

    Returns, for a :class:`~spikingrnn.nn.base.SpikingRNNBase` ``model``, its summary; for any other
    module, ``{qualified name: summary}`` of each spiking RNN it calls. A summary holds:

    * ``rates``: ``{"layer0": {"h": ..}, ...}`` firing rates per layer of the emitted spikes ``h``
      and, with ``gates="heaviside"``, of every spiking gate too (LSTM ``i f g o h``, and ``c`` with
      ``cell_state="spike"``; GRU ``r z n h``);
      ``mean_rate`` over all of them;
    * ``ac``, ``mac``, ``synops`` (= ac + mac), ``dense_mac`` (the equivalent torch.nn module),
      ``energy_pj``, ``dense_energy_pj``, ``energy_ratio`` (spiking / dense), totals over the batch;
      ``per_sample`` the same divided by the number of samples;
    * ``layers``: per layer ``ac``, ``mac``, ``dense_mac`` and ``input_binary``;
    * ``samples``, ``sample_steps``, ``calls``, ``mode``.
    """
    if isinstance(model, SpikingRNNBase):
        was_training = model.training
        model.eval()
        try:
            return measure_rnn(model, *inputs, **kwargs)
        finally:
            model.train(was_training)
    with FiringRateMonitor(model) as monitor:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(*inputs, **kwargs)
        finally:
            model.train(was_training)
    return monitor.summary()


class FiringRateMonitor:
    """Accumulate firing rates and operation counts of every spiking RNN in ``model`` over forward calls.

    A context manager (or call :meth:`attach` / :meth:`detach`): while attached, a forward hook
    recomputes each spiking RNN's gates from the call's input and states without gradients
    (about one extra forward pass of the RNN). :meth:`summary` gives ``{name: summary}`` as
    :func:`measure`; :meth:`reset` clears the sums. The model is not modified.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.modules = spiking_modules(model)
        if not self.modules:
            raise ValueError(f"FiringRateMonitor: {type(model).__name__} contains no SpikingLSTM/GRU/RNN")
        self._handles: list = []
        self.reset()

    def reset(self) -> None:
        self._tallies = {name: _Tally(module.mode) for name, module in self.modules.items()}

    def attach(self) -> "FiringRateMonitor":
        if not self._handles:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name), with_kwargs=True))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any], object], None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: object) -> None:
            input, hx = _forward_arguments(args, kwargs)
            _tally_rnn(cast(SpikingRNNBase, module), input, hx, self._tallies[name])  # hooked on self.modules only
        return hook

    def summary(self) -> dict:
        return {name: tally.summary() for name, tally in self._tallies.items()}

    def __enter__(self) -> "FiringRateMonitor":
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()
