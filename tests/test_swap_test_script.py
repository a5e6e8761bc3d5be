"""scripts/swap_test.py, issue 16's swap test as a plain loop: seeds parsing, one short run per kind of
layer (the record a study table is built from) and the summary table."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "swap_test.py"


@pytest.fixture(scope="module")
def swap():
    spec = importlib.util.spec_from_file_location("swap_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def short_runs(swap, monkeypatch):
    """One epoch on 256 training samples; the rows test split (what ``run`` takes as ``data``)."""
    from spikingrnn.data import load_dataset
    monkeypatch.setattr(swap, "EPOCHS", 1)
    monkeypatch.setattr(swap, "TRAIN_SIZE", 256)
    return load_dataset("mnist5k_rows", seed=0)


def test_seed_ranges(swap):
    assert swap.parse_seeds(["0-2", "7"]) == [0, 1, 2, 7]
    assert swap.parse_seeds(["4"]) == [4]


@pytest.mark.parametrize("name", ["nn.GRU", "SpikingGRU"])
def test_one_short_run_records_accuracy_and_spikes(swap, name, short_runs):
    record = swap.run(name, 1e-2, 0, short_runs)
    assert record["model"] == name and record["seed"] == 0 and record["finite_loss"]
    assert 0.0 <= record["test_accuracy"] <= 1.0
    spiking = name.startswith("Spiking")
    assert record["binary"] is spiking
    assert (record["rate"] is not None) is spiking
    if spiking:
        assert 0.0 < record["rate"] < 1.0


def test_rate_target_moves_the_threshold(swap, short_runs):
    data = short_runs
    record = swap.run("SpikingLSTM", 1e-2, 0, data, rate_target=0.05, threshold_step=2.0)
    assert record["model"] == "SpikingLSTM, threshold to rate 0.05"
    assert record["spike_threshold"] > 0.25  # pushed up: the layer fires above 0.05
    with pytest.raises(ValueError, match="nn.LSTM"):
        swap.run("nn.LSTM", 1e-2, 0, data, rate_target=0.2)


@pytest.mark.parametrize("name", ["nn.LSTM", "SpikingGRU"])
def test_chrono_probe_initialises_the_memory_gate(swap, name):
    torch = pytest.importorskip("torch")
    model = swap.SwapClassifier(swap.layer_classes()[name], 28, chrono_steps=50)
    hidden = swap.HIDDEN
    memory = model.rnn.bias_ih_l0[hidden:2 * hidden]  # LSTM f, GRU z
    assert bool((memory >= 0).all()) and bool((memory <= torch.log(torch.tensor(49.0)) + 1e-6).all())
    assert bool((model.rnn.bias_hh_l0[hidden:2 * hidden] == 0).all())
    plain = swap.SwapClassifier(swap.layer_classes()[name], 28)
    assert not torch.equal(plain.rnn.bias_ih_l0[hidden:2 * hidden], memory)


def test_rate_penalty_probe_builds_and_names_the_setting(swap):
    spiking = swap.SwapClassifier(swap.layer_classes()["SpikingLSTM"], 28, rate_penalty=0.0, free_rate=0.1)
    assert (spiking.rnn.rate_penalty, spiking.rnn.free_rate) == (0.0, 0.1)
    default = swap.SwapClassifier(swap.layer_classes()["SpikingLSTM"], 28)
    assert (default.rnn.rate_penalty, default.rnn.free_rate) == (0.2, 0.25)
    torch_layer = swap.SwapClassifier(swap.layer_classes()["nn.LSTM"], 28, rate_penalty=0.0)
    assert not hasattr(torch_layer.rnn, "rate_penalty")  # the torch.nn baselines have none


def test_rate_penalty_runs_are_named_apart(swap, short_runs):
    data = short_runs
    record = swap.run("SpikingGRU", 1e-2, 0, data, rate_penalty=0.1, free_rate=0.0)
    assert record["model"] == "SpikingGRU, rate penalty 0.1, free rate 0"
    assert (record["rate_penalty"], record["free_rate"]) == (0.1, 0.0)
    assert swap.run("nn.GRU", 1e-2, 0, data, rate_penalty=0.1)["model"] == "nn.GRU"


def test_summary_means_and_seed_filter(swap, tmp_path, capsys):
    path = tmp_path / "results.jsonl"
    records = [{"model": "SpikingGRU", "lr": 0.01, "seed": s, "test_accuracy": a, "rate": 0.3}
               for s, a in [(0, 0.90), (1, 0.92), (2, 0.94), (3, 0.50)]]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    swap.summarize(str(path), [0, 1, 2])
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == "| 0.01 | SpikingGRU | 0–2 (3) | 0.920 ± 0.020 | 0.30 |"
    swap.summarize(str(path), None)
    assert "0–3 (4)" in capsys.readouterr().out.splitlines()[-1]
