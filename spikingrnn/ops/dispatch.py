"""Backend registry and selection.

``backend="auto"`` picks the fastest backend that supports the device, dtype and surrogates and
logs why it passed over a faster one; an explicit name is used as given or raises with the
reason: it is never silently replaced.

Two cases of ``auto`` are not left to the debug log:

* the surrogates alone keep a faster backend from running (a custom callable, a subclass without
  ``derivative``, ``spiking=False``): a :class:`BackendWarning` says so once per module and reason,
  with what would run fast;
* a backend listed in :data:`AUTO_SELF_CHECKS` (triton) is picked only once its kernels matched the
  reference on a tiny problem in this process, on that device (logged at INFO); when they do not, a
  :class:`BackendWarning` says so and ``auto`` falls back to the next backend, so that an unverified
  kernel never trains a model unnoticed.
"""
from __future__ import annotations

import logging
import time
import warnings
import weakref
from typing import Any, Callable

import torch
from torch import Tensor

from . import cpu
from . import triton as _triton_backend  # imports triton itself only when used
from .capture import JIT_TRACE_UNSUPPORTED, LEGACY_ONNX_EXPORT
from .reference import reference_rnn
from .spec import RNNSpec

logger = logging.getLogger("spikingrnn")

# A backend's run function: ``run(x, states, weights, spec, surrogates, *, lengths=None, training=False)``
# -> ``(output [T, B, D*H_out], final states)`` (the signature of :func:`~spikingrnn.ops.reference.reference_rnn`).
RunFn = Callable[..., tuple[Tensor, tuple[Tensor, ...]]]

# name -> (run function, unsupported_reason(device, dtype, surrogates) -> str | None)
# (what a backend cannot run of a stack's RNNSpec is SPEC_SUPPORT's)
BACKENDS = {
    "reference": (reference_rnn, lambda device, dtype, surrogates: None),
    "cpu": (cpu.cpu_rnn, cpu.unsupported_reason),
    "triton": (_triton_backend.triton_rnn, _triton_backend.unsupported_reason),
}
# name -> unsupported_spec(spec) -> str | None: the neuron options of an RNNSpec a backend cannot run
SPEC_SUPPORT = {"triton": _triton_backend.unsupported_spec}
AUTO_ORDER = ("triton", "cpu", "reference")
# backends that "auto" considers only on these device types: Triton's CPU interpreter
# (TRITON_INTERPRET=1) is a testing tool, never an automatic choice
AUTO_DEVICE_TYPES = {"triton": ("cuda",)}
BACKEND_CHOICES = ("auto", *BACKENDS)
# name -> (check(device) -> failure or None, key(device) -> what one check result holds for, as text):
# run once per key and process before "auto" picks the backend
AUTO_SELF_CHECKS = {"triton": (_triton_backend.self_check, _triton_backend.self_check_key)}
_self_checked: dict[tuple, str | None] = {}  # (name, key) -> failure or None

# what runs fast, for the warning about a surrogate that keeps auto off a fast backend
_FAST_SURROGATES = ("the fast backends run spikingrnn.surrogate's built-in surrogates (and SpikingJelly's built-in "
                    "ones, converted to them) in spiking mode; the cpu backend also any "
                    "spikingrnn.surrogate.SurrogateFunction subclass that implements derivative() and keeps forward()")
_warned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # owner module -> reasons warned about
_warned_without_owner: set[str] = set()


class BackendWarning(UserWarning):
    """``backend="auto"`` runs a slower backend than it could: a surrogate keeps a fast backend from
    running, or a backend's kernels failed their self-check against the reference."""


def check_backend(backend: str, owner: str) -> str:
    """Validate a ``backend`` constructor argument; returns it."""
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"{owner}: backend must be one of {BACKEND_CHOICES}, got {backend!r}")
    return backend


def resolve(backend: str, device: torch.device, dtype: torch.dtype, surrogate_pairs: list[tuple], *,
            owner: object = None, spec: RNNSpec | None = None) -> RunFn:
    """The run function of ``backend`` for this device, dtype, ``(spike, spike_g)`` pairs and ``spec``
    (an :class:`~spikingrnn.ops.spec.RNNSpec`; ``None``: only the other three are checked).

    ``owner``: the module asking (named in warnings, which are given once per owner and reason).

    Under ``torch.onnx.export`` every backend runs the reference step in ``scan`` (see ``spikingrnn/ops/scanned.py``);
    under ``torch.jit.trace`` only the cpu backend's custom operators record a graph that holds for other
    sequence lengths: any other backend raises instead of being unrolled into a fixed number of steps.
    """
    if torch.onnx.is_in_onnx_export():
        return _onnx_export_run()
    run = _resolve(backend, device, dtype, surrogate_pairs, owner, spec)
    if torch.jit.is_tracing() and run is not cpu.cpu_rnn:
        raise RuntimeError(JIT_TRACE_UNSUPPORTED)
    return run


def _unsupported_spec(name: str, spec: RNNSpec | None) -> str | None:
    check = SPEC_SUPPORT.get(name)
    return None if spec is None or check is None else check(spec)


def _resolve(backend: str, device: torch.device, dtype: torch.dtype, surrogate_pairs: list[tuple],
             owner: object, spec: RNNSpec | None) -> RunFn:
    surrogates = [s for pair in surrogate_pairs for s in pair]
    if backend != "auto":
        run, unsupported = BACKENDS[backend]
        reason = unsupported(device, dtype, surrogates) or _unsupported_spec(backend, spec)
        if reason is not None:
            raise ValueError(f"backend={backend!r} cannot run this input: {reason}. Use backend='auto' or 'reference'.")
        return run
    passed_over: list[tuple[str, str]] = []  # (name, reason) of faster backends that only the surrogates keep from running
    for name in AUTO_ORDER:
        run, unsupported = BACKENDS[name]
        allowed = AUTO_DEVICE_TYPES.get(name)
        if allowed is not None and torch.device(device).type not in allowed:
            continue
        reason = unsupported(device, dtype, surrogates) or _unsupported_spec(name, spec)
        if reason is None:
            reason = _self_check_failure(name, device)
            if reason is None:
                for skipped, why in passed_over:
                    _warn_slow_path(owner, skipped, why, name)
                return run
        elif unsupported(device, dtype, []) is None and _unsupported_spec(name, spec) is None:
            passed_over.append((name, reason))
        logger.debug("backend 'auto' skips %r: %s", name, reason)
    raise RuntimeError("no backend can run this input")  # unreachable: the reference runs everything


def _onnx_export_run() -> RunFn:
    """The run function during ``torch.onnx.export``: the reference step in ``scan`` (see ``spikingrnn/ops/scanned.py``),
    whatever the backend; the TorchScript-based exporter is refused."""
    if torch.jit.is_tracing():
        raise RuntimeError(LEGACY_ONNX_EXPORT)
    from .scanned import scanned_rnn  # late: only an export needs it
    return scanned_rnn


def _warn_slow_path(owner: object, skipped: str, reason: str, chosen: str) -> None:
    """Warn once per ``owner`` and reason that ``auto`` runs ``chosen`` because of a surrogate."""
    seen = _warned_without_owner if owner is None else _warned.setdefault(owner, set())
    key = f"{skipped}: {reason}"
    if key in seen:
        return
    seen.add(key)
    who = "backend='auto'" if owner is None else f"{type(owner).__name__}(backend='auto')"
    warnings.warn(f"{who} runs the slower {chosen!r} backend: the {skipped!r} backend cannot run it because "
                  f"{reason}. To run fast: {_FAST_SURROGATES}. Pass backend={chosen!r} explicitly to keep this "
                  "path without this warning.", BackendWarning, stacklevel=4)


def _self_check_failure(name: str, device: torch.device) -> str | None:
    """Why ``auto`` must not pick ``name`` on ``device`` after its one-time self-check, or ``None``."""
    if name not in AUTO_SELF_CHECKS:
        return None
    check, key_of = AUTO_SELF_CHECKS[name]
    try:
        where = key_of(device)
    except Exception:  # e.g. a CUDA device that is not there: the check itself says what fails
        where = str(device)
    key = (name, where)
    if key in _self_checked:
        return _self_checked[key]
    start = time.perf_counter()
    try:
        failure = check(device)
    except Exception as error:  # a kernel that does not compile or launch here is a failed check too
        failure = f"the self-check raised {type(error).__name__}: {error}"
    seconds = time.perf_counter() - start
    if failure is None:
        _self_checked[key] = None
        logger.info("backend 'auto': the %s kernels match the reference backend on %s (one-time self-check, "
                    "%.1f s); using %s", name, where, seconds, name)
        return None
    failure = f"its kernels failed their self-check against the reference backend on {where}: {failure}"
    _self_checked[key] = failure
    warnings.warn(f"backend='auto' does not use the {name!r} backend: {failure}. It falls back to the next backend "
                  f"(slower). Please report this with your GPU and Triton version; backend={name!r} still runs "
                  "the kernels if you ask for them.", BackendWarning, stacklevel=4)
    return failure
