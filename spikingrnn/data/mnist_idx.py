"""The full MNIST (60,000 train / 10,000 test digits) from the user's local files in raw IDX format.

Nothing is downloaded: the loaders read the four files that ``torchvision.datasets.MNIST(root,
download=True)`` leaves in ``<root>/MNIST/raw/`` (the original IDX files of LeCun, Cortes and Burges):

* ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (60,000 digits),
* ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (10,000 digits),

each plain or gzip-compressed with a ``.gz`` suffix (the plain file is read when both are there).
``path`` is a directory that holds them directly, or torchvision's ``<root>`` (then ``<root>/MNIST/raw/``
is read) or ``<root>/MNIST`` (then ``raw/``); one of the four files themselves is also accepted and
stands for its directory (the training CLI's ``--data-path`` takes files).

IDX format (big-endian): a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` uint32
dimensions, then the values in row-major order. MNIST uses type ``0x08`` (unsigned byte) only: images
are ``[N, 28, 28]`` (magic ``0x00000803``), labels ``[N]`` (magic ``0x00000801``) in 0..9. The parser
(:func:`read_idx`) is strict: it checks the magic number, the type code, the number of dimensions and
the dimensions, that the file holds exactly the bytes its header announces (a truncated download or
trailing bytes are refused), the labels' range and that images and labels agree in number; every error
names the file and what is wrong.

Two views, pixels scaled to [0, 1] (divided by 255), labels int64 0..9, the official split (every
image of the ``train-*`` files is a training sample, every image of the ``t10k-*`` files a test sample;
no seed):

* ``load_mnist_rows``: ``x [N, 28, 28]``, one image row of 28 pixels per step (T=28, F=28);
* ``load_mnist_pixels``: ``x [N, 784, 1]``, one pixel per step in row-major order (T=784, F=1).

Memory: the float32 inputs take 188 MB (train) and 31 MB (test); the files are read whole.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .container import SequenceDataset

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
UNSIGNED_BYTE = 0x08
IMAGE_SIZE = 28
NUM_CLASSES = 10
SOURCE_HINT = ("these are torchvision's raw MNIST files: torchvision.datasets.MNIST(root, download=True) "
               "writes them to <root>/MNIST/raw/ (pass <root> or that directory); nothing is downloaded here")
# where, under the given directory, the four files are looked for, in this order
SUBDIRECTORIES = (Path("."), Path("MNIST") / "raw", Path("raw"))


def read_idx(path: str | os.PathLike[str], argument: str = "path") -> np.ndarray:
    """Parse one IDX file of unsigned bytes (plain, or gzip-compressed when its name ends in ``.gz``).

    Args:
        path: the file.
        argument: names the origin of the file in error messages.

    Returns:
        A writable ``uint8`` array whose shape is the dimensions of the file's header (``[N, 28, 28]``
        for MNIST images, ``[N]`` for labels).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not valid gzip (``.gz``), shorter than its header, a magic number that does not start
            with two zero bytes, a type code other than 0x08 (unsigned byte), zero dimensions, or a data
            length that differs from the product of the dimensions; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument}: no IDX file at '{path}'")
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{argument}: '{path}' is not a valid gzip file ({error}); a name ending in .gz "
                             "must hold a gzip-compressed IDX file") from error
    where = f"{argument}: IDX file '{path}'"
    if len(data) < 4:
        raise ValueError(f"{where} is truncated: it holds {len(data)} bytes, fewer than the 4 of the magic number")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{where} has a bad magic number 0x{magic:08X}: an IDX file starts with two zero bytes "
                         f"(0x0000TTDD, TT the type code, DD the number of dimensions)")
    if data[2] != UNSIGNED_BYTE:
        raise ValueError(f"{where} has data type code 0x{data[2]:02X} (magic 0x{magic:08X}); MNIST files must "
                         f"have 0x{UNSIGNED_BYTE:02X} (unsigned byte)")
    ndim = data[3]
    if ndim == 0:
        raise ValueError(f"{where} declares 0 dimensions (magic 0x{magic:08X}); expected at least 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{where} is truncated: its header of {ndim} dimensions needs {header} bytes, the file "
                         f"holds {len(data)}")
    dims = list(struct.unpack(f">{ndim}I", data[4:header]))
    expected = math.prod(dims)
    found = len(data) - header
    if found < expected:
        raise ValueError(f"{where} is truncated: its header {dims} announces {expected} data bytes after the "
                         f"{header}-byte header, the file holds {found}")
    if found > expected:
        raise ValueError(f"{where} is longer than its header says: {dims} announces {expected} data bytes after "
                         f"the {header}-byte header, the file holds {found} ({found - expected} trailing bytes)")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims).copy()


def _read_images(path: Path, argument: str) -> np.ndarray:
    """``[N, 28, 28]`` uint8 images of one IDX file, checked."""
    images = read_idx(path, argument)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or images.shape[0] < 1:
        raise ValueError(f"{argument}: IDX file '{path}' must hold images [N, {IMAGE_SIZE}, {IMAGE_SIZE}] with "
                         f"N >= 1 (magic 0x00000803), got dimensions {list(images.shape)}")
    return images


def _read_labels(path: Path, argument: str) -> np.ndarray:
    """``[N]`` uint8 labels of one IDX file, checked to lie in 0..9."""
    labels = read_idx(path, argument)
    if labels.ndim != 1 or labels.shape[0] < 1:
        raise ValueError(f"{argument}: IDX file '{path}' must hold labels [N] with N >= 1 (magic 0x00000801), "
                         f"got dimensions {list(labels.shape)}")
    if labels.max() >= NUM_CLASSES:
        raise ValueError(f"{argument}: IDX file '{path}' must hold labels in 0..{NUM_CLASSES - 1}, got values up "
                         f"to {int(labels.max())} (sample {int(labels.argmax())})")
    return labels


def _present(directory: Path) -> dict[str, Path]:
    """``{name: file}`` of the expected files found in ``directory`` (plain preferred over ``.gz``)."""
    found = {}
    for name in FILE_NAMES:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def find_mnist_files(path: str | os.PathLike[str], argument: str = "path") -> dict[str, Path]:
    """The four MNIST IDX files under ``path``: ``{name: file}`` for the names of ``FILE_NAMES``.

    Looks in ``path`` itself, then ``path/MNIST/raw`` (torchvision's layout under its ``root``), then
    ``path/raw``, and takes the first directory that holds all four (each plain or ``.gz``). ``path``
    may also be one of the four files, standing for its directory.

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        FileNotFoundError: ``path`` does not exist, or no searched directory holds all four files (the
            message names the directory, the expected and the missing file names).
        ValueError: ``path`` is a file other than one of the four.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a directory path (str or os.PathLike) holding the raw MNIST files, "
                        f"got {type(path).__name__}")
    given = Path(path)
    expected = ", ".join(FILE_NAMES)
    if given.is_file():
        name = given.name[:-3] if given.name.endswith(".gz") else given.name
        if name not in FILE_NAMES:
            raise ValueError(f"{argument} must be the directory that holds the MNIST IDX files {expected} (or one "
                             f"of those files), got the file '{given}'; {SOURCE_HINT}")
        given = given.parent
    elif not given.exists():
        raise FileNotFoundError(f"{argument}: no directory '{given}'; it must hold the MNIST IDX files {expected} "
                                f"(each optionally .gz); {SOURCE_HINT}")
    searched = [given / sub for sub in SUBDIRECTORIES]
    partial = None
    for directory in searched:
        found = _present(directory)
        if len(found) == len(FILE_NAMES):
            return found
        if found and partial is None:
            partial = (directory, found)
    places = ", ".join(f"'{directory}'" for directory in searched)
    message = (f"{argument}: the MNIST IDX files are not in '{given}' (searched {places}); expected {expected} "
               f"(each optionally gzip-compressed as .gz); {SOURCE_HINT}")
    if partial is not None:
        directory, found = partial
        missing = [name for name in FILE_NAMES if name not in found]
        message += f". '{directory}' holds only {', '.join(found)} and lacks {', '.join(missing)}"
    raise FileNotFoundError(message)


def read_mnist(path: str | os.PathLike[str], argument: str = "path"
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Path]:
    """Read and check the four files: ``(x_train [N, 784], y_train [N], x_test [M, 784], y_test [M], directory)``.

    ``x`` float32 in [0, 1] (row-major pixels divided by 255), ``y`` int64 0..9; ``directory`` is where
    the files were found.

    Raises:
        The errors of :func:`find_mnist_files` and :func:`read_idx`; ValueError also for images that are
        not ``[N, 28, 28]``, labels that are not ``[N]`` in 0..9, or image and label files of different N.
    """
    files = find_mnist_files(path, argument)
    parts: list[torch.Tensor] = []
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images = _read_images(files[images_name], argument)
        labels = _read_labels(files[labels_name], argument)
        if len(images) != len(labels):
            raise ValueError(f"{argument}: '{files[images_name]}' holds {len(images)} images but "
                             f"'{files[labels_name]}' holds {len(labels)} labels; they must be equal")
        x = torch.from_numpy(images.reshape(len(images), IMAGE_SIZE * IMAGE_SIZE)).float() / 255.0
        parts += [x, torch.from_numpy(labels.astype(np.int64))]
    x_train, y_train, x_test, y_test = parts
    return x_train, y_train, x_test, y_test, files[TRAIN_IMAGES].parent


def _load(name: str, path: str | os.PathLike[str], steps: int, features: int, view: str) -> SequenceDataset:
    x_train, y_train, x_test, y_test, directory = read_mnist(path)
    x_train = x_train.reshape(len(x_train), steps, features)
    x_test = x_test.reshape(len(x_test), steps, features)
    description = (f"MNIST from the IDX files in '{directory}', {view}; values in [0, 1]; {len(y_train)} train / "
                   f"{len(y_test)} test (the official split)")
    return SequenceDataset(x_train, y_train, x_test, y_test, NUM_CLASSES, description,
                           info=dict(name=name, path=str(path), directory=str(directory)))


def load_mnist_rows(path: str | os.PathLike[str]) -> SequenceDataset:
    """MNIST read row by row from local IDX files: ``x [N, 28, 28]`` (T=28 rows, F=28 pixels), labels 0..9.

    Args:
        path: the directory of the raw MNIST files (or torchvision's ``root``; see the module's notes).

    Returns:
        60,000 train / 10,000 test digits for the official files (all the files hold, official split).
    """
    return _load("mnist_rows", path, IMAGE_SIZE, IMAGE_SIZE, "rows: x [N, 28, 28] = T 28 rows of F 28 pixels")


def load_mnist_pixels(path: str | os.PathLike[str]) -> SequenceDataset:
    """MNIST read pixel by pixel (row-major) from local IDX files: ``x [N, 784, 1]`` (T=784, F=1), labels 0..9.

    Args:
        path: the directory of the raw MNIST files (or torchvision's ``root``; see the module's notes).
    """
    return _load("mnist_pixels", path, IMAGE_SIZE * IMAGE_SIZE, 1,
                 "pixels: x [N, 784, 1] = T 784 pixels (row-major), F 1")
