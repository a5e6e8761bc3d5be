"""Backend registry and selection.

``backend="auto"`` picks the fastest backend that supports the device, dtype and surrogates and
logs why it passed over a faster one; an explicit name is used as given or raises with the
reason: it is never silently replaced.
"""
from __future__ import annotations

import logging

import torch

from . import cpu
from . import triton as _triton_backend  # imports triton itself only when used
from .reference import reference_rnn

logger = logging.getLogger("spikingrnn")

# name -> (run function, unsupported_reason(device, dtype, surrogates) -> str | None)
BACKENDS = {
    "reference": (reference_rnn, lambda device, dtype, surrogates: None),
    "cpu": (cpu.cpu_rnn, cpu.unsupported_reason),
    "triton": (_triton_backend.triton_rnn, _triton_backend.unsupported_reason),
}
AUTO_ORDER = ("triton", "cpu", "reference")
# backends that "auto" considers only on these device types: Triton's CPU interpreter
# (TRITON_INTERPRET=1) is a testing tool, never an automatic choice
AUTO_DEVICE_TYPES = {"triton": ("cuda",)}
BACKEND_CHOICES = ("auto", *BACKENDS)


def check_backend(backend, owner: str) -> str:
    """Validate a ``backend`` constructor argument; returns it."""
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"{owner}: backend must be one of {BACKEND_CHOICES}, got {backend!r}")
    return backend


def resolve(backend: str, device, dtype, surrogate_pairs: list[tuple]):
    """The run function of ``backend`` for this device, dtype and ``(spike, spike_g)`` pairs."""
    surrogates = [s for pair in surrogate_pairs for s in pair]
    if backend != "auto":
        run, unsupported = BACKENDS[backend]
        reason = unsupported(device, dtype, surrogates)
        if reason is not None:
            raise ValueError(f"backend={backend!r} cannot run this input: {reason}. Use backend='auto' or 'reference'.")
        return run
    for name in AUTO_ORDER:
        run, unsupported = BACKENDS[name]
        allowed = AUTO_DEVICE_TYPES.get(name)
        if allowed is not None and torch.device(device).type not in allowed:
            continue
        reason = unsupported(device, dtype, surrogates)
        if reason is None:
            return run
        logger.debug("backend 'auto' skips %r: %s", name, reason)
    raise RuntimeError("no backend can run this input")  # unreachable: the reference runs everything
