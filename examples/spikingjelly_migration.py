"""Run code written for SpikingJelly 2.0's spiking RNNs on spikingrnn, and load its checkpoints.

Code that uses ``spikingjelly.activation_based.rnn`` needs one change, its import::

    # from spikingjelly.activation_based import rnn, surrogate
    from spikingrnn.compat import spikingjelly as rnn
    from spikingrnn.compat.spikingjelly import surrogate

after which the same classes (``rnn.SpikingLSTM``, ``rnn.SpikingGRU``, ``rnn.SpikingVanillaRNN``), the same
arguments (``dropout_p``, ``surrogate_function1``, ...), the same parameter names and the same
direction-major states work unchanged. ``build_model`` below is such code: it is written once against the
names ``rnn`` and ``surrogate`` and is given either package.

What the script does:

1. trains a small classifier (Linear -> ``rnn.SpikingLSTM`` -> Linear on scikit-learn's digits read row by
   row) with SpikingJelly itself, and saves its ``state_dict()`` with ``torch.save`` -- a SpikingJelly
   checkpoint (if SpikingJelly is not installed, the same code on spikingrnn writes a file with the same
   keys, and the comparisons with SpikingJelly are skipped with a note);
2. builds the same model from the swapped import and loads that file with ``load_state_dict``, unchanged;
3. converts the recurrent part of the file with ``spikingrnn.compat.checkpoints.from_spikingjelly`` into a
   native ``spikingrnn.SpikingLSTM`` (torch.nn.LSTM's interface, ``batch_first`` etc.);
4. checks that both give SpikingJelly's outputs: the same spikes and final states, in float64 where the
   sums are accurate enough that every spike is decided the same way (float32 too, up to rounding);
5. trains the migrated model on for one epoch.

Run::

    python examples/spikingjelly_migration.py            # about a minute on 2 cores
    python examples/spikingjelly_migration.py --fast     # a few seconds, 1 thread (what CI runs)

Needs scikit-learn; SpikingJelly 2.0 (``pip install spikingjelly``) for the comparisons.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn

from spikingrnn.compat import spikingjelly as compat_rnn
from spikingrnn.compat.checkpoints import from_spikingjelly
from spikingrnn.data import batches, load_digits_rows


def build_model(rnn, surrogate, num_features: int, hidden: int, num_layers: int, num_classes: int) -> nn.Module:
    """Code written for SpikingJelly 2.0: ``rnn`` and ``surrogate`` are the modules it imports."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(num_features, hidden)
            self.rnn = rnn.SpikingLSTM(hidden, hidden, num_layers, dropout_p=0.0,
                                       surrogate_function1=surrogate.ATan())
            self.readout = nn.Linear(hidden, num_classes)

        def forward(self, x):                       # x [T, B, F], time-major as SpikingJelly's rnn
            spikes, (h, c) = self.rnn(self.encoder(x))
            return self.readout(spikes.mean(0))

    return Net()


def import_spikingjelly():
    """SpikingJelly's ``rnn`` and ``surrogate`` modules, or ``None`` when it is not installed."""
    try:
        from spikingjelly.activation_based import rnn, surrogate
    except ImportError:
        return None
    return rnn, surrogate


def train(model: nn.Module, data, epochs: int, batch_size: int, seed: int) -> list[float]:
    """A few epochs of Adam; the mean training loss of each epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for x, y in batches(data.x_train, data.y_train, batch_size, shuffle=True, generator=generator):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(y), count + len(y)
        losses.append(total / count)
        print(f"  epoch {epoch + 1}/{epochs}: train loss {losses[-1]:.4f}")
    return losses


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="300 training digits, 2 epochs, hidden 16, 1 thread (CI)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 5; 2 with --fast)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden units (default 64; 16 with --fast)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="where to write the checkpoint (default: a temporary folder)")
    args = parser.parse_args(argv)
    args.epochs = args.epochs if args.epochs is not None else (2 if args.fast else 5)
    args.hidden = args.hidden if args.hidden is not None else (16 if args.fast else 64)
    return args


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def compare(name: str, got: torch.Tensor, expected: torch.Tensor, exact: bool) -> None:
    """Raise SystemExit unless ``got`` equals ``expected`` (bitwise, or to float32 rounding); ``name`` says what."""
    if exact:
        same = torch.equal(got, expected)
    else:
        same = got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    difference = (got - expected).abs().max().item() if got.shape == expected.shape else float("nan")
    check(same, f"{name}: not {'identical' if exact else 'equal'} (largest difference {difference:.3g})")
    print(f"  {name}: {'identical' if exact else 'equal to float32 rounding'} "
          f"(largest difference {difference:.3g})")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.fast:
        torch.set_num_threads(1)
    data = load_digits_rows()
    if args.fast:
        data.x_train, data.y_train = data.x_train[:300], data.y_train[:300]
    sizes = dict(num_features=data.x_train.shape[2], hidden=args.hidden, num_layers=args.layers,
                 num_classes=data.num_classes)
    spikingjelly = import_spikingjelly()
    result: dict = {"spikingjelly": spikingjelly is not None}

    # 1. a SpikingJelly model, trained and saved the usual way
    torch.manual_seed(args.seed)
    if spikingjelly is None:
        print("NOTE: spikingjelly is not installed: the checkpoint is written by the same code on spikingrnn "
              "and the comparisons with SpikingJelly are skipped (pip install spikingjelly to run them)")
        original = build_model(compat_rnn, compat_rnn.surrogate, **sizes)
    else:
        original = build_model(*spikingjelly, **sizes)
    print(f"training with {type(original.rnn).__module__}.{type(original.rnn).__name__}:")
    losses = train(original, data, args.epochs, args.batch_size, args.seed)
    check(all(torch.isfinite(torch.tensor(losses))), f"non-finite training loss {losses}")

    with tempfile.TemporaryDirectory() as temporary:
        path = Path(args.out_dir or temporary) / "spikingjelly_checkpoint.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(original.state_dict(), path)
        keys = [key for key in original.state_dict() if key.startswith("rnn.")]
        print(f"saved {path}: SpikingJelly's names, {keys[0]!r} ... {keys[-1]!r}")

        # 2. the same code after the import swap, loading the file as it is
        migrated = build_model(compat_rnn, compat_rnn.surrogate, **sizes)
        migrated.load_state_dict(torch.load(path, weights_only=True))

        # 3. the recurrent layer as a native spikingrnn.SpikingLSTM (torch.nn.LSTM's interface); a state dict
        # does not record the surrogates, so they are passed as trained (SpikingJelly's default second one: None)
        native = from_spikingjelly(path, prefix="rnn.", layout="torch", batch_first=True,
                                   surrogate_function1=compat_rnn.surrogate.ATan(), surrogate_function2=None)
    print(f"converted to {type(native).__module__}.{type(native).__name__}: {native}")

    for model in (original, migrated, native):
        model.eval()
    x = data.x_test                                          # [N, 8, 8] batch-first
    x_time_major = x.transpose(0, 1).contiguous()            # [8, N, 8] for SpikingJelly's interface
    with torch.no_grad():
        logits = migrated(x_time_major)
        encoded = migrated.encoder(x_time_major)
        spikes, (h, c) = migrated.rnn(encoded)
        native_spikes, (native_h, native_c) = native(encoded.transpose(0, 1))
    accuracy = (logits.argmax(1) == data.y_test).float().mean().item()
    # SpikingJelly's cell (0/1 gates) learns slowly (docs/LEARNING.md): this is about equal outputs, not accuracy
    print(f"migrated model: test accuracy {accuracy:.3f}, firing rate {spikes.mean().item():.3f}")
    check(set(torch.unique(spikes).tolist()) <= {0.0, 1.0}, "the migrated model's spikes are not 0/1")
    # unidirectional: SpikingJelly's direction-major and torch's layer-major state orders are the same
    compare("native SpikingLSTM spikes vs migrated", native_spikes.transpose(0, 1), spikes, exact=True)
    compare("native SpikingLSTM h_n, c_n vs migrated", torch.cat([native_h, native_c]), torch.cat([h, c]), exact=True)
    result.update(test_accuracy=accuracy, firing_rate=spikes.mean().item())

    # 4. against SpikingJelly itself
    if spikingjelly is None:
        print("NOTE: skipped the comparison with SpikingJelly (not installed)")
    else:
        compare_with_spikingjelly(original, migrated, x_time_major)
        result["compared"] = True

    # 5. the migrated model trains on: one more epoch with spikingrnn's backends
    print("training the migrated model on:")
    migrated.float()
    more = train(migrated, data, 1, args.batch_size, args.seed + 1)
    check(all(torch.isfinite(torch.tensor(more))), f"non-finite training loss {more}")
    print("OK: the migrated code runs, trains and reproduces the original's outputs")
    return result


def compare_with_spikingjelly(original: nn.Module, migrated: nn.Module, x: torch.Tensor) -> None:
    """SpikingJelly's model and the migrated one on ``x [T, B, F]``: float64 bitwise, float32 to rounding."""
    print("compared with SpikingJelly 2.0 on the test digits:")
    for dtype, exact in ((torch.float64, True), (torch.float32, False)):
        models = [model.to(dtype) for model in (original, migrated)]
        inputs = x.to(dtype)
        with torch.no_grad():
            sj_logits, logits = (model(inputs) for model in models)
            (sj_out, sj_states), (out, states) = (model.rnn(model.encoder(inputs)) for model in models)
        name = str(dtype).replace("torch.", "")
        if exact:
            compare(f"{name} spikes vs SpikingJelly", out, sj_out, exact=True)
        else:
            flipped = (out != sj_out).float().mean().item()
            print(f"  {name} spikes: {flipped:.2e} of them differ (a gate within rounding of 0 may flip)")
            check(flipped < 1e-3, f"{flipped:.2e} of the float32 spikes differ from SpikingJelly's")
        if exact or torch.equal(out, sj_out):
            compare(f"{name} final states (h, c) vs SpikingJelly", torch.cat(states), torch.cat(sj_states), exact=exact)
            compare(f"{name} logits vs SpikingJelly", logits, sj_logits, exact=exact)


if __name__ == "__main__":
    main()
