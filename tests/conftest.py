"""Session setup and shared fixtures of the test suite.

The Triton interpreter, independent of test order
-------------------------------------------------
Triton decides between its interpreter and GPU compilation when a ``@triton.jit`` function is
decorated, i.e. when ``spikingrnn.ops.triton``'s kernel modules are first imported, and a process
keeps that first build. pytest imports this file before any test module, so the decision is taken
here, once, for the whole session:

* ``TRITON_INTERPRET`` already set in the environment: respected as it is (and kept);
* else, without a CUDA GPU: the kernel modules are imported now with ``TRITON_INTERPRET=1`` (the
  interpreter), then the environment is restored, so that the other test modules see what they
  always saw (``backend="triton"`` refuses CPU tensors without ``TRITON_INTERPRET=1``, subprocesses
  inherit nothing); the interpreter tests set it again for themselves (the fixture below);
* else (a CUDA GPU): nothing is imported; the kernels are built for the GPU when first used,
  tests/test_triton_cuda.py runs, and the interpreter tests skip saying to run them with
  ``TRITON_INTERPRET=1`` in the environment.

Tests that run kernels under the interpreter request the ``triton_interpreter`` fixture (an argument,
or ``pytest.mark.usefixtures("triton_interpreter")``): it sets ``TRITON_INTERPRET=1`` for the test and
skips, with the reason, only where the kernels cannot run under the interpreter (triton not
installed, or the GPU build above).

Shared builders
---------------
``build_model``, ``same_weights``, ``make_inputs`` and ``forward_backward`` (tests/builders.py) as
fixtures; test modules may also ``from builders import ...`` directly.
"""
from __future__ import annotations

import os

import pytest
import torch

import builders


def _interpreter_decision() -> str:
    """Build the kernels for the interpreter or not, for the session (see the module docstring); returns
    what was decided, for pytest's header and the skip reasons."""
    if "TRITON_INTERPRET" in os.environ:
        return f"TRITON_INTERPRET={os.environ['TRITON_INTERPRET']!r} from the environment"
    if torch.cuda.is_available():
        return "a CUDA GPU is present: the Triton kernels are built for the GPU (TRITON_INTERPRET unset)"
    try:
        import triton  # noqa: F401
    except Exception as error:  # ImportError, or a broken install
        return f"triton is not installed ({type(error).__name__}: {error})"
    from spikingrnn.ops.triton import load_kernels
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        load_kernels()
    finally:
        del os.environ["TRITON_INTERPRET"]
    return "no CUDA GPU: the Triton kernels are built for the interpreter (TRITON_INTERPRET=1 at their import)"


TRITON_SETUP = _interpreter_decision()  # at import: before any test module imports the kernel modules


def pytest_report_header(config):
    return f"triton: {TRITON_SETUP}"


def interpreter_unavailable() -> str | None:
    """Why spikingrnn's Triton kernels cannot run under the interpreter in this process, or ``None``.

    Imports the kernel modules (this session's build, see the module docstring)."""
    try:
        import triton  # noqa: F401
    except Exception as error:  # ImportError, or a broken install
        return f"triton is not installed ({type(error).__name__}: {error})"
    from spikingrnn.ops.triton import kernels_interpreted, load_kernels
    load_kernels()
    if not kernels_interpreted():
        return ("spikingrnn's Triton kernels are built for the GPU in this process "
                f"({TRITON_SETUP}); run the interpreter tests with TRITON_INTERPRET=1 in the environment")
    return None


@pytest.fixture
def triton_interpreter(monkeypatch):
    """``TRITON_INTERPRET=1`` for the test (``unsupported_reason`` reads it at call time); skips unless the
    kernels run under the Triton interpreter in this process (in practice: unless triton is not installed)."""
    reason = interpreter_unavailable()
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def build_model():
    """:func:`builders.build_model`: a spiking stack of any mode and options, reference backend, float64."""
    return builders.build_model


@pytest.fixture
def same_weights():
    """:func:`builders.same_weights`: a same-weight clone on another backend / dtype."""
    return builders.same_weights


@pytest.fixture
def make_inputs():
    """:func:`builders.make_inputs`: ``x``, initial states and lengths (packed) for a module."""
    return builders.make_inputs


@pytest.fixture
def forward_backward():
    """:func:`builders.forward_backward`: output, final states and every gradient of one run."""
    return builders.forward_backward
