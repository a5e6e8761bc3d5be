"""Every code block of the guides (docs/guides/*.md) runs and passes.

A guide's fenced blocks must be ``python`` or ``bash`` (anything else fails here, naming the file and
line). The blocks of one page run in order, in one fresh subprocess whose working directory is an
empty temporary folder: the ``python`` blocks share one namespace (a later block sees the names of an
earlier one), each ``bash`` block runs with ``bash -euo pipefail`` in that folder, with this
interpreter's ``bin`` folder first on ``PATH`` (so ``spikingrnn`` and ``python`` are this
environment's). A block that raises or exits non-zero fails the page and the message names the block's
line. Guides keep their commands small (a few hundred samples, one or two epochs) so that a page runs in
well under a minute.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDES = Path(__file__).resolve().parent.parent / "docs" / "guides"
RUNNABLE = ("python", "bash")
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")

# Run by the subprocess: the blocks as JSON on stdin, each [kind, line, source].
_DRIVER = r"""
import json, os, subprocess, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for kind, line, source in blocks:
    print(f"--- block at line {line} ({kind})", flush=True)
    if kind == "python":
        try:
            exec(compile(source, f"<guide line {line}>", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: the python block at line {line}", flush=True)
            sys.exit(1)
    else:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", source])
        if done.returncode != 0:
            print(f"FAILED: the bash block at line {line} exited {done.returncode}", flush=True)
            sys.exit(1)
"""


def code_blocks(path: Path) -> list[tuple[str, int, str]]:
    """The fenced blocks of a Markdown file as ``(language, first line number, source)``.

    Raises:
        AssertionError: a fence without a closing fence.
    """
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening["fence"], opening["info"].strip().split(" ")[0].lower()
        start, body = index + 1, []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index][len(opening["indent"]):])
            index += 1
        assert index < len(lines), f"{path.name}:{start}: a code fence is never closed"
        blocks.append((language, start, "\n".join(body) + "\n"))
        index += 1
    return blocks


def guide_pages() -> list[Path]:
    return sorted(GUIDES.glob("*.md"))


def test_there_are_guides():
    assert len(guide_pages()) >= 7, f"expected the 7 guides in {GUIDES}, found {[p.name for p in guide_pages()]}"


@pytest.mark.parametrize("page", guide_pages(), ids=lambda p: p.stem)
def test_guide_blocks_are_runnable_languages(page: Path):
    wrong = [f"{page.name}:{line}: ```{language or '(no language)'}" for language, line, _ in code_blocks(page)
             if language not in RUNNABLE]
    assert not wrong, f"guide blocks must be one of {RUNNABLE} (every block is executed): {wrong}"


@pytest.mark.parametrize("page", guide_pages(), ids=lambda p: p.stem)
def test_guide_blocks_run(page: Path, tmp_path: Path):
    blocks = [block for block in code_blocks(page) if block[0] in RUNNABLE]
    if not blocks:
        pytest.skip(f"{page.name} has no code blocks")
    environment = dict(os.environ)
    environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environment.get("PATH", "")
    environment.setdefault("MPLBACKEND", "Agg")
    done = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(blocks), cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"


def test_readme_example_runs(tmp_path: Path):
    """The README's first python block (its short example) runs as it is."""
    readme = GUIDES.parent.parent / "README.md"
    first = next((block for block in code_blocks(readme) if block[0] == "python"), None)
    assert first is not None, "the README has no python example"
    done = subprocess.run([sys.executable, "-c", first[2]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README.md:{first[1]}: the example fails:\n{done.stderr[-6000:]}"
