"""spikingrnn's annotations: mypy passes on the package, and the package says it is typed (PEP 561).

``test_mypy_passes`` runs exactly what a developer runs, ``python -m mypy`` in the repository root,
so the settings are those of ``[tool.mypy]`` in pyproject.toml (the public modules must be fully
annotated there). It is skipped only where mypy is not installed (``pip install -e '.[test]'``
installs the pinned version).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import spikingrnn

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(spikingrnn.__file__).resolve().parent


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (it comes with pip install -e '.[test]')")
def test_mypy_passes():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"mypy failed (exit {result.returncode}):\n{output}"
    assert "Success" in output, output


def test_mypy_checks_the_package():
    """What ``python -m mypy`` checks, and how strictly: the whole package, the public API fully annotated."""
    config = _pyproject()["tool"]["mypy"]
    assert config["files"] == ["spikingrnn"]
    strict = [o for o in config.get("overrides", []) if o.get("disallow_untyped_defs")]
    assert strict, "no override sets disallow_untyped_defs"
    modules = {m for o in strict for m in o["module"]}
    for public in ("spikingrnn", "spikingrnn.nn.*", "spikingrnn.functional.*", "spikingrnn.surrogate",
                   "spikingrnn.compat.*", "spikingrnn.io.*", "spikingrnn.export.*", "spikingrnn.monitor.*",
                   "spikingrnn.data.*", "spikingrnn.train.*", "spikingrnn.cli", "spikingrnn.ops",
                   "spikingrnn.ops.dispatch", "spikingrnn.ops.spec"):
        assert public in modules, f"{public} is not required to be fully annotated"
    assert not any(o.get("ignore_errors") for o in config.get("overrides", [])
                   if any(m.startswith("spikingrnn") for m in o["module"])), "a spikingrnn module ignores errors"


def test_package_is_marked_typed():
    """PEP 561: ``spikingrnn/py.typed`` exists and is shipped with the package (package-data)."""
    assert (PACKAGE / "py.typed").is_file()
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data.get("spikingrnn", [])
