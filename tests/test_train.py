"""spikingrnn.train and `spikingrnn train`: config validation, determinism, resume, files, plots, CLI."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from spikingrnn.cli import main
from spikingrnn.train import TrainConfig, load_training_checkpoint, train
from spikingrnn.train import checkpoint as checkpoint_module
from spikingrnn.train import loop as loop_module
from spikingrnn.train.errors import TrainError

pytest.importorskip("sklearn")

PNG = b"\x89PNG\r\n\x1a\n"


def tiny(tmp_path, name="run", **overrides):
    values = dict(task="digits_rows", model="lstm", hidden=16, epochs=3, batch_size=32, limit_train=128,
                  limit_test=64, monitor_samples=32, threads=1, plots=False, out_dir=str(tmp_path / name),
                  schedule="constant")  # some tests extend the epochs on resume: not with a cosine schedule
    values.update(overrides)
    return TrainConfig(**values)


def without_times(history):
    return [{k: v for k, v in record.items() if not k.endswith("_time")} for record in history]


@pytest.mark.parametrize("field,value,message", [
    ("task", "imagenet", "TrainConfig.task must be one of"),
    ("model", "transformer", "TrainConfig.model must be one of lstm, gru, rnn"),
    ("hidden", 0, "TrainConfig.hidden must be an int >= 1"),
    ("layers", 1.5, "TrainConfig.layers must be an int"),
    ("epochs", -1, "TrainConfig.epochs must be an int >= 0"),
    ("batch_size", True, "TrainConfig.batch_size must be an int"),
    ("lr", 0.0, "TrainConfig.lr must be a positive number"),
    ("readout", "max", "TrainConfig.readout must be one of mean, last"),
    ("optimizer", "lbfgs", "TrainConfig.optimizer must be one of adam, sgd"),
    ("surrogate", "nope", "TrainConfig.surrogate must be one of"),
    ("cell_state", "leaky", "TrainConfig.cell_state must be one of"),
    ("bidirectional", 1, "TrainConfig.bidirectional must be True or False"),
    ("out_dir", "", "TrainConfig.out_dir must be a non-empty path"),
    ("surrogate_alpha", -1.0, "TrainConfig.surrogate_alpha must be a number >= 0"),
    ("schedule", "step", "TrainConfig.schedule must be one of constant, cosine"),
    ("grad_clip", -0.5, "TrainConfig.grad_clip must be a number >= 0"),
])
def test_config_validation_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_surrogate_alpha_reaches_the_model():
    from spikingrnn.train import build_model
    model = build_model(TrainConfig(surrogate="atan", surrogate_alpha=0.7), 8, 10)
    assert type(model.rnn.surrogate_function1).__name__ == "ATan" and model.rnn.surrogate_function1.alpha == 0.7
    default = build_model(TrainConfig(surrogate="atan", surrogate_alpha=0.0), 8, 10)
    assert default.rnn.surrogate_function1.alpha == 2.0  # 0: the surrogate's own default
    # erf at 0: the modules' own default, written into the config (1 for the LSTM's sigmoid form, else 2)
    assert TrainConfig().surrogate_alpha == 1.0
    assert build_model(TrainConfig(), 8, 10).rnn.surrogate_function1.alpha == 1.0
    assert TrainConfig(model="gru").surrogate_alpha == 2.0 and TrainConfig(model="rnn").surrogate_alpha == 2.0
    assert TrainConfig(gates="heaviside", cell_state="clamp").surrogate_alpha == 2.0


def test_a_run_saved_with_alpha_0_keeps_the_width_it_trained_with():
    """Configs written before the default was resolved say 0 for "the surrogate's own alpha" (erf: 2)."""
    from spikingrnn.train.config import saved_config
    old = TrainConfig().to_dict() | {"surrogate_alpha": 0.0}
    assert saved_config(old)["surrogate_alpha"] == 2.0
    assert saved_config(old | {"surrogate": "atan"})["surrogate_alpha"] == 2.0
    assert saved_config(TrainConfig().to_dict())["surrogate_alpha"] == 1.0


def test_grad_clip_bounds_the_gradient_norm(tmp_path, monkeypatch):
    norms = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    train(tiny(tmp_path, "clip", epochs=1, grad_clip=1e-3))
    assert norms and max(norms) <= 1e-3 * (1 + 1e-4)


def test_config_round_trip():
    config = TrainConfig(model="gru", hidden=8)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="no field bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_determinism_and_metrics_structure(tmp_path):
    first = train(tiny(tmp_path, "a", epochs=2))
    second = train(tiny(tmp_path, "b", epochs=2))
    assert without_times(first.history) == without_times(second.history)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    lines = open(first.metrics_path).read().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert records == first.history
    for epoch, record in enumerate(records, start=1):
        assert record["epoch"] == epoch
        for key in ("loss", "train_accuracy", "test_loss", "test_accuracy", "epoch_time", "mean_rate",
                    "energy_ratio"):
            assert isinstance(record[key], float), key
        assert 0 <= record["test_accuracy"] <= 1 and record["epoch_time"] > 0
        assert set(record["firing_rates"]) == {"layer0"}
        # the default sigmoid form's gates are analog: only the emitted spikes h have a firing rate
        assert first.config.gates == "sigmoid"
        assert set(record["firing_rates"]["layer0"]) == {"h"}
        assert set(record["per_sample"]) == {"ac", "mac", "dense_mac", "energy_pj", "dense_energy_pj"}
    assert first.best_test_accuracy == max(r["test_accuracy"] for r in records)
    assert json.load(open(os.path.join(first.config.out_dir, "config.json")))["hidden"] == 16


def test_heaviside_lstm_records_the_rate_of_every_gate(tmp_path):
    """With gates="heaviside" every LSTM gate is a spike train: the monitor reports each one's rate."""
    result = train(tiny(tmp_path, "heaviside", epochs=1, gates="heaviside", cell_state="clamp", forget_bias=None))
    assert result.model.rnn.gates == "heaviside"
    assert set(result.history[0]["firing_rates"]["layer0"]) == {"i", "f", "g", "o", "h"}


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_resume_after_kill_gives_bitwise_equal_weights(tmp_path, monkeypatch, schedule):
    straight = train(tiny(tmp_path, "straight", epochs=3, schedule=schedule))

    # a run that dies in the middle of epoch 2 (after epoch 1's checkpoint)
    calls = {"n": 0}
    step = torch.optim.Adam.step

    def dying_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # 4 batches per epoch: the second batch of epoch 2
            raise KeyboardInterrupt("killed")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, "resumed", epochs=3, schedule=schedule))
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    out = tmp_path / "resumed"
    assert load_training_checkpoint(str(out / "checkpoint.pt"))["epoch"] == 1
    assert len(open(out / "metrics.jsonl").read().splitlines()) == 1

    resumed = train(tiny(tmp_path, "resumed", epochs=3, schedule=schedule), resume=True)
    assert resumed.epochs_trained == 2
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert without_times(resumed.history) == without_times(straight.history)
    assert [json.loads(l)["epoch"] for l in open(out / "metrics.jsonl").read().splitlines()] == [1, 2, 3]
    saved = load_training_checkpoint(str(out / "checkpoint.pt"))
    for a, b in zip(saved["model"].values(), straight.model.state_dict().values()):
        assert torch.equal(a, b)


def test_cosine_schedule_follows_torch_and_is_relaid_when_a_resume_adds_epochs(tmp_path):
    result = train(tiny(tmp_path, "cos", epochs=4, schedule="cosine", lr=1e-2))
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    expected = []
    for _ in range(4):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert [r["lr"] for r in result.history] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # more epochs on resume (as the help promises): the cosine is laid out again over the new total
    resumed = train(tiny(tmp_path, "cos", epochs=6, schedule="cosine", lr=1e-2), resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert [r["lr"] for r in resumed.history[4:]] == pytest.approx(
        [1e-2 * 0.5 * (1 + math.cos(math.pi * k / 6)) for k in (4, 5)])
    with pytest.raises(TrainError, match="6 epochs done, more than epochs=5"):
        train(tiny(tmp_path, "cos", epochs=5, schedule="cosine", lr=1e-2), resume=True)


@pytest.mark.parametrize("model", ["torch_lstm", "torch_gru", "torch_rnn"])
def test_non_spiking_baselines_train_with_the_same_command(tmp_path, model):
    result = train(tiny(tmp_path, model, model=model, epochs=3, plots=True, lr=1e-2))
    assert isinstance(result.model.rnn, torch.nn.RNNBase) and not result.model.spiking
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0]  # it learns
    assert all(r["mean_rate"] is None and r["firing_rates"] == {} for r in result.history)
    assert [os.path.basename(p) for p in result.plots] == ["curves.png"]


def test_resume_rejects_a_different_config(tmp_path, monkeypatch):
    train(tiny(tmp_path, "r", epochs=1))
    loads = []
    monkeypatch.setattr(loop_module, "load_dataset", lambda *a, **k: loads.append(a))
    with pytest.raises(TrainError, match="hidden: checkpoint 16 vs now 8"):
        train(tiny(tmp_path, "r", epochs=2, hidden=8), resume=True)
    assert loads == []  # refused before any data is loaded (a large dataset would take minutes)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    config = tiny(tmp_path, "atomic", epochs=2)
    train(tiny(tmp_path, "atomic", epochs=1))
    path = tmp_path / "atomic" / "checkpoint.pt"
    before = path.read_bytes()
    real_save = torch.save

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(TrainError, match="cannot write .*checkpoint.pt \\(disk full\\) after epoch 2"):
        train(config, resume=True)
    monkeypatch.setattr(checkpoint_module.torch, "save", real_save)
    assert path.read_bytes() == before
    assert load_training_checkpoint(str(path))["epoch"] == 1
    assert not [name for name in os.listdir(tmp_path / "atomic") if name.endswith(".tmp")]


def test_best_model_and_plots(tmp_path):
    from spikingrnn.io import load_checkpoint

    result = train(tiny(tmp_path, "plots", epochs=2, model="gru", layers=2, bidirectional=True,
                        readout="last", optimizer="sgd", lr=0.05, plots=True))
    names = sorted(os.path.basename(p) for p in result.plots)
    assert names == ["curves.png", "firing_rates.png", "raster.png"]
    for path in result.plots:
        data = open(path, "rb").read()
        assert data.startswith(PNG) and len(data) > 1000
    tensors, metadata = load_checkpoint(result.best_path)
    assert metadata["user"]["epoch"] == result.best_epoch
    assert metadata["user"]["test_accuracy"] == result.best_test_accuracy
    assert set(result.history[-1]["firing_rates"]) == {"layer0", "layer1"}
    assert set(tensors) == set(result.model.state_dict())


def test_rnn_model_trains(tmp_path):
    result = train(tiny(tmp_path, "rnn", model="rnn", epochs=1, surrogate="atan", low_memory=True))
    assert set(result.history[0]["firing_rates"]["layer0"]) == {"h"}


def test_cli_train_and_resume(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--task", "digits_rows", "--model", "lstm", "--hidden", "16", "--limit-train", "64",
            "--limit-test", "32", "--monitor-samples", "16", "--threads", "1", "--schedule", "constant", "--out", str(out)]
    assert main(args + ["--epochs", "1", "--no-plots"]) == 0
    # the saved settings are the run's (--no-plots too); flags given again may change what a resume may
    assert main(["train", "--out", str(out), "--epochs", "2", "--plots", "--resume"]) == 0
    text = capsys.readouterr()
    printed = text.out + text.err
    assert "epoch   1/1" in printed and "epoch   2/2" in printed
    assert "final test accuracy" in printed and "metrics:" in printed and "plots:" in printed
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert (out / "curves.png").read_bytes().startswith(PNG)


def test_cli_rejects_bad_values(capsys):
    with pytest.raises(SystemExit):  # argparse: the choices of --model, listed
        main(["train", "--model", "cnn"])
    assert "invalid choice: 'cnn'" in capsys.readouterr().err
    assert main(["train", "--hidden", "0"]) == 1
    assert "TrainConfig.hidden must be an int >= 1" in capsys.readouterr().err


def test_cli_help_describes_every_setting():
    from dataclasses import fields

    from spikingrnn.cli import _field_help
    descriptions = _field_help(TrainConfig)
    assert set(descriptions) == {f.name for f in fields(TrainConfig)}
    assert all(len(text) > 10 and ":data:" not in text for text in descriptions.values())


def test_cli_subprocess_help():
    result = subprocess.run([sys.executable, "-m", "spikingrnn", "train", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "--resume" in result.stdout and "--out" in result.stdout
