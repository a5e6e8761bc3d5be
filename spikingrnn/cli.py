"""Command line: ``spikingrnn demo`` (also ``python -m spikingrnn``)."""
from __future__ import annotations

import argparse
from dataclasses import fields

from .demo import DemoConfig, run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spikingrnn", description="Spiking recurrent networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a SpikingLSTM on scikit-learn's digits (offline, ~1 min)")
    for field in fields(DemoConfig):
        demo.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    config = DemoConfig(**{f.name: getattr(args, f.name) for f in fields(DemoConfig)})
    run_demo(config)
    return 0
