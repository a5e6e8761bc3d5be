"""``python -m spikingrnn.bench``: command-line entry point of the benchmark harness."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from .document import render_document
from .environment import environment, load_average
from .impls import CELLS
from .report import main_table, scaling_table
from .runner import BenchConfig, run_benchmark
from .scaling import ScalingConfig, run_scaling
from .shapes import DEFAULT_SHAPES, SCALING_STEPS, parse_shapes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m spikingrnn.bench",
        description="Time train and inference steps of torch.nn, spikingrnn backends and SpikingJelly "
                    "(interleaved, medians) and count the bytes saved for backward.")
    p.add_argument("--cell", choices=(*CELLS, "all"), default="lstm", help="cell type (default lstm)")
    p.add_argument("--shapes", type=parse_shapes, default=list(DEFAULT_SHAPES),
                   help='"T,B,I,H,L;..." (default: ' + "; ".join(s.label for s in DEFAULT_SHAPES) + ")")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts (default 1)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps before timing (default 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--impls", nargs="+", default=None,
                   help="only these implementations (torch is always run), e.g. spikingrnn-cpu spikingjelly")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of timed steps per implementation, shape and thread count before repeats "
                        "are reduced (at least 3 kept); 0 = no limit (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spike-rate", type=float, default=None, metavar="P",
                   help="feed 0/1 spikes that fire with probability P (e.g. 0.02, an SHD-like spiking input) "
                        "instead of standard normal floats (main table only)")
    p.add_argument("--json", metavar="PATH", help="write every raw number as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the markdown report (method, environment, tables)")
    p.add_argument("--scaling", action="store_true", help="also run the sequence-length scaling study")
    p.add_argument("--scaling-only", action="store_true", help="run only the scaling study")
    p.add_argument("--scaling-steps", type=int, nargs="+", default=list(SCALING_STEPS))
    p.add_argument("--scaling-repeats", type=int, default=3)
    p.add_argument("--scaling-budget", type=float, default=60.0,
                   help="most estimated seconds per implementation and T in the scaling study (default 60)")
    return p


def _write(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    if args.repeats < 1 or any(t < 1 for t in args.threads):
        print("error: --repeats and --threads must be positive", file=sys.stderr)
        return 2
    if args.spike_rate is not None and not 0.0 <= args.spike_rate <= 1.0:
        print(f"error: --spike-rate must be a probability in [0, 1], got {args.spike_rate}", file=sys.stderr)
        return 2
    cells = list(CELLS) if args.cell == "all" else [args.cell]
    main_result = scaling_result = None
    load_at_start = load_average()
    started = time.perf_counter()
    if not args.scaling_only:
        config = BenchConfig(cells=cells, shapes=args.shapes, threads=args.threads, repeats=args.repeats,
                             warmup=args.warmup, device=str(device), impls=args.impls,
                             budget_s=args.budget or None, seed=args.seed, spike_rate=args.spike_rate)
        main_result = run_benchmark(config)
    if args.scaling or args.scaling_only:
        scaling_config = ScalingConfig(cells=cells, steps=args.scaling_steps, threads=args.threads[0],
                                       repeats=args.scaling_repeats, device=str(device), impls=args.impls,
                                       budget_s=args.scaling_budget, seed=args.seed)
        scaling_result = run_scaling(scaling_config)
    meta = environment(argv if argv is not None else sys.argv[1:], str(device))
    meta["load_average_start"] = load_at_start
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    if main_result:
        print(main_table(main_result["results"]))
    if scaling_result:
        print()
        print(scaling_table(scaling_result["results"]))
    if args.json:
        _write(args.json, json.dumps({"meta": meta, "main": main_result, "scaling": scaling_result}, indent=1) + "\n")
    if args.markdown:
        _write(args.markdown, render_document(meta, main_result, scaling_result))
    return 0
