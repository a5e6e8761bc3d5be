"""Interleaved wall-clock timing of a train step and an inference step.

For every repeat, each implementation runs one train step in turn (round-robin, the starting
implementation rotating from repeat to repeat), then each runs one inference step: slow drift of
the machine (frequency, other load, allocator state) affects all implementations alike.

* train step: ``module.zero_grad(set_to_none=True)`` (not timed), then timed
  ``y = module(x)[0]; (y.float() * w).sum().backward()`` with a fixed random ``w``;
* inference: timed ``module(x)`` under ``torch.no_grad()``.

On CUDA the timed region is bracketed by ``torch.cuda.synchronize``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_seconds(module: nn.Module, x: Tensor, w: Tensor) -> float:
    """Seconds of one forward + backward of ``(y.float() * w).sum()``; gradients zeroed beforehand."""
    module.zero_grad(set_to_none=True)
    synchronize(x.device)
    start = time.perf_counter()
    y = module(x)[0]
    (y.float() * w).sum().backward()
    synchronize(x.device)
    return time.perf_counter() - start


def infer_seconds(module: nn.Module, x: Tensor) -> float:
    """Seconds of one forward under ``torch.no_grad()``."""
    synchronize(x.device)
    start = time.perf_counter()
    with torch.no_grad():
        module(x)
    synchronize(x.device)
    return time.perf_counter() - start


@dataclass
class Contender:
    """One implementation's module and the timings collected for it."""

    name: str
    module: nn.Module
    repeats: int = 0
    warmup_train: list[float] = field(default_factory=list)
    warmup_infer: list[float] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    infer: list[float] = field(default_factory=list)
    error: str | None = None

    def fail(self, error: BaseException) -> None:
        self.error = f"{type(error).__name__}: {error}"


def warm_up(contenders: list[Contender], x: Tensor, w: Tensor, count: int, infer: bool = True) -> None:
    """Run ``count`` warm-up train (and inference) steps per contender: builds, JIT and cache fills happen here.

    A contender that raises is marked failed and left out of the measurement.
    """
    for c in contenders:
        try:
            for _ in range(max(count, 1)):
                c.warmup_train.append(train_seconds(c.module, x, w))
                c.warmup_infer.append(infer_seconds(c.module, x) if infer else 0.0)
        except Exception as error:  # report, don't abort the whole benchmark
            c.fail(error)


def planned_repeats(step_seconds: float, repeats: int, budget_s: float | None, min_repeats: int = 3) -> int:
    """Repeats that keep ``repeats * step_seconds`` within ``budget_s`` (never below ``min_repeats``)."""
    if not budget_s or step_seconds <= 0:
        return repeats
    return max(min(repeats, min_repeats), min(repeats, math.floor(budget_s / step_seconds)))


def measure_interleaved(contenders: list[Contender], x: Tensor, w: Tensor, repeats: int, warmup: int = 2,
                        budget_s: float | None = None, infer: bool = True) -> None:
    """Warm up, then time train and inference steps round-robin, filling ``train``/``infer`` lists.

    ``budget_s`` caps the seconds of timed steps per contender: a contender whose fastest warm-up
    (train + inference) times ``repeats`` exceeds it runs fewer repeats (at least 3), recorded in
    ``Contender.repeats``. ``infer=False`` times train steps only.
    """
    warm_up(contenders, x, w, warmup, infer)
    active = [c for c in contenders if c.error is None]
    for c in active:
        c.repeats = planned_repeats(min(c.warmup_train) + min(c.warmup_infer), repeats, budget_s)
    for r in range(max((c.repeats for c in active), default=0)):
        round_ = [c for c in active if c.error is None and r < c.repeats]
        if not round_:
            break
        shift = r % len(round_)
        order = round_[shift:] + round_[:shift]
        for c in order:
            try:
                c.train.append(train_seconds(c.module, x, w))
            except Exception as error:
                c.fail(error)
        for c in order if infer else ():
            if c.error is None:
                try:
                    c.infer.append(infer_seconds(c.module, x))
                except Exception as error:
                    c.fail(error)
