"""Shared helpers of the test suite: the historical names of builders.py's builders (kept for the
modules that import them, e.g. tests/test_triton_cuda.py)."""
import torch

from builders import build_model, dyadic, layer_copy

__all__ = ["copy_layer", "dyadic", "dyadic_model"]


def copy_layer(stack, layer: int, **overrides):
    """A one-layer module of the same kind holding ``layer``'s weights of ``stack`` (:func:`builders.layer_copy`)."""
    return layer_copy(stack, layer, **overrides)


def dyadic_model(mode="LSTM", layers=1, bidirectional=False, proj=0, cell_state="clamp", s1="erf", s2=None, hidden=8,
                 inputs=4, seed=0, bias=True, dropout=0.0, exact=True):
    """A float32 spiking stack on the reference backend. With ``exact``, every weight and bias is a
    multiple of 1/8 in [-1, 1] and the input biases are offset by 2^-10, so that every forward sum of
    dyadic inputs is exact in any order and no pre-activation is exactly 0; else the default init
    (:func:`builders.build_model` with ``weights="dyadic"`` / ``"init"``)."""
    return build_model(mode, inputs, hidden, layers, bidirectional=bidirectional, proj_size=proj,
                       cell_state=cell_state, surrogate=s1, surrogate2=s2, bias=bias, dropout=dropout,
                       dtype=torch.float32, backend="reference", seed=seed, weights="dyadic" if exact else "init")
