"""The ``triton`` backend: persistent Triton kernels for the time loops, torch GEMMs for the rest.

Same contract as :func:`spikingrnn.ops.reference.reference_rnn`, built on the shared
:func:`~spikingrnn.ops.stack.run_stack` driver, one autograd Function per layer and direction
with hand-written BPTT (see :mod:`spikingrnn.ops.triton.lstm`).

Runs on CUDA tensors (float32, bfloat16, float16), or on CPU float32 tensors under the Triton
interpreter (``TRITON_INTERPRET=1`` set before this package's kernels are first imported; slow,
for tests). Surrogates must be built-in :mod:`spikingrnn.surrogate` classes (exactly, not
subclasses) in spiking mode: their derivative formulas are compiled into the kernels.

Supports the LSTM (every ``cell_state``, ``proj_size``), GRU and vanilla RNN, in both gate forms of
the LSTM and GRU: ``gates="heaviside"`` (0/1 gates) and ``gates="sigmoid"`` (sigmoid/tanh gates, an
analog cell state, 0/1 emitted spikes; the GRU's in :mod:`.gru_sigmoid`), and both forms of the vanilla
RNN: the leaky one (``leak=β``, SpikingRNN's default: an analog membrane, 0/1 emitted spikes;
:mod:`.leaky_rnn`) and the seed's (``leak=None``, :mod:`.rnn`); packed sequences, both directions and
dropout (done by ``run_stack``). By default the pre-activations (the leaky RNN: its membranes) are kept
for backward; with ``low_memory`` only the input, the outputs and the heaviside LSTM's ``c`` are kept
(each as bit rows when it is 0/1, :mod:`.saved`), and backward recomputes the pre-activations the way
forward computed them (and the analog states of the sigmoid form and the leaky RNN: forward replayed in
order). With hidden <= 256 (the LSTM without ``proj_size``) the forward and backward loops of every cell
are persistent kernels, one launch for all steps (:mod:`.persistent`, :mod:`.persistent_gru`,
:mod:`.persistent_gru_sigmoid`, :mod:`.persistent_rnn`, :mod:`.persistent_leaky_rnn`); otherwise each
step launches one GEMM and one Triton kernel. Under ``torch.autocast`` the whole recurrence runs in the
autocast dtype (see :func:`autocast_dtype`); the LSTM's running ``c``, the sigmoid-form GRU's running
``s``, the leaky RNN's running ``v`` and the carried gradients stay float32 for half types
(:func:`.kernels.carry_dtype`). Kernels launch on the input's device (:func:`launch_device`).
:mod:`.compile_check` compiles every kernel for an NVIDIA GPU without one; :mod:`.exactness` checks
them bit for bit against the reference (``backend="auto"`` runs its :func:`self_check` once per
device before it picks this backend). Nothing here imports ``triton`` until it is needed, so
``import spikingrnn`` works without it.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import NamedTuple

import torch
from torch import Tensor

from ...functional.cells import DEFAULT_SPIKE_THRESHOLD, GATE_FORMS
from ...surrogate import KERNEL_IDS, kernel_id
from ..spec import RNNSpec
from ..stack import needs_grad, packed_batch_sizes, reverse_each, run_stack

__all__ = ["triton_rnn", "unsupported_reason", "unsupported_spec", "load_kernels", "kernels_interpreted",
           "launch_device", "self_check", "self_check_key"]

CUDA_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _interpret_env() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@functools.lru_cache(maxsize=1)
def _triton_missing() -> str | None:
    """Why ``import triton`` fails, or ``None``; cached (``backend="auto"`` asks on every call)."""
    try:
        import triton  # noqa: F401
    except Exception as error:  # ImportError, or a broken install
        return f"triton is not importable ({type(error).__name__}: {error})"
    return None


_KERNEL_MODULES = {"kernels": "surrogate_derivative", "lstm": "_lstm_forward_step", "gru": "_gru_forward_step",
                   "gru_sigmoid": "_gru_sigmoid_forward_step", "rnn": "_rnn_forward_step",
                   "leaky_rnn": "_leaky_rnn_forward_step"}


def load_kernels():
    """Import every kernel module now (Triton picks interpreter or GPU compilation at this point)."""
    from . import gru, gru_sigmoid, kernels, leaky_rnn, lstm, rnn  # noqa: F401


def kernels_interpreted() -> bool | None:
    """Whether the imported kernels are Triton-interpreter functions: ``None`` when none is imported
    yet, ``False`` when any was built for the GPU."""
    import sys
    loaded = [getattr(sys.modules[f"{__name__}.{name}"], kernel) for name, kernel in _KERNEL_MODULES.items()
              if f"{__name__}.{name}" in sys.modules]
    if not loaded:
        return None
    from triton.runtime.interpreter import InterpretedFunction
    return all(isinstance(k, InterpretedFunction) for k in loaded)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``torch.autocast`` runs this backend in on ``device_type``, or ``None`` outside autocast.

    Like cuDNN's LSTM under autocast, the whole recurrence then runs in that dtype: input, states and
    weights are cast to it (differentiably: the parameters' gradients stay float32) and the output
    has it."""
    if device_type not in ("cuda", "cpu") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def unsupported_spec(spec) -> str | None:
    """Why the triton backend cannot run the neuron options of ``spec`` (an RNNSpec), or ``None``: it runs
    both gate forms (``"sigmoid"`` and ``"heaviside"``) of the LSTM and GRU and both forms of the vanilla
    RNN (the leaky one, ``leak=β``, and the seed's, ``leak=None``), so always ``None`` today. (Invalid
    options, e.g. ``gates="sigmoid"`` with another ``cell_state`` than ``"accumulate"``, are errors, raised
    by :func:`triton_rnn` as the reference backend raises them, not a reason to run another backend.)"""
    return None


def unsupported_reason(device: torch.device, dtype: torch.dtype, surrogates) -> str | None:
    """Why the triton backend cannot run this case, or ``None`` when it can (under ``torch.autocast``,
    the autocast dtype is the one that must be supported)."""
    missing = _triton_missing()
    if missing is not None:
        return missing
    kind = torch.device(device).type
    autocast = autocast_dtype(kind)
    if autocast is not None and autocast != dtype:
        reason = unsupported_reason(device, autocast, surrogates)
        return None if reason is None else f"under torch.autocast({kind!r}, dtype={autocast}): {reason}"
    if kind == "cuda":
        if dtype not in CUDA_DTYPES:
            return f"on CUDA it supports float32, bfloat16 and float16, got {dtype}"
        interpreted = kernels_interpreted()
        if interpreted or (interpreted is None and _interpret_env()):
            return "its kernels are built for the Triton interpreter (TRITON_INTERPRET=1), not for CUDA"
    elif kind == "cpu":
        if not _interpret_env():
            return "it runs on CUDA tensors; CPU tensors only under the Triton interpreter (TRITON_INTERPRET=1)"
        if kernels_interpreted() is False:
            return ("TRITON_INTERPRET=1 was set after its kernels were built for the GPU "
                    "(set it before spikingrnn.ops.triton's kernel modules are first imported)")
        if dtype != torch.float32:
            return f"under the Triton interpreter it supports float32 only, got {dtype}"
    else:
        return f"it runs on CUDA tensors (or CPU under TRITON_INTERPRET=1), got device {device}"
    for spike in surrogates:
        name = type(spike).__name__
        if kernel_id(spike) is None:
            builtins = ", ".join(c.__name__ for c in KERNEL_IDS)
            return (f"surrogate {name} is not a built-in spikingrnn surrogate ({builtins}): "
                    "its derivative is compiled into the kernels")
        if not spike.spiking:
            return f"surrogate {name} has spiking=False (smooth mode)"
    return None


class TritonConfig(NamedTuple):
    """Static arguments of one (layer, direction) Function; ``kind*`` are the surrogates' kernel ids
    (:func:`spikingrnn.surrogate.kernel_id`)."""

    batch_sizes: list[int] | None
    kind1: int
    alpha1: float
    kind2: int
    alpha2: float
    cell_state: str
    threshold: float
    save: bool
    low_memory: bool = False
    tf32: bool = False  # float32 products in TF32 (decided once: forward and backward must agree)
    sigmoid: bool = False  # gates="sigmoid" (RNNSpec.sigmoid_gates): sigmoid/tanh gates, analog state
    spike_threshold: float = DEFAULT_SPIKE_THRESHOLD  # θ of the emitted spikes (sigmoid form, leaky RNN)
    leak: float | None = None  # the vanilla RNN's leak β (RNNSpec.leak): None is the seed's cell

    @property
    def kernel_threshold(self) -> float:
        """The threshold the LSTM kernels take: θ of the emitted spikes in the sigmoid form, else the
        ``cell_state="spike"`` threshold."""
        return self.spike_threshold if self.sigmoid else self.threshold


def launch_device(device: torch.device):
    """The context the kernels for tensors on ``device`` launch in: that CUDA device made current.

    Triton launches on the current device and its current stream, not on the tensors' device: a model
    on ``cuda:1`` while ``cuda:0`` is current would launch on the wrong GPU and stream. Nothing to do
    on the CPU (the interpreter)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


def triton_rnn(x: Tensor, states: tuple[Tensor, ...], weights: list[tuple], spec: RNNSpec, surrogates: list[tuple],
               *, lengths: Tensor | None = None, training: bool = False,
               tf32: bool | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the stack; returns ``(output [T, B, D*H_out], final states [L*D, B, *] each)``.

    ``tf32``: float32 products in TF32 or not; ``None`` (the backend's contract) decides as cuDNN's
    RNNs would (:func:`.matmul.tf32_allowed`). :mod:`.exactness` names it to check both.
    """
    cast = autocast_dtype(x.device.type)
    if cast is not None:  # the whole recurrence in the autocast dtype, no autocast inside (see autocast_dtype)
        with torch.autocast(x.device.type, enabled=False):
            return triton_rnn(x.to(cast), tuple(s.to(cast) for s in states),
                              [tuple(None if w is None else w.to(cast) for w in ws) for ws in weights], spec,
                              surrogates, lengths=lengths, training=training, tf32=tf32)
    with launch_device(x.device):
        return _run(x, states, weights, spec, surrogates, lengths, training, tf32)


def _run(x, states, weights, spec, surrogates, lengths, training, tf32):
    """:func:`triton_rnn` outside autocast, on the input's device."""
    _check_gates(spec)
    load_kernels()
    from .gru import GRUSequence
    from .gru_sigmoid import GRUSigmoidSequence
    from .leaky_rnn import LeakyRNNSequence
    from .lstm import LSTMSequence
    from .matmul import tf32_allowed
    from .rnn import RNNSequence

    batch_sizes = packed_batch_sizes(lengths, x.shape[0])
    save = needs_grad(x, states, weights)
    if tf32 is None:
        tf32 = tf32_allowed(x)
    tf32 = bool(tf32) and x.dtype == torch.float32

    def run_cell(k, y, state, reverse):
        first, second = surrogates[k]
        config = TritonConfig(batch_sizes, kernel_id(first), first.alpha, kernel_id(second), second.alpha,
                              spec.cell_state, spec.cell_threshold, save, spec.low_memory, tf32,
                              spec.sigmoid_gates, float(spec.spike_threshold),
                              float(spec.leak) if spec.leaky else None)
        if reverse:
            y = reverse_each(y, lengths)
        y = y.contiguous()
        w_ih, w_hh, b_ih, b_hh, w_hr = weights[k]
        if spec.mode == "LSTM":
            out, h, c = LSTMSequence.apply(y, state[0], state[1], w_ih, w_hh, b_ih, b_hh, w_hr, config)
            state = (h, c)
        else:
            if spec.mode == "GRU":
                function = GRUSigmoidSequence if spec.sigmoid_gates else GRUSequence
            else:
                function = LeakyRNNSequence if spec.leaky else RNNSequence
            out, h = function.apply(y, state[0], w_ih, w_hh, b_ih, b_hh, config)
            state = (h,)
        if reverse:
            out = reverse_each(out, lengths)
        return out, state

    return run_stack(x, states, spec, training, run_cell, lengths)


def _check_gates(spec) -> None:
    """Raise ``ValueError`` where ``spec``'s gate form is not one the cells have, as the reference backend's
    steps do (never run another form instead)."""
    if spec.mode == "RNN":
        return
    if spec.gates not in GATE_FORMS:
        raise ValueError(f"gates must be one of {GATE_FORMS}, got {spec.gates!r}")
    if spec.sigmoid_gates and spec.mode == "LSTM" and spec.cell_state != "accumulate":
        raise ValueError(f"gates='sigmoid' keeps an analog cell state: cell_state must be 'accumulate', "
                         f"got {spec.cell_state!r}")


def self_check_key(device) -> str:
    """What one :func:`self_check` result holds for: the device (with its index) and whether float32
    products run in TF32 there now (other kernel specializations), e.g. ``"cuda:0, TF32 products"``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    from .matmul import tf32_allowed
    tf32 = tf32_allowed(torch.empty(0, device=device))
    return f"{device}, {'TF32' if tf32 else 'full-precision float32'} products"


def self_check(device) -> str | None:
    """Run the kernels on a tiny problem on ``device`` against the reference backend: ``None`` when
    they agree (outputs and states bit for bit), else what differs. See :func:`.exactness.self_check`."""
    from .exactness import self_check as check
    return check(torch.device(device))
