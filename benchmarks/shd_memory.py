"""Peak memory of reading SHD-format files, for files of different sizes: it must not grow with the file.

    python benchmarks/shd_memory.py                       # 1,000 and 8,156 samples (SHD's training file)
    python benchmarks/shd_memory.py --sizes 1000 8156 --spikes 5000 --dense

For each size a synthetic SHD-format file (:func:`spikingrnn.data.write_synthetic_shd`, ``--spikes`` spikes a
sample, uniform in [0, 1.4) s) is written once under ``--dir`` (kept for reruns). A fresh Python process
per file then does what ``spikingrnn train --task shd --data-path FILE`` does with the data:
:func:`spikingrnn.data.load_shd` with its default 80 % / 20 % split, one shuffled training epoch of
``--batch-size`` batches through :func:`spikingrnn.data.batches`, and one evaluation pass over the test
set in chunks of 512; it checks that every spike of the file was binned.

Reported per file, from that process:

- ``import``: the peak resident set (``VmHWM``) once torch, h5py and spikingrnn are imported (the floor no
  loader can go under);
- ``peak``: ``VmHWM`` at the end (the largest resident set the process ever had), and ``peak - import``;
- ``traced``: the peak of Python and numpy allocations (``tracemalloc``; torch's tensors are not traced);
- the time of the loading call and of the pass over the data.

``--dense`` also measures the way SHD was read before (every sample binned into one ``[N, 100, 700]``
tensor by :func:`spikingrnn.data.bin_spike_file`, then indexed copies for the split), for comparison; it
needs about ``2 * N * 280 kB`` (4.6 GB at 8,156 samples).

The last line is the verdict: the growth of the lazy peak from the smallest to the largest file, against
what densifying the extra samples would take (``(N_large - N_small) * 100 * 700 * 4`` bytes). The
exit status is 1 if the growth exceeds ``--max-growth`` of that (default 10 %).

Linux only: ``VmHWM`` of ``/proc/self/status``, not ``ru_maxrss``, which a process started by another
inherits from it (the parent's peak at the fork, e.g. while it wrote the large file, would count).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS, UNITS, EVAL_CHUNK = 100, 700, 512


def rss_bytes() -> int:
    """This process image's peak resident set size so far, in bytes (``VmHWM``, in kB in ``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (not Linux?)")


def child(mode: str, path: str, batch_size: int, threads: int) -> dict:
    """Read ``path`` as training would (``mode`` "lazy" or "dense") in this fresh process; returns the numbers."""
    import tracemalloc

    import h5py  # noqa: F401  (imported before the floor is measured: the loader needs it)
    import torch

    from spikingrnn.data import batches, bin_spike_file, load_shd, stratified_split

    torch.set_num_threads(threads)
    floor = rss_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    if mode == "lazy":
        data = load_shd(path)
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    else:   # the loader before: the whole file densified, then copied again by the split's indexing
        x, y = bin_spike_file(path)
        train, test = stratified_split(y, max(1, round(0.2 * len(y))), 0)
        x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
        del x
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    spikes = 0.0
    generator = torch.Generator().manual_seed(0)
    for xb, _ in batches(x_train, y_train, batch_size, shuffle=True, generator=generator):
        spikes += float(xb.sum())
    for start in range(0, len(y_test), EVAL_CHUNK):
        spikes += float(x_test[start:start + EVAL_CHUNK].sum())
    pass_s = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1]
    return dict(mode=mode, samples=len(y_train) + len(y_test), spikes=int(spikes), import_rss=floor,
                peak_rss=rss_bytes(), traced_peak=traced, load_s=load_s, pass_s=pass_s)


def measure(mode: str, path: Path, batch_size: int, threads: int) -> dict:
    """Run :func:`child` in a fresh interpreter (so that its peak resident set is this file's alone)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, __file__, "--child", mode, str(path), "--batch-size", str(batch_size),
               "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {mode} on {path} failed (exit {result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def synthetic_file(folder: Path, samples: int, spikes: int) -> Path:
    """The synthetic file of ``samples`` samples with ``spikes`` spikes each, written unless already there."""
    sys.path.insert(0, str(REPO))
    from spikingrnn.data import write_synthetic_shd

    path = folder / f"shd_{samples}x{spikes}.h5"
    if not path.exists():
        partial = path.with_suffix(".partial.h5")
        write_synthetic_shd(partial, num_samples=samples, spikes_per_sample=spikes)
        partial.replace(path)   # a run killed while writing leaves no file that looks finished
    return path


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8156], help="samples per file")
    parser.add_argument("--spikes", type=int, default=5000, help="spikes per sample")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the measured process")
    parser.add_argument("--dense", action="store_true", help="also measure the dense loader, for comparison")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "spikingrnn_shd_memory",
                        help="where the synthetic files are written (and reused)")
    parser.add_argument("--max-growth", type=float, default=0.10,
                        help="largest accepted growth of the lazy peak, as a fraction of the dense growth")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.batch_size, args.threads)))
        return 0
    if not sys.platform.startswith("linux"):
        parser.error("the peak resident set is read from /proc/self/status (VmHWM): run this on Linux")
    sizes = sorted(set(args.sizes))
    if len(sizes) < 2 or sizes[0] < 2:
        parser.error(f"--sizes needs at least two different sizes of at least 2 samples, got {args.sizes}")
    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    print("| loader | samples | file | import | peak | peak - import | traced (numpy) | load | epoch + eval |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for samples in sizes:
        path = synthetic_file(args.dir, samples, args.spikes)
        for mode in ("lazy", "dense") if args.dense else ("lazy",):
            row = measure(mode, path, args.batch_size, args.threads)
            if row["spikes"] != samples * args.spikes:
                raise RuntimeError(f"{mode}: {row['spikes']} spikes binned, expected {samples * args.spikes}")
            row["file_bytes"] = path.stat().st_size
            rows.append(row)
            print(f"| {mode} | {samples:,} | {mb(row['file_bytes'])} | {mb(row['import_rss'])} | "
                  f"{mb(row['peak_rss'])} | {mb(row['peak_rss'] - row['import_rss'])} | {mb(row['traced_peak'])} | "
                  f"{row['load_s']:.2f} s | {row['pass_s']:.1f} s |", flush=True)
    lazy = {row["samples"]: row for row in rows if row["mode"] == "lazy"}
    growth = lazy[sizes[-1]]["peak_rss"] - lazy[sizes[0]]["peak_rss"]
    dense_growth = (sizes[-1] - sizes[0]) * STEPS * UNITS * 4
    verdict = growth <= args.max_growth * dense_growth
    print(f"\nlazy peak RSS grew by {mb(growth)} from {sizes[0]:,} to {sizes[-1]:,} samples "
          f"(densifying the extra samples would add {mb(dense_growth)}): "
          + ("independent of the file size" if verdict else f"MORE than {args.max_growth:.0%} of that"))
    if args.json:
        args.json.write_text(json.dumps(dict(spikes_per_sample=args.spikes, batch_size=args.batch_size,
                                             threads=args.threads, rows=rows), indent=2) + "\n")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
