"""Event arrays as input: tonic's ``(t, x, p)`` structured arrays binned lazily like SHD files.

`tonic <https://tonic.readthedocs.io>`_ gives each SHD/SSC sample as a numpy structured array of events
with fields ``t`` (time, in microseconds for its SHD and SSC), ``x`` (the input unit, 0..699) and ``p``
(polarity, always 1 there, ignored here); a tonic dataset yields ``(events, label)`` pairs.
:func:`from_events` turns such arrays, or such a dataset, into a :class:`SequenceDataset` whose inputs are
:class:`~spikingrnn.data.lazy.LazySpikeSequences`: a sample is binned (same rule as the HDF5 files:
:mod:`spikingrnn.data.spike_binning`) only when indexed. The arrays the caller passes stay where they are
(in memory, or read by the tonic dataset on each access); nothing dense ``[N, T, F]`` is built.

tonic stores SHD times as whole microseconds (truncated), so a spike within 1 us of a bin edge can land
one bin earlier than from the HDF5 file's float seconds.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .container import SequenceDataset
from .lazy import LazySpikeSequences
from .split import split_sequences
from .validation import check_bool, check_int, check_positive_float

FIELDS = ("t", "x")


def _check_events(array: object, where: str) -> np.ndarray:
    """``array`` if it is a 1-D numpy structured array with the fields ``t`` and ``x``."""
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        got = (f"a {array.dtype} array of shape {list(array.shape)}" if isinstance(array, np.ndarray)
               else type(array).__name__)
        raise TypeError(f"{where} must be a numpy structured array with fields 't' (time) and 'x' (unit), "
                        f"as tonic gives them; got {got}")
    missing = [name for name in FIELDS if name not in array.dtype.names]
    if missing:
        raise ValueError(f"{where} lacks the field(s) {', '.join(map(repr, missing))}: event arrays need "
                         f"'t' (time) and 'x' (unit), as tonic gives them; got fields {array.dtype.names}")
    if array.ndim != 1:
        raise ValueError(f"{where} must be 1-D (one entry per event), got shape {list(array.shape)}")
    return array


class EventArrays:
    """A sequence of event arrays as a source of :class:`LazySpikeSequences` (see the module's notes).

    Args:
        events: ``N`` structured arrays (any object with ``len`` and integer indexing: a list, a tonic
            dataset), or, with ``pairs=True``, ``N`` items ``(events, label)``.
        time_unit: seconds per unit of ``t`` (``1e-6`` for tonic's microseconds).
        pairs: the items are ``(events, label)`` pairs; only the events are used here.
        argument: names the argument in error messages.
    """

    def __init__(self, events: Any, time_unit: float = 1e-6, pairs: bool = False, argument: str = "events") -> None:
        if not (hasattr(events, "__len__") and hasattr(events, "__getitem__")) or isinstance(events, (str, bytes)):
            raise TypeError(f"{argument} must be a sequence of event arrays (a list, or a dataset with len() and "
                            f"indexing), got {type(events).__name__}")
        if isinstance(events, np.ndarray) and events.dtype.names is not None:
            raise TypeError(f"{argument} must hold one structured array per sample, got a single structured array "
                            f"of shape {list(events.shape)}; pass [events] for one sample")
        self.events = events
        self.time_unit = check_positive_float("time_unit", time_unit)
        self.pairs = check_bool("pairs", pairs)
        self.argument = argument
        if isinstance(events, (list, tuple)) and not pairs:
            # in memory already: checking every array's fields now costs nothing and fails before training
            for row, array in enumerate(events):
                _check_events(array, self.where(row))

    def __len__(self) -> int:
        return len(self.events)

    def where(self, row: int) -> str:
        """``"events[7]"``: names sample ``row`` in error messages."""
        return f"{self.argument}[{row}]"

    def item(self, row: int) -> np.ndarray:
        """The events of sample ``row`` (the first element of a pair), checked."""
        item = self.events[int(row)]
        if self.pairs:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"{self.where(row)} must be an (events, label) pair when labels is None, "
                                f"got {type(item).__name__}")
            item = item[0]
        return _check_events(item, self.where(row))

    def read(self, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(times in seconds, units)`` of the samples ``rows``."""
        samples: list[tuple[np.ndarray, np.ndarray]] = []
        for row in np.asarray(rows).reshape(-1):
            array = self.item(row)
            samples.append((array["t"].astype(np.float64) * self.time_unit, array["x"]))
        return samples

    def describe(self) -> str:
        """One line for ``repr``."""
        return f"{len(self)} event arrays ({type(self.events).__name__})"


def _labels(events: Any, labels: Any, argument: str) -> np.ndarray:
    """The labels of ``events`` as int64: ``labels`` checked, or read from ``(events, label)`` pairs."""
    if labels is None:
        # a tonic dataset yields (events, label): one pass reads every sample once and keeps only its label
        values = []
        for row in range(len(events)):
            item = events[row]
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"{argument}[{row}] must be an (events, label) pair when its labels are None, "
                                f"got {type(item).__name__}")
            values.append(item[1])
        labels = values
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    label_name = f"labels of {argument}"
    if labels.ndim != 1 or len(labels) != len(events):
        raise ValueError(f"{label_name} must be {len(events)} integers (one per sample), got shape "
                         f"{list(labels.shape)}")
    if len(labels) and (labels.dtype.kind not in "iuf" or not np.array_equal(labels, np.floor(labels))):
        raise ValueError(f"{label_name} must be integers, got dtype {labels.dtype}")
    if len(labels) and labels.min() < 0:
        raise ValueError(f"{label_name} must be >= 0, got values in [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def event_sequences(events: Any, num_units: int = 700, num_steps: int = 100, max_time: float = 1.4,
                    time_unit: float = 1e-6, binary: bool = False) -> LazySpikeSequences:
    """Event arrays as lazy inputs ``[N, num_steps, num_units]`` (a sample is binned when indexed).

    Args:
        events: ``N`` numpy structured arrays with fields ``t`` and ``x`` (tonic's format).
        num_units, num_steps, max_time, time_unit, binary: as in :func:`from_events`.
    """
    source = EventArrays(events, time_unit=time_unit)
    return LazySpikeSequences(source, num_steps=num_steps, max_time=max_time, num_units=num_units, binary=binary)


def from_events(events: Any, labels: Any = None, test_events: Any = None, test_labels: Any = None, *,
                num_classes: int | None = None, num_units: int = 700, num_steps: int = 100, max_time: float = 1.4,
                time_unit: float = 1e-6, binary: bool = False, num_test: int | None = None, seed: int = 0,
                name: str = "events") -> SequenceDataset:
    """A :class:`SequenceDataset` from tonic-style event arrays, binned lazily into ``[N, num_steps, num_units]``.

    >>> import tonic                                    # optional; plain structured arrays work the same
    >>> data = from_events(tonic.datasets.SHD("data"), test_events=tonic.datasets.SHD("data", train=False))
    >>> data = from_events(train_arrays, train_labels, num_classes=20)      # split 80 % / 20 %, seeded

    Args:
        events: the training samples: ``N`` numpy structured arrays with fields ``t`` (time in
            ``time_unit``) and ``x`` (unit in ``[0, num_units)``); other fields (tonic's ``p``) are ignored.
            With ``labels=None``, ``N`` ``(events, label)`` pairs, e.g. a tonic dataset (its labels are read
            in one pass over it; its events again when a sample is indexed).
        labels: ``N`` integer labels, or None for pairs.
        test_events: the test samples in the same form (the official split); None splits ``events``
            stratified with ``seed`` (``num_test`` samples, default 20 %, lazy subsets: nothing copied).
        test_labels: their labels, or None for pairs.
        num_classes: labels lie in ``[0, num_classes)``; default one more than the largest label.
        num_units: ``F``, the number of input units (700 for SHD and SSC).
        num_steps: ``T``, bins over ``[0, max_time)``.
        max_time: end of the binned window in seconds; later spikes are dropped.
        time_unit: seconds per unit of ``t`` (``1e-6``: tonic's SHD/SSC times are microseconds).
        binary: 1.0 where a unit spiked at least once in a bin instead of the count.
        num_test: test-set size when ``test_events`` is None.
        seed: seed of that split.
        name: the data set's name in ``description``.

    Raises:
        TypeError: an item that is not a structured array (or not an ``(events, label)`` pair).
        ValueError: an array lacking the field ``t`` or ``x``; labels that are not ``N`` integers in
            ``[0, num_classes)``; a unit outside ``[0, num_units)`` (when that sample is read).
    """
    options: dict[str, Any] = dict(num_steps=check_int("num_steps", num_steps, minimum=1),
                                   max_time=check_positive_float("max_time", max_time),
                                   num_units=check_int("num_units", num_units, minimum=1),
                                   binary=check_bool("binary", binary))
    time_unit = check_positive_float("time_unit", time_unit)
    seed = check_int("seed", seed)
    parts = [("events", events, labels)]
    if test_events is not None:
        if num_test is not None:
            raise ValueError(f"num_test must be None when test_events is given (they are the test set), got {num_test}")
        parts.append(("test_events", test_events, test_labels))
    elif test_labels is not None:
        raise ValueError("test_labels was given without test_events")
    xs: list[LazySpikeSequences] = []
    ys: list[torch.Tensor] = []
    for argument, part_events, part_labels in parts:
        source = EventArrays(part_events, time_unit=time_unit, pairs=part_labels is None, argument=argument)
        ys.append(torch.from_numpy(_labels(part_events, part_labels, argument)))
        xs.append(LazySpikeSequences(source, **options))
    largest = max((int(y.max()) for y in ys if len(y)), default=0)
    if num_classes is None:
        num_classes = largest + 1
    num_classes = check_int("num_classes", num_classes, minimum=1)
    if largest >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) (num_classes={num_classes}), got a label {largest}")
    if test_events is not None:
        (x, x_test), (y, y_test) = xs, ys
        split = f"{len(y)} train / {len(y_test)} test (test_events)"
        info: dict[str, Any] = {}
    else:
        x, y, x_test, y_test, train, test = split_sequences(xs[0], ys[0], num_test, seed, what="events")
        split = f"{len(y)} train / {len(y_test)} test split (stratified, seed={seed})"
        info = dict(seed=seed, train_index=train, test_index=test)
    kind = "spike present (0/1)" if binary else "spike counts"
    description = (f"{name} {kind}: x [N, {num_steps}, {num_units}], {num_steps} bins over [0, {max_time}) s, "
                   f"later spikes dropped, binned lazily from event arrays; {split}")
    info.update(name=name, time_unit=time_unit)
    return SequenceDataset(x, y, x_test, y_test, num_classes, description, info=info)
