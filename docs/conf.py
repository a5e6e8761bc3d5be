"""Sphinx configuration of the spikingrnn documentation.

Build (offline, warnings are errors)::

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Why Sphinx, with these extensions:

* the docstrings are Google style (``Args:``/``Returns:``/``Raises:``), which
  ``sphinx.ext.napoleon`` reads, and ``sphinx.ext.autodoc`` turns them into the API reference
  (docs/api/), so the reference is the code's own documentation;
* the guides and reports are Markdown, which ``myst_parser`` (MyST) reads as they are;
* Sphinx and myst-parser install from the package registries and build without network access:
  no intersphinx, no remote images or themes (``alabaster`` ships with Sphinx);
* ``-W`` turns every warning (a broken cross-reference with ``-n``, a malformed docstring,
  an object documented twice) into an error, so tests/test_docs_build.py keeps the site clean.
"""
from __future__ import annotations

import os
import sys

# the package from this checkout, also when it is not installed
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import spikingrnn  # noqa: E402

project = "spikingrnn"
author = "spikingrnn contributors"
copyright = "spikingrnn contributors"
version = release = spikingrnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# _build: the output; guides/README-style notes are pages only when a toctree lists them
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]

# -- MyST ---------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
# "#" ... "###" headings get anchors, so [text](page.md#a-heading) links resolve and are checked
myst_heading_anchors = 3

# -- autodoc / napoleon -------------------------------------------------------------------
autodoc_member_order = "bysource"  # with __all__: the order of __all__
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
# "Attributes:" sections as :ivar: fields: autodoc documents the attributes themselves (no duplicates)
napoleon_use_ivar = True

# -- HTML ---------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"spikingrnn {release}"
html_static_path: list[str] = []

# -- nitpicky references ------------------------------------------------------------------
# ``-n`` checks every cross-reference. Names of other projects cannot resolve offline (no intersphinx),
# so only those are exempt; a broken reference to a spikingrnn name stays an error.
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|collections|typing|types|pathlib|os|io|enum|dataclasses|argparse|"
               r"concurrent|contextlib|abc|onnx|onnxruntime|triton|spikingjelly|h5py|safetensors)(\..+)?"),
    # builtins and typing aliases that autodoc writes unqualified
    (r"py:.*", r"(Tensor|Module|Sequential|Parameter|PackedSequence|Path|Callable|Any|Iterator|Iterable|"
               r"Sequence|Mapping|Optional|Union|ndarray|dtype|device|NoneType|Self)"),
]
