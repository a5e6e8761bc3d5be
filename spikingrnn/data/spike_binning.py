"""``bin_spikes``: spike times and units of a few samples to dense time bins ``[B, T, F]``.

The one binning rule of SHD/SSC files and event arrays: ``[0, max_time)`` is cut into ``num_steps``
equal bins and a spike at time ``t`` (seconds) falls in bin ``floor(t * num_steps / max_time)``;
``x[b, step, unit]`` counts the spikes of ``unit`` in ``step`` (1.0 if there is at least one, with
``binary=True``). Spikes with ``t < 0``, ``t >= max_time`` or a NaN time are **dropped**, not clipped
into the first or last bin.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch


def bin_spikes(samples: Sequence[tuple[np.ndarray, np.ndarray]], num_steps: int, max_time: float,
               num_units: int, binary: bool = False, where: Callable[[int], str] | None = None,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """Bin ``B`` samples of spikes into a float32 tensor ``[B, num_steps, num_units]`` (new, or ``out``).

    Args:
        samples: ``B`` pairs ``(times, units)``: spike times in seconds (any real dtype) and the unit of
            each spike (integers in ``[0, num_units)``), one pair per sample.
        num_steps: ``T``, the number of bins over ``[0, max_time)``.
        max_time: end of the binned window in seconds.
        num_units: ``F``, the number of input units.
        binary: 1.0 where a unit spiked at least once in a bin instead of the count.
        where: ``where(b)`` names sample ``b`` in error messages (e.g. ``"path: sample 7 of 'shd.h5'"``);
            default ``"sample b"``.
        out: optional contiguous float32 ``[B, num_steps, num_units]`` to fill (overwritten) and return,
            e.g. a block of a larger result, so that no second copy is made.

    Raises:
        ValueError: ``num_steps`` or ``num_units`` not a positive integer, ``max_time`` not positive and
            finite, ``out`` of the wrong shape or dtype, or a sample whose times and units differ in
            length, whose units lie outside ``[0, num_units)`` or are not whole numbers; the message
            names the sample with ``where``.
    """
    for name, value in (("num_steps", num_steps), ("num_units", num_units)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(max_time, (int, float, np.floating)) and np.isfinite(max_time) and max_time > 0):
        raise ValueError(f"max_time must be a positive finite number of seconds, got {max_time!r}")
    if where is None:
        where = _sample_index
    shape = (len(samples), num_steps, num_units)
    if out is None:
        out = torch.zeros(shape, dtype=torch.float32)
    else:
        if out.shape != shape or out.dtype != torch.float32 or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous float32 tensor of shape {list(shape)}, "
                             f"got {out.dtype} of shape {list(out.shape)}")
        out.zero_()
    flat_parts = []
    scale = num_steps / max_time
    for b, (times, units) in enumerate(samples):
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        units = np.asarray(units).reshape(-1)
        if len(times) != len(units):
            raise ValueError(f"{where(b)} has {len(times)} spike times but {len(units)} spike units")
        if len(units):
            if units.dtype.kind not in "iuf":
                raise ValueError(f"{where(b)} has spike units of dtype {units.dtype}, expected integers")
            if units.dtype.kind == "f" and not np.array_equal(units, np.floor(units)):
                # a fractional unit would otherwise be truncated into a neighbouring unit without notice
                raise ValueError(f"{where(b)} has non-integer spike units, expected integers in [0, {num_units})")
            low, high = units.min(), units.max()
            if low < 0 or high >= num_units:
                raise ValueError(f"{where(b)} has spike units in [{low}, {high}], expected [0, {num_units}) "
                                 f"(num_units={num_units})")
        keep = (times >= 0) & (times < max_time)   # False for NaN: such spikes are dropped too
        # the float product can round up to num_steps for t just below max_time: keep it in the last bin
        steps = np.minimum((times[keep] * scale).astype(np.int64), num_steps - 1)
        flat_parts.append((b * num_steps + steps) * num_units + units[keep].astype(np.int64))
    if flat_parts:
        flat = torch.from_numpy(np.concatenate(flat_parts))
        # float32 sums of ones are exact integers up to 2**24 spikes in one bin
        out.view(-1).index_add_(0, flat, torch.ones(len(flat), dtype=torch.float32))
    if binary:
        out.clamp_(max=1.0)
    return out


def _sample_index(b: int) -> str:
    """The default name of sample ``b`` in error messages."""
    return f"sample {b}"
