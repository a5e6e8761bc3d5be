"""The main benchmark: every implementation, shape and thread count, in one process.

For each cell and shape, the modules and the input are built once (``torch.manual_seed(seed)``);
the bytes saved for backward are counted once per implementation (they do not depend on the
thread count); then, for each thread count (``torch.set_num_threads``), train and inference steps
are timed interleaved (see :mod:`spikingrnn.bench.timing`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .impls import SPIKINGJELLY, TORCH, Implementation, discover
from .memory import module_saved_bytes
from .shapes import DEFAULT_SHAPES, Shape
from .stats import ratio, summarize_ms
from .timing import Contender, measure_interleaved


@dataclass
class BenchConfig:
    """What to run. ``budget_s`` caps the timed seconds per implementation, shape and thread count."""

    cells: Sequence[str] = ("lstm",)
    shapes: Sequence[Shape] = DEFAULT_SHAPES
    threads: Sequence[int] = (1,)
    repeats: int = 7
    warmup: int = 2
    device: str = "cpu"
    impls: list[str] | None = None
    budget_s: float | None = 30.0
    seed: int = 0
    dtype: torch.dtype = field(default=torch.float32)
    spike_rate: float | None = None  # None: standard normal inputs; else 0/1 spikes firing with this probability

    def as_dict(self) -> dict:
        return {"cells": list(self.cells), "shapes": [s.as_dict() for s in self.shapes],
                "threads": list(self.threads), "repeats": self.repeats, "warmup": self.warmup,
                "device": self.device, "impls": self.impls, "budget_s": self.budget_s, "seed": self.seed,
                "dtype": str(self.dtype).replace("torch.", ""), "spike_rate": self.spike_rate}


def bench_input(shape: Shape, config: BenchConfig) -> torch.Tensor:
    """The input ``[T, B, I]`` every implementation gets: standard normal floats, or with
    ``config.spike_rate`` 0/1 spikes, each 1 with that probability (e.g. an SHD-like spiking input)."""
    device = torch.device(config.device)
    if config.spike_rate is None:
        return torch.randn(shape.T, shape.B, shape.I, device=device, dtype=config.dtype)
    return (torch.rand(shape.T, shape.B, shape.I, device=device) < config.spike_rate).to(config.dtype)


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _measure_memory(impl: Implementation, module: torch.nn.Module, x: torch.Tensor) -> tuple[int | None, str | None]:
    try:
        module.zero_grad(set_to_none=True)
        return module_saved_bytes(module, x), None
    except Exception as error:
        return None, f"{type(error).__name__}: {error}"


def _shape_rows(cell: str, shape: Shape, impls: list[Implementation], config: BenchConfig,
                log: Callable[[str], None]) -> list[dict]:
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    x = bench_input(shape, config)
    w = torch.randn(shape.T, shape.B, shape.H, device=device, dtype=torch.float32)
    modules, build_errors, memory = {}, {}, {}
    for impl in impls:
        try:
            modules[impl.name] = impl.build(shape).train()
        except Exception as error:
            build_errors[impl.name] = f"{type(error).__name__}: {error}"
            continue
        memory[impl.name] = _measure_memory(impl, modules[impl.name], x)
    units = shape.units()
    sj_bytes = memory.get(SPIKINGJELLY, (None, None))[0]
    rows = []
    for threads in config.threads:
        torch.set_num_threads(threads)
        log(f"[bench] {cell} {shape.label} threads={threads}: {', '.join(modules)}")
        contenders = [Contender(name, module) for name, module in modules.items()]
        measure_interleaved(contenders, x, w, config.repeats, config.warmup, config.budget_s)
        by_name = {c.name: c for c in contenders}
        base = by_name.get(TORCH)
        base_train = summarize_ms(base.train)["median"] if base and base.train else None
        base_infer = summarize_ms(base.infer)["median"] if base and base.infer else None
        for impl in impls:
            c = by_name.get(impl.name)
            saved, memory_error = memory.get(impl.name, (None, None))
            train = summarize_ms(c.train) if c and c.train else None
            infer = summarize_ms(c.infer) if c and c.infer else None
            failure = build_errors.get(impl.name) or (c.error if c else None)
            rows.append({
                "cell": cell, "shape": shape.as_dict(), "shape_label": shape.label, "threads": threads,
                "impl": impl.name, "description": impl.description,
                "status": "failed" if failure else "ok", "error": failure, "memory_error": memory_error,
                "repeats": c.repeats if c else 0, "warmup": config.warmup,
                "warmup_train_ms": [s * 1e3 for s in c.warmup_train] if c else [],
                "warmup_infer_ms": [s * 1e3 for s in c.warmup_infer] if c else [],
                "train_ms": train, "infer_ms": infer,
                "train_ratio": ratio(train["median"] if train else None, base_train),
                "infer_ratio": ratio(infer["median"] if infer else None, base_infer),
                "saved_bytes": saved, "units": units,
                "saved_bytes_per_unit": None if saved is None else saved / units,
                "memory_ratio_vs_spikingjelly": ratio(saved, sj_bytes) if saved is not None else None,
            })
            if train:
                assert c is not None  # train was measured on c
                log(f"[bench]   {impl.name:24s} train {train['median']:9.2f} ms  "
                    f"infer {infer['median'] if infer else float('nan'):9.2f} ms  reps={c.repeats}")
    return rows


def run_benchmark(config: BenchConfig, log: Callable[[str], None] = stderr_log) -> dict:
    """Run the main benchmark; returns ``{"config", "results": [row...], "skipped": [...]}``.

    Each row holds one (cell, shape, threads, implementation): timing summaries in ms (median,
    q1, q3, iqr, samples), ratios of medians to torch's, saved bytes, bytes per
    (step, batch row, hidden unit, layer) and the ratio of saved bytes to SpikingJelly's.
    """
    previous_threads = torch.get_num_threads()
    results, skipped = [], []
    try:
        for cell in config.cells:
            impls, cell_skipped = discover(cell, config.device, config.dtype, config.impls)
            skipped += [{"cell": cell, "impl": s.name, "reason": s.reason} for s in cell_skipped]
            for s in cell_skipped:
                log(f"[bench] {cell}: skipping {s.name}: {s.reason}")
            for shape in config.shapes:
                results += _shape_rows(cell, shape, impls, config, log)
    finally:
        torch.set_num_threads(previous_threads)
    return {"config": config.as_dict(), "results": results, "skipped": skipped}
