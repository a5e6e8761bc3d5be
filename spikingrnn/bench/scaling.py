"""The ``--scaling`` study: train-step time and saved bytes of one small layer as ``T`` grows.

At ``B=8, I=16, H=64``, one layer, for ``T`` in 100, 1000, 10000, each implementation's train step
is timed (interleaved, as in the main benchmark) and its saved-for-backward bytes counted; time/T
and bytes/T staying flat shows linear growth. An implementation whose estimated time at the next
``T`` (its median at the previous ``T`` scaled linearly, times warm-up + repeats) exceeds
``budget_s`` is not run at that ``T`` and the row says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .impls import discover
from .memory import module_saved_bytes
from .runner import stderr_log
from .shapes import SCALING_SHAPE, SCALING_STEPS, Shape
from .stats import summarize_ms
from .timing import Contender, measure_interleaved


@dataclass
class ScalingConfig:
    """What the scaling study runs; ``budget_s``: most seconds one implementation may spend at one ``T``."""

    cells: Sequence[str] = ("lstm",)
    steps: Sequence[int] = SCALING_STEPS
    batch: int = SCALING_SHAPE["B"]
    input_size: int = SCALING_SHAPE["I"]
    hidden_size: int = SCALING_SHAPE["H"]
    layers: int = SCALING_SHAPE["L"]
    threads: int = 1
    repeats: int = 3
    warmup: int = 1
    device: str = "cpu"
    impls: list[str] | None = None
    budget_s: float = 60.0
    seed: int = 0

    def as_dict(self) -> dict:
        return {"cells": list(self.cells), "steps": list(self.steps), "B": self.batch, "I": self.input_size,
                "H": self.hidden_size, "L": self.layers, "threads": self.threads, "repeats": self.repeats,
                "warmup": self.warmup, "device": self.device, "impls": self.impls, "budget_s": self.budget_s}


def _skip_row(cell: str, name: str, steps: int, reason: str) -> dict:
    return {"cell": cell, "impl": name, "T": steps, "status": "skipped", "reason": reason, "train_ms": None,
            "ms_per_step": None, "saved_bytes": None, "bytes_per_step": None, "repeats": 0}


def run_scaling(config: ScalingConfig, log: Callable[[str], None] = stderr_log) -> dict:
    """Run the study; returns ``{"config", "results": [row per (cell, impl, T)]}``."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    rows: list[dict] = []
    try:
        for cell in config.cells:
            impls, _ = discover(cell, device, torch.float32, config.impls)
            last: dict[str, tuple[int, float]] = {}  # impl -> (T, median train seconds)
            for steps in config.steps:
                shape = Shape(steps, config.batch, config.input_size, config.hidden_size, config.layers)
                torch.manual_seed(config.seed)
                x = torch.randn(shape.T, shape.B, shape.I, device=device)
                w = torch.randn(shape.T, shape.B, shape.H, device=device)
                contenders: list[Contender] = []
                saved: dict[str, int | None] = {}
                for impl in impls:
                    if impl.name in last:
                        prev_steps, prev_s = last[impl.name]
                        estimate = prev_s * steps / prev_steps * (config.warmup + config.repeats)
                        if estimate > config.budget_s:
                            rows.append(_skip_row(cell, impl.name, steps,
                                                  f"not run: estimated {estimate:.0f} s > budget {config.budget_s:.0f} s"))
                            continue
                    elif any(r["impl"] == impl.name and r["cell"] == cell for r in rows):
                        rows.append(_skip_row(cell, impl.name, steps, "not run: failed at a smaller T"))
                        continue
                    module = impl.build(shape).train()
                    try:
                        saved[impl.name] = module_saved_bytes(module, x)
                    except Exception as error:
                        log(f"[scaling] {impl.name} T={steps}: saved bytes failed: {error}")
                        saved[impl.name] = None
                    contenders.append(Contender(impl.name, module))
                log(f"[scaling] {cell} T={steps}: {', '.join(c.name for c in contenders)}")
                measure_interleaved(contenders, x, w, config.repeats, config.warmup, budget_s=None, infer=False)
                for c in contenders:
                    train = summarize_ms(c.train) if c.train else None
                    if train:
                        last[c.name] = (steps, train["median"] / 1e3)
                    else:
                        last.pop(c.name, None)
                    bytes_ = saved[c.name]
                    rows.append({
                        "cell": cell, "impl": c.name, "T": steps, "status": "failed" if c.error else "ok",
                        "reason": c.error, "repeats": c.repeats, "train_ms": train,
                        "ms_per_step": train["median"] / steps if train else None,
                        "saved_bytes": bytes_, "bytes_per_step": None if bytes_ is None else bytes_ / steps,
                    })
                    if train:
                        log(f"[scaling]   {c.name:24s} train {train['median']:10.2f} ms  saved {bytes_} B")
    finally:
        torch.set_num_threads(previous_threads)
    return {"config": config.as_dict(), "results": rows}
