"""Fast tests of the benchmark harness (spikingrnn.bench): structure, saved-bytes counting, markdown.

No timing order is asserted: only that the numbers exist and are positive.
"""
import json

import pytest
import torch

from spikingrnn.bench import (BenchConfig, SavedTensorCounter, ScalingConfig, Shape, main_table, module_saved_bytes,
                              parse_shapes, render_document, run_benchmark, run_scaling, saved_bytes)
from spikingrnn.bench.cli import main
from spikingrnn.bench.impls import discover
from spikingrnn.bench.stats import percentile, summarize_ms
from spikingrnn.bench.timing import planned_repeats
from spikingrnn.ops.dispatch import BACKENDS

TINY = Shape(5, 2, 3, 4, 1)


@pytest.fixture(autouse=True)
def _no_extension_build(monkeypatch):
    """Keep the test fast on a fresh machine: the cpu backend's pure-PyTorch loops, no C++ build."""
    monkeypatch.setenv("SPIKINGRNN_NO_EXTENSION", "1")


def _expected_impls(cell="lstm"):
    impls, _ = discover(cell, "cpu")
    return [i.name for i in impls]


def test_expected_implementations_are_discovered():
    names = _expected_impls()
    assert names[0] == "torch"
    for backend, (_, unsupported) in BACKENDS.items():
        probe_ok = unsupported(torch.device("cpu"), torch.float32, []) is None
        if probe_ok:
            assert f"spikingrnn-{backend}" in names


def test_saved_bytes_of_linear_is_its_input():
    """``F.linear`` saves its input for the weight gradient; the weight itself is a parameter (excluded)."""
    layer = torch.nn.Linear(3, 4)
    x = torch.randn(5, 3)
    assert module_saved_bytes(layer, x) == 5 * 3 * 4
    x.requires_grad_(True)  # now the weight is saved too (for x's gradient) but is not counted
    assert module_saved_bytes(layer, x) == 5 * 3 * 4


def test_saved_bytes_deduplicates_storages_and_skips_parameters():
    class SaveTwice(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, a[1:], b, a)
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            return grad * 2, None

    x = torch.randn(10, dtype=torch.float64, requires_grad=True)  # 80 bytes, saved as itself and a view
    other = torch.randn(3, requires_grad=True)  # 12 bytes
    param = torch.nn.Parameter(torch.randn(3))
    assert saved_bytes(lambda: SaveTwice.apply(x, other)) == 80 + 12
    with SavedTensorCounter(exclude=[param]) as counter:
        torch.mul(param, other)  # saves both operands; the parameter is skipped
    assert counter.total_bytes == 12
    assert counter.skipped_parameters == 1


def test_stats_and_repeat_planning():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([3, 1, 2], 25) == 1.5
    s = summarize_ms([0.001, 0.003, 0.002])
    assert s["median"] == pytest.approx(2.0) and s["iqr"] == pytest.approx(1.0) and s["n"] == 3
    assert planned_repeats(1.0, 7, None) == 7
    assert planned_repeats(1.0, 7, 4.0) == 4
    assert planned_repeats(10.0, 7, 4.0) == 3
    assert planned_repeats(10.0, 2, 4.0) == 2


def test_parse_shapes():
    assert parse_shapes("5,2,3,4,1; 7,1,1,2,3;") == [Shape(5, 2, 3, 4, 1), Shape(7, 1, 1, 2, 3)]
    with pytest.raises(ValueError):
        parse_shapes("5,2,3,4")
    with pytest.raises(ValueError):
        parse_shapes("5,2,3,4,0")


def test_run_benchmark_tiny_structure_and_markdown():
    config = BenchConfig(cells=["lstm"], shapes=[TINY], threads=[1], repeats=2, warmup=1)
    result = run_benchmark(config, log=lambda _: None)
    json.loads(json.dumps(result))  # serialisable
    names = _expected_impls()
    rows = result["results"]
    assert [r["impl"] for r in rows] == names
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["repeats"] == 2 and r["train_ms"]["n"] == 2 and len(r["train_ms"]["samples"]) == 2
        for key in ("median", "q1", "q3", "iqr"):
            assert r["train_ms"][key] >= 0 and r["infer_ms"][key] >= 0
        assert r["train_ratio"] > 0 and r["infer_ratio"] > 0
        assert r["saved_bytes"] > 0
        assert r["saved_bytes_per_unit"] == pytest.approx(r["saved_bytes"] / (5 * 2 * 4 * 1))
        assert r["units"] == TINY.units()
    torch_row = rows[0]
    assert torch_row["train_ratio"] == pytest.approx(1.0) and torch_row["infer_ratio"] == pytest.approx(1.0)
    if "spikingjelly" in names:
        for r in rows:
            assert r["memory_ratio_vs_spikingjelly"] > 0
        assert rows[names.index("spikingjelly")]["memory_ratio_vs_spikingjelly"] == pytest.approx(1.0)
    table = main_table(rows).splitlines()
    assert len(table) == 2 + len(names)
    for name in names:
        assert sum(f"| {name} |" in line for line in table) == 1


def test_run_scaling_tiny():
    config = ScalingConfig(steps=[4, 8], batch=2, input_size=3, hidden_size=4, repeats=2)
    result = run_scaling(config, log=lambda _: None)
    rows = result["results"]
    assert {(r["impl"], r["T"]) for r in rows} == {(n, t) for n in _expected_impls() for t in (4, 8)}
    for r in rows:
        assert r["status"] == "ok"
        assert r["ms_per_step"] > 0 and r["bytes_per_step"] == pytest.approx(r["saved_bytes"] / r["T"])


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    out_json, out_md = tmp_path / "r" / "results.json", tmp_path / "bench.md"
    argv = ["--shapes", "5,2,3,4,1", "--repeats", "2", "--warmup", "1", "--threads", "1", "--scaling",
            "--scaling-steps", "4", "--scaling-repeats", "2", "--json", str(out_json), "--markdown", str(out_md)]
    assert main(argv) == 0
    data = json.loads(out_json.read_text())
    assert set(data) == {"meta", "main", "scaling"}
    for key in ("command", "torch", "cpu_model", "date"):
        assert data["meta"][key]
    assert data["main"]["config"]["threads"] == [1]
    assert len(data["main"]["results"]) == len(_expected_impls())
    text = out_md.read_text()
    assert data["meta"]["command"] in text and "--scaling" in text
    assert "## Scaling with sequence length" in text
    # the neuron form timed is recorded (the defaults changed once already: a report must say which it timed)
    assert "- SpikingLSTM (module defaults): gates='sigmoid'" in text and "- SpikingRNN (module defaults): leak=" in text
    assert set(data["meta"]["neuron_forms"]) == {"SpikingLSTM", "SpikingGRU", "SpikingRNN"}
    for name in _expected_impls():
        assert f"| {name} |" in text
    assert "| torch |" in capsys.readouterr().out
    assert render_document(data["meta"], data["main"], None).startswith("# spikingrnn benchmarks")


def test_spike_rate_feeds_0_1_spikes_at_that_rate(tmp_path):
    from spikingrnn.bench.runner import bench_input

    shape = Shape(T=50, B=8, I=40, H=4, L=1)
    x = bench_input(shape, BenchConfig(spike_rate=0.05, seed=0))
    assert x.shape == (50, 8, 40) and x.dtype == torch.float32
    assert bool(((x == 0) | (x == 1)).all()) and 0.03 < x.mean().item() < 0.07
    assert not bool(((bench_input(shape, BenchConfig()) == 0) | (bench_input(shape, BenchConfig()) == 1)).all())
    out_md = tmp_path / "bench.md"
    argv = ["--shapes", "5,2,3,4,1", "--repeats", "2", "--warmup", "1", "--spike-rate", "0.2", "--impls",
            "spikingrnn-cpu", "--markdown", str(out_md)]
    assert main(argv) == 0
    assert "input: 0/1 spikes firing with probability 0.2" in out_md.read_text()
    assert main(argv[:-2] + ["--spike-rate", "1.5"]) == 2
