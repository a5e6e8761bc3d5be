"""SpikingRNNBase: torch.nn.RNNBase's contract for the spiking LSTM, GRU and vanilla RNN stacks.

Parameters are named, shaped, ordered and initialised exactly like torch's (``weight_ih_l{k}``,
``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}``, ``_reverse`` for the
second direction), so a torch state_dict loads unchanged. ``forward`` accepts what torch accepts
(batched, ``batch_first``, unbatched, PackedSequence) and hands a time-major tensor to a backend.
"""
from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.types import Device
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..functional.cells import (DEFAULT_CELL_STATE, DEFAULT_CELL_THRESHOLD, DEFAULT_FORGET_BIAS, DEFAULT_GATES,
                               DEFAULT_LEAK, DEFAULT_SPIKE_THRESHOLD)
from ..ops.dispatch import check_backend, resolve
from ..ops.rate_penalty import DEFAULT_FREE_RATE
from ..ops.spec import GATES_PER_MODE, RNNSpec
from ..surrogate import SpikeFn, SurrogateSpec
from . import validation as check
from .initialization import init_memory_gate, memory_gate_setting, reset_uniform
from .surrogates import attach_surrogates, default_surrogate_alpha, surrogate_pair

REQUIRED = inspect.Parameter.empty  # the default of an argument that has none
ALL_MODES = ("LSTM", "GRU", "RNN")
STACK, CELL = "stack", "cell"  # SpikingLSTM/GRU/RNN, SpikingLSTMCell/GRUCell/RNNCell
ROLES = ("config", "spiking", "surrogate", "fixed", "factory")


class ConstructorArgument(NamedTuple):
    """One constructor argument of the spiking modules (see :data:`CONSTRUCTOR_ARGUMENTS`).

    ``role`` says who uses it:

    * ``"config"``: torch.nn's configuration, same name and meaning as in ``torch.nn.LSTM``/``GRU``/
      ``RNN`` or their cells; :func:`~spikingrnn.compat.torch_nn.from_torch` and ``to_torch`` copy
      it, a checkpoint records it.
    * ``"spiking"``: a spiking-only setting (keyword-only); a checkpoint records it.
    * ``"surrogate"``: a surrogate function (keyword-only); a checkpoint records a built-in one by
      name, ``alpha`` and ``spiking``.
    * ``"fixed"``: kept at torch's position, one value accepted (``nonlinearity="heaviside"``);
      neither copied nor recorded.
    * ``"factory"``: ``device``/``dtype`` of the new parameters; not an attribute, not recorded.

    ``modes`` and ``kinds`` say which classes take it (``"stack"``: ``SpikingLSTM``/``GRU``/``RNN``,
    ``"cell"``: the ``*Cell`` classes); ``in_repr``: the stack's ``extra_repr`` shows it when it is
    not the default.
    """
    name: str
    default: object
    role: str
    modes: tuple[str, ...] = ALL_MODES
    kinds: tuple[str, ...] = (STACK, CELL)
    in_repr: bool = True


_A = ConstructorArgument
# The one list of the constructor arguments of SpikingLSTM, SpikingGRU, SpikingRNN and their cells,
# in the order extra_repr shows them. Each class's signature must agree (tests/test_constructor_arguments.py).
CONSTRUCTOR_ARGUMENTS: tuple[ConstructorArgument, ...] = (
    _A("input_size", REQUIRED, "config"),
    _A("hidden_size", REQUIRED, "config"),
    _A("proj_size", 0, "config", modes=("LSTM",), kinds=(STACK,)),
    _A("num_layers", 1, "config", kinds=(STACK,)),
    _A("bias", True, "config"),
    _A("batch_first", False, "config", kinds=(STACK,)),
    _A("dropout", 0.0, "config", kinds=(STACK,)),
    _A("bidirectional", False, "config", kinds=(STACK,)),
    _A("invariant_dropout_mask", False, "spiking", kinds=(STACK,)),
    _A("low_memory", False, "spiking", kinds=(STACK,)),
    _A("gates", DEFAULT_GATES, "spiking", modes=("LSTM", "GRU")),
    _A("leak", DEFAULT_LEAK, "spiking", modes=("RNN",)),
    _A("spike_threshold", DEFAULT_SPIKE_THRESHOLD, "spiking"),
    _A("forget_bias", DEFAULT_FORGET_BIAS, "spiking", modes=("LSTM", "GRU")),
    _A("chrono_steps", None, "spiking", modes=("LSTM", "GRU")),
    _A("cell_state", DEFAULT_CELL_STATE, "spiking", modes=("LSTM",)),
    _A("cell_threshold", DEFAULT_CELL_THRESHOLD, "spiking", modes=("LSTM",), in_repr=False),
    _A("rate_penalty", None, "spiking", kinds=(STACK,)),
    _A("free_rate", DEFAULT_FREE_RATE, "spiking", kinds=(STACK,)),
    _A("backend", "auto", "spiking", kinds=(STACK,)),
    _A("surrogate_function1", None, "surrogate", in_repr=False),
    _A("surrogate_function2", None, "surrogate", modes=("LSTM", "GRU"), in_repr=False),
    _A("nonlinearity", "heaviside", "fixed", modes=("RNN",), in_repr=False),
    _A("device", None, "factory", in_repr=False),
    _A("dtype", None, "factory", in_repr=False),
)
del _A
# the bool switches of a stack, checked to be bools by its constructor
_STACK_FLAGS = tuple(a.name for a in CONSTRUCTOR_ARGUMENTS if STACK in a.kinds and isinstance(a.default, bool))


def constructor_parameters(module_or_class: object, roles: tuple[str, ...] = ROLES) -> tuple[ConstructorArgument, ...]:
    """The entries of :data:`CONSTRUCTOR_ARGUMENTS` that a spiking module class (or a module's class)
    takes, in that list's order, restricted to ``roles``."""
    cls = module_or_class if isinstance(module_or_class, type) else type(module_or_class)
    kind = STACK if issubclass(cls, SpikingRNNBase) else CELL
    mode: str = getattr(cls, "mode")  # "LSTM", "GRU" or "RNN": a class attribute of the stacks and cells
    return tuple(a for a in CONSTRUCTOR_ARGUMENTS if mode in a.modes and kind in a.kinds and a.role in roles)


def constructor_arguments(module: nn.Module, roles: tuple[str, ...] = ("config", "spiking", "surrogate", "fixed"),
                          cls: type[nn.Module] | None = None) -> dict[str, Any]:
    """``{name: value}`` of the constructor arguments of ``roles`` read back from ``module``'s attributes.

    ``cls`` (default ``type(module)``) picks which arguments: e.g. ``constructor_arguments(lstm,
    ("config",), SpikingLSTM)`` reads the configuration of a ``torch.nn.LSTM`` that a SpikingLSTM
    takes. With the default roles, ``type(module)(**constructor_arguments(module))`` builds a module
    of the same configuration (``device``/``dtype`` are not attributes and are not read).
    """
    return {a.name: getattr(module, a.name) for a in constructor_parameters(cls or module, roles)}


def _shown_default(module: nn.Module, argument: ConstructorArgument) -> object:
    """The value of ``argument`` that ``extra_repr`` leaves out: its default, resolved for ``rate_penalty``
    (``None`` stands for a value that depends on ``proj_size``)."""
    if argument.name == "rate_penalty":
        return check.check_rate_penalty(None, getattr(module, "proj_size", 0), type(module).__name__)
    return argument.default


def arguments_repr(module: nn.Module) -> str:
    """The ``extra_repr`` of a stack or cell: its sizes, then each configuration or spiking argument
    that differs from its default (``"3, 4, gates='heaviside', spike_threshold=0.5"``)."""
    parts = []
    for argument in constructor_parameters(module, ("config", "spiking")):
        value = getattr(module, argument.name)
        if argument.default is REQUIRED:
            parts.append(f"{value}")
        elif argument.in_repr and value != _shown_default(module, argument):
            parts.append(f"{argument.name}={value!r}" if isinstance(value, str) else f"{argument.name}={value}")
    return ", ".join(parts)


class SpikingRNNBase(nn.Module):
    """Base class of :class:`SpikingLSTM`, :class:`SpikingGRU` and :class:`SpikingRNN`.

    The arguments of ``torch.nn.LSTM`` come first, with its names, order and defaults
    (``input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0, device=None, dtype=None``; ``proj_size`` for the LSTM only);
    the spiking arguments follow, keyword-only.

    Args:
        surrogate_function1: surrogate of the spikes (the emitted h; with ``gates="heaviside"`` also
            i, f, o / r, z); a name, class or module. Default: a fresh
            :class:`~spikingrnn.surrogate.Erf` per module, ``Erf(alpha=1.0)`` for the LSTM's sigmoid
            form (it learns long sequences better, docs/LEARNING.md) and SpikingJelly's
            ``Erf(alpha=2.0)`` for every other form.
        surrogate_function2: surrogate of g (LSTM) / n (GRU); ``None`` uses ``surrogate_function1``.
        invariant_dropout_mask: one dropout mask per sequence and layer, shared by all steps.
        gates: LSTM and GRU: ``"sigmoid"`` (default; torch's sigmoid/tanh gates, an analog cell
            state, binary emitted spikes) or ``"heaviside"`` (the seed's 0/1 gates, SpikingJelly
            2.0's cell with ``cell_state="clamp"``); see :class:`SpikingLSTM`, :class:`SpikingGRU`.
        leak: RNN: the leak β of its membrane ``v' = β v + (1 - β) u`` (default 0.9); ``None`` is the
            seed's cell ``h = Θ(u)`` (SpikingJelly 2.0's); see :class:`SpikingRNN`.
        spike_threshold: the threshold θ of the emitted spikes (LSTM and GRU with sigmoid gates, RNN
            with a leak).
        forget_bias: LSTM and GRU: initial total bias of the memory gate (LSTM ``f``, GRU ``z``),
            default 1.0; ``None`` keeps torch's uniform init for it; ``"chrono"`` draws it per unit
            for time scales of 1 to ``chrono_steps`` steps (the chrono initialisation, see
            ``spikingrnn.nn.initialization.set_chrono_bias``; the LSTM's input gate gets the negative).
        chrono_steps: with ``forget_bias="chrono"`` (and only then): the longest dependency, in steps,
            that the memory gate starts out holding, e.g. the sequence length. It lets long-memory
            tasks learn (``temporal_recall`` at T = 200: chance with 1.0, 100 % with chrono 200) and
            costs about a point on short ones (docs/LEARNING.md).
        cell_state, cell_threshold: the LSTM's cell-state rule (see :class:`SpikingLSTM`); with
            sigmoid gates only ``"accumulate"`` (the default).
        rate_penalty: the firing-rate regulariser λ: in training mode, backward adds the gradient of
            ``λ × (mean firing rate above free_rate)``, per layer and direction, to the loss's gradient,
            without changing the loss's value, as an optimizer's weight decay does
            (``spikingrnn.ops.rate_penalty``). ``None`` (default): 0.2, which keeps the trained LSTM
            and GRU at a firing rate <= 0.3 at their accuracy (docs/LEARNING.md); 0 for an LSTM with
            ``proj_size > 0``, whose layers emit projections, not spikes. ``0.0`` turns it off (the
            surrogate gradients of the user's loss alone).
        free_rate: the mean firing rate (0 to 1) a layer may reach, in a forward pass, before
            ``rate_penalty`` acts on it; default 0.25, so a task that fires sparsely is not touched.
        backend: ``"auto"`` or a name of :data:`spikingrnn.ops.BACKENDS`.
        low_memory: (cpu and triton backends; the reference backend keeps what autograd keeps)
            keep only 0/1 bits for backward and recompute the pre-activations there
            (less memory, some extra time); default keeps the pre-activations.

    Every constructor argument of the stacks and cells, with its default and role, is listed once in
    ``spikingrnn.nn.base.CONSTRUCTOR_ARGUMENTS``; checkpoints, ``from_torch``/``to_torch`` and
    ``extra_repr`` read it, and ``spikingrnn.nn.base.constructor_arguments`` reads a module's values back.
    """

    mode: str = ""
    surrogate_function1: SpikeFn
    surrogate_function2: SpikeFn | None
    weight_ih_l0: nn.Parameter  # every stack has it (the others are named by _flat_weights_names)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Device = None, dtype: torch.dtype | None = None, *,
                 surrogate_function1: SurrogateSpec = None,
                 surrogate_function2: SurrogateSpec = None, invariant_dropout_mask: bool = False,
                 gates: str = DEFAULT_GATES, spike_threshold: float = DEFAULT_SPIKE_THRESHOLD,
                 forget_bias: float | str | None = DEFAULT_FORGET_BIAS, chrono_steps: int | None = None,
                 cell_state: str = DEFAULT_CELL_STATE, cell_threshold: float = DEFAULT_CELL_THRESHOLD,
                 rate_penalty: float | None = None, free_rate: float = DEFAULT_FREE_RATE, backend: str = "auto",
                 low_memory: bool = False, leak: float | None = DEFAULT_LEAK) -> None:
        given = locals()  # the arguments by name (read before any other local is bound)
        super().__init__()
        owner = type(self).__name__
        check.check_sizes(input_size, hidden_size, num_layers, proj_size)
        for name in _STACK_FLAGS:
            check.check_flag(given[name], name)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = check.check_dropout(dropout, num_layers)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.invariant_dropout_mask = invariant_dropout_mask
        if self.mode != "RNN":
            check.check_neuron(gates, spike_threshold, forget_bias, owner, chrono_steps)
        else:
            check.check_rnn_neuron(leak, spike_threshold, owner)
        if self.mode == "LSTM":
            check.check_cell_state(cell_state, cell_threshold, owner, gates)
        # the vanilla RNN has no gates (its forms are leak's): "heaviside", never a gate form it lacks
        self.gates = gates if self.mode != "RNN" else "heaviside"
        self.spike_threshold = float(spike_threshold)
        self.forget_bias, self.chrono_steps = memory_gate_setting(self.mode, forget_bias, chrono_steps)
        self.leak = None if leak is None or self.mode != "RNN" else float(leak)
        self.cell_state = cell_state
        self.cell_threshold = float(cell_threshold)
        self.rate_penalty = check.check_rate_penalty(rate_penalty, proj_size, owner)
        self.free_rate = check.check_free_rate(free_rate, owner)
        self.backend = check_backend(backend, owner)
        self.low_memory = low_memory
        attach_surrogates(self, surrogate_function1, surrogate_function2,
                          default_surrogate_alpha(self.mode, self.gates))
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        self._create_parameters({"device": device, "dtype": dtype})
        self.reset_parameters()

    def _create_parameters(self, factory_kwargs: dict[str, Any]) -> None:
        gate_size = GATES_PER_MODE[self.mode] * self.hidden_size
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                layer_input = self.input_size if layer == 0 else real_hidden * self.num_directions
                suffix = "_reverse" if direction == 1 else ""
                shapes: dict[str, tuple[int, ...]] = {"weight_ih": (gate_size, layer_input),
                                                      "weight_hh": (gate_size, real_hidden)}
                if self.bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if self.proj_size > 0:
                    shapes["weight_hr"] = (self.proj_size, self.hidden_size)
                names = []
                for kind, shape in shapes.items():
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, nn.Parameter(torch.empty(shape, **factory_kwargs)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def real_hidden_size(self) -> int:
        """``H_out``: ``proj_size`` when projecting, else ``hidden_size``."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Parameters grouped per (layer, direction), as in torch."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """No-op kept for torch.nn.LSTM compatibility (cuDNN weight flattening)."""

    def reset_parameters(self) -> None:
        """``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`` for every parameter, as torch, then the
        memory gate's bias ``forget_bias`` (``spikingrnn.nn.initialization.init_memory_gate``)."""
        reset_uniform(self.parameters(), self.hidden_size)
        for _, _, b_ih, b_hh, _ in self.layer_weights():
            init_memory_gate(b_ih, b_hh, self.mode, self.hidden_size, getattr(self, "forget_bias", None),
                             getattr(self, "chrono_steps", None))

    def layer_weights(self) -> list[tuple]:
        """``(w_ih, w_hh, b_ih, b_hh, w_hr)`` per ``layer * D + direction``, ``None`` where absent."""
        result = []
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                result.append(tuple(getattr(self, kind + suffix, None)
                                    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")))
        return result

    def spec(self) -> RNNSpec:
        return RNNSpec(self.mode, self.num_layers, self.bidirectional, self.dropout,
                       self.invariant_dropout_mask, self.cell_state, self.cell_threshold, self.low_memory,
                       self.gates, self.spike_threshold, self.leak, self.rate_penalty, self.free_rate)

    def state_sizes(self, batch: int) -> list[tuple[int, int, int]]:
        """Expected shapes of the states: ``[(L*D, B, H_out)]`` plus ``(L*D, B, H)`` for c."""
        rows = self.num_layers * self.num_directions
        sizes = [(rows, batch, self.real_hidden_size)]
        if self.mode == "LSTM":
            sizes.append((rows, batch, self.hidden_size))
        return sizes

    def extra_repr(self) -> str:
        return arguments_repr(self)

    # ----------------------------------------------------------------------------- forward

    def _split_hx(self, hx: object) -> list[Tensor] | None:
        """``hx`` as a list of state tensors (validated types), or ``None``."""
        if hx is None:
            return None
        owner = type(self).__name__
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)):
                raise TypeError(f"{owner}: hx must be a tuple (h_0, c_0) of two tensors, got {_describe(hx)}")
            if len(hx) != 2:
                raise RuntimeError(f"{owner}: hx must be a tuple (h_0, c_0) of two tensors, got {_describe(hx)}")
            return [check.check_tensor(hx[0], "h_0", owner), check.check_tensor(hx[1], "c_0", owner)]
        return [check.check_tensor(hx, "hx", owner)]

    def _check_hx_rank(self, states: list[Tensor], batched: bool) -> None:
        rank = 3 if batched else 2
        if all(s.dim() == rank for s in states):
            return
        kind = "batched 3-D" if batched else "unbatched 2-D"
        if self.mode == "LSTM":
            dims = ", ".join(f"{s.dim()}-D" for s in states)
            raise RuntimeError(f"For {kind} input, hx and cx should also be {rank}-D but got ({dims}) tensors")
        raise RuntimeError(f"For {kind} input, hx should also be {rank}-D but got {states[0].dim()}-D tensor")

    def _check_states(self, states: list[Tensor], input: Tensor, batch: int) -> None:
        names = ("hidden[0]", "hidden[1]") if self.mode == "LSTM" else ("hidden",)
        for state, size, name in zip(states, self.state_sizes(batch), names):
            if tuple(state.shape) != size:
                raise RuntimeError(f"Expected {name} size {size}, got {list(state.shape)}")
            check.check_state_like_input(state, input, name)

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor | PackedSequence, Tensor | tuple[Tensor, ...]]:
        """Run the stack over a sequence.

        Args:
            input: ``[T, B, I]`` (``[B, T, I]`` when ``batch_first``), unbatched ``[T, I]``, or a
                :class:`~torch.nn.utils.rnn.PackedSequence`.
            hx: LSTM ``(h_0 [L*D, B, H_out], c_0 [L*D, B, H])``, others ``h_0 [L*D, B, H]``
                (without ``B`` for unbatched input); zeros when ``None``.

        Returns:
            ``output`` ``[T, B, D*H_out]`` (same layout/packing as ``input``) and the final states
            with ``hx``'s shapes, layer-major like torch (``h_n[layer * D + direction]``).
        """
        states = self._split_hx(hx)
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, states)
        check.check_tensor(input, "input", type(self).__name__)
        if input.dim() not in (2, 3):
            raise ValueError(f"{self.mode}: Expected input to be 2D or 3D, got {input.dim()}D instead")
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        if states is not None:
            self._check_hx_rank(states, batched)
            if not batched:
                states = [s.unsqueeze(1) for s in states]
        self._check_input(x)
        if states is not None:
            self._check_states(states, x, x.shape[1])
        output, final = self._run(x, states, lengths=None)
        if not batched:
            output = output.squeeze(1)
            final = tuple(s.squeeze(1) for s in final)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, self._pack_states(final)

    def _forward_packed(self, packed: PackedSequence, states: list[Tensor] | None
                        ) -> tuple[PackedSequence, Tensor | tuple[Tensor, ...]]:
        data, batch_sizes, sorted_indices, unsorted_indices = packed
        if data.dim() != 2:
            raise RuntimeError(f"input must have 2 dimensions, got {data.dim()}")
        x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes))
        self._check_input(x, packed=True)
        if states is not None:
            self._check_hx_rank(states, batched=True)
            self._check_states(states, x, x.shape[1])
            if sorted_indices is not None:
                states = [s.index_select(1, sorted_indices) for s in states]
        output, final = self._run(x, states, lengths=lengths)
        packed_output = pack_padded_sequence(output, lengths).data
        if unsorted_indices is not None:
            final = tuple(s.index_select(1, unsorted_indices) for s in final)
        return (PackedSequence(packed_output, batch_sizes, sorted_indices, unsorted_indices),
                self._pack_states(final))

    def _pack_states(self, final: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        return tuple(final) if self.mode == "LSTM" else final[0]

    def _check_input(self, x: Tensor, packed: bool = False) -> None:
        """torch's checks of a time-major input ``[T, B, I]``: dtype, feature size, ``T > 0``."""
        check.check_input_dtype(x, self.weight_ih_l0, RuntimeError if packed else ValueError)
        if x.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.size(-1)}")
        if x.shape[0] == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")

    def _run(self, x: Tensor, states: list[Tensor] | None, lengths: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Call the backend on a validated time-major ``x [T, B, I]`` and states (zeros when ``None``)."""
        if states is None:
            states = [x.new_zeros(size) for size in self.state_sizes(x.shape[1])]
        weights = self.layer_weights()
        surrogates = [surrogate_pair(self)] * len(weights)
        spec = self.spec()
        run = resolve(self.backend, x.device, x.dtype, surrogates, owner=self, spec=spec)
        return run(x, tuple(states), weights, spec, surrogates, lengths=lengths, training=self.training)


def _describe(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__
