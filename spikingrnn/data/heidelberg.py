"""Spiking Heidelberg Digits (SHD) and Spiking Speech Commands (SSC) from local HDF5 files, binned in time.

The files (Cramer et al., 2020) are not downloaded: get ``shd_train.h5.gz`` / ``shd_test.h5.gz`` (or
``ssc_*.h5.gz``) from https://zenkelab.org/datasets/ and ``gunzip`` them. Each file holds, per sample
``i``, ``spikes/times[i]`` (spike times in seconds, float), ``spikes/units[i]`` (input unit of each spike,
int in 0..699) and ``labels[i]`` (0..19 for SHD, 0..34 for SSC); other keys (``extra/...``) are ignored.
:func:`spikingrnn.data.write_synthetic_shd` writes a small file of this format.

Binning (:mod:`spikingrnn.data.spike_binning`): ``[0, max_time)`` is cut into ``num_steps`` equal bins;
a spike at time ``t`` falls in bin ``floor(t * num_steps / max_time)``. ``x[i, b, u]`` counts the spikes of
unit ``u`` in bin ``b`` (or is 1.0 if there is at least one, with ``binary=True``). Spikes with ``t < 0``
or ``t >= max_time`` (or NaN) are **dropped**, not clipped into the first or last bin.

Memory: :func:`load_shd` / :func:`load_ssc` read **lazily**: ``x_train`` and ``x_test`` are
:class:`~spikingrnn.data.lazy.LazySpikeSequences` of shape ``[N, num_steps, 700]`` that keep the file's
labels and the sample numbers of the split (a few bytes a sample) and read and bin the spikes of a
sample only when it is indexed (one batch at a time in :func:`~spikingrnn.data.batches`). Dense, a full
SHD training file would take 280 kB a sample (2.3 GB; SSC's about 21 GB); :func:`bin_spike_file` still
returns that dense tensor, for small files.

Checks: opening checks the keys, that ``spikes/times``, ``spikes/units`` and ``labels`` have one entry
per sample, and every label. A sample's spikes are checked when it is read (equal lengths, units in
``[0, 700)``), with an error naming the file and the sample; ``x.check()`` reads every sample once to
find such an error before training.

Split: with ``test_path``, the train file is the train set and the test file the test set (the official
split, as in published results; ``seed`` is unused). Without it, the one file is split stratified with
``seed``, ``num_test`` samples (default 20 %) going to the test set; the two parts are lazy subsets of
the one file (no sample is copied).
"""
from __future__ import annotations

import os
from typing import Any

import torch

from .container import SequenceDataset
from .lazy import LazySpikeSequences
from .spike_file import SpikeFile
from .split import split_sequences
from .validation import check_bool, check_int, check_positive_float


def open_spike_file(path: str | os.PathLike[str], num_steps: int = 100, max_time: float = 1.4, binary: bool = False,
                    num_units: int = 700, num_classes: int | None = None, argument: str = "path"
                    ) -> tuple[LazySpikeSequences, torch.Tensor]:
    """Open one SHD-format HDF5 file lazily: ``x`` (``LazySpikeSequences [N, num_steps, num_units]``), ``y [N]`` int64.

    Reads only the labels and the file's layout; ``x[index]`` reads and bins the selected samples.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where to get SHD).
        ImportError: ``h5py`` is not installed.
        KeyError: the file lacks ``spikes/times``, ``spikes/units`` or ``labels``.
        ValueError: not an HDF5 file, lengths that disagree, or a label outside ``[0, num_classes)``;
            later, when a sample is read, a unit outside ``[0, num_units)`` (naming the file and sample).
    """
    num_steps = check_int("num_steps", num_steps, minimum=1)
    max_time = check_positive_float("max_time", max_time)
    check_bool("binary", binary)
    num_units = check_int("num_units", num_units, minimum=1)
    source = SpikeFile(path, num_classes=num_classes, argument=argument)
    x = LazySpikeSequences(source, num_steps=num_steps, max_time=max_time, num_units=num_units, binary=binary)
    return x, torch.from_numpy(source.labels.copy())


def bin_spike_file(path: str | os.PathLike[str], num_steps: int = 100, max_time: float = 1.4, binary: bool = False,
                   num_units: int = 700, num_classes: int | None = None, argument: str = "path"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one SHD-format HDF5 file and bin all of it: ``x [N, num_steps, num_units]`` float32, ``y [N]`` int64.

    Dense: ``x`` takes ``N * num_steps * num_units * 4`` bytes (2.3 GB for SHD's training file with the
    defaults, 21 GB for SSC's); for large files use :func:`open_spike_file` or :func:`load_shd`, which read
    lazily. Every sample is checked.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where to get SHD).
        ImportError: ``h5py`` is not installed.
        KeyError: the file lacks ``spikes/times``, ``spikes/units`` or ``labels``.
        ValueError: not an HDF5 file, lengths that disagree, a unit outside ``[0, num_units)`` or a
            label outside ``[0, num_classes)``.
    """
    x, y = open_spike_file(path, num_steps=num_steps, max_time=max_time, binary=binary, num_units=num_units,
                           num_classes=num_classes, argument=argument)
    return x[:], y


def _load(name: str, num_classes: int, path: str | os.PathLike[str], test_path: str | os.PathLike[str] | None,
          num_steps: int, max_time: float, binary: bool,
          num_test: int | None, seed: int) -> SequenceDataset:
    seed = check_int("seed", seed)
    options: dict[str, Any] = dict(num_steps=num_steps, max_time=max_time, binary=binary, num_classes=num_classes)
    x, y = open_spike_file(path, **options)
    if test_path is not None:
        if num_test is not None:
            raise ValueError(f"num_test must be None when test_path is given (the test file is the test set), "
                             f"got {num_test}")
        x_test, y_test = open_spike_file(test_path, argument="test_path", **options)
        split = f"{len(y)} train (path) / {len(y_test)} test (test_path)"
        info: dict[str, Any] = {}
    else:
        x, y, x_test, y_test, train, test = split_sequences(x, y, num_test, seed, what=f"path: '{path}'")
        split = f"{len(y)} train / {len(y_test)} test split from one file (stratified, seed={seed})"
        info = dict(seed=seed, train_index=train, test_index=test)
    kind = "spike present (0/1)" if binary else "spike counts"
    description = (f"{name.upper()} {kind}: x [N, {num_steps}, 700], {num_steps} bins over [0, {max_time}) s, "
                   f"later spikes dropped, read lazily; {split}")
    info.update(name=name, path=str(path), test_path=None if test_path is None else str(test_path))
    return SequenceDataset(x, y, x_test, y_test, num_classes, description, info=info)


def load_shd(path: str | os.PathLike[str], test_path: str | os.PathLike[str] | None = None, num_steps: int = 100,
             max_time: float = 1.4, binary: bool = False, num_test: int | None = None,
             seed: int = 0) -> SequenceDataset:
    """Spiking Heidelberg Digits: ``x [N, num_steps, 700]`` float32 counts (read lazily), labels int64 0..19.

    ``x_train`` / ``x_test`` are :class:`~spikingrnn.data.lazy.LazySpikeSequences`: ``x[index]`` and
    ``x[a:b]`` give dense tensors, :func:`~spikingrnn.data.batches` takes them as they are, and memory stays
    that of one batch whatever the file's size (see the module's notes).

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


def load_ssc(path: str | os.PathLike[str], test_path: str | os.PathLike[str] | None = None, num_steps: int = 100,
             max_time: float = 1.4, binary: bool = False, num_test: int | None = None,
             seed: int = 0) -> SequenceDataset:
    """Spiking Speech Commands: as :func:`load_shd` with labels 0..34 (``ssc_train.h5``, ``ssc_test.h5``)."""
    return _load("ssc", 35, path, test_path, num_steps, max_time, binary, num_test, seed)
