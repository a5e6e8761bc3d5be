"""Drop-in for SpikingJelly 2.0's ``spikingjelly.activation_based.rnn`` module.

Same class names, constructor signatures (``dropout_p``, ``surrogate_function1``, ...), parameter
names (``cells.0.linear_ih.weight``), direction-major state layout (``states[layer]`` forward,
``states[layer + num_layers]`` reverse), return types and extension API (subclass
:class:`SpikingRNNBase`, implement ``base_cell()`` and ``states_num()``), so existing code and
checkpoints run unchanged::

    from spikingrnn.compat.spikingjelly import SpikingLSTM, surrogate
    net = SpikingLSTM(input_size, hidden_size, num_layers, surrogate_function1=surrogate.ATan())

Without SpikingJelly's bugs: every default surrogate is a fresh instance per cell (never one
object shared by all layers and models), states are validated, cells follow the input dtype,
and user errors raise ``TypeError``/``ValueError`` instead of ``assert``. The built-in cells run
on :mod:`spikingrnn.ops` backends; a user-defined cell runs through a plain per-step loop.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Union, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import surrogate
from ..functional.cells import gru_step, lstm_step, rnn_step
from ..nn.surrogates import attach_surrogates, surrogate_pair
from ..ops.dispatch import resolve
from ..ops.spec import RNNSpec
from ..surrogate import SpikeFn, SurrogateSpec

__all__ = [
    "surrogate", "directional_rnn_cell_forward", "bidirectional_rnn_cell_forward",
    "SpikingRNNCellBase", "SpikingRNNBase", "SpikingLSTMCell", "SpikingLSTM",
    "SpikingVanillaRNNCell", "SpikingVanillaRNN", "SpikingGRUCell", "SpikingGRU",
]


def directional_rnn_cell_forward(cell: nn.Module, x: Tensor, states: Tensor) -> tuple[Tensor, Any]:
    """Run ``cell`` over ``x [T, B, I]`` from ``states`` (``[B, H]``, or ``[S, B, H]`` for S states).

    Returns ``(output [T, B, H], final states)``; the output is the first state of each step.
    """
    if not isinstance(states, Tensor) or states.dim() not in (2, 3):
        raise ValueError(f"states must be a 2-D or 3-D tensor, got {_shape_of(states)}")
    single = states.dim() == 2
    outputs = []
    for t in range(x.shape[0]):
        states = cell(x[t], states)
        outputs.append(states if single else states[0])
    return torch.stack(outputs), states


def bidirectional_rnn_cell_forward(cell: nn.Module, cell_reverse: nn.Module, x: Tensor, states: Tensor,
                                   states_reverse: Tensor) -> tuple[Tensor, Any, Any]:
    """Run ``cell`` forward and ``cell_reverse`` backward in time over ``x [T, B, I]``.

    Returns ``(output [T, B, 2H], final states, final reverse states)``.
    """
    if not isinstance(states_reverse, Tensor) or not isinstance(states, Tensor) \
            or states_reverse.dim() != states.dim():
        raise ValueError("states and states_reverse must be tensors of the same rank, either 2-D or 3-D, "
                         f"got {_shape_of(states)} and {_shape_of(states_reverse)}")
    y, final = directional_rnn_cell_forward(cell, x, states)
    y_reverse, final_reverse = _reverse_rnn_cell_forward(cell_reverse, x, states_reverse)
    return torch.cat((y, y_reverse), dim=-1), final, final_reverse


def _reverse_rnn_cell_forward(cell: nn.Module, x: Tensor, states: Tensor) -> tuple[Tensor, Any]:
    """Run ``cell`` from the last step of ``x [T, B, I]`` to the first; the output in ``x``'s time order.

    The cell reads the steps of ``x`` itself (views, as SpikingJelly does), not those of a flipped
    copy, whose other memory alignment can change float32 matmul results in the last bit.
    """
    single = states.dim() == 2
    outputs = []
    for t in range(x.shape[0] - 1, -1, -1):
        states = cell(x[t], states)
        outputs.append(states if single else states[0])
    return torch.stack(outputs).flip(0), states


def _shape_of(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


class SpikingRNNCellBase(nn.Module):
    """Base of the cells: ``input_size``, ``hidden_size``, ``bias``, uniform init, weight accessors."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias

    def reset_parameters(self) -> None:
        sqrt_k = math.sqrt(1 / self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -sqrt_k, sqrt_k)

    def weight_ih(self) -> Tensor:
        return self.linear_ih.weight

    def weight_hh(self) -> Tensor:
        return self.linear_hh.weight

    def bias_ih(self) -> Tensor | None:
        return self.linear_ih.bias

    def bias_hh(self) -> Tensor | None:
        return self.linear_hh.bias

    def _linears(self, gates: int) -> None:
        self.linear_ih = nn.Linear(self.input_size, gates * self.hidden_size, bias=self.bias)
        self.linear_hh = nn.Linear(self.hidden_size, gates * self.hidden_size, bias=self.bias)

    def _weights(self) -> tuple:
        """``(w_ih, w_hh, b_ih, b_hh, None)`` in :mod:`spikingrnn.ops`' layout."""
        return (self.linear_ih.weight, self.linear_hh.weight, self.linear_ih.bias, self.linear_hh.bias, None)

    def _check_step_input(self, x: object, states: list) -> None:
        owner = type(self).__name__
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{owner}: x must have shape [batch, {self.input_size}], got {_shape_of(x)}")
        for state in states:
            if not isinstance(state, Tensor) or tuple(state.shape) != (x.shape[0], self.hidden_size):
                raise ValueError(
                    f"{owner}: states must have shape [{x.shape[0]}, {self.hidden_size}], got {_shape_of(state)}")


class SpikingLSTMCell(SpikingRNNCellBase):
    """SpikingJelly 2.0's spiking LSTM cell (cell state clamped to 1, straight-through gradient)."""

    surrogate_function1: SpikeFn
    surrogate_function2: SpikeFn | None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 surrogate_function1: SurrogateSpec = None, surrogate_function2: SurrogateSpec = None) -> None:
        super().__init__(input_size, hidden_size, bias)
        self._linears(4)
        attach_surrogates(self, surrogate_function1, surrogate_function2)
        self.reset_parameters()

    def forward(self, x: Tensor, hc: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``x [B, I]``, ``hc = (h [B, H], c [B, H])`` or ``None`` -> ``(h, c)``."""
        if hc is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
            hc = (h, torch.zeros_like(h))
        if len(hc) != 2:
            raise ValueError(f"{type(self).__name__}: hc must hold (h, c), got {len(hc)} tensors")
        self._check_step_input(x, list(hc))
        spike, spike_g = surrogate_pair(self)
        return lstm_step(x, (hc[0], hc[1]), *self._weights(), spike=spike, spike_g=spike_g, cell_state="clamp",
                         gates="heaviside")


class SpikingGRUCell(SpikingRNNCellBase):
    """SpikingJelly 2.0's spiking GRU cell."""

    surrogate_function1: SpikeFn
    surrogate_function2: SpikeFn | None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 surrogate_function1: SurrogateSpec = None, surrogate_function2: SurrogateSpec = None) -> None:
        super().__init__(input_size, hidden_size, bias)
        self._linears(3)
        attach_surrogates(self, surrogate_function1, surrogate_function2)
        self.reset_parameters()

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """``x [B, I]``, ``h [B, H]`` or ``None`` -> ``h'``."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if h is None else h
        self._check_step_input(x, [h])
        spike, spike_n = surrogate_pair(self)
        return gru_step(x, (h,), *self._weights()[:4], spike=spike, spike_n=spike_n, gates="heaviside")[0]


class SpikingVanillaRNNCell(SpikingRNNCellBase):
    """SpikingJelly 2.0's spiking vanilla RNN cell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 surrogate_function: SurrogateSpec = None) -> None:
        super().__init__(input_size, hidden_size, bias)
        self._linears(1)
        self.surrogate_function = surrogate.get_surrogate(surrogate_function, argument="surrogate_function")
        self.reset_parameters()

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """``x [B, I]``, ``h [B, H]`` or ``None`` -> ``h'``."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if h is None else h
        self._check_step_input(x, [h])
        return rnn_step(x, (h,), *self._weights()[:4], spike=self.surrogate_function, leak=None)[0]


_BUILTIN_MODES: dict[type[nn.Module], str] = {SpikingLSTMCell: "LSTM", SpikingGRUCell: "GRU",
                                              SpikingVanillaRNNCell: "RNN"}
_BuiltinCell = Union[SpikingLSTMCell, SpikingGRUCell, SpikingVanillaRNNCell]


def _cell_surrogates(cell: _BuiltinCell) -> tuple[SpikeFn, SpikeFn]:
    if isinstance(cell, SpikingVanillaRNNCell):
        return cell.surrogate_function, cell.surrogate_function
    return surrogate_pair(cell)


class SpikingRNNBase(nn.Module):
    """SpikingJelly 2.0's base of multi-layer spiking RNNs.

    Subclasses implement ``base_cell()`` (the cell class, built as
    ``cell(input_size, hidden_size, bias, *args, **kwargs)``) and ``states_num()``.

    ``forward(x [T, B, I], states=None)``: ``states`` is ``None``, one tensor
    ``[L*D, B, H]`` (``states_num() == 1``) or a tuple of ``states_num()`` such tensors,
    direction-major (``[layer]`` forward, ``[layer + num_layers]`` reverse). Returns
    ``(output [T, B, D*H], states)`` in the same form.

    Beyond SpikingJelly: the attribute ``backend`` (``"auto"``, or a name of
    :data:`spikingrnn.ops.BACKENDS`) picks the backend that runs the built-in cells.
    """

    backend = "auto"
    cells: nn.Sequential
    cells_reverse: nn.Sequential  # only when bidirectional

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool = True, dropout_p: float = 0,
                 invariant_dropout_mask: bool = False, bidirectional: bool = False, *args: Any,
                 **kwargs: Any) -> None:
        super().__init__()
        owner = type(self).__name__
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{owner}: num_layers must be a positive int, got {num_layers!r}")
        if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0 <= dropout_p <= 1:
            raise ValueError(f"{owner}: dropout_p must be a number in [0, 1], got {dropout_p!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.dropout_p = dropout_p
        self.invariant_dropout_mask = invariant_dropout_mask
        self.bidirectional = bidirectional
        # create_cells returns a pair exactly when bidirectional
        if self.bidirectional:
            self.cells, self.cells_reverse = cast("tuple[nn.Sequential, nn.Sequential]",
                                                  self.create_cells(*args, **kwargs))
        else:
            self.cells = cast(nn.Sequential, self.create_cells(*args, **kwargs))

    def create_cells(self, *args: Any, **kwargs: Any) -> nn.Sequential | tuple[nn.Sequential, nn.Sequential]:
        """One ``nn.Sequential`` of cells per direction; layers > 0 read ``D * hidden_size`` features."""
        cell_type: Callable[..., nn.Module] = self.base_cell()
        directions = 2 if self.bidirectional else 1
        input_sizes = [self.input_size] + [self.hidden_size * directions] * (self.num_layers - 1)
        stacks = tuple(nn.Sequential(*(cell_type(size, self.hidden_size, self.bias, *args, **kwargs)
                                       for size in input_sizes)) for _ in range(directions))
        return (stacks[0], stacks[1]) if self.bidirectional else stacks[0]

    @staticmethod
    def base_cell() -> type[nn.Module]:
        raise NotImplementedError

    @staticmethod
    def states_num() -> int:
        raise NotImplementedError

    def _direction_stacks(self) -> list[nn.Sequential]:
        return [self.cells, self.cells_reverse] if self.bidirectional else [self.cells]

    def _states_tensor(self, x: Tensor, states: object) -> Tensor:
        """``states`` as one tensor ``[S, L*D, B, H]`` (direction-major), validated."""
        count = self.states_num()
        rows = self.num_layers * (2 if self.bidirectional else 1)
        expected = (count, rows, x.shape[1], self.hidden_size)
        if states is None:
            return x.new_zeros(expected)
        if isinstance(states, (tuple, list)):
            if len(states) != count:
                raise ValueError(f"{type(self).__name__}: states must be a tuple of {count} tensors "
                                 f"[{rows}, batch, {self.hidden_size}], got {len(states)} items")
            for index, state in enumerate(states):
                if not isinstance(state, Tensor):
                    raise TypeError(f"{type(self).__name__}: states[{index}] must be a torch.Tensor, "
                                    f"got {type(state).__name__}")
            if len({tuple(s.shape) for s in states}) != 1:
                raise ValueError(f"{type(self).__name__}: states must all have shape {expected[1:]}, "
                                 f"got {[tuple(s.shape) for s in states]}")
            tensor = torch.stack(tuple(states))
        elif isinstance(states, Tensor) and states.dim() == 3:
            tensor = states.unsqueeze(0)
        else:
            raise TypeError(f"states must be None, a 3-D torch.Tensor, or a tuple of tensors, "
                            f"but got {_shape_of(states)}.")
        if tuple(tensor.shape) != expected:
            raise ValueError(f"states must have shape [{count}, {rows}, batch_size, hidden_size] = "
                             f"{list(expected)}, but got {list(tensor.shape)}.")
        if tensor.dtype != x.dtype or tensor.device != x.device:
            raise ValueError(f"states ({tensor.dtype}, {tensor.device}) must match x ({x.dtype}, {x.device})")
        return tensor

    def forward(self, x: Tensor, states: Tensor | tuple[Tensor, ...] | None = None
                ) -> tuple[Tensor, Tensor | tuple[Tensor, ...]]:
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise ValueError(f"{type(self).__name__}: x must have shape [T, batch, input_size], got {_shape_of(x)}")
        if x.shape[0] == 0 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}: x must have shape [T > 0, batch, {self.input_size}], "
                             f"got {tuple(x.shape)}")
        states_tensor = self._states_tensor(x, states)
        stacks = self._direction_stacks()
        cells = [cell for stack in stacks for cell in stack]
        if all(type(cell) is self.base_cell() and type(cell) in _BUILTIN_MODES for cell in cells):
            y, final = self._forward_backend(x, states_tensor, stacks)
        else:
            y, final = self._forward_cells(x, states_tensor, stacks)
        if self.states_num() == 1:
            return y, final[0]
        return y, tuple(final)

    def _spec(self) -> RNNSpec:
        # SpikingJelly 2.0's cells, whatever spikingrnn's defaults: 0/1 gates, the clamped cell
        return RNNSpec(_BUILTIN_MODES[self.base_cell()], self.num_layers, self.bidirectional,
                       float(self.dropout_p), self.invariant_dropout_mask, cell_state="clamp", gates="heaviside",
                       leak=None)

    def _forward_backend(self, x: Tensor, states: Tensor, stacks: list[nn.Sequential]) -> tuple[Tensor, Tensor]:
        """Built-in cells: run the stack on a :mod:`spikingrnn.ops` backend (layer-major there)."""
        directions = len(stacks)
        # layer-major index layer * D + d  <->  direction-major index d * L + layer
        to_layer_major = [d * self.num_layers + layer for layer in range(self.num_layers) for d in range(directions)]
        # forward() sends only stacks of built-in cells here
        layer_major_cells = [cast(_BuiltinCell, stacks[d][layer])
                             for layer in range(self.num_layers) for d in range(directions)]
        weights = [cell._weights() for cell in layer_major_cells]
        surrogates = [_cell_surrogates(cell) for cell in layer_major_cells]
        spec = self._spec()
        run = resolve(self.backend, x.device, x.dtype, surrogates, spec=spec)
        y, final = run(x, tuple(states[:, to_layer_major].unbind(0)), weights, spec, surrogates,
                       training=self.training)
        to_direction_major = sorted(range(len(to_layer_major)), key=to_layer_major.__getitem__)
        return y, torch.stack(final)[:, to_direction_major]

    def _forward_cells(self, x: Tensor, states: Tensor, stacks: list[nn.Sequential]) -> tuple[Tensor, Tensor]:
        """Any cell ``cell(x_t, states) -> states``: a plain loop, as SpikingJelly runs it."""
        count = self.states_num()
        directions = len(stacks)
        masks = None
        if self.training and self.dropout_p > 0 and self.invariant_dropout_mask and self.num_layers > 1:
            masks = F.dropout(x.new_ones(self.num_layers - 1, x.shape[1], self.hidden_size * directions),
                              p=self.dropout_p, training=True)
        final: list[Tensor | None] = [None] * (self.num_layers * directions)
        y = x
        for layer in range(self.num_layers):
            outputs = []
            for d, stack in enumerate(stacks):
                index = d * self.num_layers + layer
                cell_states = states[0, index] if count == 1 else states[:, index]
                run = _reverse_rnn_cell_forward if d else directional_rnn_cell_forward
                out, last = run(stack[layer], y, cell_states)
                outputs.append(out)
                final[index] = torch.stack(tuple(last)) if count > 1 else last.unsqueeze(0)
            y = torch.cat(outputs, dim=-1) if directions == 2 else outputs[0]
            if self.training and self.dropout_p > 0 and layer < self.num_layers - 1:
                y = y * masks[layer] if masks is not None else F.dropout(y, p=self.dropout_p, training=True)
        return y, torch.stack(cast("list[Tensor]", final), dim=1)  # every index set above


class SpikingLSTM(SpikingRNNBase):
    """SpikingJelly 2.0's multi-layer spiking LSTM; returns ``(output, (h, c))``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool = True, dropout_p: float = 0,
                 invariant_dropout_mask: bool = False, bidirectional: bool = False,
                 surrogate_function1: SurrogateSpec = None, surrogate_function2: SurrogateSpec = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, dropout_p, invariant_dropout_mask,
                         bidirectional, surrogate_function1, surrogate_function2)

    @staticmethod
    def base_cell() -> type[nn.Module]:
        return SpikingLSTMCell

    @staticmethod
    def states_num() -> int:
        return 2


class SpikingVanillaRNN(SpikingRNNBase):
    """SpikingJelly 2.0's multi-layer spiking vanilla RNN; returns ``(output, h)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool = True, dropout_p: float = 0,
                 invariant_dropout_mask: bool = False, bidirectional: bool = False,
                 surrogate_function: SurrogateSpec = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, dropout_p, invariant_dropout_mask,
                         bidirectional, surrogate_function)

    @staticmethod
    def base_cell() -> type[nn.Module]:
        return SpikingVanillaRNNCell

    @staticmethod
    def states_num() -> int:
        return 1


class SpikingGRU(SpikingRNNBase):
    """SpikingJelly 2.0's multi-layer spiking GRU; returns ``(output, h)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool = True, dropout_p: float = 0,
                 invariant_dropout_mask: bool = False, bidirectional: bool = False,
                 surrogate_function1: SurrogateSpec = None, surrogate_function2: SurrogateSpec = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, dropout_p, invariant_dropout_mask,
                         bidirectional, surrogate_function1, surrogate_function2)

    @staticmethod
    def base_cell() -> type[nn.Module]:
        return SpikingGRUCell

    @staticmethod
    def states_num() -> int:
        return 1
