"""Export of trained spiking stacks to other runtimes: :func:`export_onnx` (needs the ``onnx`` extra)."""
from .onnx import export_onnx

__all__ = ["export_onnx"]
