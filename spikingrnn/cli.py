"""Command line: ``spikingrnn demo`` and ``spikingrnn train`` (also ``python -m spikingrnn``)."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from .demo import DemoConfig, run_demo

if TYPE_CHECKING:
    from .train import TrainConfig


def _field_help(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of a dataclass docstring."""
    help_text: dict[str, list[str]] = {}
    current = None
    in_attributes = False
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            in_attributes = True
            continue
        if not in_attributes or not stripped:
            continue
        name, sep, rest = stripped.partition(": ")
        if sep and name.isidentifier() and len(line) - len(line.lstrip()) == 8:
            current = name
            help_text[current] = [rest]
        elif current is not None:
            help_text[current].append(stripped)
    def plain(text: str) -> str:  # reST markup -> plain text; argparse formats with %
        return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "").replace("%", "%%")

    return {name: plain(" ".join(parts)) for name, parts in help_text.items()}


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, defaulting to nothing (``SUPPRESS``): the flags given on the
    command line are then told apart from the defaults, which ``--resume`` takes from the run."""
    from .train.config import TrainConfig, choices

    descriptions = _field_help(TrainConfig)
    allowed = choices()
    for field in fields(TrainConfig):
        flag = f"--{field.name.replace('_', '-')}"
        names = [flag, "--out"] if field.name == "out_dir" else [flag]
        text = f"{descriptions.get(field.name, '')} (default: {field.default})".strip()
        if isinstance(field.default, bool):
            parser.add_argument(*names, dest=field.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
        else:
            kind = (_forget_bias if field.name == "forget_bias" else
                    _float_or_none if field.name in OPTIONAL_NUMBERS else type(field.default))
            parser.add_argument(*names, dest=field.name, type=kind, default=argparse.SUPPRESS,
                                choices=allowed.get(field.name), help=text)
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUT from its checkpoint.pt, with its saved settings (config.json); "
                             "flags given again must match them, except "
                             "--epochs (more epochs extend the run; a cosine schedule is re-laid over the new "
                             "total), --out, --threads, --plots, --device, --data-path and --test-data-path. The "
                             "weights are bit for bit those of an uninterrupted run on CPU, also after Ctrl-C")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in OUT (without it, and without --resume, an OUT holding a "
                             "run is refused)")


# TrainConfig fields that take a number or None ("none" on the command line); forget_bias also "chrono"
OPTIONAL_NUMBERS = ("forget_bias", "leak")


def _float_or_none(text: str) -> float | None:
    """A command-line number, or ``None`` for ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def _forget_bias(text: str) -> float | str | None:
    """``--forget-bias``: a number, ``none`` or ``chrono``."""
    if text.strip().lower() == "chrono":
        return "chrono"
    try:
        return _float_or_none(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number, 'none' or 'chrono', got {text!r}") from None


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig: the flags given, over the resumed run's saved settings (``--resume``),
    over the defaults."""
    from .train import TrainConfig
    from .train.errors import TrainError
    from .train.config import saved_config
    from .train.loop import CONFIG

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values: dict[str, Any] = {f.name: f.default for f in fields(TrainConfig)}
    out_dir = given.get("out_dir", values["out_dir"])
    saved_path = os.path.join(out_dir, CONFIG)
    if args.resume and os.path.exists(saved_path):
        try:
            with open(saved_path) as handle:
                saved = json.load(handle)
        except (OSError, ValueError) as error:
            raise TrainError(f"cannot resume: {saved_path} is unreadable ({error})") from None
        if not isinstance(saved, dict):
            raise TrainError(f"cannot resume: {saved_path} does not hold a training configuration")
        saved = saved_config(saved)
        unknown = sorted(set(saved) - set(values))
        if unknown:
            raise TrainError(f"cannot resume: {saved_path} has settings this spikingrnn does not know: {unknown}")
        values.update(saved)
        values["out_dir"] = out_dir
    values.update(given)
    return TrainConfig(**values)


def _run_train(args: argparse.Namespace) -> int:
    from .io import CheckpointError
    from .train import train
    from .train.errors import TrainError, TrainingInterrupted

    def fail(message: str, code: int = 1) -> int:
        print(f"spikingrnn train: {message}", file=sys.stderr, flush=True)
        return code

    try:
        config = _train_config(args)
    except (TrainError, ValueError) as error:
        return fail(f"error: {error}")
    # under torchrun only rank 0 reports (train() calls on_epoch on rank 0 only, too)
    main_process = int(os.environ.get("RANK", "0") or "0") == 0
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    bar = tqdm(total=config.epochs, desc="epochs", unit="epoch") if tqdm is not None and main_process else None
    write = bar.write if bar is not None else (lambda line: print(line, flush=True))

    def on_epoch(record: dict) -> None:
        if bar is not None:
            bar.n = record["epoch"]
            bar.refresh()
        spiking = ""
        if record["mean_rate"] is not None:  # None for the non-spiking baselines
            spiking = (f"rate {record['mean_rate']:.3f}  energy/sample {record['per_sample']['energy_pj'] / 1e6:.3f} uJ "
                       f"({record['energy_ratio']:.2f}x dense)  ")
        write(f"epoch {record['epoch']:3d}/{config.epochs}  loss {record['loss']:.4f}  "
              f"train acc {record['train_accuracy']:.4f}  test acc {record['test_accuracy']:.4f}  "
              f"{spiking}{record['epoch_time']:.1f} s")

    result, failure = None, None
    try:
        result = train(config, resume=args.resume, on_epoch=on_epoch, overwrite=args.overwrite)
    except TrainingInterrupted as stopped:
        failure = (str(stopped), 130)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        resume = (f"; the last checkpoint is in {config.out_dir}: continue with  spikingrnn train --out "
                  f"{config.out_dir} --resume" if os.path.exists(os.path.join(config.out_dir, "checkpoint.pt")) else "")
        failure = ("interrupted" + resume, 130)
    except (TrainError, CheckpointError, ValueError) as error:
        failure = (f"error: {error}", 1)
    except OSError as error:  # an unreadable dataset file, a device error, ...
        name = f" {error.filename}:" if getattr(error, "filename", None) else ""
        failure = (f"error:{name} {error.strerror or error}", 1)
    finally:
        if bar is not None:
            bar.close()  # before the message, which must not share a line with the bar
    if failure is not None:
        return fail(*failure) if main_process else failure[1]
    if not main_process:
        return 0
    assert result is not None  # train() returned: no failure
    if result.history:
        print(f"{config.model} on {config.task}: final test accuracy {result.final_test_accuracy:.4f} "
              f"(best {result.best_test_accuracy:.4f} at epoch {result.best_epoch})")
    else:
        print("nothing trained (epochs = 0)")
    for label, path in (("metrics", result.metrics_path), ("checkpoint", result.checkpoint_path),
                        ("best model (spikingrnn.io.load_model)", result.best_path)):
        if os.path.exists(path):
            print(f"{label}: {path}")
    if result.plots:
        print("plots: " + ", ".join(result.plots))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spikingrnn", description="Spiking recurrent networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a SpikingLSTM on scikit-learn's digits (offline, ~1 min)")
    for field in fields(DemoConfig):
        demo.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    train = commands.add_parser("train", help="train a spiking RNN classifier on an offline dataset "
                                              "(metrics, checkpoints, resume, plots)")
    _add_train_arguments(train)
    args = parser.parse_args(argv)
    if args.command == "train":
        return _run_train(args)
    config = DemoConfig(**{f.name: getattr(args, f.name) for f in fields(DemoConfig)})
    run_demo(config)
    return 0
