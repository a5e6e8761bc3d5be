"""Graph capture (``torch.compile``, ``torch.export``, ``torch.jit.trace``, ``torch.onnx.export``): what the
backends ask about it and the errors for the routes that cannot capture a spiking RNN correctly."""
from __future__ import annotations

import torch

__all__ = ["capturing", "JIT_TRACE_UNSUPPORTED", "LEGACY_ONNX_EXPORT"]

JIT_TRACE_UNSUPPORTED = (
    "spikingrnn: torch.jit.trace records a spiking RNN as one graph node per layer and direction only on the cpu "
    "backend with built-in surrogates (spikingrnn.surrogate's classes in spiking mode); this module runs another "
    "backend or surrogate, whose time loop tracing would unroll into a fixed number of steps (wrong at any other "
    "sequence length). Use torch.export.export or torch.compile, or backend='cpu' with a built-in surrogate")

LEGACY_ONNX_EXPORT = (
    "spikingrnn: the TorchScript-based ONNX exporter (torch.onnx.export(..., dynamo=False)) cannot export a spiking "
    "RNN: tracing unrolls its time loop into a fixed number of steps, which would be wrong at any other sequence "
    "length. Use torch.onnx.export(model, args, f) with the default dynamo=True: the spiking layers export as ONNX "
    "Scan loops with a free sequence length")


def capturing() -> bool:
    """Whether a graph is being captured (``torch.compile``/``torch.export`` or ``torch.jit.trace``)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()
