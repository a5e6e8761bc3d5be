"""A/B timing of this checkout's spikingrnn against another git revision, in one process, interleaved.

    python scripts/ab_compare.py --base HEAD~1 --cell lstm --threads 1 --shapes "50,16,128,256,1;784,32,1,128,1"

The revision's ``spikingrnn`` package is extracted with ``git archive`` into a temporary folder and
imported as ``spikingrnn_base`` (its C++ extension builds under its own name), next to the working
tree's ``spikingrnn``. Both modules get the same weights and input; each repeat runs one train step
(forward + backward of ``(y * w).sum()``) and one inference step of the base, then of the new code.
Prints medians and the ratio new / base (below 1: the working tree is faster).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLASSES = {"lstm": "SpikingLSTM", "gru": "SpikingGRU", "rnn": "SpikingRNN"}


def extract_base(revision: str, into: Path) -> None:
    """``spikingrnn/`` of ``revision`` as the package ``spikingrnn_base`` under ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "spikingrnn"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    shutil.move(str(into / "spikingrnn"), str(into / "spikingrnn_base"))


def compare(base, new, cell: str, shape: tuple[int, ...], repeats: int, low_memory: bool = False) -> dict[str, float]:
    import torch

    steps, batch, inputs, hidden, layers = shape
    torch.manual_seed(0)
    options = dict(backend="cpu", low_memory=low_memory)
    new_model = getattr(new, CLASSES[cell])(inputs, hidden, layers, **options)
    base_model = getattr(base, CLASSES[cell])(inputs, hidden, layers, **options)
    base_model.load_state_dict(new_model.state_dict())
    x, w = torch.randn(steps, batch, inputs), torch.randn(steps, batch, hidden)

    def train(model):
        model.zero_grad()
        (model(x)[0] * w).sum().backward()

    def infer(model):
        with torch.no_grad():
            model(x)

    times = {key: [] for key in ("base train", "new train", "base infer", "new infer")}
    for _ in range(2):  # warm-up (and the extensions' first build)
        for model in (base_model, new_model):
            train(model)
            infer(model)
    for _ in range(repeats):
        for tag, model in (("base", base_model), ("new", new_model)):
            for kind, step in (("train", train), ("infer", infer)):
                start = time.perf_counter()
                step(model)
                times[f"{tag} {kind}"].append(time.perf_counter() - start)
    return {key: statistics.median(values) * 1e3 for key, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare against (default HEAD)")
    parser.add_argument("--cell", choices=sorted(CLASSES), default="lstm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--low-memory", action="store_true", help="both sides with low_memory=True")
    parser.add_argument("--shapes", default="50,16,128,256,1;784,32,1,128,1;100,32,64,128,2",
                        help='"T,B,I,H,L;..."')
    args = parser.parse_args(argv)
    shapes = [tuple(int(v) for v in item.split(",")) for item in args.shapes.split(";") if item.strip()]
    if any(len(s) != 5 or min(s) < 1 for s in shapes):
        parser.error(f"--shapes must be 'T,B,I,H,L' groups of positive integers, got {args.shapes!r}")
    with tempfile.TemporaryDirectory() as folder:
        extract_base(args.base, Path(folder))
        sys.path[:0] = [folder, str(REPO)]
        import torch

        import spikingrnn
        import spikingrnn_base

        torch.set_num_threads(args.threads)
        print(f"base {args.base} vs working tree, {args.cell}{' low_memory' if args.low_memory else ''}, "
              f"{args.threads} thread(s), {args.repeats} repeats, medians in ms (pid {os.getpid()})")
        for shape in shapes:
            m = compare(spikingrnn_base, spikingrnn, args.cell, shape, args.repeats, args.low_memory)
            print(f"{'x'.join(map(str, shape))}: train {m['base train']:.2f} -> {m['new train']:.2f} "
                  f"(x{m['new train'] / m['base train']:.2f}), infer {m['base infer']:.2f} -> {m['new infer']:.2f} "
                  f"(x{m['new infer'] / m['base infer']:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
