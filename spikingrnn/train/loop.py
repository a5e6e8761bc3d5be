"""``train(config)``: a deterministic, resumable training loop with metrics, checkpoints and plots."""
from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import batches, load_dataset
from ..data.registry import DATASETS
from ..io import save_checkpoint
from ..monitor import measure
from .checkpoint import load_training_checkpoint, save_training_checkpoint
from . import distributed
from .config import RESUMABLE_CHANGES, TrainConfig
from .model import build_model

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
EVAL_CHUNK = 512


@dataclass
class TrainResult:
    """What :func:`train` returns; paths are inside ``config.out_dir``."""

    config: TrainConfig
    final_test_accuracy: float
    best_test_accuracy: float
    best_epoch: int
    epochs_trained: int  # in this call (fewer than config.epochs after a resume)
    history: list[dict]
    metrics_path: str
    checkpoint_path: str
    best_path: str
    plots: list[str] = field(default_factory=list)
    model: nn.Module | None = None


def _load_data(config: TrainConfig):
    parameters = inspect.signature(DATASETS[config.task]).parameters
    options = {}
    if "seed" in parameters:
        options["seed"] = config.seed
    if config.data_path:
        options["path"] = config.data_path
    data = load_dataset(config.task, **options)
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if config.limit_train:
        x_train, y_train = x_train[:config.limit_train], y_train[:config.limit_train]
    if config.limit_test:
        x_test, y_test = x_test[:config.limit_test], y_test[:config.limit_test]
    return data, x_train, y_train, x_test, y_test


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)


def _schedule(config: TrainConfig, optimizer: torch.optim.Optimizer):
    """The per-epoch learning-rate scheduler of ``config.schedule`` (``None`` for a constant rate)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    return None


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` on batch-first ``x [N, T, F]``."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), EVAL_CHUNK):
            xb, yb = x[start:start + EVAL_CHUNK].transpose(0, 1), y[start:start + EVAL_CHUNK]
            logits = model(xb)
            loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == yb).sum())
    return loss / max(len(y), 1), correct / max(len(y), 1)


def _write_text_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _check_resumable(saved: dict, config: TrainConfig) -> None:
    current = config.to_dict()
    changeable = [key for key in RESUMABLE_CHANGES if not (key == "epochs" and config.schedule == "cosine")]
    different = [key for key in current if key not in changeable and saved.get(key) != current[key]]
    if different:
        details = ", ".join(f"{key}: checkpoint {saved.get(key)!r} vs now {current[key]!r}" for key in different)
        raise ValueError(f"cannot resume: the configuration differs from the checkpoint's ({details}); "
                         "only " + ", ".join(changeable) + " may change"
                         + (" (the cosine schedule is laid out over the epochs)" if config.schedule == "cosine" else ""))


def train(config: TrainConfig, resume: bool = False, on_epoch=None) -> TrainResult:
    """Train ``config``'s classifier; returns a :class:`TrainResult`.

    Deterministic: ``torch.manual_seed(config.seed)`` before building the model, and a
    ``torch.Generator`` seeded with ``config.seed`` shuffles the training set. After every epoch
    the checkpoint (model, optimizer, global and shuffling RNG states, epoch, history, best) is
    written atomically, then one JSON line is appended to ``metrics.jsonl``; the model with the
    best test accuracy so far goes to ``best.safetensors`` (:func:`spikingrnn.io.save_checkpoint`).

    Args:
        config: the run's settings.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (a fresh run otherwise), up
            to ``config.epochs``; the configuration must match the checkpoint's except
            ``epochs``, ``out_dir``, ``threads`` and ``plots``. On CPU the final weights are bit
            for bit those of an uninterrupted run. ``metrics.jsonl`` is rewritten from the
            checkpoint's history, dropping lines of epochs that the checkpoint does not hold.
        on_epoch: optional ``callback(record: dict)`` called after each epoch's files are written.

    ``config.threads`` applies while training; torch's previous thread count is restored afterwards.

    Multi-process: launched under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1) each process
    takes its shard of every global batch (same shuffling on every rank, ``batch_size`` is the global
    batch) and ``DistributedDataParallel`` averages the gradients, so the weights follow those of one
    process on the global batch (a last batch with fewer samples than processes is skipped); metrics
    are summed over ranks, and only rank 0 writes files. A
    process group that this call creates is destroyed when it returns.

    Each metrics record holds ``epoch``, ``loss`` (mean training cross-entropy), ``train_accuracy``
    (during the epoch), ``test_loss``, ``test_accuracy``, ``epoch_time``, ``train_time``,
    ``eval_time`` (seconds), ``firing_rates`` (``{"layer0": {gate: rate}}`` on the first
    ``monitor_samples`` test samples, evaluation mode), ``mean_rate`` and ``per_sample`` operation
    counts and energy of the spiking RNN stack only (encoder and readout Linear layers excluded)
    (see :mod:`spikingrnn.monitor`).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    created_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    try:
        return _train(config, resume, on_epoch)
    finally:
        torch.set_num_threads(threads)  # torch's setting is process-wide: give it back
        if created_group:
            distributed.cleanup()


def _global_sums(*values: float) -> list[float]:
    """``values`` summed over the ranks of the process group (as they are without one)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(values)
    total = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(total)
    return total.tolist()


def _train(config: TrainConfig, resume: bool, on_epoch) -> TrainResult:
    rank, world_size = distributed.init_from_env()
    main = distributed.is_main(rank)
    data, x_train, y_train, x_test, y_test = _load_data(config)
    os.makedirs(config.out_dir, exist_ok=True)
    paths = {name: os.path.join(config.out_dir, name) for name in (CHECKPOINT, BEST, METRICS, CONFIG)}

    torch.manual_seed(config.seed)
    model = build_model(config, data.num_features, data.num_classes)
    optimizer = _optimizer(config, model)
    scheduler = _schedule(config, optimizer)
    trained = distributed.wrap(model)  # DDP under torchrun; ``model`` itself for saving and evaluation
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    best_accuracy, best_epoch, start_epoch = -1.0, 0, 0

    if resume and os.path.exists(paths[CHECKPOINT]):
        state = load_training_checkpoint(paths[CHECKPOINT])
        _check_resumable(state["config"], config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        generator.set_state(state["generator"])
        history = list(state["history"])
        best_accuracy, best_epoch, start_epoch = state["best_accuracy"], state["best_epoch"], state["epoch"]

    if main:
        _write_text_atomic(paths[CONFIG], json.dumps(config.to_dict(), indent=2) + "\n")
        _write_text_atomic(paths[METRICS], "".join(json.dumps(record) + "\n" for record in history))
    monitor_x = x_test[:config.monitor_samples].transpose(0, 1)

    for epoch in range(start_epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        total_loss, correct = 0.0, 0
        for xb, yb in batches(x_train, y_train, config.batch_size, shuffle=True, generator=generator):
            global_size = len(yb)
            if world_size > 1:  # this rank's shard of the global batch
                if global_size < world_size:
                    continue  # a last batch too small to give every rank a sample: skipped on every rank
                index = distributed.shard(torch.arange(global_size), rank, world_size)
                xb, yb = xb[:, index], yb[index]
            logits = trained(xb)
            if world_size > 1:
                # DDP averages over ranks: scaled so that the average is the global batch's mean loss
                loss = nn.functional.cross_entropy(logits, yb, reduction="sum") * (world_size / global_size)
            else:
                loss = nn.functional.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total_loss += loss.item() * (global_size / world_size if world_size > 1 else len(yb))
            correct += int((logits.argmax(dim=1) == yb).sum())
        total_loss, correct = _global_sums(total_loss, correct)
        if scheduler is not None:
            scheduler.step()
        train_time = time.perf_counter() - started
        test_loss, test_accuracy = _evaluate(model, x_test, y_test)
        stats = measure(model, monitor_x)["rnn"] if model.spiking else {}
        eval_time = time.perf_counter() - started - train_time
        record = {
            "epoch": epoch,
            "loss": total_loss / len(y_train),
            "train_accuracy": correct / len(y_train),
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "epoch_time": train_time + eval_time,
            "train_time": train_time,
            "eval_time": eval_time,
            "firing_rates": stats.get("rates", {}),
            "mean_rate": stats.get("mean_rate"),
            "per_sample": stats.get("per_sample"),
            "energy_ratio": stats.get("energy_ratio"),
        }
        history.append(record)
        improved = test_accuracy > best_accuracy
        if improved:
            best_accuracy, best_epoch = test_accuracy, epoch
        if main:
            if improved:
                save_checkpoint(paths[BEST], state_dict=model.state_dict(),
                                metadata={"config": config.to_dict(), "epoch": epoch, "test_accuracy": test_accuracy})
            save_training_checkpoint(paths[CHECKPOINT], {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": torch.get_rng_state(), "generator": generator.get_state(),
                "epoch": epoch, "config": config.to_dict(), "history": history,
                "best_accuracy": best_accuracy, "best_epoch": best_epoch,
            })
            with open(paths[METRICS], "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if on_epoch is not None:
                on_epoch(record)

    plots = []
    if config.plots and history and main:
        from .plots import make_plots
        model.eval()
        spikes = None
        if model.spiking:
            with torch.no_grad():
                spikes = model.spikes(x_test[:1].transpose(0, 1))[:, 0, :]
        plots = make_plots(config.out_dir, history, spikes, int(y_test[0]), history[-1]["firing_rates"])
    return TrainResult(config=config, final_test_accuracy=history[-1]["test_accuracy"] if history else float("nan"),
                       best_test_accuracy=best_accuracy, best_epoch=best_epoch,
                       epochs_trained=max(config.epochs - start_epoch, 0), history=history,
                       metrics_path=paths[METRICS], checkpoint_path=paths[CHECKPOINT], best_path=paths[BEST],
                       plots=plots, model=model)
