"""The optional C++ time loops of the cpu backend (``csrc/loops.cpp``), built on first use.

``loops()`` returns the compiled module, or ``None`` when it cannot be built (no compiler or
ninja, or ``SPIKINGRNN_NO_EXTENSION=1``): the backend then runs the same loops in Python, slower
but identical. The build happens once per machine and torch version (torch caches it under
``TORCH_EXTENSIONS_DIR``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("spikingrnn")

_SOURCE = Path(__file__).with_name("csrc") / "loops.cpp"
_state: dict[str, object] = {}


def disabled() -> bool:
    return os.environ.get("SPIKINGRNN_NO_EXTENSION", "") not in ("", "0")


def loops():
    """The compiled loops module, or ``None`` (the pure-PyTorch loops are used instead)."""
    if disabled():
        return None
    if "module" not in _state:
        _state["module"] = None
        try:
            from torch.utils.cpp_extension import load

            logger.info("spikingrnn: building the C++ loops of the cpu backend (once)")
            _state["module"] = load(name="spikingrnn_cpu_loops", sources=[str(_SOURCE)],
                                    extra_cflags=["-O3"], verbose=False)
        except Exception as error:  # no compiler, no ninja, headers missing: fall back, say why
            logger.warning("spikingrnn: C++ loops unavailable, using the PyTorch loops (%s)", error)
    return _state["module"]
