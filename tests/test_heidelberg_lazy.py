"""SHD/SSC read lazily: binning per batch equals the dense rule, memory does not grow with the file,
splits are index subsets, bad samples fail loudly on access, and tonic-style event arrays are accepted."""
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import spikingrnn
from spikingrnn import data as sd   # the new names are used as sd.<name>, so that each test fails on its own on main
from spikingrnn.data import (SequenceDataset, batches, bin_spike_file, load_dataset, load_shd, stratified_split,
                             write_shd_file, write_synthetic_shd)

h5py = pytest.importorskip("h5py")

# t = -0.01, 1.0 (= max_time), 1.5 and NaN are dropped; 0.99999994 rounds into bin T and must stay in bin T - 1
TIMES = [[0.05, 0.06, 0.15, 0.95, 0.999, 1.0, 1.5, -0.01, float("nan"), 0.99999994], [], [0.5, 0.5, 0.5],
         [0.0, 0.31, 0.31, 0.72], [0.1], [0.9, 0.2]]
UNITS = [[2, 2, 2, 7, 7, 1, 1, 1, 3, 699], [], [699, 699, 0], [5, 5, 5, 6], [10], [11, 12]]
LABELS = [3, 0, 1, 3, 0, 1]


def reference(times, units, num_steps, max_time, binary=False, num_units=700):
    """The binning rule written out spike by spike: bin floor(t * (T / max_time)), [0, max_time) kept."""
    x = torch.zeros(len(times), num_steps, num_units)
    for i, (sample_times, sample_units) in enumerate(zip(times, units)):
        for t, u in zip(sample_times, sample_units):
            if 0 <= t < max_time:
                x[i, min(int(t * (num_steps / max_time)), num_steps - 1), int(u)] += 1
    return x.clamp(max=1.0) if binary else x


def as_stored(times):   # the file holds float32 seconds
    return [[float(np.float32(t)) for t in sample] for sample in times]


@pytest.fixture
def hand_made(tmp_path):
    return write_shd_file(tmp_path / "hand.h5", TIMES, UNITS, LABELS)


# ---------------------------------------------------------------- equality with the dense rule
@pytest.mark.parametrize("binary", [False, True])
def test_lazy_batches_equal_dense_binning(hand_made, binary):
    x, y = sd.open_spike_file(hand_made, num_steps=10, max_time=1.0, binary=binary)
    assert isinstance(x, sd.LazySpikeSequences) and y.tolist() == LABELS
    expected = reference(as_stored(TIMES), UNITS, 10, 1.0, binary)
    assert expected[0].sum() == (4 if binary else 6) and expected[0, 9, 699] == 1   # dropped ones not counted
    assert torch.equal(x[:], expected) and torch.equal(bin_spike_file(hand_made, 10, 1.0, binary)[0], expected)
    seen = []
    for xb, yb in batches(x, y, 4, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert xb.shape[0] == 10 and xb.shape[2] == 700 and xb.dtype == torch.float32
        order = [next(i for i in range(len(LABELS)) if i not in seen and torch.equal(xb[:, b], expected[i]))
                 for b in range(xb.shape[1])]
        seen += order
        assert yb.tolist() == [LABELS[i] for i in order]
    assert sorted(seen) == list(range(6))


def old_dense_loader(path, num_steps, max_time, binary):
    """The loader before lazy reading (bin_spike_file on main), kept verbatim: the whole file at once."""
    with h5py.File(path, "r") as handle:
        times, units = handle["spikes/times"][()], handle["spikes/units"][()]
        labels = np.asarray(handle["labels"][()])
    x = np.zeros((len(labels), num_steps, 700), dtype=np.float32)
    for i, (sample_times, sample_units) in enumerate(zip(times, units)):
        sample_times = np.asarray(sample_times, dtype=np.float64).reshape(-1)
        sample_units = np.asarray(sample_units).reshape(-1)
        keep = (sample_times >= 0) & (sample_times < max_time)
        bins = np.minimum((sample_times[keep] * (num_steps / max_time)).astype(np.int64), num_steps - 1)
        flat = bins * 700 + sample_units[keep].astype(np.int64)
        x[i] = np.bincount(flat, minlength=num_steps * 700).reshape(num_steps, 700)
    if binary:
        np.minimum(x, 1.0, out=x)
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


@pytest.mark.parametrize("num_steps, max_time, binary", [(100, 1.4, False), (250, 1.4, True), (7, 1.0, False)])
def test_lazy_samples_equal_the_old_dense_loader(tmp_path, num_steps, max_time, binary):
    rng = np.random.default_rng(5)
    times, units = [], []
    for i in range(300):   # up to 3,000 spikes a sample; some NaN, negative, late or a float32 step below 1.4 s
        n = int(rng.integers(0, 3000))
        t = rng.uniform(-0.1, 1.6, n).astype(np.float32)
        t[:n // 50] = np.float32(1.4) * (1 - rng.integers(0, 3, n // 50) * np.float32(6e-8))
        t[:min(n, 1)] = np.nan
        times.append(t)
        units.append(rng.integers(0, 700, n))
    path = write_shd_file(tmp_path / "edges.h5", times, units, rng.integers(0, 20, 300))
    old, labels = old_dense_loader(path, num_steps, max_time, binary)
    assert old[:, -1].sum() > 0 and old.sum() < sum(map(len, times))   # the last bin is used, some spikes dropped
    data = load_shd(path, num_steps=num_steps, max_time=max_time, binary=binary, num_test=60, seed=3)
    assert isinstance(data.x_train, sd.LazySpikeSequences) and isinstance(data.x_test, sd.LazySpikeSequences)
    train, test = stratified_split(labels, 60, seed=3)   # the old loader's split: x[train], x[test]
    assert torch.equal(data.y_train, labels[train]) and torch.equal(data.y_test, labels[test])
    for start in range(0, 240, 64):                       # batch by batch, as training reads it
        assert torch.equal(data.x_train[start:start + 64], old[train[start:start + 64]])
    assert torch.equal(data.x_test[:], old[test]) and torch.equal(data.x_train[17], old[train[17]])
    whole, whole_labels = sd.open_spike_file(path, num_steps=num_steps, max_time=max_time, binary=binary)
    assert torch.equal(whole[:], old) and torch.equal(whole_labels, labels)


def test_official_test_file_and_seeded_split(hand_made, tmp_path):
    test_file = write_shd_file(tmp_path / "test.h5", TIMES[::-1], UNITS[::-1], LABELS[::-1])
    data = load_shd(hand_made, test_path=test_file, num_steps=10, max_time=1.0)
    assert isinstance(data.x_train, sd.LazySpikeSequences) and isinstance(data.x_test, sd.LazySpikeSequences)
    expected = reference(as_stored(TIMES), UNITS, 10, 1.0)
    assert torch.equal(data.x_train[:], expected) and torch.equal(data.x_test[:], expected.flip(0))
    assert data.y_test.tolist() == LABELS[::-1] and "test (test_path)" in data.description

    path = write_synthetic_shd(tmp_path / "toy.h5", num_samples=60, spikes_per_sample=40, seed=2)
    dense, labels = bin_spike_file(path, binary=True)
    split = load_dataset("shd", path=path, binary=True, seed=3, num_test=15)
    train, test = stratified_split(labels, 15, seed=3)
    assert torch.equal(split.info["train_index"], train) and torch.equal(split.y_test, labels[test])
    assert torch.equal(split.x_train[:], dense[train]) and torch.equal(split.x_test[:], dense[test])
    # the split copies nothing: both parts are sample numbers into the one opened file
    assert split.x_train.source is split.x_test.source and split.x_train.rows.tolist() == train.tolist()
    assert not torch.equal(load_shd(path, seed=4, num_test=15).y_test, split.y_test)


# ---------------------------------------------------------------- the tensor-like interface
def test_indexing_shape_and_helpers(hand_made):
    x, y = sd.open_spike_file(hand_made, num_steps=10, max_time=1.0)
    dense = x[:]
    assert len(x) == 6 and x.shape == (6, 10, 700) and x.size(0) == 6 and x.dim() == 3 and x.dtype == torch.float32
    assert torch.equal(x[2], dense[2]) and torch.equal(x[-1], dense[5]) and torch.equal(x[1:5:2], dense[1:5:2])
    assert torch.equal(x[torch.tensor([4, 0, 4])], dense[[4, 0, 4]]) and torch.equal(x[[3, 1]], dense[[3, 1]])
    assert torch.equal(x[np.array([True, False, True, False, False, True])], dense[[0, 2, 5]])
    assert torch.equal(x[torch.tensor(3)], dense[3]) and torch.equal(x[1:3, 0], dense[1:3, 0])
    assert x[0:0].shape == (0, 10, 700)
    with pytest.raises(IndexError, match="index 6 is out of range for 6 samples"):
        x[6]
    with pytest.raises(IndexError, match=r"index values must lie in \[-6, 6\) for 6 samples, got values in \[0, 9\]"):
        x[torch.tensor([0, 9])]
    with pytest.raises(IndexError, match="integers or bools, got dtype float32"):
        x[torch.tensor([0.5])]
    with pytest.raises(TypeError, match="equal\\(\\) got a LazySpikeSequences, which is not a tensor: index it"):
        torch.equal(x, dense)
    with pytest.raises(TypeError, match="not an array: index it first"):
        np.asarray(x)
    with pytest.raises(AttributeError, match="no attribute 'transpose': it is not a tensor; index it first"):
        x.transpose(0, 1)
    first = sd.head(x, 4)
    assert isinstance(first, sd.LazySpikeSequences) and first.rows.tolist() == [0, 1, 2, 3]
    assert torch.equal(sd.head(first, 2)[:], dense[:2]) and torch.equal(sd.take(first, [3, 1])[:], dense[[3, 1]])
    assert torch.equal(sd.head(dense, 3), dense[:3]) and len(sd.head(x, 100)) == 6
    with pytest.raises(ValueError, match="n must be an int >= 0, got -1"):
        sd.head(x, -1)
    with pytest.raises(TypeError, match="x must be a torch.Tensor or a LazySpikeSequences, got list"):
        sd.take([1, 2], [0])
    assert "LazySpikeSequences(N=6, T=10, F=700" in repr(x) and "hand.h5" in repr(x)
    assert torch.equal(pickle.loads(pickle.dumps(x))[4], dense[4])   # the HDF5 handle is reopened


def test_sequence_dataset_and_dataloader_take_lazy_inputs(tmp_path):
    path = write_synthetic_shd(tmp_path / "toy.h5", num_samples=24, spikes_per_sample=30)
    data = load_shd(path, num_test=6, num_steps=20)
    assert isinstance(data.x_train, sd.LazySpikeSequences) and len(data.x_train.rows) == 18
    assert (data.num_steps, data.num_features) == (20, 700) and "train=18" in repr(data)
    train, _ = data.tensor_datasets()
    for workers in (0, 1):   # a worker process reopens the file
        loader = torch.utils.data.DataLoader(train, batch_size=8, num_workers=workers)
        xb, yb = next(iter(loader))
        assert torch.equal(xb, data.x_train[0:8]) and torch.equal(yb, data.y_train[:8])
    with pytest.raises(ValueError, match=r"x_test must be a float32 tensor \[N, T, F\] \(or a LazySpikeSequences\), "
                                         r"got list"):
        SequenceDataset(data.x_train, data.y_train, [], data.y_test, 20, "bad")
    with pytest.raises(ValueError, match="x must be a tensor \\[N, T, F\\] \\(or a LazySpikeSequences\\), got list"):
        next(batches([[0.0]], data.y_train, 4))


# ---------------------------------------------------------------- bad files fail loudly
def test_bad_sample_fails_on_access_naming_file_and_sample(tmp_path):
    path = write_shd_file(tmp_path / "unit.h5", [[0.1], [0.2], [0.3]], [[1], [2], [700]], [0, 1, 0])
    data = load_shd(path, test_path=path)      # opening checks labels and lengths, not every spike
    assert data.x_train[0:2].sum() == 2
    message = rf"path: sample 2 of '{tmp_path}/unit.h5' has spike units in \[700, 700\], expected \[0, 700\)"
    with pytest.raises(ValueError, match=message):
        data.x_train[[0, 2]]
    with pytest.raises(ValueError, match=message):
        data.x_train.check()
    with pytest.raises(ValueError, match=message.replace("path:", "test_path:")):
        list(batches(data.x_test, data.y_test, 2))
    with h5py.File(tmp_path / "ragged.h5", "w") as handle:   # sample 1: two times, one unit
        vlen_f, vlen_u = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        handle.create_dataset("spikes/times", (2,), dtype=vlen_f)[:] = [np.array([0.1], np.float32),
                                                                          np.array([0.1, 0.2], np.float32)]
        handle.create_dataset("spikes/units", (2,), dtype=vlen_u)[:] = [np.array([1], np.uint16),
                                                                         np.array([1], np.uint16)]
        handle.create_dataset("labels", data=np.array([0, 1], np.uint16))
        handle.create_dataset("labels_short", data=np.array([0], np.uint16))
    x, _ = sd.open_spike_file(tmp_path / "ragged.h5")
    with pytest.raises(ValueError, match="sample 1 of .*ragged.h5' has 2 spike times but 1 spike units"):
        x[1]
    with h5py.File(tmp_path / "short.h5", "w") as handle:
        handle.create_dataset("spikes/times", (2,), dtype=vlen_f)
        handle.create_dataset("spikes/units", (2,), dtype=vlen_u)
        handle.create_dataset("labels", data=np.array([0], np.uint16))
    with pytest.raises(ValueError, match=r"as many spikes/times, spikes/units and labels entries .* \[2\], \[2\] and "
                                         r"\[1\]"):
        load_shd(tmp_path / "short.h5")


def test_file_changed_after_opening_is_refused(tmp_path):
    path = write_synthetic_shd(tmp_path / "toy.h5", num_samples=8, spikes_per_sample=5)
    x, _ = sd.open_spike_file(path)
    copy = pickle.loads(pickle.dumps(x))          # the same file, seen at x's opening; no handle yet
    del x                                          # closes x's handle, so that the file can be rewritten
    write_synthetic_shd(path, num_samples=8, spikes_per_sample=6, seed=1)
    with pytest.raises(RuntimeError, match=r"path: '.*toy.h5' changed \(or was removed\) after it was opened"):
        copy[0]


# ---------------------------------------------------------------- tonic-style event arrays
def tonic_events(times_us, units):
    dtype = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])
    array = np.zeros(len(times_us), dtype=dtype)
    array["t"], array["x"], array["p"] = times_us, units, 1
    return array


def test_from_events_bins_tonic_arrays_lazily():
    times_us = [[50_000, 60_000, 150_000, 950_000, 1_400_000, 1_500_000], [], [700_000, 700_000], [10, 1_399_999]]
    units = [[2, 2, 2, 7, 1, 1], [], [699, 0], [3, 4]]
    events = [tonic_events(t, u) for t, u in zip(times_us, units)]
    seconds = [[t * 1e-6 for t in sample] for sample in times_us]
    data = sd.from_events(events, [0, 1, 2, 1], test_events=events[::-1], test_labels=[1, 2, 1, 0], num_classes=3)
    assert isinstance(data.x_train, sd.LazySpikeSequences) and data.x_train.shape == (4, 100, 700)
    expected = reference(seconds, units, 100, 1.4)
    assert expected.sum() == 8   # 1.4 s and 1.5 s are dropped
    assert torch.equal(data.x_train[:], expected) and torch.equal(data.x_test[:], expected.flip(0))
    binary = sd.from_events(events, [0, 1, 2, 1], num_steps=7, max_time=1.0, binary=True, num_test=2, seed=1)
    train, test = stratified_split(torch.tensor([0, 1, 2, 1]), 2, seed=1)
    assert torch.equal(binary.x_test[:], reference(seconds, units, 7, 1.0, binary=True)[test])
    assert binary.num_classes == 3 and torch.equal(binary.y_train, torch.tensor([0, 1, 2, 1])[train])
    pairs = sd.from_events(list(zip(events, [0, 1, 2, 1])), test_events=list(zip(events, [0, 0, 1, 1])))
    assert torch.equal(pairs.x_test[:], expected) and pairs.y_test.tolist() == [0, 0, 1, 1]


def test_from_events_errors():
    good = tonic_events([10], [1])
    no_x = np.zeros(2, dtype=[("t", np.int64), ("y", np.int64), ("p", np.int64)])
    with pytest.raises(ValueError, match=r"events\[1\] lacks the field\(s\) 'x': event arrays need 't' \(time\) and "
                                         r"'x' \(unit\), as tonic gives them; got fields \('t', 'y', 'p'\)"):
        sd.from_events([good, no_x], [0, 1])
    with pytest.raises(TypeError, match=r"events\[0\] must be a numpy structured array with fields 't' \(time\) and "
                                        r"'x' \(unit\), as tonic gives them; got a float64 array of shape \[3\]"):
        sd.from_events([np.zeros(3)], [0])
    with pytest.raises(ValueError, match=r"labels of events must be 2 integers \(one per sample\), got shape \[3\]"):
        sd.from_events([good, good], [0, 1, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\) \(num_classes=2\), got a label 5"):
        sd.from_events([good, good], [0, 5], num_classes=2)
    with pytest.raises(TypeError, match=r"events\[0\] must be an \(events, label\) pair when its labels are None"):
        sd.from_events([good, good])
    data = sd.from_events([good, tonic_events([10], [700])], [0, 0], test_events=[good], test_labels=[0])
    with pytest.raises(ValueError, match=r"events\[1\] has spike units in \[700, 700\], expected \[0, 700\)"):
        data.x_train[1]


# ---------------------------------------------------------------- memory does not grow with the file
MEASURE = textwrap.dedent("""
    import sys, torch
    from spikingrnn.data import batches, load_shd
    torch.set_num_threads(1)
    data = load_shd(sys.argv[1])               # stratified split of the one file, default 20 % test
    total = 0.0
    for xb, yb in batches(data.x_train, data.y_train, 256, shuffle=True, generator=torch.Generator().manual_seed(0)):
        total += float(xb.sum())
    for start in range(0, len(data.y_test), 256):   # an evaluation pass, as the training loop makes
        total += float(data.x_test[start:start + 256].sum())
    # VmHWM: this process image's peak RSS (ru_maxrss would include pytest's own peak, inherited at the fork)
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(peak * 1024, int(total))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from Linux's /proc/self/status")
def test_peak_memory_does_not_grow_with_the_file(tmp_path):
    spikes = 1500
    peaks = {}
    env = dict(os.environ, PYTHONPATH=str(Path(spikingrnn.__file__).resolve().parents[1]))
    for num_samples in (2000, 8156):                # 8,156: the size of SHD's training file
        path = write_synthetic_shd(tmp_path / f"shd_{num_samples}.h5", num_samples=num_samples,
                                   spikes_per_sample=spikes)
        result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                                env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        peak, total = map(int, result.stdout.split())
        assert total == num_samples * spikes       # every spike of the epoch was read and binned
        peaks[num_samples] = peak
    dense_difference = (8156 - 2000) * 100 * 700 * 4   # 1.7 GB more if the files were densified
    growth = peaks[8156] - peaks[2000]
    assert growth < 0.1 * dense_difference, f"peak RSS grew by {growth / 1e6:.0f} MB with the file: {peaks}"
    assert peaks[8156] < 1.5e9, f"peak RSS {peaks[8156] / 1e6:.0f} MB"
