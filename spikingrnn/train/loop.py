"""``train(config)``: a deterministic, resumable training loop with metrics, checkpoints and plots."""
from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..data import LazySpikeSequences, SequenceDataset, batches, head, load_dataset
from ..data.registry import DATASETS
from ..io import atomic_write, save_checkpoint
from ..monitor import measure
from . import distributed
from .checkpoint import load_training_checkpoint, save_training_checkpoint
from .config import RESUMABLE_CHANGES, TrainConfig, saved_config
from .device import resolve_device
from .errors import NonFiniteLossError, TrainError, TrainingInterrupted
from .interrupt import StopRequest
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
    history: list[dict[str, Any]]
    metrics_path: str
    checkpoint_path: str
    best_path: str
    plots: list[str] = field(default_factory=list)
    model: nn.Module | None = None


def _load_data(config: TrainConfig) -> tuple[SequenceDataset, torch.Tensor | LazySpikeSequences, torch.Tensor,
                                             torch.Tensor | LazySpikeSequences, torch.Tensor]:
    parameters = inspect.signature(DATASETS[config.task]).parameters
    options: dict[str, Any] = {}
    if "seed" in parameters:
        options["seed"] = config.split_seed
    needs_file = "path" in parameters and parameters["path"].default is inspect.Parameter.empty
    if needs_file and not config.data_path:
        raise TrainError(f"--task {config.task} reads local files that are not downloaded: pass them with "
                         f"--data-path PATH (a file, or the folder of torchvision's raw MNIST files)")
    if config.data_path:
        if "path" not in parameters:
            raise TrainError(f"--data-path is for the tasks that read a file; --task {config.task} ships its data")
        options["path"] = config.data_path
    if config.test_data_path:
        if "test_path" not in parameters:
            raise TrainError(f"--test-data-path is for the tasks with an official test file; --task {config.task} "
                             f"has none")
        options["test_path"] = config.test_data_path
    for path in (config.data_path, config.test_data_path):
        if path and not os.path.exists(path):
            raise TrainError(f"no dataset file or folder at {path} (no such path)")
    data = load_dataset(config.task, **options)
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    if config.limit_train:
        x_train, y_train = head(x_train, config.limit_train), y_train[:config.limit_train]
    if config.limit_test:
        x_test, y_test = head(x_test, config.limit_test), y_test[:config.limit_test]
    return data, x_train, y_train, x_test, y_test


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of 1-based ``epoch``: ``config.lr``, or for ``schedule="cosine"``
    ``lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2`` (annealed to 0 after the last epoch). In closed
    form, so a resumed run with more ``epochs`` re-lays the curve over the new total from there on."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / max(config.epochs, 1)))
    return config.lr


def _evaluate(model: nn.Module, x: torch.Tensor | LazySpikeSequences, y: torch.Tensor,
              device: torch.device) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` on batch-first ``x [N, T, F]``."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), EVAL_CHUNK):
            xb = x[start:start + EVAL_CHUNK].transpose(0, 1).to(device)
            yb = y[start:start + EVAL_CHUNK].to(device)
            logits = model(xb)
            loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == yb).sum())
    return loss / max(len(y), 1), correct / max(len(y), 1)


def _write_text_atomic(path: str, text: str) -> None:
    atomic_write(path, text.encode())


def _check_resumable(saved: dict, config: TrainConfig, completed: int, path: str) -> None:
    saved, current = saved_config(saved), config.to_dict()
    different = [key for key in current if key not in RESUMABLE_CHANGES and key in saved and saved[key] != current[key]]
    if different:
        details = ", ".join(f"{key}: checkpoint {saved.get(key)!r} vs now {current[key]!r}" for key in different)
        raise TrainError(f"cannot resume {path}: the configuration differs from the checkpoint's ({details}); "
                         f"only {', '.join(RESUMABLE_CHANGES)} may change")
    if config.epochs < completed:
        raise TrainError(f"cannot resume {path}: it has {completed} epochs done, more than epochs={config.epochs}; "
                         f"pass at least {completed}")


def _prepare_out_dir(config: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Make ``out_dir`` and prove it writable (before any data is loaded); refuse to mix two runs in it."""
    out = config.out_dir
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as error:
        raise TrainError(f"--out {out}: cannot write there ({error.strerror or error})") from None
    existing = [name for name in (CHECKPOINT, BEST, METRICS) if os.path.exists(os.path.join(out, name))]
    if existing and not resume and not overwrite:
        raise TrainError(f"--out {out} already holds a run ({', '.join(existing)}): pass --resume to continue it, "
                         f"--overwrite to replace it, or another --out")
    if overwrite and not resume:
        from .plots import PLOTS
        for name in (CHECKPOINT, BEST, METRICS, CONFIG) + PLOTS:
            if os.path.exists(os.path.join(out, name)):
                os.unlink(os.path.join(out, name))


def train(config: TrainConfig, resume: bool = False, on_epoch: Callable[[dict[str, Any]], object] | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train ``config``'s classifier; returns a :class:`TrainResult`.

    Deterministic: ``torch.manual_seed(config.seed)`` before building the model, and a
    ``torch.Generator`` seeded with ``config.seed`` shuffles the training set; the train/test split
    follows ``config.split_seed`` alone. After every epoch the checkpoint (model, optimizer,
    global and shuffling RNG states, epoch, history, best; with a digest checked on load) is
    written atomically, then one JSON line is appended to ``metrics.jsonl``; the model with the
    best test accuracy so far goes to ``best.safetensors`` (:func:`spikingrnn.io.save_checkpoint`,
    with its configuration: ``spikingrnn.io.load_model`` rebuilds it).

    Args:
        config: the run's settings.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (a fresh run otherwise), up
            to ``config.epochs``; the configuration must match the checkpoint's except the fields
            of ``RESUMABLE_CHANGES`` (``epochs``, ``out_dir``, ``threads``, ``plots``, ``device``, ``data_path``, ``test_data_path``). On CPU the final weights are bit
            for bit those of an uninterrupted run, also after a Ctrl-C in the middle of an epoch.
            ``metrics.jsonl`` is rewritten from the checkpoint's history.
        on_epoch: optional ``callback(record: dict)`` called after each epoch's files are written.
        overwrite: replace the run files already in ``out_dir``; without it (and without
            ``resume``) a directory holding a run is refused.

    Raises:
        TrainError: a user mistake or an unwritable ``out_dir``, in one line.
        NonFiniteLossError: the loss or the gradient norm became NaN or infinite; the weights did not
            take that step, and the last checkpoint (of the last finished epoch) is kept.
        TrainingInterrupted: Ctrl-C (SIGINT): the run stopped after the current batch and saved a
            checkpoint from which ``resume=True`` continues exactly. A second Ctrl-C stops at once.

    ``config.threads`` applies while training; torch's previous thread count is restored afterwards.

    Multi-process: launched under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1) each process
    takes its shard of every global batch (same shuffling on every rank, ``batch_size`` is the global
    batch) and ``DistributedDataParallel`` averages the gradients, so the weights follow those of one
    process on the global batch (a last batch with fewer samples than processes is skipped); metrics
    are summed over ranks, and only rank 0 writes files. The process group is nccl when training on
    CUDA, gloo on the CPU. A process group that this call creates is destroyed when it returns.

    Each metrics record holds ``epoch``, ``loss`` (mean training cross-entropy), ``train_accuracy``
    (during the epoch), ``test_loss``, ``test_accuracy``, ``lr``, ``epoch_time``, ``train_time``,
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
        with StopRequest() as stop:
            return _train(config, resume, on_epoch, overwrite, stop)
    finally:
        torch.set_num_threads(threads)  # torch's setting is process-wide: give it back
        if created_group:
            distributed.cleanup()


def _global_sums(device: torch.device, *values: float) -> list[float]:
    """``values`` summed over the ranks of the process group (as they are without one)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return total.tolist()


def _any_rank(device: torch.device, *flags: bool) -> list[bool]:
    """Each flag OR-ed over the ranks, so that every rank stops at the same batch."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(flags)
    raised = torch.tensor([float(flag) for flag in flags], device=device)
    torch.distributed.all_reduce(raised, op=torch.distributed.ReduceOp.MAX)
    return [bool(value) for value in raised.tolist()]


def _rng_states(device: torch.device) -> dict:
    states = {"rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def _set_rng_states(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def _written(path: str, write: Callable[[], object], epoch: int) -> None:
    """Run ``write()``; an ``OSError`` (disk full, permissions) becomes a one-line :class:`TrainError`."""
    try:
        write()
    except OSError as error:
        raise TrainError(f"cannot write {path} ({error.strerror or error}) after epoch {epoch}; the files "
                         f"already there are intact: resume with --resume once it can be written") from None


def _train(config: TrainConfig, resume: bool, on_epoch: Callable[[dict[str, Any]], object] | None, overwrite: bool,
           stop: "StopRequest") -> TrainResult:
    device = resolve_device(config.device)
    rank, world_size = distributed.init_from_env(device=device)
    main = distributed.is_main(rank)
    if main:
        _prepare_out_dir(config, resume, overwrite)
    paths = {name: os.path.join(config.out_dir, name) for name in (CHECKPOINT, BEST, METRICS, CONFIG)}
    state = None
    if resume and os.path.exists(paths[CHECKPOINT]):  # refuse a changed configuration before loading any data
        state = load_training_checkpoint(paths[CHECKPOINT])
        _check_resumable(state["config"], config, state["epoch"], paths[CHECKPOINT])
    data, x_train, y_train, x_test, y_test = _load_data(config)

    torch.manual_seed(config.seed)
    model = build_model(config, data.num_features, data.num_classes).to(device)
    optimizer = _optimizer(config, model)
    trained = distributed.wrap(model)  # DDP under torchrun; ``model`` itself for saving and evaluation
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    best_accuracy, best_epoch, start_epoch, partial = -1.0, 0, 0, None

    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_states(state, device)
        generator.set_state(state["generator"])
        history = list(state["history"])
        best_accuracy, best_epoch, start_epoch = state["best_accuracy"], state["best_epoch"], state["epoch"]
        partial = state.get("partial")

    def checkpoint_state(epoch: int, **extra: Any) -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), **_rng_states(device),
                "generator": generator.get_state(), "epoch": epoch, "config": config.to_dict(),
                "history": history, "best_accuracy": best_accuracy, "best_epoch": best_epoch, **extra}

    if main:
        _written(paths[CONFIG], lambda: _write_text_atomic(paths[CONFIG], json.dumps(config.to_dict(), indent=2) + "\n"),
                 start_epoch)
        _written(paths[METRICS], lambda: _write_text_atomic(
            paths[METRICS], "".join(json.dumps(record) + "\n" for record in history)), start_epoch)
    monitor_x = x_test[:config.monitor_samples].transpose(0, 1).to(device)  # a tensor, also from lazy data

    for epoch in range(start_epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch)
        epoch_generator = generator.get_state()  # where this epoch's shuffle starts (an interrupted epoch restarts it)
        correct: float   # an int count, a float once summed over the ranks
        total_loss, correct, skip = 0.0, 0, 0
        if partial is not None:  # the epoch that a Ctrl-C interrupted: the same order, the done batches skipped
            total_loss, correct, skip = partial["total_loss"], partial["correct"], partial["batches_done"]
            partial = None
        for index, (xb, yb) in enumerate(batches(x_train, y_train, config.batch_size, shuffle=True,
                                                 generator=generator)):
            if index < skip:
                continue
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            global_size = len(yb)
            if world_size > 1:  # this rank's shard of the global batch
                if global_size < world_size:
                    continue  # a last batch too small to give every rank a sample: skipped on every rank
                shard = distributed.shard(torch.arange(global_size, device=device), rank, world_size)
                xb, yb = xb[:, shard], yb[shard]
            logits = trained(xb)
            if world_size > 1:
                # DDP averages over ranks: scaled so that the average is the global batch's mean loss
                loss = nn.functional.cross_entropy(logits, yb, reduction="sum") * (world_size / global_size)
            else:
                loss = nn.functional.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            # the norm is needed to catch non-finite gradients; max_norm=inf leaves them as they are
            norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
            loss_value = loss.item()
            bad, interrupted = _any_rank(device, not (math.isfinite(loss_value) and bool(torch.isfinite(norm))),
                                         stop.requested)
            if bad:
                raise _non_finite(config, epoch, index, loss_value, float(norm), paths[CHECKPOINT],
                                  history)
            optimizer.step()
            total_loss += loss_value * (global_size / world_size if world_size > 1 else len(yb))
            correct += int((logits.argmax(dim=1) == yb).sum())
            if world_size == 1:  # one process: stop right after the batch that Ctrl-C fell in
                interrupted = stop.requested
            if interrupted:
                done = index + 1
                if main:
                    _written(paths[CHECKPOINT], lambda: save_training_checkpoint(paths[CHECKPOINT], checkpoint_state(
                        epoch - 1, generator=epoch_generator, partial={
                            "epoch": epoch, "batches_done": done, "total_loss": total_loss, "correct": correct})),
                        epoch - 1)
                batches_in_epoch = math.ceil(len(y_train) / config.batch_size)
                raise TrainingInterrupted(
                    f"interrupted in epoch {epoch}/{config.epochs} after batch {done}/{batches_in_epoch}; saved "
                    f"{paths[CHECKPOINT]}: continue with  spikingrnn train --out {config.out_dir} --resume",
                    paths[CHECKPOINT])
        total_loss, correct = _global_sums(device, total_loss, correct)
        train_time = time.perf_counter() - started
        test_loss, test_accuracy = _evaluate(model, x_test, y_test, device)
        stats = measure(model, monitor_x)["rnn"] if model.spiking else {}
        eval_time = time.perf_counter() - started - train_time
        record = {
            "epoch": epoch,
            "loss": total_loss / len(y_train),
            "train_accuracy": correct / len(y_train),
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "lr": learning_rate(config, epoch),
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
                _written(paths[BEST], lambda: save_checkpoint(
                    paths[BEST], model=model, metadata={"config": config.to_dict(), "epoch": epoch,
                                                        "test_accuracy": test_accuracy}), epoch)
            _written(paths[CHECKPOINT], lambda: save_training_checkpoint(paths[CHECKPOINT], checkpoint_state(epoch)),
                     epoch)

            def append() -> None:
                with open(paths[METRICS], "a") as handle:
                    handle.write(json.dumps(record) + "\n")
            _written(paths[METRICS], append, epoch)
            if on_epoch is not None:
                on_epoch(record)

    plots = []
    if config.plots and history and main:
        from .plots import make_plots
        model.eval()
        spikes = None
        if model.spiking:
            with torch.no_grad():
                spikes = model.spikes(x_test[:1].transpose(0, 1).to(device))[:, 0, :].cpu()
        plots = make_plots(config.out_dir, history, spikes, int(y_test[0]), history[-1]["firing_rates"])
    return TrainResult(config=config, final_test_accuracy=history[-1]["test_accuracy"] if history else float("nan"),
                       best_test_accuracy=best_accuracy, best_epoch=best_epoch,
                       epochs_trained=max(config.epochs - start_epoch, 0), history=history,
                       metrics_path=paths[METRICS], checkpoint_path=paths[CHECKPOINT], best_path=paths[BEST],
                       plots=plots, model=model)


def _non_finite(config: TrainConfig, epoch: int, index: int, loss: float, norm: float, checkpoint: str,
                history: list[dict]) -> NonFiniteLossError:
    what = f"the loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {norm}"
    finished = history[-1]["epoch"] if history else 0
    kept = (f"{checkpoint} (epoch {finished}) is kept" if finished and os.path.exists(checkpoint)
            else "no checkpoint was written before it")
    return NonFiniteLossError(
        f"epoch {epoch}, batch {index + 1}: {what}: training stopped before the weights took that step; {kept}. "
        f"Try a smaller --lr (now {config.lr:g}), --grad-clip (now {config.grad_clip:g}), or another "
        f"--cell-state / --surrogate-alpha", checkpoint if finished else None)
