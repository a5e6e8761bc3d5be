"""The documentation site builds offline with zero warnings, and its API reference covers the public API.

One Sphinx build (``-W -n``: every warning, a broken cross-reference included, is an error) into a
temporary folder per test session; then the object inventory (``objects.inv``) must name every public
name: each entry of ``__all__`` of the documented modules, either under that module or, for a name the
module re-exports, under the module that defines it.
"""
from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"

# the modules whose __all__ is the public API (docs/api/ has one page each)
PUBLIC_MODULES = (
    "spikingrnn", "spikingrnn.nn", "spikingrnn.functional", "spikingrnn.surrogate", "spikingrnn.ops",
    "spikingrnn.compat.spikingjelly", "spikingrnn.compat.checkpoints", "spikingrnn.compat.torch_nn",
    "spikingrnn.io", "spikingrnn.export", "spikingrnn.monitor", "spikingrnn.data", "spikingrnn.train",
    "spikingrnn.bench",
)

sphinx = pytest.importorskip("sphinx", reason="the docs test needs sphinx (pip install -e '.[test]')")
pytest.importorskip("myst_parser", reason="the docs test needs myst-parser (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs_html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "--keep-going", "-q", "-E",
         "-d", str(out / ".doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the docs build has warnings or errors:\n{done.stderr[-12000:]}\n{done.stdout[-3000:]}"
    return out


def documented_names(site: Path) -> set[str]:
    """The Python objects (modules, classes, functions, data, ...) named in the built site's inventory."""
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    return {name for kind, entries in inventory.items() if kind.startswith("py:") for name in entries}


def test_docs_build_without_warnings(built_site: Path):
    for page in ("index.html", "api/index.html", "guides/from_torch.html", "guides/training.html"):
        assert (built_site / page).is_file(), f"the build did not write {page}"


def test_every_public_name_is_in_the_api_reference(built_site: Path):
    names = documented_names(built_site)
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        assert module_name in names, f"the API reference has no page for the module {module_name}"
        for name in module.__all__:
            value = getattr(module, name)
            if f"{module_name}.{name}" in names or (inspect.ismodule(value) and value.__name__ in names):
                continue
            # a re-export counts where a public module that exports the same object documents it
            elsewhere = [other for other in PUBLIC_MODULES
                         if other != module_name and f"{other}.{name}" in names
                         and getattr(importlib.import_module(other), name, None) is value]
            if not elsewhere:
                home = getattr(value, "__module__", None) if inspect.isclass(value) or inspect.isfunction(value) else None
                missing.append(f"{module_name}.{name}" + (f" (defined in {home})" if home else ""))
    assert not missing, f"public names missing from the API reference: {missing}"
