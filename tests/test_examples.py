"""Every script in examples/ runs in its fast mode and passes its own checks.

Each example checks its result itself and exits non-zero with a message when it is wrong, so a test
runs it as a user would (a subprocess of this interpreter with ``--fast``; the DDP one under
``torch.distributed.run``) and asserts exit code 0 and the final ``OK`` line, showing the output
otherwise. The selected examples are started together when the first of their tests runs (each is
mostly interpreter start-up and one thread of work, so together they take about as long as the
slowest), and each test waits for its own. ``test_every_example_is_tested`` makes a new example
without a test fail.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT_S = 300   # from the start of all runs; each takes seconds, the bound is for a loaded machine

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

# test name -> (script, arguments); every script in examples/ needs at least one entry and a test
RUNS = {
    "classifier_swap[spiking_lstm]": ("classifier_swap.py", ["--fast", "--rnn", "spiking_lstm"]),
    "classifier_swap[spiking_gru]": ("classifier_swap.py", ["--fast", "--rnn", "spiking_gru"]),
    "spikingjelly_migration": ("spikingjelly_migration.py", ["--fast"]),
    "shd_events": ("shd_events.py", ["--fast"]),
    "energy_report": ("energy_report.py", ["--fast"]),
    "onnx_export": ("onnx_export.py", ["--fast"]),
    "ddp_torchrun": ("ddp_torchrun.py", ["--fast"]),
}
LAUNCHERS = {"ddp_torchrun.py": TORCHRUN}


class Run:
    """One example started as a subprocess (its own process group), output to files."""

    def __init__(self, script: str, arguments: list[str], folder: Path, name: str):
        self.command = [*LAUNCHERS.get(script, [sys.executable]), str(EXAMPLES / script), *arguments]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        safe = name.replace("[", "_").replace("]", "")
        self.stdout_path, self.stderr_path = folder / f"{safe}.out", folder / f"{safe}.err"
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr,
                                            start_new_session=True)

    def stop(self) -> None:
        """Kill this run and its children (torchrun's workers) if it is still going."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def finish(self, deadline: float) -> str:
        """Wait for the run; fail showing its output unless it exits 0 and prints OK. Returns stdout."""
        try:
            self.process.wait(timeout=max(deadline - time.monotonic(), 1.0))
            timed_out = False
        except subprocess.TimeoutExpired:
            self.stop()
            timed_out = True
        stdout, stderr = self.stdout_path.read_text(), self.stderr_path.read_text()
        shown = (f"$ {' '.join(self.command)}\n--- stdout ---\n{stdout[-6000:]}\n"
                 f"--- stderr ---\n{stderr[-6000:]}")
        assert not timed_out, f"did not finish within {TIMEOUT_S} s of the start\n{shown}"
        assert self.process.returncode == 0, f"exit code {self.process.returncode}\n{shown}"
        assert "OK" in stdout, f"no OK line: the example's checks did not all run\n{shown}"
        return stdout


@pytest.fixture(scope="module")
def runs(request):
    """Start the examples whose tests are selected, all at once; yield ``{test name: Run}`` and a deadline."""
    # the cpu backend's C++ loops: built (once per machine, about a minute) here, not by several examples at once
    from spikingrnn.ops.cpu.extension import loops
    loops()
    selected = {item.name.removeprefix("test_") for item in request.session.items
                if item.module is request.module}
    started: dict[str, Run] = {}
    with tempfile.TemporaryDirectory() as folder:
        try:
            for name, (script, arguments) in RUNS.items():
                if name in selected:
                    started[name] = Run(script, arguments, Path(folder), name)
            yield started, time.monotonic() + TIMEOUT_S
        finally:
            for run in started.values():
                run.stop()


def output_of(runs, name: str) -> str:
    started, deadline = runs
    return started[name].finish(deadline)


@pytest.mark.parametrize("rnn", ["spiking_lstm", "spiking_gru"])
def test_classifier_swap(runs, rnn):
    output = output_of(runs, f"classifier_swap[{rnn}]")
    assert "test accuracy" in output and "firing rate" in output


def test_spikingjelly_migration(runs):
    output = output_of(runs, "spikingjelly_migration")
    if importlib.util.find_spec("spikingjelly") is not None:   # installed by scripts/setup.sh test
        assert "compared with SpikingJelly 2.0" in output and "float64 spikes vs SpikingJelly: identical" in output
    else:
        assert "skipped the comparison with SpikingJelly" in output


def test_shd_events(runs):
    output = output_of(runs, "shd_events")
    assert "wrote synthetic shd_train.h5" in output and "same counts per unit" in output


def test_energy_report(runs):
    output = output_of(runs, "energy_report")
    assert "energy vs dense nn.LSTM" in output


def test_onnx_export(runs):
    output = output_of(runs, "onnx_export")
    assert "spikes identical" in output and "stream fed in chunks" in output


def test_ddp_torchrun(runs):
    output = output_of(runs, "ddp_torchrun")
    assert "2 process(es)" in output and "parameters identical on all 2 ranks" in output


def test_every_example_is_tested():
    """A script added to examples/ needs an entry in RUNS and a test; each is a complete, runnable script."""
    scripts = sorted(path.name for path in EXAMPLES.glob("*.py"))
    run_scripts = sorted({script for script, _ in RUNS.values()})
    assert scripts == run_scripts, f"examples/ holds {scripts}, tests/test_examples.py runs {run_scripts}"
    tests = {name for name, value in globals().items() if name.startswith("test_") and callable(value)}
    readme = (EXAMPLES / "README.md").read_text()
    for script in scripts:
        stem = Path(script).stem
        assert f"test_{stem}" in tests, f"no test_{stem} in tests/test_examples.py"
        assert f"({script})" in readme, f"examples/README.md does not list {script}"
        source = (EXAMPLES / script).read_text()
        tree = ast.parse(source)
        assert ast.get_docstring(tree), f"{script} has no module docstring"
        assert '"--fast"' in source, f"{script} has no --fast option"
        assert 'if __name__ == "__main__":' in source and "def main(" in source, f"{script}: no main() entry point"
        private = [f"{node.module}.{alias.name}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and (node.module or "").startswith("spikingrnn") for alias in node.names
                   if any(part.startswith("_") for part in [*node.module.split("."), alias.name])]
        assert not private, f"{script} imports private names {private}: examples use the public API"
