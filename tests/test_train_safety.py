"""`spikingrnn train` fails loudly and loses nothing: split seed apart from the seed, non-finite losses
stop the run, Ctrl-C saves and resumes exactly, --resume reads the run's settings, and every user
mistake is one clean line."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikingrnn.cli import main
from spikingrnn.train import TrainConfig, load_training_checkpoint, train
from spikingrnn.train import distributed
from spikingrnn.train.device import resolve_device
from spikingrnn.train.errors import NonFiniteLossError, TrainError, TrainingInterrupted
from spikingrnn.train.loop import _load_data
from spikingrnn.train.model import SpikingClassifier

pytest.importorskip("sklearn")
ROOT = Path(__file__).resolve().parents[1]


def tiny(tmp_path, name="run", **overrides):
    values = dict(task="digits_rows", model="lstm", hidden=16, epochs=3, batch_size=32, limit_train=128,
                  limit_test=64, monitor_samples=16, threads=1, plots=False, out_dir=str(tmp_path / name))
    values.update(overrides)
    return TrainConfig(**values)


def cli_args(out, *more):
    return ["train", "--hidden", "16", "--limit-train", "64", "--limit-test", "32", "--monitor-samples", "8",
            "--threads", "1", "--no-plots", "--out", str(out), *more]


# ----------------------------------------------------------------------------- item 4: the split


def test_seed_does_not_move_the_test_set(tmp_path):
    for task in ("digits_rows", "mnist5k_rows"):
        _, _, _, x0, y0 = _load_data(TrainConfig(task=task, seed=0))
        _, _, _, x3, y3 = _load_data(TrainConfig(task=task, seed=3))
        assert torch.equal(x0, x3) and torch.equal(y0, y3), task
        _, _, _, x_other, _ = _load_data(TrainConfig(task=task, seed=0, split_seed=3))
        assert not torch.equal(x0, x_other), task  # the split has a seed of its own


def test_a_run_saved_before_split_seed_resumes_on_its_own_split(tmp_path):
    from spikingrnn.train.config import saved_config
    assert saved_config({"seed": 3})["split_seed"] == 3
    assert saved_config({"seed": 3, "split_seed": 0})["split_seed"] == 0


# ----------------------------------------------------------------------------- item 7: non-finite losses


def nan_after(monkeypatch, calls: int):
    forward = SpikingClassifier.forward
    count = {"n": 0}

    def poisoned(self, x):
        logits = forward(self, x)
        if not self.training:
            return logits
        count["n"] += 1
        return logits * float("nan") if count["n"] > calls else logits
    monkeypatch.setattr(SpikingClassifier, "forward", poisoned)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch):
    nan_after(monkeypatch, 5)  # 4 training batches an epoch: NaN from the second batch of epoch 2
    with pytest.raises(NonFiniteLossError, match="epoch 2, batch 2: the loss is nan: training stopped") as stopped:
        train(tiny(tmp_path))
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert stopped.value.checkpoint == str(checkpoint)
    state = load_training_checkpoint(str(checkpoint))
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    from spikingrnn.io import load_checkpoint
    best, _ = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert all(torch.isfinite(v).all() for v in best.values())


def test_the_cli_exits_nonzero_on_a_nan_loss(tmp_path, monkeypatch, capsys):
    nan_after(monkeypatch, 0)
    assert main(cli_args(tmp_path / "nan", "--epochs", "3")) == 1
    err = capsys.readouterr().err
    assert "epoch 1, batch 1: the loss is nan" in err and "no checkpoint was written" in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("spikingrnn train:")]) == 1


def test_an_infinite_gradient_stops_the_run(tmp_path, monkeypatch):
    # a finite loss whose gradient is infinite: through the Linear layers' outputs
    real = torch.nn.Linear.forward

    def forward(self, x):
        out = real(self, x)
        if self.training and out.requires_grad:
            out.register_hook(lambda grad: grad * float("inf"))
        return out
    monkeypatch.setattr(torch.nn.Linear, "forward", forward)
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 1: the gradient norm is"):
        train(tiny(tmp_path))


# ----------------------------------------------------------------------------- item 8: Ctrl-C, resume, mistakes


def test_ctrl_c_saves_mid_epoch_and_the_resume_is_exact(tmp_path, monkeypatch):
    straight = train(tiny(tmp_path, "straight"))
    step = torch.optim.Adam.step
    calls = {"n": 0}

    def interrupted_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # a real SIGINT during the second batch of epoch 2
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, *args, **kwargs)
    monkeypatch.setattr(torch.optim.Adam, "step", interrupted_step)
    with pytest.raises(TrainingInterrupted, match=r"epoch 2/3 after batch 2/4.*--resume"):
        train(tiny(tmp_path, "resumed"))
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    state = load_training_checkpoint(str(tmp_path / "resumed" / "checkpoint.pt"))
    assert state["epoch"] == 1 and state["partial"]["batches_done"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back
    resumed = train(tiny(tmp_path, "resumed"), resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    strip = lambda h: [{k: v for k, v in r.items() if not k.endswith("_time")} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)


def test_ctrl_c_in_the_cli_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "spikingrnn", *cli_args(out, "--epochs", "200")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"continue with  spikingrnn train --out {out} --resume" in stderr
    assert load_training_checkpoint(str(out / "checkpoint.pt"))["epoch"] >= 1


def test_resume_reads_the_saved_settings_and_may_extend_the_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(cli_args(out, "--epochs", "1", "--model", "gru", "--seed", "5")) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["seed"], config["hidden"], config["epochs"]) == ("gru", 5, 16, 2)
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--hidden", "8"]) == 1
    err = capsys.readouterr().err
    assert "hidden: checkpoint 16 vs now 8" in err and "Traceback" not in err
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1"]) == 1
    assert "2 epochs done, more than epochs=1" in capsys.readouterr().err


def test_an_existing_run_is_not_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(cli_args(out, "--epochs", "1")) == 0
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(cli_args(out, "--epochs", "1", "--seed", "1")) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before
    assert main(cli_args(out, "--epochs", "1", "--seed", "1", "--overwrite")) == 0
    assert (out / "checkpoint.pt").read_bytes() != before


def test_an_unwritable_out_fails_before_the_data_is_loaded(tmp_path, monkeypatch, capsys):
    import spikingrnn.train.loop as loop
    monkeypatch.setattr(loop, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded first"))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(cli_args(blocker / "run", "--epochs", "1")) == 1
    err = capsys.readouterr().err
    assert f"--out {blocker / 'run'}: cannot write there" in err and "Traceback" not in err


def test_a_full_disk_is_one_line_and_keeps_the_previous_files(tmp_path, monkeypatch, capsys):
    import errno

    import spikingrnn.train.checkpoint as checkpoint_module
    out = tmp_path / "run"
    assert main(cli_args(out, "--epochs", "1")) == 0
    before = (out / "checkpoint.pt").read_bytes()

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(checkpoint_module, "atomic_write", full)
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.pt (No space left on device) after epoch 2" in err and "Traceback" not in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_a_task_that_needs_a_file_says_so(tmp_path, capsys):
    assert main(cli_args(tmp_path / "shd", "--task", "shd", "--epochs", "1")) == 1
    assert "--task shd reads local files that are not downloaded: pass them with --data-path PATH" in \
        capsys.readouterr().err
    assert main(cli_args(tmp_path / "shd", "--task", "shd", "--data-path", str(tmp_path / "none.h5"))) == 1
    assert f"no dataset file or folder at {tmp_path / 'none.h5'} (no such path)" in capsys.readouterr().err


def test_epochs_zero_prints_only_what_it_wrote(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(cli_args(out, "--epochs", "0")) == 0
    printed = capsys.readouterr().out
    assert "nothing trained" in printed and "checkpoint:" not in printed and "best model" not in printed
    assert not (out / "checkpoint.pt").exists()


def test_task_help_lists_the_tasks():
    result = subprocess.run([sys.executable, "-m", "spikingrnn", "train", "--help"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    help_text = " ".join(result.stdout.split())
    assert "digits_rows" in help_text and "mnist5k_pixels" in help_text and "shd" in help_text
    assert "--split-seed" in help_text and "--device" in help_text and "--overwrite" in help_text


# ----------------------------------------------------------------------------- item 12: the device


def test_device_names_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="TrainConfig.device must be auto, cpu, cuda or cuda:N"):
        TrainConfig(device="gpu")
    assert TrainConfig(backend="triton").backend == "triton"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(TrainError, match="--device cuda: no CUDA device is available here"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1)  # torchrun: each process its own GPU
    with pytest.raises(TrainError, match="has 2 CUDA devices .* cuda:2 does not exist"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("device,backend", [("cpu", "gloo"), (None, "gloo"), ("cuda:1", "nccl")])
def test_the_process_group_follows_the_training_device(monkeypatch, device, backend):
    """nccl cannot all-reduce the CPU tensors of a CPU run, even on a machine with CUDA."""
    seen = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: seen.setdefault("cuda", index))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, **kwargs: seen.setdefault("b", backend))
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)
    assert distributed.init_from_env(device=device) == (0, 2)
    assert seen["b"] == backend
    assert seen.get("cuda") == (1 if backend == "nccl" else None)


def test_a_cuda_run_is_refused_cleanly_without_cuda(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(cli_args(tmp_path / "gpu", "--device", "cuda", "--backend", "triton", "--epochs", "1")) == 1
    assert "--device cuda: no CUDA device is available here" in capsys.readouterr().err
