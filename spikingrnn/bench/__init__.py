"""Benchmark harness: torch.nn recurrent layers vs every spikingrnn backend vs SpikingJelly 2.0.

Run ``python -m spikingrnn.bench --help``. The building blocks are importable for tests and
notebooks: :func:`run_benchmark` (interleaved train/inference timing and saved-for-backward
bytes), :func:`run_scaling` (growth with sequence length), :class:`SavedTensorCounter` (bytes
saved for backward), :func:`render_document` / :func:`main_table` (markdown).
"""
from .cli import main
from .document import render_document
from .memory import SavedTensorCounter, module_saved_bytes, saved_bytes
from .report import main_table, scaling_table
from .runner import BenchConfig, run_benchmark
from .scaling import ScalingConfig, run_scaling
from .shapes import DEFAULT_SHAPES, Shape, parse_shapes

__all__ = ["main", "render_document", "SavedTensorCounter", "module_saved_bytes", "saved_bytes", "main_table",
           "scaling_table", "BenchConfig", "run_benchmark", "ScalingConfig", "run_scaling", "DEFAULT_SHAPES",
           "Shape", "parse_shapes"]
