"""Seeded, stratified train/test split of sample indices."""
from __future__ import annotations

import torch

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
