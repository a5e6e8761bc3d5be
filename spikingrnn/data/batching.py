"""``batches``: time-major mini-batches from batch-first ``[N, T, F]`` tensors or lazy spike sequences."""
from __future__ import annotations

from typing import Iterator

import torch

from .lazy import LazySpikeSequences, describe
from .validation import check_bool, check_int


def batches(x: torch.Tensor | LazySpikeSequences, y: torch.Tensor, batch_size: int, shuffle: bool = False,
            generator: torch.Generator | None = None, drop_last: bool = False
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x_batch [T, B, F], y_batch [B])`` for an RNN with the default ``batch_first=False``.

    Args:
        x: ``[N, T, F]`` inputs (as in :class:`SequenceDataset`): a tensor, or a
            :class:`~spikingrnn.data.lazy.LazySpikeSequences` whose samples are then read and binned
            one batch at a time (memory of one batch, whatever ``N``).
        y: ``[N]`` labels.
        batch_size: ``B``; the last batch is smaller unless ``drop_last``.
        shuffle: visit the samples in a random order drawn from ``generator`` (or torch's global one).
        generator: optional ``torch.Generator`` for a reproducible order.
        drop_last: skip a last batch smaller than ``batch_size``.

    ``x_batch`` is a transposed copy (contiguous); for batch-first models, or a ``DataLoader``, use
    :meth:`SequenceDataset.tensor_datasets` instead.
    """
    if not isinstance(x, (torch.Tensor, LazySpikeSequences)) or x.dim() != 3:
        raise ValueError(f"x must be a tensor [N, T, F] (or a LazySpikeSequences), got {describe(x)}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must be a tensor [N] with N={len(x)} (the length of x), "
                         f"got {list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    check_bool("shuffle", shuffle)
    check_bool("drop_last", drop_last)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        yield x[index].transpose(0, 1).contiguous(), y[index]
