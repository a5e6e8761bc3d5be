"""``SequenceDataset``: the train/test tensors of one sequence-classification dataset."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch.utils.data import TensorDataset

from .lazy import LazySpikeSequences, describe


@dataclass(repr=False)
class SequenceDataset:
    """Train and test split of a sequence-classification dataset.

    Inputs are **batch-first** per sample, ``x [N, T, F]`` float32 (``N`` samples, ``T`` time steps, ``F``
    features per step); labels are ``y [N]`` int64 in ``[0, num_classes)``. A model with
    ``batch_first=True`` takes ``x[i:j]`` directly; :func:`spikingrnn.data.batches` yields time-major
    ``[T, B, F]`` batches for the default ``batch_first=False``.

    ``x_train`` and ``x_test`` may be :class:`~spikingrnn.data.lazy.LazySpikeSequences` (SHD/SSC,
    :func:`~spikingrnn.data.from_events`): same ``shape``, ``len`` and indexing (``x[index]``, ``x[a:b]``
    give dense float32 tensors), but the samples are read and binned only when indexed, so their memory
    does not grow with the data set. Use :func:`~spikingrnn.data.head` / :func:`~spikingrnn.data.take`
    to select samples of either kind without densifying.

    Attributes:
        x_train: ``[N_train, T, F]`` float32 (tensor or ``LazySpikeSequences``).
        y_train: ``[N_train]`` int64.
        x_test: ``[N_test, T, F]`` float32.
        y_test: ``[N_test]`` int64.
        num_classes: number of classes.
        description: one line saying what the data are, the value range and the split.
        info: extra facts a loader records (e.g. the pixel ``permutation`` or the ``seed``).
    """

    x_train: torch.Tensor | LazySpikeSequences
    y_train: torch.Tensor
    x_test: torch.Tensor | LazySpikeSequences
    y_test: torch.Tensor
    num_classes: int
    description: str
    info: dict = field(default_factory=dict)  # bare: in the Attributes entry Sphinx -n cannot resolve dict[str, Any]

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if not isinstance(x, (torch.Tensor, LazySpikeSequences)) or x.dtype != torch.float32 or x.dim() != 3:
                raise ValueError(f"x_{part} must be a float32 tensor [N, T, F] (or a LazySpikeSequences), "
                                 f"got {describe(x)}")
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
                raise ValueError(f"y_{part} must be an int64 tensor [N], got {describe(y)}")
            if len(x) != len(y):
                raise ValueError(f"x_{part} and y_{part} must have the same length N, got {len(x)} and {len(y)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"y_{part} must lie in [0, {self.num_classes}) (num_classes={self.num_classes}), "
                                 f"got values in [{int(y.min())}, {int(y.max())}]")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"x_train and x_test must have the same [T, F], got {list(self.x_train.shape[1:])} "
                             f"and {list(self.x_test.shape[1:])}")

    @property
    def num_steps(self) -> int:
        """``T``, the number of time steps of every sequence."""
        return self.x_train.shape[1]

    @property
    def num_features(self) -> int:
        """``F``, the number of input features per time step (the RNN's ``input_size``)."""
        return self.x_train.shape[2]

    def tensor_datasets(self) -> tuple[TensorDataset, TensorDataset]:
        """``(train, test)`` as ``torch.utils.data.TensorDataset`` for a ``DataLoader`` (batch-first samples).

        With lazy inputs each item is read and binned when the ``DataLoader`` asks for it (also in worker
        processes: the file is reopened in each).
        """
        # a LazySpikeSequences stands in for a tensor here: TensorDataset only calls its size() and [index]
        x_train, x_test = cast(torch.Tensor, self.x_train), cast(torch.Tensor, self.x_test)
        return TensorDataset(x_train, self.y_train), TensorDataset(x_test, self.y_test)

    def __repr__(self) -> str:
        return (f"SequenceDataset(train={len(self.y_train)}, test={len(self.y_test)}, T={self.num_steps}, "
                f"F={self.num_features}, num_classes={self.num_classes}, description={self.description!r})")

