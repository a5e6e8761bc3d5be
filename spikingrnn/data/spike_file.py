"""``SpikeFile``: an SHD/SSC-format HDF5 file opened for reading a few samples at a time.

Opening reads only what is small: the file's keys, the lengths of ``spikes/times``, ``spikes/units``
and ``labels``, and the labels (``N`` integers). The spikes of a sample are read from disk when
:meth:`SpikeFile.read` asks for it, so the memory used does not grow with the file. The file must
not change while it is in use: every read compares its size and modification time with those seen
at opening and refuses a changed file, instead of mixing samples of two versions.

The HDF5 handle is opened on first use in each process and dropped when pickled, so a
:class:`SpikeFile` can go to ``DataLoader`` worker processes (forked or spawned).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .optional import require

KEYS = ("spikes/times", "spikes/units", "labels")
SOURCE_HINT = ("get shd_train.h5.gz / shd_test.h5.gz (or ssc_*.h5.gz) from https://zenkelab.org/datasets/ and "
               "gunzip them, or write a toy file with spikingrnn.data.write_synthetic_shd(path)")


class SpikeFile:
    """Read access to one SHD-format file: ``labels`` at once, spikes per sample on demand.

    Args:
        path: the ``.h5`` file (``spikes/times``, ``spikes/units``, ``labels``; other keys ignored).
        num_classes: labels must lie in ``[0, num_classes)``; ``None`` checks only ``>= 0``.
        argument: the argument name used in error messages (``"path"`` or ``"test_path"``).

    Attributes:
        path: ``Path`` of the file.
        labels: ``[N]`` int64 numpy array.

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        FileNotFoundError: no file at ``path`` (the message says where to get SHD).
        ImportError: ``h5py`` is not installed.
        KeyError: the file lacks ``spikes/times``, ``spikes/units`` or ``labels``.
        ValueError: not an HDF5 file, lengths that disagree, or a label outside ``[0, num_classes)``.
    """

    def __init__(self, path: str | os.PathLike[str], num_classes: int | None = None, argument: str = "path") -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{argument} must be a str or os.PathLike, got {type(path).__name__}")
        self.path = Path(path)
        self.argument = argument
        if not self.path.is_file():
            raise FileNotFoundError(f"{argument}: no SHD/SSC file at '{self.path}'; {SOURCE_HINT}")
        self._handle: Any = None   # an h5py.File, opened per process
        self._pid: int | None = None
        self._seen: tuple[int, int] | None = None
        handle = self._open()
        for key in KEYS:
            if key not in handle:
                raise KeyError(f"{argument}: '{self.path}' has no dataset '{key}'; an SHD/SSC file needs "
                               f"{', '.join(KEYS)} (found top-level keys: {sorted(handle.keys())})")
        times, units, labels = (handle[key] for key in KEYS)
        if times.ndim != 1 or units.ndim != 1 or labels.ndim != 1 or not (len(times) == len(units) == len(labels)):
            raise ValueError(f"{argument}: '{self.path}' must hold as many spikes/times, spikes/units and labels "
                             f"entries (1-D each), got shapes {list(times.shape)}, {list(units.shape)} and "
                             f"{list(labels.shape)}")
        labels = np.asarray(labels[()])
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{argument}: labels in '{self.path}' must be integers, got dtype {labels.dtype}")
        if len(labels) and (labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)):
            raise ValueError(f"{argument}: labels in '{self.path}' must lie in [0, {num_classes}), "
                             f"got values in [{labels.min()}, {labels.max()}]")
        self.labels = labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def _signature(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_size, stat.st_mtime_ns

    def _open(self) -> Any:
        """The process's HDF5 handle, opened (again after a fork or unpickling) when needed."""
        if self._handle is not None and self._pid == os.getpid():
            return self._handle
        h5py = require("h5py", "h5py", "the SHD/SSC datasets")
        try:
            signature = self._signature()
            handle = h5py.File(self.path, "r")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{self.argument}: '{self.path}' was removed after it was opened") from error
        except OSError as error:
            raise ValueError(f"{self.argument}: '{self.path}' is not a readable HDF5 file ({error}); "
                             "a downloaded .h5.gz must be decompressed with gunzip first") from error
        if self._seen is None:   # first opening: later reads must see this same file
            self._seen = signature
        self._handle, self._pid = handle, os.getpid()
        return handle

    def where(self, row: int) -> str:
        """``"path: sample 7 of '/data/shd_train.h5'"``: names sample ``row`` in error messages."""
        return f"{self.argument}: sample {row} of '{self.path}'"

    def read(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(times, units)`` of the samples ``rows`` (in that order; repeats allowed), read from disk.

        Raises:
            RuntimeError: the file changed (size or modification time) since it was opened.
        """
        handle = self._open()
        try:
            changed = self._signature() != self._seen
        except FileNotFoundError:
            changed = True
        if changed:
            raise RuntimeError(f"{self.argument}: '{self.path}' changed (or was removed) after it was opened; "
                               "load the dataset again")
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return []
        # h5py reads a sorted list of distinct rows in one call, several times faster than row by row
        unique, inverse = np.unique(rows, return_inverse=True)
        if unique[-1] - unique[0] + 1 == len(unique):
            selection = slice(int(unique[0]), int(unique[-1]) + 1)
        else:
            selection = unique.tolist()
        times = handle["spikes/times"][selection]
        units = handle["spikes/units"][selection]
        return [(times[i], units[i]) for i in inverse.reshape(-1)]

    def describe(self) -> str:
        """One line for ``repr``: the file and its number of samples."""
        return f"'{self.path}' ({len(self)} samples)"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"], state["_pid"] = None, None   # an HDF5 handle cannot cross processes
        return state

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and getattr(self, "_pid", None) == os.getpid():
            try:
                handle.close()
            except Exception:   # interpreter shutdown may have torn h5py down already
                pass
