"""The optional C++ time loops of the cpu backend (``csrc/``), built on first use.

``loops()`` returns the compiled module, or ``None`` when it cannot be built (no compiler or
ninja, or ``SPIKINGRNN_NO_EXTENSION=1``): the backend then runs the same loops in Python, slower
but identical. The build happens once per machine and torch version (torch caches it under
``TORCH_EXTENSIONS_DIR``), with ``-march=native`` so that the pointwise loops and the event-driven
products use the CPU's widest vector instructions (plain ``-O3 -fopenmp`` if the compiler refuses
that), and OpenMP so that their ``at::parallel_for`` runs on torch's threads.

Processes sharing the cache take turns through a lock of their own (build_lock.py), never through
torch's, which a killed build leaves behind for every later process to wait on forever. A process
that finds another one building does not wait: it says so on stderr and runs the PyTorch loops,
looking again every ``RETRY_S`` seconds and switching to the compiled loops once they are built.
A build announces itself on stderr first (about a minute of compiler time over six translation
units, which ninja compiles in parallel).
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from .build_lock import ACTIVE_PHASES, BuildLock, describe, processes_in, remove_torch_lock

logger = logging.getLogger("spikingrnn")

_CSRC = Path(__file__).with_name("csrc")
# The module's entry (PYBIND11_MODULE); built with the other translation units of csrc/ (tests swap
# in a stand-in source elsewhere, built alone).
_SOURCE = _CSRC / "bindings.cpp"
LOCK_NAME = "spikingrnn_cpu_loops.lock"  # in the extensions directory: one lock over both builds below
# How long to wait for a process holding the lock to check and import a module built before (a
# second or so); a process actually compiling is never waited for.
LOCK_WAIT_S = 10.0
# After a fall-back because another process was building: how often loops() looks again.
RETRY_S = 5.0
_state: dict[str, object] = {}  # "module" once settled (None: the PyTorch loops for good); "retry_at" while not
_guard = threading.Lock()


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


def _flags(native: bool) -> list[str]:
    # -fopenmp: without it ATen's header-only at::parallel_for compiles to a plain serial loop (the
    # threads join torch's own OpenMP pool, libgomp being loaded once per process)
    # -mprefer-vector-width=512 (x86 only; other compilers' targets refuse it): GCC vectorises loops with
    # 256-bit registers on AVX-512 CPUs unless told otherwise; the pointwise passes (sigmoid and tanh per
    # gate) run 1.3x faster with the full width, and it changes nothing on CPUs without AVX-512
    if not native:
        return ["-O3", "-fopenmp"]
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")
    return ["-O3", "-fopenmp", "-march=native"] + (["-mprefer-vector-width=512"] if x86 else [])


def _sources() -> list[Path]:
    """The translation units of the module: ``_SOURCE`` first, then csrc's other ``.cpp`` files."""
    if _SOURCE.parent != _CSRC:
        return [_SOURCE]
    return [_SOURCE] + sorted(path for path in _CSRC.glob("*.cpp") if path != _SOURCE)


def _inputs() -> list[Path]:
    """Every file a change of which must rebuild the module: the sources and csrc's headers."""
    return _sources() + sorted(_CSRC.glob("*.h"))


def _toolchain() -> str:
    """What else goes into the build commands: torch's version and headers' location, and the version of
    the ninja that torch runs (the first on ``PATH``). Two ninja versions record build commands
    differently, and two torch installs put different include paths in them, so processes of two
    environments sharing one build directory would each rebuild the other's objects (a minute each
    time): each environment gets its own directory."""
    if "toolchain" not in _state:
        import torch

        ninja, version = shutil.which("ninja"), ""
        if ninja:
            try:
                version = subprocess.run([ninja, "--version"], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.SubprocessError):
                pass
        _state["toolchain"] = f"torch {torch.__version__} {os.path.dirname(torch.__file__)} ninja {version.strip()}"
    return str(_state["toolchain"])


def _name(native: bool) -> str:
    # the name (and so the build directory) changes with any source or header, and with the ninja that
    # builds it: a build is never reused for other sources, whichever file changed
    key = " ".join(_flags(native)) + "".join(path.name + "\n" + path.read_text() for path in _inputs())
    key += _cpu_features() if native else "generic"
    key += _toolchain()
    tag = ("native_" if native else "generic_") + hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"spikingrnn_cpu_loops_{tag}"


def _build(native: bool, directory: Path):
    from torch.utils.cpp_extension import load

    return load(name=_name(native), sources=[str(path) for path in _sources()], extra_cflags=_flags(native),
                extra_ldflags=["-fopenmp"], build_directory=str(directory), verbose=False)


def _fresh(directory: Path, name: str) -> bool:
    """Whether ``directory`` holds a module built after the last change of the sources (torch then
    only checks it and imports it: no compilation, no notice)."""
    built = [p for p in directory.glob(name + ".*") if p.suffix in (".so", ".pyd")]
    if not built:
        return False
    changed = max(path.stat().st_mtime for path in _inputs())
    return max(path.stat().st_mtime for path in built) >= changed


def _say(message: str) -> None:
    """One line on stderr: a build or a fall-back must not look like a silent hang or slowdown."""
    print(f"spikingrnn: {message}", file=sys.stderr, flush=True)


def disabled() -> bool:
    return os.environ.get("SPIKINGRNN_NO_EXTENSION", "") not in ("", "0")


def loops():
    """The compiled loops module, or ``None`` (the pure-PyTorch loops are used instead)."""
    if disabled():
        return None
    if "module" in _state:
        return _state["module"]
    if time.monotonic() < _state.get("retry_at", 0.0):
        return None
    with _guard:  # one thread loads; the others find the result
        if "module" not in _state and time.monotonic() >= _state.get("retry_at", 0.0):
            try:
                _load()
            except OSError as error:  # no writable extensions directory, ...: nothing can be built
                _state["module"] = None
                logger.warning("spikingrnn: C++ loops unavailable, using the PyTorch loops (%s)", error)
    return _state.get("module")


def _fall_back(reason: str) -> None:
    """Use the PyTorch loops for now, and look again in ``RETRY_S`` seconds."""
    if "retry_at" not in _state:  # said once a process: the retries are silent
        _say(f"{reason}; using the PyTorch loops (slower, same results) until it is done")
    _state["retry_at"] = time.monotonic() + RETRY_S


def _load() -> None:
    """Take the build lock, build or import the module, settle ``_state["module"]``; or fall back
    for now (``_state["retry_at"]``) while another process builds."""
    from torch.utils.cpp_extension import _get_build_directory

    pending = "retry_at" in _state  # an earlier call fell back while another process was building
    names = {native: _name(native) for native in (True, False)}
    # tuned for this CPU's vector units first; a compiler without -march=native gets a plain build
    directories = {native: Path(_get_build_directory(names[True], False)).parent / names[native]
                   for native in (True, False)}
    fresh = any(_fresh(directories[native], names[native]) for native in (True, False))
    lock = BuildLock(directories[True].parent / LOCK_NAME)
    holder = lock.acquire("loading" if fresh else "building", 0.0 if pending else LOCK_WAIT_S,
                          directory=str(directories[True]))
    if holder is not None:
        phase = holder.get("phase")
        doing = (f"({describe(holder)}) is {phase}" if phase in ACTIVE_PHASES
                 else f"is starting to build or load (the lock's last record: {describe(holder)}, {phase})")
        _fall_back(f"another process {doing} the C++ kernels of the cpu backend in "
                   f"{holder.get('directory', directories[True].parent)}")
        return
    busy = processes_in(directories.values())
    if busy:  # a builder killed alone: its ninja and compiler still write there
        lock.abandon()
        _fall_back(f"a killed build's compiler is still running in {directories[True].parent} "
                   f"(pid {busy[0][0]}: {busy[0][1]})")
        return
    previous = lock.previous
    if pending and previous.get("phase") == "failed":  # the build this process waited for: no second try
        lock.release("failed", detail=previous.get("detail", ""))
        _state["module"] = None
        logger.warning("spikingrnn: C++ loops unavailable, using the PyTorch loops (the build of %s failed: %s)",
                       describe(previous), previous.get("detail", ""))
        return
    if previous.get("phase") in ACTIVE_PHASES:
        _say(f"taking over the build lock of {describe(previous)}: that process ended while "
             f"{previous['phase']} the C++ kernels")
    module, errors = None, []
    try:
        for native in (True, False):
            directory = directories[native]
            directory.mkdir(parents=True, exist_ok=True)
            if remove_torch_lock(directory):  # we hold the lock and nobody works there: a dead build's
                _say(f"removed torch's build lock left in {directory} by a build that was killed")
            if not _fresh(directory, names[native]):
                lock.write("building", directory=str(directory))
                _say(f"building the C++ kernels of the cpu backend once (~1 min) in {directory}")
            try:
                module = _build(native, directory)
                break
            except Exception as error:  # no compiler, no ninja, headers missing: fall back, say why
                errors.append(str(error).strip().splitlines()[-1:] or [repr(error)])
    except BaseException:  # interrupted (Ctrl-C): not a failed build, the next process tries again
        lock.release("interrupted")
        raise
    if module is None:
        lock.release("failed", detail=str(errors))
        logger.warning("spikingrnn: C++ loops unavailable, using the PyTorch loops (%s)", errors)
    else:
        lock.release("done", directory=str(Path(module.__file__).parent))
        if pending:
            _say("the C++ kernels of the cpu backend are built: using them from now on")
    _state.pop("retry_at", None)
    _state["module"] = module
