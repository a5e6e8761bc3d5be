"""Spike events (SHD files or tonic-style event arrays) binned into frames and fed to a SpikingLSTM/GRU.

The Spiking Heidelberg Digits (SHD) give each spoken digit as a list of spike events of 700 input units:
the HDF5 files hold ``spikes/times`` (seconds), ``spikes/units`` and ``labels``; tonic gives the same
events as numpy structured arrays with fields ``t`` (microseconds), ``x`` (unit) and ``p`` (polarity).
spikingrnn.data bins either form into frames ``[N, T, 700]`` (``T`` bins over ``[0, max_time)``; later
spikes are dropped), lazily: a sample is read and binned only when a batch needs it.

What the script does:

1. writes small synthetic SHD-format files (``shd_train.h5``, ``shd_test.h5``: 20 classes, each firing
   around its own band of units) to a temporary folder, or uses your real ones with ``--data-path``;
2. opens them with ``spikingrnn.data.load_shd`` (lazy ``[N, T, 700]``, 0/1 frames with ``binary=True``);
3. reads the first samples as tonic-style event arrays and bins them with ``spikingrnn.data.from_events``,
   checking that both routes give the same frames (tonic's whole-microsecond times can move a spike
   that lies within 1 us of a bin edge into the bin before: the counts per unit must agree exactly);
4. trains a ``SpikingLSTM`` (or ``--rnn gru``) whose input is the 0/1 frames themselves, and checks that
   every loss is finite and that the test loss went down.

Run::

    python examples/shd_events.py                               # synthetic files, 1-2 min on 2 cores
    python examples/shd_events.py --data-path ~/data/shd        # your shd_train.h5 and shd_test.h5
    python examples/shd_events.py --fast                        # a few seconds, 1 thread (what CI runs)

Needs h5py (``pip install 'spikingrnn[data]'``). The real files come from https://zenkelab.org/datasets/
(gunzip them); nothing is downloaded here.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import spikingrnn
from spikingrnn.data import batches, from_events, head, load_shd, open_spike_file, write_synthetic_shd

NUM_UNITS, NUM_CLASSES = 700, 20          # SHD's input units and classes
TONIC_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])   # tonic's SHD events


class EventClassifier(nn.Module):
    """``frames [T, B, 700] -> logits [B, 20]``: a spiking layer reads the 0/1 frames, a Linear the time mean."""

    def __init__(self, rnn: str, hidden: int):
        super().__init__()
        rnn_class = {"lstm": spikingrnn.SpikingLSTM, "gru": spikingrnn.SpikingGRU}[rnn]
        self.rnn = rnn_class(NUM_UNITS, hidden)
        self.readout = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.rnn(frames)
        return self.readout(spikes.mean(0))


def tonic_events(path: Path, count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``count`` samples of an SHD file as tonic gives them: ``(t [us], x, p)`` arrays and labels."""
    import h5py
    with h5py.File(path, "r") as handle:
        events = []
        for times, units in zip(handle["spikes/times"][:count], handle["spikes/units"][:count]):
            array = np.zeros(len(times), dtype=TONIC_DTYPE)
            array["t"] = (times.astype(np.float64) * 1e6).astype(np.int64)   # whole microseconds, truncated
            array["x"] = units
            array["p"] = 1
            events.append(array)
        labels = handle["labels"][:count].astype(np.int64)
    return events, labels


def mean_loss(model: nn.Module, x, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``x`` (lazy or dense ``[N, T, F]``)."""
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for frames, labels in batches(x, y, batch_size):
            logits = model(frames)
            total += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(1) == labels).sum())
    return total / len(y), correct / len(y)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-path", type=Path, default=None,
                        help="folder with shd_train.h5 and shd_test.h5 (default: write synthetic ones to a temp dir)")
    parser.add_argument("--rnn", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--fast", action="store_true",
                        help="100 + 40 synthetic samples, 50 bins, hidden 32, 3 epochs, 1 thread (CI)")
    parser.add_argument("--num-steps", type=int, default=None, help="time bins T (default 100; 50 with --fast)")
    parser.add_argument("--max-time", type=float, default=1.4, help="binned window in seconds (default 1.4)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden units (default 128; 32 with --fast)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 5; 3 with --fast)")
    parser.add_argument("--limit-train", type=int, default=None,
                        help="use only the first N training samples (default all)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 64; 20 with --fast")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.num_steps = args.num_steps or (50 if args.fast else 100)
    args.hidden = args.hidden or (32 if args.fast else 128)
    args.epochs = args.epochs or (3 if args.fast else 5)
    args.batch_size = args.batch_size or (20 if args.fast else 64)
    return args


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def run(args: argparse.Namespace, folder: Path) -> dict:
    train_path, test_path = folder / "shd_train.h5", folder / "shd_test.h5"
    if args.data_path is None:
        # synthetic files in SHD's layout; a real user passes --data-path instead
        samples = (100, 40) if args.fast else (800, 200)
        spikes = 300 if args.fast else 1000
        write_synthetic_shd(train_path, num_samples=samples[0], spikes_per_sample=spikes, seed=args.seed)
        write_synthetic_shd(test_path, num_samples=samples[1], spikes_per_sample=spikes, seed=args.seed + 1)
        print(f"wrote synthetic {train_path.name} ({samples[0]} samples) and {test_path.name} ({samples[1]}) "
              f"to {folder}")
    for path in (train_path, test_path):
        check(path.is_file(), f"{path} does not exist (--data-path needs shd_train.h5 and shd_test.h5)")

    # 2. the HDF5 files, read lazily: x_train / x_test are LazySpikeSequences [N, T, 700]
    data = load_shd(train_path, test_path=test_path, num_steps=args.num_steps, max_time=args.max_time, binary=True)
    x_train, y_train = data.x_train, data.y_train
    if args.limit_train is not None:
        x_train, y_train = head(x_train, args.limit_train), y_train[:args.limit_train]
    print(data.description)

    # 3. the same samples as tonic-style event arrays, binned by from_events
    count = min(16, len(data.y_train))
    events, labels = tonic_events(train_path, count)
    print(f"tonic-style sample 0: {len(events[0])} events, dtype {events[0].dtype}, first {events[0][:2].tolist()}")
    from_tonic = from_events(events, labels, test_events=events[:1], test_labels=labels[:1], num_classes=NUM_CLASSES,
                             num_units=NUM_UNITS, num_steps=args.num_steps, max_time=args.max_time, binary=False)
    frames_h5 = open_spike_file(train_path, num_steps=args.num_steps, max_time=args.max_time)[0][:count]  # counts
    frames_events = from_tonic.x_train[:count]
    check(torch.equal(from_tonic.y_train, data.y_train[:count]), "labels read as events differ from the file's")
    check(torch.equal(frames_events.sum(1), frames_h5.sum(1)),
          "spike counts per unit differ between the event arrays and the HDF5 file")
    moved = int((frames_events != frames_h5).sum())
    print(f"frames from event arrays vs from the file ({count} samples, {int(frames_h5.sum())} spikes): "
          f"same counts per unit; {moved} bin entries differ (spikes within 1 us of a bin edge)")
    check(moved <= 0.01 * int(frames_h5.sum()), f"{moved} bin entries differ: more than 1 % of the spikes")

    # 4. train a spiking layer on the 0/1 frames, one batch read and binned at a time
    torch.manual_seed(args.seed)
    model = EventClassifier(args.rnn, args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    before, accuracy_before = mean_loss(model, data.x_test, data.y_test, args.batch_size)
    print(f"before training: test loss {before:.4f}, accuracy {accuracy_before:.3f}")
    losses = []
    for epoch in range(args.epochs):
        model.train()
        for frames, labels in batches(x_train, y_train, args.batch_size, shuffle=True, generator=generator):
            loss = nn.functional.cross_entropy(model(frames), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        after, accuracy = mean_loss(model, data.x_test, data.y_test, args.batch_size)
        print(f"epoch {epoch + 1}/{args.epochs}: last train loss {losses[-1]:.4f}, test loss {after:.4f}, "
              f"accuracy {accuracy:.3f}")
    check(all(np.isfinite(losses)), f"a training loss is not finite: {losses}")
    check(np.isfinite(after) and after < before, f"the test loss did not go down: {before:.4f} -> {after:.4f}")
    with torch.no_grad():
        rate = model.rnn(data.x_test[:args.batch_size].transpose(0, 1))[0].mean().item()
    print(f"OK: test loss {before:.4f} -> {after:.4f}, accuracy {accuracy:.3f} (chance {1 / NUM_CLASSES}); "
          f"firing rate of the {type(model.rnn).__name__} {rate:.3f}")
    return {"loss_before": before, "loss_after": after, "test_accuracy": accuracy, "firing_rate": rate}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.fast:
        torch.set_num_threads(1)
    if args.data_path is not None:
        return run(args, args.data_path.expanduser())
    with tempfile.TemporaryDirectory() as folder:
        return run(args, Path(folder))


if __name__ == "__main__":
    main()
