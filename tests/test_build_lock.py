"""The first-use build of the cpu backend's C++ loops, across processes: nothing ever hangs.

A process killed while building used to leave torch's build lock behind, and every later process
then waited for it forever with no message. Each test runs real processes on a fresh
``TORCH_EXTENSIONS_DIR``. One test builds the real C++ sources (``csrc/*.cpp``, about a minute) end to end; the
others build a tiny stand-in module (``extension._SOURCE`` swapped, about 1 s) to exercise the
lock itself.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import spikingrnn

ROOT = str(Path(spikingrnn.__file__).resolve().parents[1])  # the spikingrnn these tests import

# A module with no torch headers: compiles in about a second, where the real sources take about a minute.
STAND_IN = r"""
#include <Python.h>
#define SPK_CAT(a, b) a##b
#define SPK_INIT(name) SPK_CAT(PyInit_, name)
static struct PyModuleDef spk_module = {PyModuleDef_HEAD_INIT, "stand_in", NULL, -1, NULL};
PyMODINIT_FUNC SPK_INIT(TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&spk_module); }
"""

# Trains one step of a small spiking LSTM on the cpu backend (the default on CPU, which builds the
# loops on first use) and on the reference, checks they agree, and says whether the compiled loops ran.
USE_BACKEND = r"""
import json, torch, spikingrnn
from spikingrnn.ops.cpu import extension
torch.manual_seed(0)
x = (torch.rand(12, 3, 5) < 0.3).float()
results = {}
for backend in ("cpu", "reference"):
    torch.manual_seed(1)
    model = spikingrnn.SpikingLSTM(5, 8, 2, backend=backend)
    xi = x.clone().requires_grad_()
    y, (h, c) = model(xi)
    (y.sum() + h.sum() + c.sum()).backward()
    results[backend] = [y, h, c, xi.grad] + [p.grad for p in model.parameters()]
for ours, reference in zip(results["cpu"], results["reference"]):
    torch.testing.assert_close(ours, reference)
print(json.dumps({"compiled": extension._state.get("module") is not None}))
"""

# Loads the stand-in module: the first call's result and time, then (looking again every 0.2 s, for
# up to 60 s) whether the module was picked up.
LOAD_STAND_IN = r"""
import json, sys, time
from pathlib import Path
import torch.utils.cpp_extension  # imported before the clock starts: the test times the lock, not imports
from spikingrnn.ops.cpu import extension
extension._SOURCE = Path(sys.argv[1])
extension.RETRY_S, extension.LOCK_WAIT_S = 0.2, float(sys.argv[2])
start = time.monotonic()
first = extension.loops()
print(json.dumps({"first": first is not None, "seconds": time.monotonic() - start}), flush=True)
sys.stdin.readline()  # the test lets the holder go first
deadline = time.monotonic() + 60
module = first
while module is None and time.monotonic() < deadline:
    time.sleep(0.1)
    module = extension.loops()
print(json.dumps({"later": module is not None}), flush=True)
"""

# Holds the build lock as a process compiling would, until a line arrives on stdin.
HOLD_LOCK = r"""
import sys
from pathlib import Path
from spikingrnn.ops.cpu.build_lock import BuildLock
lock = BuildLock(Path(sys.argv[1]))
assert lock.acquire(sys.argv[2], directory="somewhere") is None
print("held", flush=True)
sys.stdin.readline()
lock.release("done")
"""


def environment(extensions: Path) -> dict:
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(extensions), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # the venv's ninja
    env.pop("SPIKINGRNN_NO_EXTENSION", None)
    return env


def python(code: str, extensions: Path, *args, timeout: float, stdin: str = "") -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a hang ends in ``subprocess.TimeoutExpired`` (the test fails)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=environment(extensions), input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def start(code: str, extensions: Path, *args) -> subprocess.Popen:
    """Start ``code`` in its own process group (so that a test can kill it with its ninja and compiler)."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=environment(extensions),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_torch_lock(process: subprocess.Popen, extensions: Path, timeout: float = 120) -> None:
    """Until torch's ``lock`` file exists in a build directory: torch's build of the module is under way."""
    deadline = time.monotonic() + timeout
    while not any(extensions.glob("*/lock")):
        assert process.poll() is None, f"the build ended before it could be killed: {process.communicate()}"
        assert time.monotonic() < deadline, "no build started"
        time.sleep(0.01)


def working_in(directory: Path) -> list[int]:
    """Pids of the processes whose working directory lies in ``directory`` (ninja and the compilers it
    runs work in the build directory, each command in a process group of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(directory):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_group(process: subprocess.Popen, extensions: Path) -> None:
    """SIGKILL the process and everything it started, the compilers included; wait until they are gone."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = working_in(extensions.resolve())
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"processes still working in {extensions}: {working_in(extensions.resolve())}")


@pytest.fixture
def stand_in(tmp_path) -> Path:
    path = tmp_path / "stand_in.cpp"
    path.write_text(STAND_IN)
    return path


def test_a_killed_build_never_blocks_the_next_process(tmp_path):
    """The real C++ sources: a build killed mid-compilation, first alone (its compiler lives on), then
    with its compiler. The next processes finish with the reference's results: first on the PyTorch
    loops while the orphaned compiler runs, then by taking the build over."""
    extensions = tmp_path / "ext"
    builder = start(USE_BACKEND, extensions)
    try:
        wait_for_torch_lock(builder, extensions)
        time.sleep(1.0)  # into the compilation
        os.kill(builder.pid, signal.SIGKILL)  # the Python process alone, as the OOM killer or kill -9 would
        builder.wait()
        assert any(extensions.glob("*/lock")), "torch's lock should be left behind by the killed build"

        started = time.monotonic()
        during = python(USE_BACKEND, extensions, timeout=120)
        assert during.returncode == 0, during.stderr
        assert json.loads(during.stdout.splitlines()[-1]) == {"compiled": False}
        assert "compiler is still running" in during.stderr and "using the PyTorch loops" in during.stderr
        assert time.monotonic() - started < 60, "the fall-back should not wait for the orphaned compiler"
    finally:
        kill_group(builder, extensions)  # now the orphaned ninja and compiler too

    after = python(USE_BACKEND, extensions, timeout=400)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout.splitlines()[-1]) == {"compiled": True}, after.stderr
    assert "taking over the build lock" in after.stderr
    assert "removed torch's build lock" in after.stderr
    assert "building the C++ kernels of the cpu backend once" in after.stderr


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.7])
@pytest.mark.parametrize("whole_group", [True, False], ids=["with-compiler", "python-alone"])
def test_a_build_killed_at_any_moment_is_taken_over(tmp_path, stand_in, delay, whole_group):
    """Killed as its build starts, while compiling or just after: the next process loads the module
    within seconds (waiting out, at most, an orphaned compiler), never hangs."""
    extensions = tmp_path / "ext"
    builder = start(LOAD_STAND_IN, extensions, stand_in, 10.0)
    try:
        wait_for_torch_lock(builder, extensions)
        time.sleep(delay)
        os.kill(builder.pid, signal.SIGKILL)
        if whole_group:
            kill_group(builder, extensions)
        builder.wait()
        result = python(LOAD_STAND_IN, extensions, stand_in, 10.0, stdin="\n", timeout=60)
    finally:
        kill_group(builder, extensions)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"later": True}, result.stderr


@pytest.mark.parametrize("phase", ["building", "loading"])
def test_a_live_holder_means_the_pytorch_loops_then_the_module(tmp_path, stand_in, phase):
    """Another process holds the lock: no waiting on a build (a holder only loading is waited for, up to
    LOCK_WAIT_S), the reason on stderr, the PyTorch loops; the module once the holder is done."""
    extensions = tmp_path / "ext"
    holder = start(HOLD_LOCK, extensions, extensions / "spikingrnn_cpu_loops.lock", phase)
    waiter = None
    try:
        assert holder.stdout.readline().strip() == "held", holder.communicate()
        waiter = start(LOAD_STAND_IN, extensions, stand_in, 1.5)
        first = json.loads(waiter.stdout.readline() or "{}")
        assert first.get("first") is False, waiter.communicate()
        if phase == "building":
            assert first["seconds"] < 1.0
        else:
            assert 1.5 <= first["seconds"] < 3.0
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        out, err = waiter.communicate("\n", timeout=60)
    finally:
        kill_group(holder, extensions)
        if waiter is not None:
            kill_group(waiter, extensions)
    assert json.loads(out.splitlines()[-1]) == {"later": True}, err
    assert f"another process (pid {holder.pid} on " in err and f"is {phase} the C++ kernels" in err
    assert "using the PyTorch loops" in err and "using them from now on" in err


def test_a_dead_holders_locks_are_taken_over(tmp_path, stand_in):
    """The lock record of a process that died building, and torch's lock it left: taken over at once."""
    extensions = tmp_path / "ext"
    built = python(LOAD_STAND_IN, extensions, stand_in, 10.0, stdin="\n", timeout=120)
    assert built.returncode == 0, built.stderr
    (build_dir,) = [path for path in extensions.iterdir() if path.is_dir()]
    for path in build_dir.glob("*.so"):
        path.unlink()  # the dead process had not finished
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"pid": int(dead.stdout), "host": "here", "started": time.time() - 60, "phase": "building"}
    (extensions / "spikingrnn_cpu_loops.lock").write_text(json.dumps(record) + "\n")
    (build_dir / "lock").write_text("")

    result = python(LOAD_STAND_IN, extensions, stand_in, 10.0, stdin="\n", timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["first"] is True, result.stderr
    assert f"taking over the build lock of pid {record['pid']} on here" in result.stderr
    assert "removed torch's build lock" in result.stderr
    assert not (build_dir / "lock").exists()


def test_each_toolchain_gets_its_own_build_directory(monkeypatch):
    """Two ninja versions (or two torch installs) record different build commands: sharing one build
    directory, each would rebuild the other's objects on every load. The directory name keys on them."""
    from spikingrnn.ops.cpu import extension

    monkeypatch.setitem(extension._state, "toolchain", "torch 2.13.0 /env-a/torch ninja 1.11.1")
    first = extension._name(True)
    monkeypatch.setitem(extension._state, "toolchain", "torch 2.13.0 /env-a/torch ninja 1.13.2")
    assert extension._name(True) != first
    monkeypatch.setitem(extension._state, "toolchain", "torch 2.13.0 /env-b/torch ninja 1.11.1")
    assert extension._name(True) != first
    monkeypatch.setitem(extension._state, "toolchain", "torch 2.13.0 /env-a/torch ninja 1.11.1")
    assert extension._name(True) == first
    monkeypatch.delitem(extension._state, "toolchain")
    import torch
    assert torch.__version__ in extension._toolchain() and "ninja" in extension._toolchain()


def test_a_new_holder_that_has_not_written_its_record_yet_is_waited_for(tmp_path):
    """Two processes started together: the second finds the lock held under the last run's "done"
    record (the first has locked but not yet written). It waits (up to ``wait_s``) instead of
    reporting a build that is "done", and takes the lock once the first lets go."""
    import threading

    from spikingrnn.ops.cpu.build_lock import BuildLock

    path = tmp_path / "loops.lock"
    earlier = BuildLock(path)
    assert earlier.acquire("building") is None
    earlier.release("done")
    first = BuildLock(path)
    assert first.acquire("loading") is None
    first._put(first.previous)  # the moment before the new holder's own record is written
    assert first.previous["phase"] == "done"
    assert BuildLock(path).acquire("loading", wait_s=0.0)["phase"] == "done"  # no waiting asked: the record
    timer = threading.Timer(0.3, first.release, args=("done",))
    timer.start()
    started = time.monotonic()
    second = BuildLock(path)
    try:
        assert second.acquire("loading", wait_s=5.0) is None
        assert 0.25 <= time.monotonic() - started < 5.0
    finally:
        timer.join()
        second.release("done")
