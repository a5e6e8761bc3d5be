"""Tests of the temporal-XOR long-memory task (spikingrnn.data.temporal_xor) and of the full MNIST read from
local IDX files (spikingrnn.data.mnist_idx): shapes, values, seeds, registry, training CLI and every error."""
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikingrnn.data import (DATASETS, SequenceDataset, find_mnist_files, generate_temporal_xor, load_dataset,
                             load_mnist_pixels, load_mnist_rows, load_temporal_xor, read_idx)
from spikingrnn.data.temporal_xor import marker_ranges

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ------------------------------------------------------------------------------------------ temporal XOR
def markers_of(x: torch.Tensor) -> torch.Tensor:
    """``[N, 2]`` the two marked steps of each sample, read from the marker channel of ``x [N, T, 2]``."""
    rows, steps = torch.nonzero(x[:, :, 1], as_tuple=True)
    assert torch.equal(torch.bincount(rows, minlength=len(x)), torch.full((len(x),), 2))
    return steps.reshape(len(x), 2)   # nonzero is row-major: each row's two steps, in order


def check_temporal_xor(x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    """Check every rule of the task on ``x [N, T, 2]``, ``y [N]``; returns the markers ``[N, 2]``."""
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (len(y), steps, 2)
    assert set(x[:, :, 0].unique().tolist()) <= {-1.0, 1.0}
    assert set(x[:, :, 1].unique().tolist()) <= {0.0, 1.0}
    markers = markers_of(x)
    first, second = markers[:, 0], markers[:, 1]
    assert first.min() >= 0 and first.max() < 0.1 * steps            # in the first 10 %
    assert second.min() >= steps / 2 and second.max() < steps         # in the last half
    assert (second - first).min() > 0.4 * steps                       # a memory over more than 0.4 T steps
    rows = torch.arange(len(y))
    a, b = x[rows, first, 0], x[rows, second, 0]
    assert torch.equal(y, (a != b).long())                             # XOR of "is +1"
    assert torch.equal(y, ((a > 0) ^ (b > 0)).long())
    return markers


def test_temporal_xor_defaults():
    data = load_dataset("temporal_xor")
    assert isinstance(data, SequenceDataset) and data.num_classes == 2
    assert data.x_train.shape == (4000, 200, 2) and data.x_test.shape == (1000, 200, 2)
    assert (data.num_steps, data.num_features) == (200, 2)
    for part in ("train", "test"):
        x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        markers = check_temporal_xor(x, y, 200)
        assert torch.equal(markers, data.info[f"{part}_markers"])
        assert torch.bincount(y).tolist() == [len(y) // 2] * 2          # balanced
        rows = torch.arange(len(y))
        combination = (x[rows, markers[:, 0], 0] > 0).long() * 2 + (x[rows, markers[:, 1], 0] > 0).long()
        assert torch.bincount(combination).tolist() == [len(y) // 4] * 4   # (a, b): each pair a quarter
        # the markers are spread over their whole ranges
        assert set(markers[:, 0].tolist()) == set(range(20)) and set(markers[:, 1].tolist()) == set(range(100, 200))
    assert "temporal XOR" in data.description and "4000 train" in data.description


def test_temporal_xor_seeds():
    a = load_temporal_xor(num_train=64, num_test=32, seed=1)
    b = load_temporal_xor(num_train=64, num_test=32, seed=1)
    c = load_temporal_xor(num_train=64, num_test=32, seed=2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)     # deterministic
    assert not torch.equal(a.x_train, c.x_train)                                      # seed moves train ...
    assert torch.equal(a.x_test, c.x_test) and torch.equal(a.y_test, c.y_test)        # ... never the test set
    d = load_temporal_xor(num_train=64, num_test=32, seed=1, test_seed=5)
    assert torch.equal(a.x_train, d.x_train) and not torch.equal(a.x_test, d.x_test)
    same = load_temporal_xor(num_train=32, num_test=32, seed=0, test_seed=0)          # separate streams
    assert not torch.equal(same.x_train, same.x_test)
    # the test set does not depend on the training set's size either
    assert torch.equal(load_temporal_xor(num_train=10, num_test=32).x_test, load_temporal_xor(num_test=32).x_test)
    x, y, markers = generate_temporal_xor(16, 30, seed=4)
    again = generate_temporal_xor(16, 30, seed=4)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1]) and torch.equal(markers, again[2])
    assert torch.equal(markers, check_temporal_xor(x, y, 30))


@pytest.mark.parametrize("steps", [10, 11, 19, 37, 50, 101])
def test_temporal_xor_lengths(steps):
    data = load_dataset("temporal_xor", num_steps=steps, num_train=41, num_test=7, seed=3)
    assert data.x_train.shape == (41, steps, 2) and data.x_test.shape == (7, steps, 2)
    check_temporal_xor(data.x_train, data.y_train, steps)
    check_temporal_xor(data.x_test, data.y_test, steps)
    first, second = marker_ranges(steps)
    assert first == range(0, -(-steps // 10)) and second == range(-(-steps // 2), steps)
    for y in (data.y_train, data.y_test):   # odd sizes: the classes differ by at most one
        counts = torch.bincount(y, minlength=2)
        assert abs(int(counts[0]) - int(counts[1])) <= 1


def test_temporal_xor_needs_memory():
    """Time-averaged memoryless features stay near the 75 % ceiling of the module's argument; the product of the
    two marked bits (what a state holding the first bit can compute) solves the task."""
    data = load_temporal_xor(num_train=2000, num_test=1000)

    def histogram(x):   # the time average of every memoryless feature is linear in these four counts
        bit, mark = x[..., 0] > 0, x[..., 1] > 0
        return torch.stack([(bit & ~mark).float().mean(1), (~bit & ~mark).float().mean(1),
                            (bit & mark).float().mean(1), (~bit & mark).float().mean(1),
                            torch.ones(len(x))], dim=1).double()

    def accuracy(features_train, features_test):
        w = torch.linalg.lstsq(features_train, data.y_train.double() * 2 - 1).solution
        return float(((features_test @ w > 0).long() == data.y_test).float().mean())

    assert accuracy(histogram(data.x_train), histogram(data.x_test)) <= 0.8

    def with_product(x):
        markers = markers_of(x)
        rows = torch.arange(len(x))
        product = x[rows, markers[:, 0], 0] * x[rows, markers[:, 1], 0]
        return torch.cat([histogram(x), product.double()[:, None]], dim=1)

    assert accuracy(with_product(data.x_train), with_product(data.x_test)) == 1.0


def test_temporal_xor_bad_arguments():
    with pytest.raises(ValueError, match="num_steps must be an int >= 10, got 9"):
        load_temporal_xor(num_steps=9)
    with pytest.raises(TypeError, match=r"num_steps must be an int >= 10, got 200.0 \(float\)"):
        load_dataset("temporal_xor", num_steps=200.0)
    with pytest.raises(ValueError, match="num_train must be an int >= 1, got 0"):
        load_temporal_xor(num_train=0)
    with pytest.raises(ValueError, match="num_test must be an int >= 1, got -3"):
        load_temporal_xor(num_test=-3)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        load_temporal_xor(seed=-1)
    with pytest.raises(TypeError, match=r"test_seed must be an int >= 0, got True \(bool\)"):
        load_temporal_xor(test_seed=True)
    with pytest.raises(ValueError, match="num_samples must be an int >= 1, got 0"):
        generate_temporal_xor(0)
    with pytest.raises(TypeError, match="no option 'T'.*num_steps"):
        load_dataset("temporal_xor", T=100)


# ------------------------------------------------------------------------------------------ IDX files
def idx_bytes(array: np.ndarray, type_code: int = 0x08, first: bytes = b"\x00\x00") -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = first + bytes([type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def make_mnist(directory: Path, gz: bool = False, num_train: int = 12, num_test: int = 5, seed: int = 0):
    """Write the four IDX files with random digits; returns ``{name: array}`` of what was written."""
    rng = np.random.default_rng(seed)
    arrays = {NAMES[0]: rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
              NAMES[1]: rng.integers(0, 10, num_train, dtype=np.uint8),
              NAMES[2]: rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
              NAMES[3]: rng.integers(0, 10, num_test, dtype=np.uint8)}
    arrays[NAMES[0]][0, 0, :3] = [0, 255, 128]   # both ends of the range for sure
    for name, array in arrays.items():
        write_file(directory / (name + (".gz" if gz else "")), idx_bytes(array))
    return arrays


def check_mnist(data, arrays, rows: bool):
    train_images, train_labels, test_images, test_labels = (arrays[name] for name in NAMES)
    shape = (28, 28) if rows else (784, 1)
    assert data.x_train.shape == (len(train_labels), *shape) and data.x_test.shape == (len(test_labels), *shape)
    assert data.x_train.dtype == data.x_test.dtype == torch.float32 and data.num_classes == 10
    assert data.y_train.dtype == data.y_test.dtype == torch.int64
    expected_train = torch.from_numpy(train_images.astype(np.float32) / np.float32(255)).reshape(data.x_train.shape)
    expected_test = torch.from_numpy(test_images.astype(np.float32) / np.float32(255)).reshape(data.x_test.shape)
    torch.testing.assert_close(data.x_train, expected_train, rtol=0, atol=1e-7)
    torch.testing.assert_close(data.x_test, expected_test, rtol=0, atol=1e-7)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert data.x_train[0].flatten()[1] == 1.0 and abs(float(data.x_train[0].flatten()[2]) - 128 / 255) < 1e-7
    assert data.y_train.tolist() == train_labels.tolist() and data.y_test.tolist() == test_labels.tolist()
    assert "official split" in data.description


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_plain_and_gzip(tmp_path, gz):
    arrays = make_mnist(tmp_path, gz=gz)
    rows = load_dataset("mnist_rows", path=tmp_path)
    check_mnist(rows, arrays, rows=True)
    assert rows.num_steps == 28 and rows.num_features == 28
    pixels = load_dataset("mnist_pixels", path=str(tmp_path))
    check_mnist(pixels, arrays, rows=False)
    assert pixels.num_steps == 784 and pixels.num_features == 1
    assert torch.equal(pixels.x_train.reshape(-1, 28, 28), rows.x_train)   # row-major pixel order
    assert rows.info["directory"] == str(tmp_path)


def test_mnist_idx_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    arrays = make_mnist(raw, gz=True)
    for path in (tmp_path, tmp_path / "MNIST", raw, raw / "t10k-labels-idx1-ubyte.gz"):
        data = load_mnist_rows(path)
        check_mnist(data, arrays, rows=True)
        assert data.info["directory"] == str(raw)
    # torchvision keeps the .gz it downloaded beside the unpacked file: the plain file is read
    write_file(raw / "train-images-idx3-ubyte", idx_bytes(arrays[NAMES[0]]))
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    check_mnist(load_mnist_pixels(tmp_path), arrays, rows=False)
    assert find_mnist_files(tmp_path)[NAMES[0]] == raw / "train-images-idx3-ubyte"
    # files in the directory itself win over MNIST/raw
    direct = make_mnist(tmp_path, seed=1, num_train=3, num_test=2)
    check_mnist(load_mnist_rows(tmp_path), direct, rows=True)


def test_read_idx(tmp_path):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    for name in ("cube", "cube.gz"):
        read = read_idx(write_file(tmp_path / name, idx_bytes(array)))
        assert read.dtype == np.uint8 and read.shape == (2, 3, 5) and np.array_equal(read, array)
        assert read.flags.writeable
    assert read_idx(write_file(tmp_path / "empty", idx_bytes(np.zeros((0, 28, 28))))).shape == (0, 28, 28)


def test_mnist_idx_bad_files(tmp_path):
    arrays = make_mnist(tmp_path)
    images = tmp_path / NAMES[0]
    good = idx_bytes(arrays[NAMES[0]])

    def fails(data: bytes, pattern: str, error=ValueError, path=images):
        write_file(path, data)
        with pytest.raises(error, match=pattern):
            load_dataset("mnist_rows", path=tmp_path)
        write_file(images, good)

    fails(b"\x01\x02" + good[2:], r"path: IDX file '.*train-images-idx3-ubyte' has a bad magic number 0x01020803")
    fails(good[:2] + b"\x0d" + good[3:], r"train-images-idx3-ubyte' has data type code 0x0D .*must have 0x08 "
                                         r"\(unsigned byte\)")
    fails(good[:-10], r"train-images-idx3-ubyte' is truncated: its header \[12, 28, 28\] announces 9408 data bytes "
                      r"after the 16-byte header, the file holds 9398")
    fails(good + b"\x00", r"train-images-idx3-ubyte' is longer than its header says.*1 trailing bytes")
    fails(good[:10], r"is truncated: its header of 3 dimensions needs 16 bytes, the file holds 10")
    fails(good[:3], r"is truncated: it holds 3 bytes, fewer than the 4 of the magic number")
    fails(b"\x00\x00\x08\x00", r"declares 0 dimensions")
    fails(idx_bytes(np.zeros((12, 27, 28))), r"train-images-idx3-ubyte' must hold images \[N, 28, 28\] with N >= 1 "
                                             r"\(magic 0x00000803\), got dimensions \[12, 27, 28\]")
    fails(idx_bytes(np.zeros(12)), r"must hold images \[N, 28, 28\].*got dimensions \[12\]")
    fails(idx_bytes(np.zeros((0, 28, 28))), r"must hold images \[N, 28, 28\] with N >= 1.*got dimensions \[0, 28, 28\]")
    fails(idx_bytes(np.zeros((11, 28, 28))), r"train-images-idx3-ubyte' holds 11 images but '.*train-labels-idx1-ubyte' "
                                             r"holds 12 labels")
    labels = tmp_path / NAMES[1]
    fails(idx_bytes(np.zeros((12, 1))), r"train-labels-idx1-ubyte' must hold labels \[N\].*got dimensions \[12, 1\]",
          path=labels)
    fails(idx_bytes(np.full(12, 10)), r"train-labels-idx1-ubyte' must hold labels in 0..9, got values up to 10",
          path=labels)
    write_file(labels, idx_bytes(arrays[NAMES[1]]))
    # gzip-compressed files: not gzip at all, or cut short
    images.unlink()
    gz = tmp_path / (NAMES[0] + ".gz")
    for data in (good, gzip.compress(good)[:-20]):
        gz.write_bytes(data)
        with pytest.raises(ValueError, match=r"path: '.*train-images-idx3-ubyte.gz' is not a valid gzip file"):
            load_mnist_pixels(tmp_path)
    gz.write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz' is truncated"):
        load_mnist_pixels(tmp_path)


def test_mnist_idx_missing_files(tmp_path):
    expected = ", ".join(NAMES)
    with pytest.raises(FileNotFoundError) as caught:
        load_dataset("mnist_rows", path=tmp_path)
    message = str(caught.value)
    assert f"the MNIST IDX files are not in '{tmp_path}'" in message and expected in message
    assert f"'{tmp_path / 'MNIST' / 'raw'}'" in message and "torchvision's raw MNIST files" in message
    assert ".gz" in message
    make_mnist(tmp_path / "MNIST" / "raw")
    for name in NAMES[2:]:
        (tmp_path / "MNIST" / "raw" / name).unlink()
    with pytest.raises(FileNotFoundError, match=r"'.*MNIST/raw' holds only train-images-idx3-ubyte, "
                                                r"train-labels-idx1-ubyte and lacks t10k-images-idx3-ubyte, "
                                                r"t10k-labels-idx1-ubyte"):
        load_mnist_pixels(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"path: no directory '.*nowhere'.*torchvision's raw MNIST files"):
        load_mnist_rows(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"path must be the directory that holds the MNIST IDX files .* got the file "
                                         r"'.*notes.txt'"):
        load_mnist_rows(tmp_path / "notes.txt")
    with pytest.raises(TypeError, match="path must be a directory path .* got int"):
        load_mnist_rows(3)
    with pytest.raises(TypeError, match=r"dataset 'mnist_pixels' needs the option 'path' .*path='/data/mnist'"):
        load_dataset("mnist_pixels")
    with pytest.raises(FileNotFoundError, match="no IDX file at"):
        read_idx(tmp_path / "absent")


# ------------------------------------------------------------------------------------------ registry and CLI
def test_registered_and_listed(capsys):
    from spikingrnn.cli import main
    from spikingrnn.train.config import choices

    for name in ("temporal_xor", "mnist_rows", "mnist_pixels"):
        assert name in DATASETS and name in choices()["task"]
    assert DATASETS["temporal_xor"] is load_temporal_xor and DATASETS["mnist_rows"] is load_mnist_rows
    assert DATASETS["mnist_pixels"] is load_mnist_pixels
    with pytest.raises(ValueError, match=r"name must be one of .*mnist_pixels, mnist_rows.*temporal_xor"):
        load_dataset("temporal-xor")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "temporal_xor" in help_text and "mnist_rows" in help_text and "mnist_pixels" in help_text


def test_training_loop_loads_them(tmp_path):
    from spikingrnn.train import TrainConfig
    from spikingrnn.train.loop import _load_data

    _, x_train, _, x_test, _ = _load_data(TrainConfig(task="temporal_xor", split_seed=0))
    _, x_other, _, x_test_other, _ = _load_data(TrainConfig(task="temporal_xor", split_seed=3))
    assert x_train.shape == (4000, 200, 2) and not torch.equal(x_train, x_other)
    assert torch.equal(x_test, x_test_other)   # the split seed never moves the test set
    arrays = make_mnist(tmp_path / "MNIST" / "raw", gz=True)
    # the training loop's --data-path takes the folder, or one of the four files standing for it
    for path in (tmp_path, tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"):
        data, x_train, y_train, x_test, y_test = _load_data(TrainConfig(task="mnist_pixels", data_path=str(path)))
        assert x_train.shape == (12, 784, 1) and x_test.shape == (5, 784, 1)
        assert y_test.tolist() == arrays[NAMES[3]].tolist()


def test_cli_trains_temporal_xor(tmp_path, capsys):
    from spikingrnn.cli import main

    out = tmp_path / "run"
    assert main(["train", "--task", "temporal_xor", "--hidden", "8", "--epochs", "1", "--limit-train", "32",
                 "--limit-test", "16", "--monitor-samples", "4", "--threads", "1", "--no-plots",
                 "--backend", "reference", "--out", str(out)]) == 0   # the data, not a backend, are tested here
    assert (out / "metrics.jsonl").exists()


def test_cli_trains_on_a_folder_of_idx_files(tmp_path):
    from spikingrnn.cli import main

    make_mnist(tmp_path / "mnist", gz=False)
    out = tmp_path / "run"
    assert main(["train", "--task", "mnist_rows", "--data-path", str(tmp_path / "mnist"), "--hidden", "8",
                 "--epochs", "1", "--monitor-samples", "4", "--threads", "1", "--no-plots", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["mean_rate"] is not None and 0 <= record["mean_rate"] <= 1


def test_temporal_recall_labels_the_first_marked_bit():
    from spikingrnn.data import load_dataset
    data = load_dataset("temporal_recall", num_steps=30, num_train=40, num_test=12, seed=3)
    xor = load_dataset("temporal_xor", num_steps=30, num_train=40, num_test=12, seed=3)
    assert torch.equal(data.x_train, xor.x_train) and torch.equal(data.x_test, xor.x_test)  # same sequences
    for x, y, markers in ((data.x_train, data.y_train, data.info["train_markers"]),
                          (data.x_test, data.y_test, data.info["test_markers"])):
        first = x[torch.arange(len(y)), markers[:, 0], 0]
        assert torch.equal(y, (first == 1).long())
        assert abs(int(y.sum()) * 2 - len(y)) <= 1  # balanced
    assert "first marked bit" in data.description
