"""DistributedDataParallel over 2 gloo processes on CPU equals single-process training on the global batch."""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from spikingrnn.train import TrainConfig, build_model
from spikingrnn.train import distributed

WORLD_SIZE = 2
TIMEOUT_S = 60.0  # whole spawn (start, init, forward/backward, step); workers are killed after it
T, B, F, CLASSES, SEED = 7, 6, 5, 3, 1234


def _config() -> TrainConfig:
    return TrainConfig(model="lstm", hidden=8, layers=2, backend="cpu", plots=False, seed=SEED)


def _global_batch():
    generator = torch.Generator().manual_seed(99)
    x = torch.rand(T, B, F, generator=generator, dtype=torch.float64) * 2.0  # time-major [T, B, F]
    y = torch.randint(0, CLASSES, (B,), generator=generator)
    return x, y


def _model() -> nn.Module:
    torch.manual_seed(SEED)
    return build_model(_config(), F, CLASSES).double()


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_path: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    got_rank, got_world = distributed.init_from_env(backend="gloo", timeout_s=60)
    assert (got_rank, got_world) == (rank, world_size)
    try:
        model = distributed.wrap(_model())
        assert isinstance(model, nn.parallel.DistributedDataParallel)
        optimizer = _optimizer(model)
        x, y = _global_batch()
        index = distributed.shard(torch.arange(B), rank, world_size)
        loss = nn.functional.cross_entropy(model(x[:, index]), y[index])  # mean over the local half
        optimizer.zero_grad()
        loss.backward()
        grads = {name: p.grad.detach().clone() for name, p in model.module.named_parameters()}
        optimizer.step()
        # every rank's parameters after the step, gathered on all ranks
        flat = torch.cat([p.detach().reshape(-1) for p in model.module.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world_size)]
        dist.all_gather(gathered, flat)
        if distributed.is_main(rank):
            params = {name: p.detach().clone() for name, p in model.module.named_parameters()}
            torch.save({"grads": grads, "params": params, "flat": gathered}, out_path)
        dist.barrier()
    finally:
        distributed.cleanup()


@pytest.fixture(scope="module")
def ddp_result(tmp_path_factory):
    # warm the C++ extension cache in this process so the workers only load it (no concurrent build)
    from spikingrnn.ops.cpu.extension import loops
    loops()
    out_path = str(tmp_path_factory.mktemp("ddp") / "rank0.pt")
    context = mp.start_processes(_worker, args=(WORLD_SIZE, _free_port(), out_path), nprocs=WORLD_SIZE,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1.0):  # raises ProcessRaisedException if a worker failed
            if time.monotonic() > deadline:
                pytest.fail(f"DDP workers did not finish within {TIMEOUT_S:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)
    return torch.load(out_path)


def _single_process():
    model = _model()
    optimizer = _optimizer(model)
    x, y = _global_batch()
    loss = nn.functional.cross_entropy(model(x), y)  # mean over the whole global batch
    optimizer.zero_grad()
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    optimizer.step()
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return grads, params


def test_ddp_gradients_equal_single_process(ddp_result):
    grads, _ = _single_process()
    assert ddp_result["grads"].keys() == grads.keys()
    assert any(g.abs().sum() > 0 for g in grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(ddp_result["grads"][name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_ddp_step_keeps_ranks_identical_and_matches_single_process(ddp_result):
    rank0, rank1 = ddp_result["flat"]
    assert torch.equal(rank0, rank1)
    _, params = _single_process()
    for name, param in params.items():
        torch.testing.assert_close(ddp_result["params"][name], param, rtol=1e-10, atol=1e-12, msg=name)


def test_shard_and_helpers(monkeypatch):
    indices = torch.arange(7)
    parts = [distributed.shard(indices, r, 3) for r in range(3)]
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4], [5, 6]]
    assert distributed.shard(list(range(4)), 1, 2) == [2, 3]
    with pytest.raises(ValueError):
        distributed.shard(indices, 2, 2)
    assert distributed.is_main(0) and not distributed.is_main(1) and distributed.is_main()
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env() == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_from_env() == (0, 1)
    assert not dist.is_initialized()
    model = nn.Linear(2, 2)
    assert distributed.wrap(model) is model


# ------------------------------------------------------------------ spikingrnn.train.train under DDP

def _train_config(out_dir: str) -> TrainConfig:
    # 50 samples in global batches of 16: shards of 8, and a last batch of 2 split 1 + 1
    return TrainConfig(task="digits_rows", model="lstm", hidden=12, epochs=2, batch_size=16, limit_train=50,
                       limit_test=60, monitor_samples=8, threads=1, plots=False, backend="cpu", seed=3,
                       out_dir=out_dir)


def _train_worker(rank: int, world_size: int, port: int, out_dir: str, result_path: str) -> None:
    from spikingrnn.train import train
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    result = train(_train_config(out_dir))
    assert not dist.is_initialized()  # train() destroyed the group it created
    torch.save({"state": result.model.state_dict(), "history": result.history}, f"{result_path}.{rank}")


def test_train_under_ddp_matches_single_process(tmp_path):
    from spikingrnn.train import train
    from spikingrnn.ops.cpu.extension import loops
    loops()
    result_path = str(tmp_path / "result")
    context = mp.start_processes(_train_worker, args=(WORLD_SIZE, _free_port(), str(tmp_path / "ddp"), result_path),
                                 nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + 2 * TIMEOUT_S
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"DDP training did not finish within {2 * TIMEOUT_S:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)
    ranks = [torch.load(f"{result_path}.{rank}") for rank in range(WORLD_SIZE)]
    single = train(_train_config(str(tmp_path / "single")))
    for name, value in single.model.state_dict().items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for ddp_record, record in zip(ranks[0]["history"], single.history):
        assert abs(ddp_record["loss"] - record["loss"]) < 1e-4
        assert ddp_record["train_accuracy"] == record["train_accuracy"]
        assert abs(ddp_record["test_accuracy"] - record["test_accuracy"]) <= 1 / 60
    # only rank 0 wrote files, and they describe the run
    written = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert written == ["best.safetensors", "checkpoint.pt", "config.json", "metrics.jsonl"]
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 2


def test_spikingrnn_train_under_torchrun(tmp_path):
    """The command line itself under torchrun: 2 processes, rank 0 writes the run's files."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "torchrun"
    command = [str(Path(sys.executable).with_name("torchrun")), "--nproc_per_node=2", "--master_port",
               str(_free_port()), "-m", "spikingrnn", "train", "--task", "digits_rows", "--hidden", "8",
               "--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--monitor-samples", "8",
               "--threads", "1", "--no-plots", "--out", str(out)]
    if not Path(command[0]).exists():
        pytest.skip("torchrun is not installed next to this Python")
    result = subprocess.run(command, capture_output=True, text=True, timeout=2 * TIMEOUT_S,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("final test accuracy") == 1  # rank 0 reports, rank 1 stays quiet
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "checkpoint.pt", "config.json",
                                                     "metrics.jsonl"]
