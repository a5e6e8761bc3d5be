"""Write files in the SHD/SSC HDF5 format: given spikes, or a small synthetic data set.

Used by the tests and by anyone who wants a toy file to try :func:`spikingrnn.data.load_shd` without the
real data. The layout is the one :mod:`spikingrnn.data.heidelberg` reads: ``spikes/times`` (variable-length
float32 arrays, seconds), ``spikes/units`` (variable-length uint16 arrays) and ``labels`` (uint16).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .optional import require
from .validation import check_int, check_positive_float


def write_shd_file(path: str | os.PathLike[str], times: Sequence[Any], units: Sequence[Any],
                   labels: Sequence[int] | np.ndarray) -> Path:
    """Write one SHD-format file.

    Args:
        path: file to create (overwritten if it exists).
        times: ``N`` arrays of spike times in seconds, one per sample.
        units: ``N`` arrays of unit indices (non-negative ints), each as long as the matching ``times``.
        labels: ``N`` non-negative int labels.

    Returns:
        ``Path(path)``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not (len(times) == len(units) == len(labels)):
        raise ValueError(f"times, units and labels must have the same length N, "
                         f"got {len(times)}, {len(units)} and {len(labels)}")
    h5py = require("h5py", "h5py", "write_shd_file")
    times = [np.asarray(t, dtype=np.float32).reshape(-1) for t in times]
    units = [np.asarray(u).reshape(-1) for u in units]
    for i, (t, u) in enumerate(zip(times, units)):
        if len(t) != len(u):
            raise ValueError(f"sample {i}: times has {len(t)} entries but units has {len(u)}")
        if len(u) and (u.min() < 0 or u.max() > np.iinfo(np.uint16).max):
            raise ValueError(f"sample {i}: units must lie in [0, 65535], got values in [{u.min()}, {u.max()}]")
    labels = np.asarray(labels)
    if labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max)):
        raise ValueError(f"labels must be N ints in [0, 65535], got {labels!r}")
    path = Path(path)
    with h5py.File(path, "w") as handle:
        spikes = handle.create_group("spikes")
        float_arrays = spikes.create_dataset("times", (len(times),), dtype=h5py.vlen_dtype(np.float32))
        unit_arrays = spikes.create_dataset("units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(zip(times, units)):
            float_arrays[i] = t
            unit_arrays[i] = u.astype(np.uint16)
        handle.create_dataset("labels", data=labels.astype(np.uint16))
    return path


def write_synthetic_shd(path: str | os.PathLike[str], num_samples: int = 40, num_classes: int = 20,
                        num_units: int = 700, max_time: float = 1.4, spikes_per_sample: int = 200,
                        seed: int = 0) -> Path:
    """Write a small, learnable SHD-format file of random spikes.

    Sample ``i`` has label ``i % num_classes`` (so the classes are balanced) and ``spikes_per_sample``
    spikes at uniform times in ``[0, max_time)``; their units are drawn around the centre of the class's
    own band of ``num_units / num_classes`` units (normal, std of one band, clipped to ``[0, num_units)``),
    so a classifier can tell the classes apart. Drawn with ``numpy.random.default_rng(seed)``.

    Returns:
        ``Path(path)``.
    """
    num_samples = check_int("num_samples", num_samples, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    num_units = check_int("num_units", num_units, minimum=1, maximum=65536)
    max_time = check_positive_float("max_time", max_time)
    spikes_per_sample = check_int("spikes_per_sample", spikes_per_sample, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    band = num_units / num_classes
    labels = np.arange(num_samples) % num_classes
    times: list[np.ndarray] = []
    units: list[np.ndarray] = []
    for label in labels:
        sample_times = np.sort(rng.uniform(0.0, max_time, spikes_per_sample))
        centre = (label + 0.5) * band
        sample_units = np.clip(np.rint(rng.normal(centre, band, spikes_per_sample)), 0, num_units - 1)
        times.append(sample_times)
        units.append(sample_units.astype(np.int64))
    return write_shd_file(path, times, units, labels)
