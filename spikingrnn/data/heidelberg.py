"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from local HDF5 files, binned in time.

The files (Cramer et al., 2020) are not downloaded: get ``shd_train.h5.gz`` / ``shd_test.h5.gz`` (or
``ssc_*.h5.gz``) from https://zenkelab.org/datasets/ and ``gunzip`` them. Each file holds, per sample
``i``, ``spikes/times[i]`` (spike times in seconds, float), ``spikes/units[i]`` (input unit of each spike,
int in 0..699) and ``labels[i]`` (0..19 for SHD, 0..34 for SSC); other keys (``extra/...``) are ignored.
:func:`spikingrnn.data.write_synthetic_shd` writes a small file of this format.

Binning: ``[0, max_time)`` is cut into ``num_steps`` equal bins; a spike at time ``t`` falls in bin
``floor(t * num_steps / max_time)``. ``x[i, b, u]`` counts the spikes of unit ``u`` in bin ``b`` (or is
1.0 if there is at least one, with ``binary=True``). Spikes with ``t < 0`` or ``t >= max_time`` (or NaN)
are **dropped**, not clipped into the first or last bin. The result is ``x [N, num_steps, 700]``
float32: with the defaults (100 bins over 1.4 s) a full SHD file takes about 280 kB per sample
(2.3 GB for SHD's training file; SSC's is about 21 GB).

Split: with ``test_path``, the train file is the train set and the test file the test set (the official
split; ``seed`` is unused). Without it, the one file is split stratified with ``seed``, ``num_test``
samples (default 20 %) going to the test set.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .container import SequenceDataset
from .optional import require
from .split import stratified_split
from .validation import check_bool, check_int, check_positive_float

KEYS = ("spikes/times", "spikes/units", "labels")
SOURCE_HINT = ("get shd_train.h5.gz / shd_test.h5.gz (or ssc_*.h5.gz) from https://zenkelab.org/datasets/ and "
               "gunzip them, or write a toy file with spikingrnn.data.write_synthetic_shd(path)")


def bin_spike_file(path, num_steps: int = 100, max_time: float = 1.4, binary: bool = False,
                   num_units: int = 700, num_classes: int | None = None, argument: str = "path"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one SHD-format HDF5 file and bin it: ``x [N, num_steps, num_units]`` float32, ``y [N]`` int64.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where to get SHD).
        ImportError: ``h5py`` is not installed.
        KeyError: the file lacks ``spikes/times``, ``spikes/units`` or ``labels``.
        ValueError: not an HDF5 file, lengths that disagree, a unit outside ``[0, num_units)`` or a
            label outside ``[0, num_classes)``.
    """
    num_steps = check_int("num_steps", num_steps, minimum=1)
    max_time = check_positive_float("max_time", max_time)
    check_bool("binary", binary)
    num_units = check_int("num_units", num_units, minimum=1)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: no SHD/SSC file at '{path}'; {SOURCE_HINT}")
    h5py = require("h5py", "h5py", "the SHD/SSC datasets")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{argument}: '{path}' is not a readable HDF5 file ({error}); "
                         "a downloaded .h5.gz must be decompressed with gunzip first") from error
    with handle:
        for key in KEYS:
            if key not in handle:
                raise KeyError(f"{argument}: '{path}' has no dataset '{key}'; an SHD/SSC file needs "
                               f"{', '.join(KEYS)} (found top-level keys: {sorted(handle.keys())})")
        times, units = handle["spikes/times"][()], handle["spikes/units"][()]
        labels = np.asarray(handle["labels"][()])
    if not (len(times) == len(units) == len(labels)) or labels.ndim != 1:
        raise ValueError(f"{argument}: '{path}' must hold as many spikes/times, spikes/units and labels entries, "
                         f"got {len(times)}, {len(units)} and labels of shape {list(labels.shape)}")
    if len(labels) and (labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)):
        raise ValueError(f"{argument}: labels in '{path}' must lie in [0, {num_classes}), "
                         f"got values in [{labels.min()}, {labels.max()}]")
    x = np.zeros((len(labels), num_steps, num_units), dtype=np.float32)
    for i, (sample_times, sample_units) in enumerate(zip(times, units)):
        sample_times = np.asarray(sample_times, dtype=np.float64).reshape(-1)
        sample_units = np.asarray(sample_units).reshape(-1)
        if len(sample_times) != len(sample_units):
            raise ValueError(f"{argument}: sample {i} of '{path}' has {len(sample_times)} spike times but "
                             f"{len(sample_units)} spike units")
        if len(sample_units) and (sample_units.min() < 0 or sample_units.max() >= num_units):
            raise ValueError(f"{argument}: sample {i} of '{path}' has spike units in [{sample_units.min()}, "
                             f"{sample_units.max()}], expected [0, {num_units}) (num_units={num_units})")
        keep = (sample_times >= 0) & (sample_times < max_time)
        bins = np.minimum((sample_times[keep] * (num_steps / max_time)).astype(np.int64), num_steps - 1)
        flat = bins * num_units + sample_units[keep].astype(np.int64)
        x[i] = np.bincount(flat, minlength=num_steps * num_units).reshape(num_steps, num_units)
    if binary:
        np.minimum(x, 1.0, out=x)
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def _load(name: str, num_classes: int, path, test_path, num_steps: int, max_time: float, binary: bool,
          num_test: int | None, seed: int) -> SequenceDataset:
    seed = check_int("seed", seed)
    options = dict(num_steps=num_steps, max_time=max_time, binary=binary, num_classes=num_classes)
    x, y = bin_spike_file(path, **options)
    if test_path is not None:
        if num_test is not None:
            raise ValueError(f"num_test must be None when test_path is given (the test file is the test set), "
                             f"got {num_test}")
        x_test, y_test = bin_spike_file(test_path, argument="test_path", **options)
        split = f"{len(y)} train (path) / {len(y_test)} test (test_path)"
        info = {}
    else:
        if num_test is None:
            num_test = max(1, round(0.2 * len(y)))
        if len(y) < 2:
            raise ValueError(f"path: '{path}' must hold at least 2 samples to split it, got {len(y)}")
        num_test = check_int("num_test", num_test, minimum=1, maximum=len(y) - 1)
        train, test = stratified_split(y, num_test, seed)
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
        split = f"{len(y)} train / {len(y_test)} test split from one file (stratified, seed={seed})"
        info = dict(seed=seed, train_index=train, test_index=test)
    kind = "spike present (0/1)" if binary else "spike counts"
    description = (f"{name.upper()} {kind}: x [N, {num_steps}, 700], {num_steps} bins over [0, {max_time}) s, "
                   f"later spikes dropped; {split}")
    info.update(name=name, path=str(path), test_path=None if test_path is None else str(test_path))
    return SequenceDataset(x, y, x_test, y_test, num_classes, description, info=info)


def load_shd(path, test_path=None, num_steps: int = 100, max_time: float = 1.4, binary: bool = False,
             num_test: int | None = None, seed: int = 0) -> SequenceDataset:
    """Spiking Heidelberg Digits: ``x [N, num_steps, 700]`` float32 counts, labels int64 0..19.

    Args:
        path: local ``shd_train.h5`` (or any SHD-format file).
        test_path: local ``shd_test.h5``; if None, ``path`` is split in two.
        num_steps: number of time bins ``T`` (default 100).
        max_time: end of the binned window in seconds (default 1.4); later spikes are dropped.
        binary: 1.0 where a unit spiked at least once in a bin instead of the count.
        num_test: test-set size when ``test_path`` is None (default 20 % of the file).
        seed: seed of that split.
    """
    return _load("shd", 20, path, test_path, num_steps, max_time, binary, num_test, seed)


def load_ssc(path, test_path=None, num_steps: int = 100, max_time: float = 1.4, binary: bool = False,
             num_test: int | None = None, seed: int = 0) -> SequenceDataset:
    """Spiking Speech Commands: as :func:`load_shd` with labels 0..34 (``ssc_train.h5``, ``ssc_test.h5``)."""
    return _load("ssc", 35, path, test_path, num_steps, max_time, binary, num_test, seed)
