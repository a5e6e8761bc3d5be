"""The implementations compared: torch.nn's recurrent layers, every spikingrnn backend, SpikingJelly 2.0.

spikingrnn backends are discovered from :data:`spikingrnn.ops.dispatch.BACKENDS`, so a backend
added there (e.g. ``triton``) is benchmarked without changes here; one whose
``unsupported_reason(device, dtype, surrogates)`` is not ``None`` is listed as skipped with that
reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .shapes import Shape

CELLS = ("lstm", "gru", "rnn")
TORCH_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
SPIKINGRNN_CLASSES = {"lstm": "SpikingLSTM", "gru": "SpikingGRU", "rnn": "SpikingRNN"}
SPIKINGJELLY_CLASSES = {"lstm": "SpikingLSTM", "gru": "SpikingGRU", "rnn": "SpikingVanillaRNN"}

TORCH = "torch"
SPIKINGJELLY = "spikingjelly"
SPIKINGRNN_PREFIX = "spikingrnn-"


@dataclass
class Implementation:
    """A way to build a recurrent stack for a shape.

    ``build(shape)`` returns a module on the benchmark device whose ``forward(x [T, B, I])``
    returns ``(y [T, B, H], states)``.
    """

    name: str
    description: str
    build: Callable[[Shape], nn.Module]


@dataclass
class Skipped:
    """An implementation that cannot run here, and why."""

    name: str
    reason: str


def torch_impl(cell: str, device: torch.device, dtype: torch.dtype) -> Implementation:
    cls = TORCH_CLASSES[cell]
    return Implementation(TORCH, f"torch.nn.{cls.__name__}",
                          lambda s: cls(s.I, s.H, s.L).to(device=device, dtype=dtype))


def spikingrnn_backends() -> dict:
    """``name -> (run_fn, unsupported_reason_fn)`` from the dispatch registry."""
    from ..ops.dispatch import BACKENDS

    return dict(BACKENDS)


def _surrogates(module: nn.Module) -> list:
    first = module.surrogate_function1
    second = getattr(module, "surrogate_function2", None)
    return [first, first if second is None else second]


def spikingrnn_impls(cell: str, device: torch.device, dtype: torch.dtype) -> tuple[list[Implementation], list[Skipped]]:
    """One implementation per spikingrnn backend that supports ``device``/``dtype``; the others skipped."""
    import spikingrnn

    cls = getattr(spikingrnn, SPIKINGRNN_CLASSES[cell])
    found, skipped = [], []
    for backend, (_, unsupported) in spikingrnn_backends().items():
        name = SPIKINGRNN_PREFIX + backend
        try:
            probe = cls(1, 1, 1, backend=backend)
            reason = unsupported(device, dtype, _surrogates(probe))
        except Exception as error:  # a backend under construction must not stop the benchmark
            reason = f"probe failed: {type(error).__name__}: {error}"
        if reason is not None:
            skipped.append(Skipped(name, str(reason)))
            continue
        found.append(Implementation(
            name, f"spikingrnn.{cls.__name__}(backend={backend!r})",
            # the default argument binds this iteration's backend; mypy cannot infer a lambda with one
            lambda s, backend=backend: cls(s.I, s.H, s.L, backend=backend).to(  # type: ignore[misc]
                device=device, dtype=dtype)))
        if backend in ("cpu", "triton"):  # the backends with a low-memory mode
            found.append(Implementation(
                name + "-lowmem", f"spikingrnn.{cls.__name__}(backend={backend!r}, low_memory=True)",
                lambda s, backend=backend: cls(  # type: ignore[misc]  # (as above)
                    s.I, s.H, s.L, backend=backend, low_memory=True).to(device=device, dtype=dtype)))
    return found, skipped


def spikingjelly_impl(cell: str, device: torch.device, dtype: torch.dtype) -> Implementation | Skipped:
    """SpikingJelly 2.0's layer, or :class:`Skipped` when it cannot be imported."""
    try:
        import spikingjelly
        from spikingjelly.activation_based import rnn
    except Exception as error:  # ImportError, or a missing dependency of spikingjelly
        return Skipped(SPIKINGJELLY, f"not importable ({type(error).__name__}: {error})")
    cls = getattr(rnn, SPIKINGJELLY_CLASSES[cell])
    version = getattr(spikingjelly, "__version__", "")
    return Implementation(SPIKINGJELLY, f"spikingjelly{(' ' + version) if version else ''} rnn.{cls.__name__}",
                          lambda s: cls(s.I, s.H, s.L).to(device=device, dtype=dtype))


def discover(cell: str, device, dtype: torch.dtype = torch.float32,
             only: list[str] | None = None) -> tuple[list[Implementation], list[Skipped]]:
    """All implementations for ``cell`` (torch first), filtered by name when ``only`` is given.

    The torch baseline is always included: every ratio is relative to it.
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    device = torch.device(device)
    impls = [torch_impl(cell, device, dtype)]
    found, skipped = spikingrnn_impls(cell, device, dtype)
    impls += found
    sj = spikingjelly_impl(cell, device, dtype)
    if isinstance(sj, Implementation):
        impls.append(sj)
    else:
        skipped.append(sj)
    if only:
        unknown = set(only) - {i.name for i in impls} - {s.name for s in skipped}
        if unknown:
            raise ValueError(f"unknown implementation(s) {sorted(unknown)}; known: "
                             f"{[i.name for i in impls] + [s.name for s in skipped]}")
        impls = [i for i in impls if i.name == TORCH or i.name in only]
        skipped = [s for s in skipped if s.name in only]
    return impls, skipped
