"""scripts/gpu_check.sh, the one script a GPU session runs (issue 14, item 12), checked without a GPU.

What it checks: every cell bit for bit against the reference at H = 20, 40 and 256 with a partial batch
tile (B = 33), packed and not, five runs identical (:mod:`spikingrnn.ops.triton.exactness`), then the
benchmark table. How long it may take: under 8 minutes on an H100/H200, whatever a phase does; a phase
that hangs here (a stand-in ``python``) is stopped at the script's time budget.
"""
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import spikingrnn

# the script of the library under test (a checkout's scripts/ beside its spikingrnn/)
SCRIPT = Path(spikingrnn.__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def test_the_exactness_check_covers_every_cell_at_the_issues_sizes():
    # exactness imports no kernel module (this must not build them for the GPU before test_triton_backend.py)
    exactness = pytest.importorskip("spikingrnn.ops.triton.exactness")
    cases = exactness.cases()
    for mode in ("LSTM", "GRU", "RNN"):
        for hidden in (20, 40, 256):
            for packed in (False, True):
                mine = [c for c in cases if c.mode == mode and c.hidden == hidden and c.packed == packed and not c.proj]
                assert mine, (mode, hidden, packed)
                assert all(c.batch == 33 for c in mine), "full batch tiles and a partial one (tiles are powers of 2)"
    assert {c.cell_state for c in cases if c.mode == "LSTM"} == {"clamp", "accumulate", "spike"}
    assert any(c.proj for c in cases), "the LSTM's per-step path through proj_size"


def test_the_script_runs_the_exactness_check_five_times_each_then_the_benchmark():
    text = SCRIPT.read_text()
    exact = text.find("spikingrnn.ops.triton.exactness --device cuda --repeats 5")
    bench = text.find("spikingrnn.bench --device cuda")
    assert 0 <= exact < bench, "the bit-for-bit check, then the benchmark table"
    budget = re.search(r"GPU_CHECK_SECONDS:-(\d+)", text)
    assert budget and int(budget.group(1)) + 20 <= 8 * 60, "the whole under 8 minutes"


def _stand_in(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_a_hanging_phase_cannot_push_the_script_past_its_budget(tmp_path):
    """A stand-in ``python`` that never returns: the script stops it at its time budget, still records
    why, and fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    _stand_in(bin_dir, "python", f'echo "$@" >> {calls}\n[ "$1" = -c ] && exit 0\nexec sleep 1000')
    _stand_in(bin_dir, "nvidia-smi", 'echo "name, memory.total, driver_version"')
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", OUT=str(tmp_path / "out"),
               GPU_CHECK_SECONDS="14")
    began = time.monotonic()
    script = subprocess.Popen(["bash", str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env, start_new_session=True)
    try:
        output, _ = script.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(script.pid, signal.SIGKILL)  # the script and its stand-ins
        script.communicate()
        pytest.fail("the script did not stop at its budget")
    finally:
        try:
            os.killpg(script.pid, signal.SIGKILL)  # whatever it left behind
        except ProcessLookupError:
            pass
    took = time.monotonic() - began
    assert took < 45, f"the script ran {took:.0f} s with a 14 s budget"
    assert script.returncode != 0
    assert "ran out of time" in output, output[-2000:]
    assert "-m spikingrnn.ops.triton.exactness" in calls.read_text()
