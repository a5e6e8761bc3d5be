"""Safe checkpoints (spikingrnn.io): round trips, atomic writes, refused pickles, corrupted files."""
import json
import os
import pickle
import random

import pytest
import torch
from torch import nn

import spikingrnn
from spikingrnn import surrogate

safetensors_torch = pytest.importorskip("safetensors.torch")

from spikingrnn.io.checkpoints import write_checkpoint  # noqa: E402
from spikingrnn.io import (CheckpointError, UnsafeCheckpointError, load_checkpoint, load_into,  # noqa: E402
                           load_model, model_config, save_checkpoint)

I, H, T, B = 5, 7, 6, 3

MODELS = {
    "lstm": lambda: spikingrnn.SpikingLSTM(
        I, H, num_layers=2, bidirectional=True, proj_size=3, batch_first=True, dropout=0.2, dtype=torch.float64,
        surrogate_function1=surrogate.ATan(alpha=3.0), surrogate_function2=surrogate.Sigmoid(alpha=5.0),
        gates="heaviside", cell_state="spike", cell_threshold=0.3, forget_bias=None, backend="reference"),
    "lstm_sigmoid": lambda: spikingrnn.SpikingLSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64,
                                                   spike_threshold=0.4, forget_bias=2.0, backend="reference"),
    "gru_heaviside": lambda: spikingrnn.SpikingGRU(I, H, num_layers=2, gates="heaviside", forget_bias=None,
                                                   backend="reference"),
    "gru": lambda: spikingrnn.SpikingGRU(I, H, bias=False, invariant_dropout_mask=True, low_memory=True,
                                         backend="reference"),
    "rnn": lambda: spikingrnn.SpikingRNN(I, H, num_layers=2, surrogate_function1=surrogate.Rect(alpha=0.7),
                                         backend="reference"),
    "lstm_cell": lambda: spikingrnn.SpikingLSTMCell(I, H, cell_state="accumulate", dtype=torch.float64),
    "gru_cell": lambda: spikingrnn.SpikingGRUCell(I, H, bias=False, surrogate_function2="soft_sign"),
    "rnn_cell": lambda: spikingrnn.SpikingRNNCell(I, H, surrogate_function1=surrogate.Erf(spiking=False)),
}
USER_METADATA = {"epoch": 12, "notes": "trained on ü-data", "metrics": {"loss": 0.25, "acc": [0.5, 0.75]},
                 "flag": True, "none": None}


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS[name]()


def outputs(model: nn.Module):
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(7)
    if isinstance(model, spikingrnn.SpikingRNNBase):
        shape = (B, T, I) if model.batch_first else (T, B, I)
        out, _ = model.eval()(torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype) * 2)
        return out
    out = model(torch.randn(B, I, generator=gen, dtype=torch.float64).to(dtype) * 2)
    return out[0] if isinstance(out, tuple) else out


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.fixture
def saved(tmp_path):
    model = build("lstm")
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, metadata=USER_METADATA)
    return model, path


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_rebuilds_class_config_and_weights(tmp_path, name):
    model = build(name)
    path = tmp_path / f"{name}.safetensors"
    save_checkpoint(str(path), model=model, metadata=USER_METADATA)
    assert os.listdir(tmp_path) == [path.name]

    state_dict, metadata = load_checkpoint(path)
    assert list(state_dict) == list(model.state_dict())
    assert all(torch.equal(state_dict[k], v) for k, v in model.state_dict().items())
    assert metadata["user"] == USER_METADATA
    assert metadata["model"] == model_config(model)
    assert metadata["model"]["class"] == type(model).__name__
    assert metadata["spikingrnn_version"] == spikingrnn.__version__

    rebuilt = load_model(path)
    assert type(rebuilt) is type(model)
    assert model_config(rebuilt) == model_config(model)
    assert_same_state(rebuilt, model)
    for argument in ("surrogate_function1", "surrogate_function2"):
        ours, theirs = getattr(model, argument, None), getattr(rebuilt, argument, None)
        assert type(ours) is type(theirs)
        if ours is not None:
            assert (ours.alpha, ours.spiking) == (theirs.alpha, theirs.spiking)
    assert torch.equal(outputs(rebuilt), outputs(model))


def test_config_is_readable_json(saved):
    _, path = saved
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["spikingrnn"])
    config = document["model"]["config"]
    assert config["proj_size"] == 3 and config["cell_state"] == "spike" and config["batch_first"] is True
    assert config["gates"] == "heaviside" and config["forget_bias"] is None
    assert config["surrogate_function1"] == {"name": "atan", "alpha": 3.0, "spiking": True}


def test_state_dict_only_checkpoint(tmp_path):
    model = build("gru")
    path = tmp_path / "weights.safetensors"
    save_checkpoint(path, state_dict=model.state_dict(), metadata={"step": 3})
    _, metadata = load_checkpoint(path)
    assert metadata["model"] is None and metadata["user"] == {"step": 3}
    with pytest.raises(CheckpointError, match="no spikingrnn model configuration"):
        load_model(path)
    target = build("gru", seed=1)
    load_into(target, path)
    assert_same_state(target, model)


def test_load_model_overrides_and_map_location(saved):
    _, path = saved
    rebuilt = load_model(path, map_location=torch.device("cpu"), backend="auto", cell_state="accumulate")
    assert rebuilt.backend == "auto" and rebuilt.cell_state == "accumulate"
    assert rebuilt.weight_ih_l0.device.type == "cpu" and rebuilt.weight_ih_l0.dtype == torch.float64
    with pytest.raises(TypeError, match="map_location"):
        load_checkpoint(path, map_location={"cuda:0": "cpu"})


def test_custom_surrogate_must_be_passed_again(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return (x >= 0).to(x.dtype)

    model = spikingrnn.SpikingGRU(I, H, surrogate_function1=Custom())
    path = tmp_path / "custom.safetensors"
    save_checkpoint(path, model)
    with pytest.raises(CheckpointError, match="custom surrogate_function1.*Custom"):
        load_model(path)
    rebuilt = load_model(path, surrogate_function1=Custom())
    assert isinstance(rebuilt.surrogate_function1, Custom)
    assert_same_state(rebuilt, model)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "foreign.safetensors"
    tensors = {"weight_ih_l0": torch.randn(4 * H, I), "x": torch.arange(3)}
    safetensors_torch.save_file(tensors, str(path), metadata={"source": "elsewhere"})
    state_dict, metadata = load_checkpoint(path)
    assert metadata == {"format": "safetensors", "model": None, "user": {"source": "elsewhere"}}
    assert torch.equal(state_dict["x"], tensors["x"])


def test_save_argument_errors(tmp_path):
    model = build("gru")
    path = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match="exactly one"):
        save_checkpoint(path)
    with pytest.raises(ValueError, match="exactly one"):
        save_checkpoint(path, model, state_dict=model.state_dict())
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(path, model, metadata={"bad": object()})
    with pytest.raises(TypeError, match="'step'.*int"):
        save_checkpoint(path, state_dict={"step": 3})
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- atomic writes


def test_failed_replace_keeps_previous_file_and_leaves_no_temp(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("simulated failure while replacing")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, build("lstm", seed=5))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]
    assert_same_state(load_model(path), model)


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "new.safetensors"
    written = []

    def failing_fsync(fd):
        written.append(os.fstat(fd).st_size)  # the data reached the temporary file...
        raise OSError("simulated disk failure")  # ...and then the write failed

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated disk failure"):
        save_checkpoint(path, build("gru"))
    monkeypatch.undo()
    assert written and written[0] > 0
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- pickles


def _never_called(marker):  # pragma: no cover - must never run
    with open(marker, "w") as handle:
        handle.write("executed")


class SystemPayload:
    """Unpickles to ``os.system(...)``; weights_only=True must refuse it before any call."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class FunctionPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _never_called, (str(self.marker),)


class PlainObject:
    def __init__(self):
        self.value = 3


@pytest.mark.parametrize("payload", ["os_system", "function", "custom_class", "whole_module", "raw_pickle"])
def test_pickle_with_code_is_refused(tmp_path, payload):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    weights = spikingrnn.SpikingGRU(I, H).state_dict()
    if payload == "os_system":
        torch.save({**weights, "payload": SystemPayload(marker)}, path)
    elif payload == "function":
        torch.save({"state_dict": weights, "payload": FunctionPayload(marker)}, path)
    elif payload == "custom_class":
        torch.save({**weights, "extra": PlainObject()}, path)
    elif payload == "whole_module":
        torch.save(spikingrnn.SpikingGRU(I, H), path)
    else:
        path.write_bytes(pickle.dumps(SystemPayload(marker), protocol=4))
    for load in (load_checkpoint, load_model):
        with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt: refused: the file carries pickled code"):
            load(path)
    from spikingrnn.compat.checkpoints import from_spikingjelly
    with pytest.raises(UnsafeCheckpointError, match="pickled code"):
        from_spikingjelly(path)
    assert not marker.exists()
    assert issubclass(UnsafeCheckpointError, ValueError)


@pytest.mark.parametrize("layout", ["plain", "nested", "legacy", "data_parallel"])
def test_weights_only_pt_files_load(tmp_path, layout):
    model = build("gru")
    path = tmp_path / "weights.pt"
    state = model.state_dict()
    if layout == "plain":
        torch.save(state, path)
    elif layout == "nested":
        torch.save({"state_dict": state, "epoch": 4, "optimizer": {"lr": 0.1}}, path)
    elif layout == "legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:
        torch.save({"module." + k: v for k, v in state.items()}, path)
    _, metadata = load_checkpoint(path)
    assert metadata["format"] == "torch" and metadata["model"] is None
    target = build("gru", seed=3)
    load_into(target, path)
    assert_same_state(target, model)


# ----------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("keep", [0, 5, 12, "header", "half", -1])
def test_truncated_safetensors_gives_clear_error(saved, keep):
    _, path = saved
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    size = {"header": header_end, "half": len(data) // 2, -1: len(data) - 1}.get(keep, keep)
    path.write_bytes(data[:size])
    with pytest.raises(CheckpointError, match=rf"{path.name}: not a valid checkpoint.*truncated or corrupted"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=path.name):
        load_model(path)


def test_random_bytes_give_clear_error(tmp_path):
    path = tmp_path / "random.safetensors"
    data = bytearray(random.Random(0).randbytes(4096))
    data[0] = 0x17  # neither a pickle nor a zip signature
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"random\.safetensors: not a valid checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a valid checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_corrupted_tensor_bytes_fail_the_checksum(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted checkpoint.*checksum"):
        load_model(path)


def test_corrupted_header_gives_clear_error(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    index = data.index(b"spikingrnn.checkpoint")
    data[index - 1] = ord("x")  # breaks the escaped JSON document inside the header
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=path.name):
        load_checkpoint(path)


def test_truncated_pt_gives_clear_error(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(build("gru").state_dict(), path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"weights\.pt: truncated or corrupted torch checkpoint"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- nothing half-loaded


def test_load_model_refuses_tensors_that_do_not_fit(saved, tmp_path):
    _, path = saved
    state_dict, metadata = load_checkpoint(path)
    state_dict.pop("bias_hh_l1_reverse")
    metadata["order"].remove("bias_hh_l1_reverse")
    partial = tmp_path / "partial.safetensors"
    write_checkpoint(partial, state_dict, metadata)  # a valid digest over a file that lacks a tensor
    with pytest.raises(CheckpointError, match="do not fit.*bias_hh_l1_reverse"):
        load_model(partial)


def test_original_model_untouched_when_loading_fails(saved, tmp_path):
    model, path = saved
    before_original = snapshot(model)
    target = build("lstm", seed=9)
    before = snapshot(target)

    corrupted = tmp_path / "corrupted.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    other = tmp_path / "other.safetensors"  # same names, some shapes differ (no projection)
    save_checkpoint(other, spikingrnn.SpikingLSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64))

    for bad, message in ((corrupted, "checksum"), (truncated, "truncated"), (other, "nothing was loaded")):
        with pytest.raises(CheckpointError, match=message):
            load_into(target, bad)
        assert_unchanged(target, before)
        if bad is not other:
            with pytest.raises(CheckpointError):
                load_model(bad)
    assert_unchanged(model, before_original)
    load_into(target, path)
    assert_same_state(target, model)
