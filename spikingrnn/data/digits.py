"""scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn) as sequences.

Three views of the same images and the same split:

* ``load_digits_rows``: ``x [N, 8, 8]``, one image row of 8 pixels per step (T=8, F=8);
* ``load_digits_pixels``: ``x [N, 64, 1]``, one pixel per step in row-major order (T=64, F=1);
* ``load_digits_pixels_permuted``: ``x [N, 64, 1]``, the pixels of ``load_digits_pixels`` in one fixed
  order drawn from a ``torch.Generator`` seeded with ``permutation_seed`` (the same order for every
  image, train and test).

Pixels are scaled from 0..16 to [0, 1] (divided by 16). Labels are int64 in 0..9. The split is
stratified and seeded (:func:`spikingrnn.data.split.stratified_split`): by default 1,437 train and 360
test images, drawn with ``seed=0``. Nothing is downloaded.
"""
from __future__ import annotations

from typing import Any

import torch

from .container import SequenceDataset
from .optional import require
from .split import stratified_split
from .validation import check_int

NUM_IMAGES = 1797
DEFAULT_NUM_TEST = 360


def _images(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All digits as ``x [1797, 8, 8]`` float32 in [0, 1] and ``y [1797]`` int64."""
    datasets = require("sklearn.datasets", "scikit-learn", f"dataset '{dataset}'")
    digits = datasets.load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    return x, y


def _split(name: str, x: torch.Tensor, y: torch.Tensor, num_test: int, seed: int, description: str,
           **info: Any) -> SequenceDataset:
    train, test = stratified_split(y, num_test, seed)
    text = (f"scikit-learn digits, {description}; values in [0, 1]; {len(train)} train / {len(test)} test "
            f"(stratified, seed={seed})")
    return SequenceDataset(x[train], y[train], x[test], y[test], 10, text,
                           info=dict(name=name, seed=seed, train_index=train, test_index=test, **info))


def load_digits_rows(seed: int = 0, num_test: int = DEFAULT_NUM_TEST) -> SequenceDataset:
    """Digits read row by row: ``x [N, 8, 8]`` (T=8 rows, F=8 pixels), labels 0..9.

    Args:
        seed: seed of the train/test split.
        num_test: test-set size (default 360; train gets the other ``1797 - num_test``).
    """
    seed, num_test = check_int("seed", seed), check_int("num_test", num_test, 1, NUM_IMAGES - 1)
    x, y = _images("digits_rows")
    return _split("digits_rows", x, y, num_test, seed, "rows: x [N, 8, 8] = T 8 rows of F 8 pixels")


def load_digits_pixels(seed: int = 0, num_test: int = DEFAULT_NUM_TEST) -> SequenceDataset:
    """Digits read pixel by pixel (row-major): ``x [N, 64, 1]`` (T=64, F=1), labels 0..9.

    Args:
        seed: seed of the train/test split.
        num_test: test-set size (default 360).
    """
    seed, num_test = check_int("seed", seed), check_int("num_test", num_test, 1, NUM_IMAGES - 1)
    x, y = _images("digits_pixels")
    return _split("digits_pixels", x.reshape(len(x), 64, 1), y, num_test, seed,
                  "pixels: x [N, 64, 1] = T 64 pixels (row-major), F 1")


def load_digits_pixels_permuted(seed: int = 0, num_test: int = DEFAULT_NUM_TEST,
                                permutation_seed: int = 0) -> SequenceDataset:
    """Digits pixel by pixel in a fixed random order: ``x [N, 64, 1]``, labels 0..9.

    ``x[:, t] == load_digits_pixels(seed).x[:, permutation[t]]`` where
    ``permutation = torch.randperm(64, generator=torch.Generator().manual_seed(permutation_seed))`` is
    stored in ``info["permutation"]``. The split (``seed``) is the same as ``load_digits_pixels``'s.

    Args:
        seed: seed of the train/test split.
        num_test: test-set size (default 360).
        permutation_seed: seed of the pixel order, independent of the split.
    """
    seed, num_test = check_int("seed", seed), check_int("num_test", num_test, 1, NUM_IMAGES - 1)
    permutation_seed = check_int("permutation_seed", permutation_seed)
    permutation = torch.randperm(64, generator=torch.Generator().manual_seed(permutation_seed))
    x, y = _images("digits_pixels_permuted")
    x = x.reshape(len(x), 64, 1)[:, permutation]
    return _split("digits_pixels_permuted", x, y, num_test, seed,
                  f"permuted pixels: x [N, 64, 1], one fixed pixel order (permutation_seed={permutation_seed})",
                  permutation=permutation, permutation_seed=permutation_seed)
