"""Command line: ``spikingrnn demo`` and ``spikingrnn train`` (also ``python -m spikingrnn``)."""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import fields

from .demo import DemoConfig, run_demo


def _field_help(cls) -> dict[str, str]:
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
    from .train.config import TrainConfig

    descriptions = _field_help(TrainConfig)
    for field in fields(TrainConfig):
        flag = f"--{field.name.replace('_', '-')}"
        names = [flag, "--out"] if field.name == "out_dir" else [flag]
        text = f"{descriptions.get(field.name, '')} (default: {field.default})".strip()
        if isinstance(field.default, bool):
            parser.add_argument(*names, dest=field.name, action=argparse.BooleanOptionalAction,
                                default=field.default, help=text)
        else:
            parser.add_argument(*names, dest=field.name, type=type(field.default), default=field.default,
                                help=text)
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoint.pt (to the same weights as an uninterrupted run)")


def _run_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    try:
        config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    except ValueError as error:
        raise SystemExit(f"spikingrnn train: {error}")
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

    try:
        result = train(config, resume=args.resume, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
    if not main_process:
        return 0
    if result.history:
        print(f"{config.model} on {config.task}: final test accuracy {result.final_test_accuracy:.4f} "
              f"(best {result.best_test_accuracy:.4f} at epoch {result.best_epoch})")
    else:
        print("nothing trained (epochs = 0)")
    print(f"metrics: {result.metrics_path}")
    print(f"checkpoint: {result.checkpoint_path}  best model: {result.best_path}")
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
