"""ONNX export of trained spiking LSTM, GRU and vanilla RNN stacks for inference.

The graph is written node by node with :mod:`onnx.helper` (no tracing, which would unroll the time
loop into a fixed number of steps): per layer and direction one ``MatMul`` projects the inputs of
all steps, ``[T, B, I] @ W_ih^T + b_ih``, and one ``Scan`` runs the recurrence, one step per
iteration, exactly as :mod:`spikingrnn.functional.cells` does it::

    u   = xp_t + (h W_hh^T + b_hh)                 # xp_t: the projected input of step t
    Θ(u) = Cast(GreaterOrEqual(u, 0), float)       # 0/1 spikes, Θ(0) = 1
    LSTM: i|f|g|o = Θ(u); c = c*f + i*g, then min(c, 1) | c | Θ(c - threshold); h = c*o [; h = h W_hr^T]
    GRU:  r|z = Θ(u_rz); n = Θ(xp_n + r * (h W_hn^T + b_hn)); h = (1 - z)*n + z*h
    RNN:  h = Θ(u)

The reverse direction is the same ``Scan`` with ``scan_input_directions = scan_output_directions
= [1]``, so the sequence length ``T`` and the batch size ``B`` are free (``dim_param``) dimensions.

Graph inputs and outputs (float32; ``L`` layers, ``D`` directions, ``H_out`` = ``proj_size`` or
``hidden_size``):

* ``input``: ``[T, B, I]``, or ``[B, T, I]`` when the module is ``batch_first``;
* ``h0`` ``[L*D, B, H_out]`` (and ``c0`` ``[L*D, B, H]`` for the LSTM), required when exported
  with ``initial_states=True`` (pass zeros to start from rest, or the previous ``h_n``/``c_n`` to
  continue a stream); with ``initial_states=False`` the graph starts from zeros itself;
* ``output``: ``[T, B, D*H_out]`` (``[B, T, D*H_out]`` when ``batch_first``), ``h_n``
  ``[L*D, B, H_out]`` (and ``c_n`` ``[L*D, B, H]``), rows ordered like the module's states.

Not exportable: smooth surrogates (``spiking=False``), surrogates that are plain callables or that
override :meth:`SurrogateFunction.forward`, user-defined cells of the SpikingJelly compat stacks,
and non-float32 parameters. Dropout is a training-time operation and is left out. Unbatched
``[T, I]`` input and :class:`~torch.nn.utils.rnn.PackedSequence` are input forms of the PyTorch
module, not of the graph: add a batch dimension of 1, and run variable-length batches one
sequence at a time (or pad them, knowing that padded steps then update the states).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Literal, overload

import torch
from torch import nn

from ..functional.cells import CELL_STATES, DEFAULT_CELL_THRESHOLD
from ..nn.base import SpikingRNNBase
from ..nn.surrogates import surrogate_pair
from ..ops.spec import GATES_PER_MODE
from ..surrogate import SurrogateFunction

try:  # numpy comes with onnx; spikingrnn itself imports without it
    import numpy as np
except ImportError:  # pragma: no cover - export_onnx then raises ImportError for onnx
    np = None  # type: ignore[assignment]  # never used then: export_onnx fails on the onnx import first

if TYPE_CHECKING:
    import onnx
    from onnx import GraphProto, ModelProto

__all__ = ["export_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 17
"""The default ONNX opset: read by every onnxruntime since 1.11."""

MIN_OPSET = 14
"""The oldest opset the graph can be written in (``Split``/``Unsqueeze`` take their sizes/axes as inputs)."""


@dataclass(frozen=True)
class _Cell:
    """One (layer, direction) of a stack: weights as float32 arrays in torch's layout.

    ``w_ih`` ``[G*H, I_layer]``, ``w_hh`` ``[G*H, H_out]``, ``b_ih``/``b_hh`` ``[G*H]`` or
    ``None``, ``w_hr`` ``[H_out, H]`` or ``None``; ``row`` is the cell's index in ``h0``/``h_n``.
    """

    name: str
    layer: int
    reverse: bool
    row: int
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None
    w_hr: np.ndarray | None


@dataclass(frozen=True)
class _Stack:
    """Everything the graph needs to know about a module; ``cells`` in layer-major order."""

    owner: str
    mode: str
    input_size: int
    hidden_size: int
    output_size: int
    num_layers: int
    num_directions: int
    batch_first: bool
    cell_state: str
    cell_threshold: float
    cells: tuple[_Cell, ...]


# --------------------------------------------------------------------------- public function


# (the public signature names torch and onnx in full: the API reference shows it as written)
def export_onnx(module: torch.nn.Module, path: str | os.PathLike[str] | None, *, opset: int | None = None,
                initial_states: bool = True) -> onnx.ModelProto:
    """Export a trained spiking stack to an ONNX model for inference with dynamic ``T`` and ``B``.

    Args:
        module: a :class:`~spikingrnn.SpikingLSTM`, :class:`~spikingrnn.SpikingGRU` or
            :class:`~spikingrnn.SpikingRNN` (any ``num_layers``, ``bidirectional``, ``proj_size``,
            ``bias``, ``batch_first``, ``cell_state``) with ``gates="heaviside"`` (RNN: ``leak=None``), or a stack
            of built-in cells from
            :mod:`spikingrnn.compat.spikingjelly` (states direction-major, as there). Its
            surrogates must be spiking :class:`~spikingrnn.surrogate.SurrogateFunction` subclasses (the graph
            fires ``Θ(u) = 1[u >= 0]``) and its parameters float32. Dropout is left out (the
            graph is the module in eval mode); ``backend`` does not matter.
        path: file to write the model to, or ``None`` to only return it.
        opset: ONNX opset of the default domain, ``MIN_OPSET`` (14) up to the newest one the
            installed ``onnx`` knows; ``None`` takes ``DEFAULT_OPSET`` (17).
        initial_states: ``True`` makes ``h0 [L*D, B, H_out]`` (and ``c0 [L*D, B, H]`` for the
            LSTM) required graph inputs; ``False`` leaves them out and starts from zeros, like
            calling the module with ``hx=None``.

    Returns:
        The checked :class:`onnx.ModelProto`. Inputs ``input`` (``[T, B, I]``, ``[B, T, I]`` when
        ``batch_first``) [, ``h0``, ``c0``]; outputs ``output`` (``[T, B, D*H_out]``, batch first
        when ``batch_first``), ``h_n`` [, ``c_n``]; ``T`` and ``B`` are symbolic dimensions.

    Raises:
        ImportError: ``onnx`` is not installed (``pip install spikingrnn[onnx]``).
        TypeError: ``module`` is not a supported stack, or ``initial_states`` is not a bool.
        ValueError: ``opset`` out of range, or parameters that are not float32.
        NotImplementedError: a smooth or custom surrogate, a user-defined compat cell, an LSTM/GRU with
            ``gates="sigmoid"`` or an RNN with a ``leak`` (the defaults: export those with ``torch.onnx.export``).
    """
    onnx = _import_onnx()
    opset = _check_opset(onnx, opset)
    if not isinstance(initial_states, bool):
        raise TypeError(f"export_onnx: initial_states must be a bool, got {type(initial_states).__name__}")
    stack = _describe(module)
    model = _build_model(onnx, stack, opset, initial_states)
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model


def _import_onnx() -> ModuleType:
    try:
        import onnx
    except ImportError as error:
        raise ImportError("export_onnx needs the onnx package: pip install 'spikingrnn[onnx]' "
                          "(onnx, and onnxruntime to run the model)") from error
    return onnx


def _check_opset(onnx: ModuleType, opset: object) -> int:
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export_onnx: opset must be an int in [{MIN_OPSET}, {newest}] "
                         f"(the newest the installed onnx {onnx.__version__} knows), got {opset!r}")
    return opset


# --------------------------------------------------------------------------- module -> _Stack


def _describe(module: nn.Module) -> _Stack:
    """Read a supported module into a :class:`_Stack`, refusing what the graph cannot express."""
    from ..compat import spikingjelly as sj  # late: the compat module is not needed otherwise

    if isinstance(module, SpikingRNNBase):
        return _describe_native(module)
    if isinstance(module, sj.SpikingRNNBase):
        return _describe_spikingjelly(module, sj)
    raise TypeError(
        "export_onnx: module must be a spikingrnn SpikingLSTM, SpikingGRU or SpikingRNN, or a "
        "spikingrnn.compat.spikingjelly SpikingLSTM/SpikingGRU/SpikingVanillaRNN, "
        f"got {type(module).__module__}.{type(module).__qualname__}. A whole model that contains spiking layers "
        "exports with the standard call torch.onnx.export(model, (x,), path, dynamic_shapes=...) (dynamo=True, "
        "the default): its spiking layers become ONNX Scan loops with a free sequence length")


def _describe_native(module: SpikingRNNBase) -> _Stack:
    owner = type(module).__name__
    seed_cell = module.gates == "heaviside" if module.mode != "RNN" else module.leak is None
    if not seed_cell:
        option = f"gates={module.gates!r}" if module.mode != "RNN" else f"leak={module.leak!r}"
        raise NotImplementedError(
            f"export_onnx: {owner}({option}) is not supported by this exporter of bare stacks, which writes the "
            "seed's cells only (gates='heaviside', the RNN with leak=None). Export it with the standard call "
            "torch.onnx.export(model, (x,), path, dynamic_shapes=...) (dynamo=True, the default): every form of "
            "every spiking layer becomes an ONNX Scan loop over the library's own step function")
    spike, spike_g = surrogate_pair(module)
    _check_surrogate(spike, "surrogate_function1", owner)
    _check_surrogate(spike_g, "surrogate_function2", owner)
    directions = module.num_directions
    cells = []
    for k, weights in enumerate(module.layer_weights()):
        layer, direction = divmod(k, directions)
        name = f"l{layer}" + ("_reverse" if direction else "")
        cells.append(_cell(name, layer, direction == 1, k, weights, owner))
    return _Stack(owner, module.mode, module.input_size, module.hidden_size, module.real_hidden_size,
                  module.num_layers, directions, module.batch_first,
                  module.cell_state if module.mode == "LSTM" else "clamp", module.cell_threshold, tuple(cells))


def _describe_spikingjelly(module: Any, sj: ModuleType) -> _Stack:
    owner = type(module).__name__
    modes = {sj.SpikingLSTMCell: "LSTM", sj.SpikingGRUCell: "GRU", sj.SpikingVanillaRNNCell: "RNN"}
    stacks = [module.cells, module.cells_reverse] if module.bidirectional else [module.cells]
    layer_major = [(layer, d, stacks[d][layer]) for layer in range(module.num_layers) for d in range(len(stacks))]
    for layer, d, cell in layer_major:
        if type(cell) not in modes:
            where = ("cells_reverse" if d else "cells") + f"[{layer}]"
            raise NotImplementedError(
                f"export_onnx: {owner}.{where} is a {type(cell).__qualname__}; only the built-in cells "
                f"{sorted(c.__name__ for c in modes)} can be exported (a user-defined cell's forward is "
                "arbitrary Python)")
    cell_modes = {modes[type(cell)] for _, _, cell in layer_major}
    if len(cell_modes) != 1:
        raise NotImplementedError(f"export_onnx: {owner} mixes cell types {sorted(cell_modes)}; expected one")
    cells = []
    for layer, d, cell in layer_major:
        where = ("cells_reverse" if d else "cells") + f"[{layer}]"
        if isinstance(cell, sj.SpikingVanillaRNNCell):
            _check_surrogate(cell.surrogate_function, f"{where}.surrogate_function", owner)
        else:
            spike, spike_g = surrogate_pair(cell)
            _check_surrogate(spike, f"{where}.surrogate_function1", owner)
            _check_surrogate(spike_g, f"{where}.surrogate_function2", owner)
        name = f"l{layer}" + ("_reverse" if d else "")
        row = d * module.num_layers + layer  # SpikingJelly's states are direction-major
        cells.append(_cell(name, layer, d == 1, row, cell._weights(), owner))
    return _Stack(owner, cell_modes.pop(), module.input_size, module.hidden_size, module.hidden_size,
                  module.num_layers, len(stacks), False, "clamp", DEFAULT_CELL_THRESHOLD, tuple(cells))


def _check_surrogate(surrogate: object, argument: str, owner: str) -> None:
    """The graph hard-codes ``Θ(u) = 1[u >= 0]``: only spiking SurrogateFunctions fire exactly that."""
    if not isinstance(surrogate, SurrogateFunction):
        raise NotImplementedError(
            f"export_onnx: {owner}.{argument} is a {type(surrogate).__qualname__}, a custom callable; only "
            "spikingrnn.surrogate.SurrogateFunction instances can be exported (the graph fires Θ(u) = 1[u >= 0] "
            "and cannot run arbitrary Python)")
    if type(surrogate).forward is not SurrogateFunction.forward:
        raise NotImplementedError(
            f"export_onnx: {owner}.{argument} ({type(surrogate).__qualname__}) overrides forward(); the graph "
            "can only fire the standard Θ(u) = 1[u >= 0] of SurrogateFunction.forward")
    if not surrogate.spiking:
        raise NotImplementedError(
            f"export_onnx: {owner}.{argument} has spiking=False (the smooth primitive); expected spiking=True, "
            "the graph fires 0/1 spikes. Call set_spiking_mode(True) before exporting")


def _cell(name: str, layer: int, reverse: bool, row: int, weights: tuple[torch.Tensor | None, ...],
          owner: str) -> _Cell:
    """``weights = (w_ih, w_hh, b_ih, b_hh, w_hr)`` (``None`` where absent) as float32 arrays."""
    arrays: list[Any] = []
    for kind, weight in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"), weights):
        if weight is None:
            arrays.append(None)
            continue
        if weight.dtype != torch.float32:
            raise ValueError(f"export_onnx: {owner} parameter {kind}_{name} is {weight.dtype}; expected "
                             "torch.float32 (the graph computes in float32): call module.float() first")
        arrays.append(weight.detach().cpu().numpy().copy())
    return _Cell(name, layer, reverse, row, *arrays)


# --------------------------------------------------------------------------- graph building


class _Graph:
    """Nodes of one graph; constants always go to the root graph, where Scan bodies can read them."""

    def __init__(self, onnx: ModuleType, root: _Graph | None = None) -> None:
        self.onnx = onnx
        self.root = root or self
        self.nodes: list[Any] = []
        if root is None:
            self.initializers: list[Any] = []
            self._names = itertools.count()
            self._constants: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self.root._names)}"

    @overload
    def op(self, op_type: str, *inputs: str, hint: str | None = None, outputs: Literal[1] = 1,
           **attributes: Any) -> str: ...
    @overload
    def op(self, op_type: str, *inputs: str, hint: str | None = None, outputs: int,
           **attributes: Any) -> list[str]: ...

    def op(self, op_type: str, *inputs: str, hint: str | None = None, outputs: int = 1,
           **attributes: Any) -> str | list[str]:
        """Append a node; returns its output name (a list of names when ``outputs > 1``)."""
        names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.root.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def constant(self, value: float | list[int], dtype: type[np.generic]) -> str:
        """A shared constant initializer (a scalar or 1-D array) of ``dtype``."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        constants = self.root._constants
        if key not in constants:
            constants[key] = self.initializer(self.fresh("const"), array)
        return constants[key]


def _build_model(onnx: ModuleType, stack: _Stack, opset: int, initial_states: bool) -> ModelProto:
    from .. import __version__  # late: spikingrnn/__init__.py imports this module

    helper, FLOAT = onnx.helper, onnx.TensorProto.FLOAT
    graph = _Graph(onnx)
    time_batch = ["B", "T"] if stack.batch_first else ["T", "B"]
    rows = stack.num_layers * stack.num_directions
    state_sizes = [("h", stack.output_size)] + ([("c", stack.hidden_size)] if stack.mode == "LSTM" else [])

    inputs = [helper.make_tensor_value_info("input", FLOAT, time_batch + [stack.input_size])]
    if initial_states:
        inputs += [helper.make_tensor_value_info(f"{s}0", FLOAT, [rows, "B", size]) for s, size in state_sizes]
    x = graph.op("Transpose", "input", perm=[1, 0, 2]) if stack.batch_first else "input"

    zeros = {size: _zeros(graph, x, size) for size in {size for _, size in state_sizes}} if not initial_states else {}
    finals: dict[int, list[str]] = {}
    y = x
    for layer in range(stack.num_layers):
        outputs = []
        for cell in stack.cells[layer * stack.num_directions:(layer + 1) * stack.num_directions]:
            if initial_states:
                row = graph.constant(cell.row, np.int64)
                start = [graph.op("Gather", f"{s}0", row, axis=0, hint=f"{s}0_{cell.name}") for s, _ in state_sizes]
            else:
                start = [zeros[size] for _, size in state_sizes]
            out, finals[cell.row] = _run_cell(graph, stack, cell, y, start)
            outputs.append(out)
        y = graph.op("Concat", *outputs, axis=2) if len(outputs) > 1 else outputs[0]

    output = graph.op("Transpose", y, perm=[1, 0, 2]) if stack.batch_first else y
    graph.nodes.append(helper.make_node("Identity", [output], ["output"]))
    results = [helper.make_tensor_value_info("output", FLOAT,
                                             time_batch + [stack.num_directions * stack.output_size])]
    axis0 = graph.constant([0], np.int64)
    for index, (s, size) in enumerate(state_sizes):
        rows_of_state = [graph.op("Unsqueeze", finals[row][index], axis0) for row in sorted(finals)]
        graph.nodes.append(helper.make_node("Concat", rows_of_state, [f"{s}_n"], axis=0))
        results.append(helper.make_tensor_value_info(f"{s}_n", FLOAT, [rows, "B", size]))

    doc = (f"spikingrnn {stack.owner}: mode={stack.mode}, input_size={stack.input_size}, "
           f"hidden_size={stack.hidden_size}, output_size={stack.output_size}, num_layers={stack.num_layers}, "
           f"directions={stack.num_directions}, batch_first={stack.batch_first}"
           + (f", cell_state={stack.cell_state}, cell_threshold={stack.cell_threshold}"
              if stack.mode == "LSTM" else ""))
    onnx_graph = helper.make_graph(graph.nodes, f"spikingrnn_{stack.owner}", inputs, results,
                                   initializer=graph.initializers, doc_string=doc)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="spikingrnn",
                              producer_version=__version__, doc_string=doc,
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(model, {"spikingrnn.mode": stack.mode, "spikingrnn.module": stack.owner,
                                   "spikingrnn.initial_states": str(initial_states)})
    return model


def _zeros(graph: _Graph, x: str, size: int) -> str:
    """Zeros ``[B, size]``, ``B`` read from the time-major ``x [T, B, F]``."""
    batch = graph.op("Gather", graph.op("Shape", x), graph.constant([1], np.int64), axis=0)
    shape = graph.op("Concat", batch, graph.constant([size], np.int64), axis=0)
    zero = graph.onnx.helper.make_tensor("zero", graph.onnx.TensorProto.FLOAT, [1], [0.0])
    return graph.op("ConstantOfShape", shape, value=zero, hint="zeros")


def _run_cell(graph: _Graph, stack: _Stack, cell: _Cell, x: str, start: list[str]) -> tuple[str, list[str]]:
    """One layer and direction over the time-major ``x [T, B, F]`` from the states ``start``.

    Returns ``(h of every step [T, B, H_out], final states [B, *] each)``.
    """
    w_ih_t = graph.initializer(f"weight_ih_{cell.name}_T", cell.w_ih.T)
    projected = graph.op("MatMul", x, w_ih_t, hint=f"xw_{cell.name}")
    if cell.b_ih is not None:
        b_ih = graph.initializer(f"bias_ih_{cell.name}", cell.b_ih)
        projected = graph.op("Add", projected, b_ih, hint=f"xp_{cell.name}")
    body = _step_body(graph, stack, cell)
    direction = [1 if cell.reverse else 0]
    results = graph.op("Scan", *start, projected, outputs=len(start) + 1, hint=f"scan_{cell.name}", body=body,
                       num_scan_inputs=1, scan_input_directions=direction, scan_output_directions=direction)
    return results[-1], results[:-1]


def _step_body(root: _Graph, stack: _Stack, cell: _Cell) -> GraphProto:
    """The Scan body: one step of ``cell``, ``(states..., xp_t [B, G*H]) -> (new states..., h_t)``."""
    onnx = root.onnx
    helper, FLOAT = onnx.helper, onnx.TensorProto.FLOAT
    body = _Graph(onnx, root)
    hidden, gates = stack.hidden_size, GATES_PER_MODE[stack.mode] * stack.hidden_size
    kinds = ["h"] + (["c"] if stack.mode == "LSTM" else [])
    sizes = [stack.output_size] + ([hidden] if stack.mode == "LSTM" else [])
    h, c, xp = f"h_prev_{cell.name}", f"c_prev_{cell.name}", f"xp_t_{cell.name}"
    inputs = [helper.make_tensor_value_info(f"{k}_prev_{cell.name}", FLOAT, [None, size])
              for k, size in zip(kinds, sizes)]
    inputs.append(helper.make_tensor_value_info(xp, FLOAT, [None, gates]))

    hp = body.op("MatMul", h, root.initializer(f"weight_hh_{cell.name}_T", cell.w_hh.T), hint="hw")
    if cell.b_hh is not None:
        hp = body.op("Add", hp, root.initializer(f"bias_hh_{cell.name}", cell.b_hh), hint="hp")

    def heaviside(u: str) -> str:
        fired = body.op("GreaterOrEqual", u, body.constant(0.0, np.float32), hint="fired")
        return body.op("Cast", fired, to=FLOAT, hint="spikes")

    def split(value: str, parts: list[int]) -> list[str]:
        return body.op("Split", value, body.constant(parts, np.int64), axis=1, outputs=len(parts), hint="part")

    if stack.mode == "LSTM":
        i, f, g, o = split(heaviside(body.op("Add", xp, hp, hint="u")), [hidden] * 4)
        c = body.op("Add", body.op("Mul", c, f), body.op("Mul", i, g), hint="c")
        c = _cell_rule(body, c, stack.cell_state, stack.cell_threshold, heaviside)
        h_new = body.op("Mul", c, o, hint="h")
        if cell.w_hr is not None:
            h_new = body.op("MatMul", h_new, root.initializer(f"weight_hr_{cell.name}_T", cell.w_hr.T), hint="h_proj")
        new_states = [h_new, c]
    elif stack.mode == "GRU":
        x_rz, x_n = split(xp, [2 * hidden, hidden])
        h_rz, h_n = split(hp, [2 * hidden, hidden])
        r, z = split(heaviside(body.op("Add", x_rz, h_rz, hint="u_rz")), [hidden, hidden])
        n = heaviside(body.op("Add", x_n, body.op("Mul", r, h_n), hint="u_n"))
        keep = body.op("Sub", body.constant(1.0, np.float32), z, hint="one_minus_z")
        new_states = [body.op("Add", body.op("Mul", keep, n), body.op("Mul", z, h), hint="h")]
    else:
        new_states = [heaviside(body.op("Add", xp, hp, hint="u"))]

    out_names = [f"{k}_next_{cell.name}" for k in kinds] + [f"h_t_{cell.name}"]
    for value, name in zip(new_states + [new_states[0]], out_names):
        body.nodes.append(helper.make_node("Identity", [value], [name]))
    outputs = [helper.make_tensor_value_info(n, FLOAT, [None, size])
               for n, size in zip(out_names, sizes + [stack.output_size])]
    return helper.make_graph(body.nodes, f"step_{cell.name}", inputs, outputs)


def _cell_rule(body: _Graph, c: str, cell_state: str, threshold: float, heaviside: Callable[[str], str]) -> str:
    """The LSTM's ``cell_state`` rule on ``c' = c*f + i*g``.

    As :func:`~spikingrnn.functional.cells.lstm_cell_update`: ``min(c', 1)``, ``c'``, or
    ``Θ(c' - threshold)`` (the subtraction in float32, as PyTorch does it).
    """
    if cell_state == "clamp":
        return body.op("Min", c, body.constant(1.0, np.float32), hint="c_clamped")
    if cell_state == "accumulate":
        return c
    if cell_state == "spike":
        return heaviside(body.op("Sub", c, body.constant(threshold, np.float32), hint="c_minus_threshold"))
    raise ValueError(f"export_onnx: cell_state must be one of {CELL_STATES}, got {cell_state!r}")
