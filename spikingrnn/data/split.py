"""Seeded, stratified train/test split of sample indices, and of inputs and labels by those indices."""
from __future__ import annotations

from typing import overload

import torch

from .lazy import LazySpikeSequences, take
from .validation import check_int


def stratified_split(labels: torch.Tensor, num_test: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``N`` samples into train and test index tensors, each class in proportion.

    Every class ``c`` with ``n_c`` samples gives ``floor(n_c * num_test / N)`` samples to the test set; the
    few left over go to the classes with the largest remainders (ties: lower class first), so the test set
    has exactly ``num_test`` samples. Which samples go where, and the order of both sets, come from a
    ``torch.Generator`` seeded with ``seed``: the same seed gives the same split on every run.

    Args:
        labels: ``[N]`` integer labels.
        num_test: size of the test set, ``1 <= num_test <= N - 1``.
        seed: seed of the generator.

    Returns:
        ``(train_index [N - num_test], test_index [num_test])``, int64, shuffled.
    """
    labels = torch.as_tensor(labels).long()
    n = len(labels)
    num_test = check_int("num_test", num_test, minimum=1, maximum=n - 1)
    seed = check_int("seed", seed)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    classes, counts = torch.unique(labels, return_counts=True)
    quota = counts.double() * num_test / n
    take = quota.floor().long()
    leftover = num_test - int(take.sum())
    by_remainder = torch.sort(quota - take, descending=True, stable=True).indices
    take[by_remainder[:leftover]] += 1
    shuffled_labels = labels[order]
    test_parts, train_parts = [], []
    for cls, count in zip(classes.tolist(), take.tolist()):
        members = order[shuffled_labels == cls]
        test_parts.append(members[:count])
        train_parts.append(members[count:])
    test, train = torch.cat(test_parts), torch.cat(train_parts)
    test = test[torch.randperm(len(test), generator=generator)]
    train = train[torch.randperm(len(train), generator=generator)]
    return train, test


@overload
def split_sequences(x: torch.Tensor, y: torch.Tensor, num_test: int | None, seed: int, what: str = "path"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...
@overload
def split_sequences(x: LazySpikeSequences, y: torch.Tensor, num_test: int | None, seed: int, what: str = "path"
                    ) -> tuple[LazySpikeSequences, torch.Tensor, LazySpikeSequences, torch.Tensor, torch.Tensor,
                               torch.Tensor]: ...


def split_sequences(x: torch.Tensor | LazySpikeSequences, y: torch.Tensor, num_test: int | None, seed: int,
                    what: str = "path") -> tuple[torch.Tensor | LazySpikeSequences, torch.Tensor,
                                                 torch.Tensor | LazySpikeSequences, torch.Tensor, torch.Tensor,
                                                 torch.Tensor]:
    """Split inputs ``x [N, T, F]`` and labels ``y [N]`` with :func:`stratified_split`, copying no sample.

    Args:
        x: a tensor or a :class:`~spikingrnn.data.lazy.LazySpikeSequences`; the parts are lazy subsets of a
            lazy ``x`` (sample numbers only, nothing read) and indexed copies of a tensor.
        y: ``[N]`` int64 labels.
        num_test: test-set size, default 20 % of ``N`` (at least 1).
        seed: seed of the split.
        what: names the data in errors (``"path: '/data/shd_train.h5'"``).

    Returns:
        ``(x_train, y_train, x_test, y_test, train_index, test_index)``.
    """
    seed = check_int("seed", seed)
    if len(y) < 2:
        raise ValueError(f"{what} must hold at least 2 samples to split it into train and test, got {len(y)}")
    if num_test is None:
        num_test = max(1, round(0.2 * len(y)))
    num_test = check_int("num_test", num_test, minimum=1, maximum=len(y) - 1)
    train, test = stratified_split(y, num_test, seed)
    return take(x, train), y[train], take(x, test), y[test], train, test
