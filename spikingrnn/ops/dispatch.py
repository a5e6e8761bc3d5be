"""Backend registry and selection.

``backend="auto"`` picks the fastest backend that supports the device, dtype and surrogates;
an explicit name is used as given or raises: it is never silently replaced.
"""
from __future__ import annotations

from .reference import reference_rnn

BACKENDS = {"reference": reference_rnn}
BACKEND_CHOICES = ("auto", *BACKENDS)


def check_backend(backend, owner: str) -> str:
    """Validate a ``backend`` constructor argument; returns it."""
    if backend not in BACKEND_CHOICES:
        raise ValueError(f"{owner}: backend must be one of {BACKEND_CHOICES}, got {backend!r}")
    return backend


def resolve(backend: str, device=None, dtype=None, surrogates=None):
    """The run function for ``backend`` on this device/dtype/surrogates.

    Only the reference backend exists so far, so ``"auto"`` resolves to it everywhere.
    """
    if backend == "auto":
        return BACKENDS["reference"]
    return BACKENDS[backend]
