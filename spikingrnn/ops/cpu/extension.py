"""The optional C++ time loops of the cpu backend (``csrc/loops.cpp``), built on first use.

``loops()`` returns the compiled module, or ``None`` when it cannot be built (no compiler or
ninja, or ``SPIKINGRNN_NO_EXTENSION=1``): the backend then runs the same loops in Python, slower
but identical. The build happens once per machine and torch version (torch caches it under
``TORCH_EXTENSIONS_DIR``), with ``-march=native`` so that the pointwise loops and the event-driven
products use the CPU's widest vector instructions (plain ``-O3 -fopenmp`` if the compiler refuses
that), and OpenMP so that their ``at::parallel_for`` runs on torch's threads.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
from pathlib import Path

logger = logging.getLogger("spikingrnn")

_SOURCE = Path(__file__).with_name("csrc") / "loops.cpp"
# headers it includes: torch rebuilds when the source changes, the tag below covers these
_HEADERS = tuple(sorted(_SOURCE.parent.glob("*.h")))
_state: dict[str, object] = {}


def _cpu_features() -> str:
    """The CPU's model and instruction-set flags (Linux), so that a build tuned for one CPU
    (``-march=native``) is never loaded on another sharing the same cache directory."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    keys = ("model name", "flags", "Features")
    lines = sorted({line.strip() for line in text.splitlines() if line.split(":")[0].strip() in keys})
    return platform.machine() + "\n" + "\n".join(lines)


def _build(native: bool):
    from torch.utils.cpp_extension import load

    # -fopenmp: without it ATen's header-only at::parallel_for compiles to a plain serial loop (the
    # threads join torch's own OpenMP pool, libgomp being loaded once per process)
    flags = ["-O3", "-fopenmp"] + (["-march=native"] if native else [])
    key = " ".join(flags) + "".join(path.read_text() for path in _HEADERS) + (_cpu_features() if native else "generic")
    tag = ("native_" if native else "generic_") + hashlib.sha1(key.encode()).hexdigest()[:10]
    return load(name=f"spikingrnn_cpu_loops_{tag}", sources=[str(_SOURCE)], extra_cflags=flags,
                extra_ldflags=["-fopenmp"], verbose=False)


def disabled() -> bool:
    return os.environ.get("SPIKINGRNN_NO_EXTENSION", "") not in ("", "0")


def loops():
    """The compiled loops module, or ``None`` (the pure-PyTorch loops are used instead)."""
    if disabled():
        return None
    if "module" not in _state:
        _state["module"] = None
        logger.info("spikingrnn: building the C++ loops of the cpu backend (once)")
        errors = []
        # tuned for this CPU's vector units first; a compiler without -march=native gets a plain build
        for native in (True, False):
            try:
                _state["module"] = _build(native)
                break
            except Exception as error:  # no compiler, no ninja, headers missing: fall back, say why
                errors.append(str(error).strip().splitlines()[-1:] or [repr(error)])
        if _state["module"] is None:
            logger.warning("spikingrnn: C++ loops unavailable, using the PyTorch loops (%s)", errors)
    return _state["module"]
