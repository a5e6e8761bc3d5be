"""SpikingLSTMCell, SpikingGRUCell, SpikingRNNCell: one step, with torch.nn.*Cell's interface.

Parameters ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` are named, shaped and
initialised like torch's, so a torch cell's state_dict loads unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.types import Device

from ..functional.cells import (DEFAULT_CELL_STATE, DEFAULT_CELL_THRESHOLD, DEFAULT_FORGET_BIAS, DEFAULT_GATES,
                               DEFAULT_LEAK, DEFAULT_SPIKE_THRESHOLD, gru_step, lstm_step, rnn_step, state_spikes)
from ..ops.spec import GATES_PER_MODE
from ..surrogate import SpikeFn, SurrogateSpec
from . import validation as check
from .base import arguments_repr
from .initialization import init_memory_gate, memory_gate_setting, reset_uniform
from .modules import check_nonlinearity
from .surrogates import attach_surrogates, default_surrogate_alpha, surrogate_pair


class SpikingCellBase(nn.Module):
    """Parameters, initialisation and input checks shared by the spiking cells."""

    mode: str = ""
    surrogate_function1: SpikeFn
    surrogate_function2: SpikeFn | None
    bias_ih: nn.Parameter | None
    bias_hh: nn.Parameter | None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Device = None,
                 dtype: torch.dtype | None = None, *, surrogate_function1: SurrogateSpec = None,
                 surrogate_function2: SurrogateSpec = None, gates: str = "heaviside",
                 spike_threshold: float = DEFAULT_SPIKE_THRESHOLD, forget_bias: float | str | None = None,
                 chrono_steps: int | None = None) -> None:
        super().__init__()
        check.check_sizes(input_size, hidden_size, 1, 0)
        check.check_flag(bias, "bias")
        if self.mode != "RNN":
            check.check_neuron(gates, spike_threshold, forget_bias, type(self).__name__, chrono_steps)
            self.gates = gates
            self.spike_threshold = float(spike_threshold)
            self.forget_bias, self.chrono_steps = memory_gate_setting(self.mode, forget_bias, chrono_steps)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        attach_surrogates(self, surrogate_function1, surrogate_function2,
                          default_surrogate_alpha(self.mode, getattr(self, "gates", None)))
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        rows = GATES_PER_MODE[self.mode] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **factory))
            self.bias_hh = nn.Parameter(torch.empty(rows, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's uniform init, then the memory gate's bias ``forget_bias`` (LSTM and GRU; a number,
        ``"chrono"`` with ``chrono_steps``, or ``None``)."""
        reset_uniform(self.parameters(), self.hidden_size)
        init_memory_gate(self.bias_ih, self.bias_hh, self.mode, self.hidden_size, getattr(self, "forget_bias", None),
                         getattr(self, "chrono_steps", None))

    def extra_repr(self) -> str:
        return arguments_repr(self)

    def _prepare(self, input: Tensor, states: list[Tensor] | None) -> tuple[Tensor, list[Tensor], bool]:
        """Validate; returns ``(x [B, I], states [B, H] each, batched)``."""
        owner = type(self).__name__
        check.check_tensor(input, "input", owner)
        torch_name = owner.replace("Spiking", "")
        if input.dim() not in (1, 2):
            raise ValueError(f"{torch_name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        check.check_input_dtype(x, self.weight_ih, RuntimeError)
        if x.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {x.size(1)} expected {self.input_size}")
        if states is None:
            return x, [x.new_zeros(x.size(0), self.hidden_size) for _ in range(_num_states(self))], batched
        prepared = []
        for index, state in enumerate(states):
            if state.dim() != input.dim():
                kind = "batched 2-D" if batched else "unbatched 1-D"
                raise RuntimeError(
                    f"{owner}: for {kind} input, hidden{index} should also be {input.dim()}-D, got {state.dim()}-D")
            state = state if batched else state.unsqueeze(0)
            if state.size(0) != x.size(0):
                raise RuntimeError(f"Input batch size {x.size(0)} doesn't match hidden{index} batch size {state.size(0)}")
            if state.size(1) != self.hidden_size:
                raise RuntimeError(
                    f"hidden{index} has inconsistent hidden_size: got {state.size(1)}, expected {self.hidden_size}")
            check.check_state_like_input(state, x, f"hidden{index}")
            prepared.append(state)
        return x, prepared, batched


def _num_states(cell: SpikingCellBase) -> int:
    return 2 if cell.mode == "LSTM" else 1


class SpikingLSTMCell(SpikingCellBase):
    """One spiking LSTM step (see :class:`~spikingrnn.SpikingLSTM` for the math).

    ``forward(input [B, I] or [I], hx=(h [B, H], c [B, H]) or None) -> (h', c')``.
    """

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Device = None,
                 dtype: torch.dtype | None = None, *, surrogate_function1: SurrogateSpec = None,
                 surrogate_function2: SurrogateSpec = None, gates: str = DEFAULT_GATES,
                 spike_threshold: float = DEFAULT_SPIKE_THRESHOLD,
                 forget_bias: float | str | None = DEFAULT_FORGET_BIAS, chrono_steps: int | None = None,
                 cell_state: str = DEFAULT_CELL_STATE, cell_threshold: float = DEFAULT_CELL_THRESHOLD) -> None:
        check.check_neuron(gates, spike_threshold, forget_bias, type(self).__name__, chrono_steps)
        check.check_cell_state(cell_state, cell_threshold, type(self).__name__, gates)
        super().__init__(input_size, hidden_size, bias, device, dtype,
                         surrogate_function1=surrogate_function1, surrogate_function2=surrogate_function2,
                         gates=gates, spike_threshold=spike_threshold, forget_bias=forget_bias,
                         chrono_steps=chrono_steps)
        self.cell_state = cell_state
        self.cell_threshold = float(cell_threshold)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"{type(self).__name__}: hx must be a tuple (h, c) of two tensors, got {type(hx).__name__}")
        states = None if hx is None else [check.check_tensor(s, n, type(self).__name__) for s, n in zip(hx, ("h", "c"))]
        x, (h, c), batched = self._prepare(input, states)
        spike, spike_g = surrogate_pair(self)
        h, c = lstm_step(x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None,
                         spike=spike, spike_g=spike_g, cell_state=self.cell_state, threshold=self.cell_threshold,
                         gates=self.gates, spike_threshold=self.spike_threshold)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class SpikingGRUCell(SpikingCellBase):
    """One spiking GRU step: ``forward(input [B, I] or [I], hx [B, H] or None) -> h'`` (see
    :class:`~spikingrnn.SpikingGRU`). With ``gates="sigmoid"`` (default) ``hx`` and the result are the
    analog state ``s``; :meth:`spikes` gives the spikes the step emits."""

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Device = None,
                 dtype: torch.dtype | None = None, *, surrogate_function1: SurrogateSpec = None,
                 surrogate_function2: SurrogateSpec = None, gates: str = DEFAULT_GATES,
                 spike_threshold: float = DEFAULT_SPIKE_THRESHOLD,
                 forget_bias: float | str | None = DEFAULT_FORGET_BIAS, chrono_steps: int | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype, surrogate_function1=surrogate_function1,
                         surrogate_function2=surrogate_function2, gates=gates, spike_threshold=spike_threshold,
                         forget_bias=forget_bias, chrono_steps=chrono_steps)

    def spikes(self, state: Tensor) -> Tensor:
        """The spikes ``[B, H]`` (or ``[H]``) emitted with ``state``, the result of :meth:`forward`: the
        state itself for the heaviside form, ``Θ(state - spike_threshold)`` for the sigmoid form."""
        if self.gates != "sigmoid":
            return state
        return state_spikes(state, surrogate_pair(self)[0], self.spike_threshold)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        states = None if hx is None else [check.check_tensor(hx, "hx", type(self).__name__)]
        x, (h,), batched = self._prepare(input, states)
        spike, spike_n = surrogate_pair(self)
        (h,) = gru_step(x, (h,), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                        spike=spike, spike_n=spike_n, gates=self.gates, spike_threshold=self.spike_threshold)
        return h if batched else h.squeeze(0)


class SpikingRNNCell(SpikingCellBase):
    """One spiking vanilla RNN step: ``forward(input [B, I] or [I], hx [B, H] or None) -> h'`` (see
    :class:`~spikingrnn.SpikingRNN`). With a ``leak`` (default 0.9) ``hx`` and the result are the
    membrane ``v``; :meth:`spikes` gives the spikes the step emits."""

    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "heaviside",
                 device: Device = None, dtype: torch.dtype | None = None, *,
                 surrogate_function1: SurrogateSpec = None, leak: float | None = DEFAULT_LEAK,
                 spike_threshold: float = DEFAULT_SPIKE_THRESHOLD) -> None:
        check_nonlinearity(nonlinearity, type(self).__name__)
        check.check_rnn_neuron(leak, spike_threshold, type(self).__name__)
        super().__init__(input_size, hidden_size, bias, device, dtype, surrogate_function1=surrogate_function1)
        self.nonlinearity = nonlinearity
        self.leak = None if leak is None else float(leak)
        self.spike_threshold = float(spike_threshold)

    def spikes(self, state: Tensor) -> Tensor:
        """The spikes emitted with ``state`` (the result of :meth:`forward`): the state itself for the
        seed's cell (``leak=None``), ``Θ(state - spike_threshold)`` with a leak."""
        return state if self.leak is None else state_spikes(state, self.surrogate_function1, self.spike_threshold)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        states = None if hx is None else [check.check_tensor(hx, "hx", type(self).__name__)]
        x, (h,), batched = self._prepare(input, states)
        (h,) = rnn_step(x, (h,), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                        spike=self.surrogate_function1, leak=self.leak, spike_threshold=self.spike_threshold)
        return h if batched else h.squeeze(0)
