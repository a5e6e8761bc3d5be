"""``LazySpikeSequences``: ``[N, T, F]`` binned spike inputs that are read and binned only when indexed.

A dense SHD training file is ``8,156 x 100 x 700`` float32 = 2.3 GB (SSC's: 21 GB). A
:class:`LazySpikeSequences` holds only where the spikes are (a ``SpikeFile``
or in-memory event arrays), the binning options and, for a subset, the ``int64`` sample numbers of its
rows (8 bytes a sample). Indexing reads the spikes of the selected samples and bins them
(:func:`~spikingrnn.data.spike_binning.bin_spikes`) into a new dense float32 tensor:

>>> x.shape                      # torch.Size([8156, 100, 700]); len(x) == 8156
>>> x[torch.tensor([4, 0, 9])]   # dense [3, 100, 700]
>>> x[0:256]                     # dense [256, 100, 700]
>>> x[7]                         # dense [100, 700]
>>> x.subset(index)              # lazy again: no spikes read (a split, or the first n samples via head)
>>> x[:]                         # every sample, dense: the full memory cost, on request only

Only this indexing is supported: torch functions (``torch.equal(x, ...)``, ``x + 1``) and
``numpy.asarray(x)`` raise a ``TypeError``, tensor methods (``x.transpose(0, 1)``) an ``AttributeError``,
each saying to index first, so the whole file is never materialised by accident. :func:`head` and
:func:`take` select samples of a tensor or of a lazy object alike (a lazy one stays lazy: index the
result for a tensor); ``x[:n]`` is the dense tensor of the first ``n`` samples for both kinds.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Iterator, NoReturn, Protocol, Sequence, Union, overload

import numpy as np
import torch

from .spike_binning import bin_spikes
from .validation import check_bool, check_int, check_positive_float

#: samples binned at once when many are asked for (a 256-sample block of SHD is 72 MB dense)
READ_BLOCK = 256


class SpikeSource(Protocol):
    """What :class:`LazySpikeSequences` reads from (``SpikeFile``,
    :class:`~spikingrnn.data.events.EventArrays`)."""

    def __len__(self) -> int: ...

    def read(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def where(self, row: int) -> str: ...

    def describe(self) -> str: ...


#: What selects samples: an int, a slice, or a 1-D integer or bool tensor/array/list.
SampleIndex = Union[int, slice, torch.Tensor, np.ndarray, Sequence[int], Sequence[bool]]


class LazySpikeSequences:
    """Binned spike sequences ``[N, T, F]`` float32, read from their source sample by sample when indexed.

    Args:
        source: where the spikes are; it has ``len(source)`` samples, ``source.read(rows)`` returns
            the ``(times in seconds, units)`` pair of each row, ``source.where(row)`` names a sample in
            error messages and ``source.describe()`` the source in ``repr``
            (``SpikeFile``, or the event arrays of
            :func:`spikingrnn.data.from_events`).
        num_steps: ``T``, bins over ``[0, max_time)``.
        max_time: end of the binned window in seconds; later spikes are dropped.
        num_units: ``F``, the number of input units; a spike of another unit is an error.
        binary: 1.0 where a unit spiked at least once in a bin instead of the count.
        rows: the source's sample numbers that make up this sequence, in order (default: all of them).

    Attributes:
        shape: ``torch.Size([N, T, F])``; ``dtype`` is ``torch.float32``, ``device`` the CPU.

    A sample's spikes are checked when it is read (equal lengths, units in ``[0, F)``); the error
    names the file and the sample. :meth:`check` reads every sample once to find such errors up front.
    """

    dtype = torch.float32
    device = torch.device("cpu")
    ndim = 3

    def __init__(self, source: Any, num_steps: int = 100, max_time: float = 1.4, num_units: int = 700,
                 binary: bool = False, rows: np.ndarray | Sequence[int] | None = None) -> None:
        for method in ("read", "where", "describe", "__len__"):
            if not callable(getattr(source, method, None)):
                raise TypeError(f"source must have a {method}() method (like spikingrnn.data.spike_file.SpikeFile), "
                                f"got {type(source).__name__}")
        self.source: SpikeSource = source
        self.num_steps = check_int("num_steps", num_steps, minimum=1)
        self.max_time = check_positive_float("max_time", max_time)
        self.num_units = check_int("num_units", num_units, minimum=1)
        self.binary = check_bool("binary", binary)
        self._rows: np.ndarray | None
        if rows is None:
            self._rows = None   # every sample of the source, in order: nothing to store
        else:
            rows = np.asarray(rows)
            if rows.ndim != 1 or (len(rows) and rows.dtype.kind not in "iu"):
                raise TypeError(f"rows must be a 1-D integer array, got {rows.dtype} of shape {list(rows.shape)}")
            rows = rows.astype(np.int64)
            if len(rows) and (rows.min() < 0 or rows.max() >= len(source)):
                raise IndexError(f"rows must lie in [0, {len(source)}) (the source's samples), "
                                 f"got values in [{rows.min()}, {rows.max()}]")
            self._rows = rows

    # ------------------------------------------------------------------ tensor-like attributes
    def __len__(self) -> int:
        return len(self.source) if self._rows is None else len(self._rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size([len(self), self.num_steps, self.num_units])

    def size(self, dim: int | None = None) -> torch.Size | int:
        """``shape``, or ``shape[dim]`` (as ``torch.Tensor.size``; lets ``TensorDataset`` take the object)."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 3

    @property
    def num_features(self) -> int:
        """``F``, the number of input units."""
        return self.num_units

    @property
    def dense_nbytes(self) -> int:
        """Bytes that ``self[:]`` would take: ``N * T * F * 4``."""
        return len(self) * self.num_steps * self.num_units * 4

    @property
    def rows(self) -> np.ndarray:
        """The source's sample number of each of the ``N`` samples (a new ``int64`` array)."""
        return np.arange(len(self.source), dtype=np.int64) if self._rows is None else self._rows.copy()

    # ------------------------------------------------------------------ selection
    def _positions(self, index: object) -> np.ndarray | int:
        """``index`` as positions in ``[0, N)``: an ``int`` for one sample, else a 1-D ``int64`` array."""
        n = len(self)
        if isinstance(index, torch.Tensor) and index.dim() == 0 and not index.is_floating_point():
            index = index.item()
        if isinstance(index, np.ndarray) and index.ndim == 0:
            index = index.item()
        if isinstance(index, numbers.Integral) and not isinstance(index, bool):
            position = int(index)
            if not -n <= position < n:
                raise IndexError(f"index {index} is out of range for {n} samples")
            return position % n
        if isinstance(index, slice):
            return np.arange(n, dtype=np.int64)[index]
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        elif isinstance(index, (list, range)):
            index = np.asarray(index, dtype=None if len(index) else np.int64)
        if not isinstance(index, np.ndarray):
            raise TypeError(f"a LazySpikeSequences is indexed by an int, a slice, or a 1-D integer or bool "
                            f"tensor/array/list; got {type(index).__name__}")
        if index.ndim != 1:
            raise IndexError(f"index must be 1-D, got shape {list(index.shape)}")
        if index.dtype == np.bool_:
            if len(index) != n:
                raise IndexError(f"a bool index must have one entry per sample ({n}), got {len(index)}")
            return np.flatnonzero(index).astype(np.int64)
        if index.dtype.kind not in "iu":
            raise IndexError(f"index must hold integers or bools, got dtype {index.dtype}")
        index = index.astype(np.int64)
        if len(index) and (index.min() < -n or index.max() >= n):
            raise IndexError(f"index values must lie in [{-n}, {n}) for {n} samples, "
                             f"got values in [{index.min()}, {index.max()}]")
        return np.where(index < 0, index + n, index)

    def _source_rows(self, positions: np.ndarray) -> np.ndarray:
        return positions if self._rows is None else self._rows[positions]

    def subset(self, index: SampleIndex) -> "LazySpikeSequences":
        """The samples ``index`` (slice, integer or bool tensor/array/list) as a new lazy object; reads nothing."""
        positions = self._positions(index)
        if isinstance(positions, int):
            positions = np.array([positions], dtype=np.int64)
        return LazySpikeSequences(self.source, self.num_steps, self.max_time, self.num_units, self.binary,
                                  rows=self._source_rows(positions))

    def _dense(self, positions: np.ndarray) -> torch.Tensor:
        rows = self._source_rows(positions)
        if len(rows) <= READ_BLOCK:
            return self._bin(rows)
        out = torch.empty(len(rows), self.num_steps, self.num_units, dtype=torch.float32)
        for start in range(0, len(rows), READ_BLOCK):   # blocks keep the spikes read at once small
            self._bin(rows[start:start + READ_BLOCK], out=out[start:start + READ_BLOCK])
        return out

    def _bin(self, rows: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        samples = self.source.read(rows)
        return bin_spikes(samples, self.num_steps, self.max_time, self.num_units, self.binary,
                          where=lambda b: self.source.where(int(rows[b])), out=out)

    def __getitem__(self, index: SampleIndex | tuple[Any, ...]) -> torch.Tensor:
        """Dense float32: ``[T, F]`` for an int, ``[len(index), T, F]`` for a slice or index tensor.

        A tuple ``x[i, ...]`` selects samples with ``i`` and indexes the dense result with the rest.
        """
        if isinstance(index, tuple):
            if not index:
                return self[:]
            first, rest = index[0], index[1:]
            selected = self[first]
            return selected[rest] if selected.dim() == 2 else selected[(slice(None),) + rest]
        positions = self._positions(index)
        if isinstance(positions, int):
            return self._dense(np.array([positions], dtype=np.int64))[0]
        return self._dense(positions)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for position in range(len(self)):
            yield self[position]

    def check(self) -> None:
        """Read and bin every sample once (``READ_BLOCK`` at a time) to raise a bad sample's error now."""
        for start in range(0, len(self), READ_BLOCK):
            self._dense(np.arange(start, min(start + READ_BLOCK, len(self)), dtype=np.int64))

    # ------------------------------------------------------------------ refusing whole-array use
    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> NoReturn:
        raise TypeError(f"{getattr(func, '__name__', func)}() got a LazySpikeSequences, which is not a tensor: "
                        "index it first (x[index] or x[a:b] give a dense float32 tensor; x[:] materialises "
                        "every sample)")

    if not TYPE_CHECKING:  # hidden from type checkers, which then report x.transpose(...) on a lazy object too
        def __getattr__(self, name: str) -> NoReturn:
            # called only for attributes the object lacks: tensor methods (x.transpose, x.to, x.sum) land here
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)   # protocol look-ups (pickle, copy) must see a plain AttributeError
            raise AttributeError(f"'LazySpikeSequences' object has no attribute '{name}': it is not a tensor; index "
                                 "it first (x[index] or x[a:b] give a dense float32 tensor; head(x, n) stays lazy)")

    def __array__(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a LazySpikeSequences is not an array: index it first (x[index] or x[a:b] give a dense "
                        "float32 tensor; x[:] materialises every sample)")

    def __repr__(self) -> str:
        kind = "0/1" if self.binary else "counts"
        return (f"LazySpikeSequences(N={len(self)}, T={self.num_steps}, F={self.num_units}, {kind}, "
                f"bins over [0, {self.max_time}) s, source={self.source.describe()}, "
                f"dense size {_size(self.dense_nbytes)})")


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


@overload
def head(x: torch.Tensor, n: int) -> torch.Tensor: ...
@overload
def head(x: LazySpikeSequences, n: int) -> LazySpikeSequences: ...


def head(x: torch.Tensor | LazySpikeSequences, n: int) -> torch.Tensor | LazySpikeSequences:
    """The first ``n`` samples of ``x``: ``x[:n]`` for a tensor, a lazy subset for a :class:`LazySpikeSequences`.

    The training loop's ``--limit-train``/``--limit-test`` use it so that a limit never densifies a lazy set.
    The result is of ``x``'s kind: where a dense tensor is needed (a forward pass), use ``x[:n]``, which is
    a float32 tensor ``[n, T, F]`` for both kinds.
    """
    n = check_int("n", n, minimum=0)
    return take(x, slice(0, n))


@overload
def take(x: torch.Tensor, index: SampleIndex) -> torch.Tensor: ...
@overload
def take(x: LazySpikeSequences, index: SampleIndex) -> LazySpikeSequences: ...


def take(x: torch.Tensor | LazySpikeSequences, index: SampleIndex) -> torch.Tensor | LazySpikeSequences:
    """Samples ``index`` of ``x``: ``x[index]`` for a tensor, ``x.subset(index)`` (lazy, nothing read) otherwise."""
    if isinstance(x, LazySpikeSequences):
        return x.subset(index)
    if isinstance(x, torch.Tensor):
        return x[index]
    raise TypeError(f"x must be a torch.Tensor or a LazySpikeSequences, got {type(x).__name__}")


def describe(value: object) -> str:
    """``"float32 tensor of shape [4, 3, 2]"``, ``"LazySpikeSequences of shape [...]"`` or the type name."""
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {list(value.shape)}"
    if isinstance(value, LazySpikeSequences):
        return f"LazySpikeSequences of shape {list(value.shape)}"
    return type(value).__name__
