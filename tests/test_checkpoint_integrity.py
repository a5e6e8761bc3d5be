"""Checkpoints that fail loudly: digests over tensors and configuration, shapes checked before any
allocation, .pt refused where weights_only is unsafe, and `spikingrnn train`'s model loadable."""
import os
import re
import time
from pathlib import Path

import pytest
import torch

import spikingrnn
from spikingrnn import surrogate

pytest.importorskip("safetensors")

from spikingrnn.io import CheckpointError, UnsafeCheckpointError, load_checkpoint, load_model, save_checkpoint  # noqa: E402
from spikingrnn.io import safe_torch_load  # noqa: E402
from spikingrnn.io.checkpoints import write_checkpoint  # noqa: E402
from spikingrnn.io.digest import tensors_digest  # noqa: E402
from spikingrnn.train import TrainConfig, load_training_checkpoint, save_training_checkpoint, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def flip_bit(path: Path, offset: int, mask: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def lstm_file(tmp_path) -> Path:
    """A checkpoint of a heaviside-gate LSTM with the spiking cell state (whose cell_threshold is recorded)."""
    torch.manual_seed(0)
    model = spikingrnn.SpikingLSTM(4, 6, num_layers=2, surrogate_function1=surrogate.ATan(alpha=2.0),
                                   gates="heaviside", cell_state="spike", cell_threshold=0.1, backend="reference")
    path = tmp_path / "lstm.safetensors"
    save_checkpoint(path, model)
    return path


# ----------------------------------------------------------------------------- safetensors: config covered


@pytest.mark.parametrize("text,value,digit,mask", [("alpha", b"2.0", 0, 0x04), ("cell_threshold", b"0.1", 2, 0x02)])
def test_a_flipped_bit_in_the_configuration_is_refused(tmp_path, text, value, digit, mask):
    path = lstm_file(tmp_path)
    data = path.read_bytes()
    at = data.index(value, data.index(text.encode()))
    flip_bit(path, at + digit, mask)  # alpha 2.0 -> 6.0, cell_threshold 0.1 -> 0.3: still valid JSON
    assert re.search(rb"6\.0|0\.3", path.read_bytes()[at:at + 3])
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*configuration do not match the checksum"):
        load_model(path)


def test_a_flipped_bit_in_a_tensor_is_refused(tmp_path):
    path = lstm_file(tmp_path)
    flip_bit(path, os.path.getsize(path) - 5, 0x10)
    with pytest.raises(CheckpointError, match="lstm.safetensors: corrupted checkpoint"):
        load_checkpoint(path)


def forged(tmp_path, name: str, **config_changes) -> Path:
    """A file whose digest is valid (written through the writer) but whose configuration lies."""
    path = lstm_file(tmp_path)
    tensors, header = load_checkpoint(path)
    header["model"]["config"].update(config_changes)
    out = tmp_path / name
    write_checkpoint(out, tensors, header)
    return out


@pytest.mark.parametrize("change,message", [
    ({"hidden_size": 10 ** 9}, "cannot rebuild SpikingLSTM from the saved configuration: .*overflow"),
    ({"hidden_size": 10 ** 5}, r"'weight_ih_l0' has shape \(24, 4\) in the file, \(400000, 4\)"),
    ({"num_layers": 200000}, "asks for 200000 layer-directions"),
    ({"num_layers": 1}, "unexpected keys"),
    ({"num_layers": "2"}, "num_layers must be an integer"),
])
def test_a_configuration_that_does_not_fit_is_refused_before_allocating(tmp_path, change, message):
    path = forged(tmp_path, "forged.safetensors", **change)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=message):
        load_model(path)
    assert time.perf_counter() - started < 1.0


def test_format_version_1_files_still_load_with_a_warning(tmp_path):
    path = lstm_file(tmp_path)
    tensors, header = load_checkpoint(path)
    header["format_version"] = 1
    header["sha256"] = tensors_digest(tensors)  # version 1: the digest covered the tensors only
    for name in ("gates", "spike_threshold", "forget_bias"):  # options newer than format version 1
        del header["model"]["config"][name]
    from spikingrnn.io.checkpoints import METADATA_KEY, _safetensors
    import json
    old = tmp_path / "v1.safetensors"
    old.write_bytes(_safetensors().torch.save(dict(tensors), metadata={METADATA_KEY: json.dumps(header)}))
    with pytest.warns(UserWarning, match="format version 1: its configuration is not covered"):
        model = load_model(old)
    assert model.cell_threshold == 0.1
    assert model.gates == "heaviside" and model.cell_state == "spike"  # what a version-1 LSTM ran


# ----------------------------------------------------------------------------- training checkpoints


def test_a_flipped_bit_in_checkpoint_pt_is_refused(tmp_path):
    state = {"model": {"w": torch.arange(64, dtype=torch.float32)}, "optimizer": {"state": {}, "param_groups": []},
             "epoch": 3, "history": [{"loss": 0.5}], "rng": torch.get_rng_state()}
    path = tmp_path / "checkpoint.pt"
    save_training_checkpoint(str(path), state)
    assert load_training_checkpoint(str(path))["epoch"] == 3
    data = path.read_bytes()
    at = data.index(torch.arange(64, dtype=torch.float32).numpy().tobytes())
    flip_bit(path, at + 4 * 40 + 1, 0x01)  # one bit of one weight: the zip framing does not notice
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ": corrupted training checkpoint"):
        load_training_checkpoint(str(path))


def test_resume_refuses_a_corrupted_checkpoint(tmp_path, capsys):
    from spikingrnn.cli import main
    out = tmp_path / "run"
    args = ["train", "--hidden", "8", "--limit-train", "64", "--limit-test", "32", "--monitor-samples", "8",
            "--threads", "1", "--no-plots", "--out", str(out)]
    assert main(args + ["--epochs", "1"]) == 0
    checkpoint = out / "checkpoint.pt"
    weights = load_training_checkpoint(str(checkpoint))["model"]["rnn.weight_hh_l0"]
    data = checkpoint.read_bytes()
    flip_bit(checkpoint, data.index(weights.numpy().tobytes()) + 2, 0x01)
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--epochs", "2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.pt: corrupted training checkpoint" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- torch floor


def test_pt_files_are_refused_on_a_torch_whose_weights_only_is_unsafe(tmp_path, monkeypatch):
    model = spikingrnn.SpikingGRU(3, 4)
    pt, st = tmp_path / "w.pt", tmp_path / "w.safetensors"
    torch.save(model.state_dict(), pt)
    save_checkpoint(st, model)
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(UnsafeCheckpointError, match=r"w\.pt: refused: torch 2\.5\.1\+cpu .*CVE-2025-32434"):
        load_checkpoint(pt)
    with pytest.raises(UnsafeCheckpointError, match="CVE-2025-32434"):
        load_training_checkpoint(str(pt))
    assert load_model(st).hidden_size == 4  # safetensors never unpickles: any torch
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    assert set(load_checkpoint(pt)[0]) == set(model.state_dict())


def test_the_package_requires_a_torch_with_safe_weights_only():
    dependencies = re.search(r"^dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    floor = tuple(int(part) for part in re.search(r'"torch>=(\d+)\.(\d+)', dependencies).groups())
    assert floor >= safe_torch_load.SAFE_TORCH == (2, 6)


# ----------------------------------------------------------------------------- what `spikingrnn train` writes


def tiny(tmp_path, name, **overrides):
    values = dict(task="digits_rows", model="gru", hidden=12, layers=2, bidirectional=True, epochs=1,
                  batch_size=32, limit_train=64, limit_test=32, monitor_samples=8, threads=1, plots=False,
                  out_dir=str(tmp_path / name))
    values.update(overrides)
    return TrainConfig(**values)


def test_load_model_rebuilds_what_train_saved(tmp_path):
    result = train(tiny(tmp_path, "run"))
    model = load_model(result.best_path).eval()
    assert type(model).__name__ == "SpikingClassifier" and model.config == result.config
    x = torch.rand(8, 5, 8)
    with torch.no_grad():
        assert torch.equal(model(x), result.model.eval()(x))
    assert load_model(result.best_path, backend="reference").rnn.backend == "reference"


def test_load_model_rebuilds_a_best_file_of_an_older_spikingrnn(tmp_path):
    result = train(tiny(tmp_path, "run", model="lstm", bidirectional=False, layers=1))
    tensors, header = load_checkpoint(result.best_path)
    old = tmp_path / "old_best.safetensors"
    save_checkpoint(old, state_dict=tensors, metadata=header["user"])  # as train wrote it: no model, config in user
    with pytest.warns(UserWarning, match="older spikingrnn train"):
        model = load_model(old)
    x = torch.rand(8, 5, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), result.model.eval()(x))
