"""The C++ loops' argument checks: every exported entry refuses a wrong call with a RuntimeError that
names the argument, and takes its arguments by position (as ops/cpu/*.py call them) or by keyword.

Each entry gets one correct call built from small tensors the way its Python call site builds them
(``CALLS``), then variations of it, one argument wrong at a time: dtype (and a float dtype other than
the entry's), device (``meta``; ``cuda`` where there is one), contiguity, every size the loops rely on,
the number of dimensions, and the integer arguments out of range.
"""
from __future__ import annotations

import re

import pytest
import torch

from spikingrnn.ops.cpu.extension import loops

compiled = loops()
if compiled is None:  # the calls below are built with the module itself (pack_column_tiles)
    pytest.skip("C++ loops unavailable (no compiler)", allow_module_level=True)

# chunk of K steps from t0 of a T-step sequence (t0 + K == T: a step less is too few), B rows, H units
T, K, T0, B, H, P = 5, 3, 2, 4, 6, 2
BATCH_SIZES = [4, 4, 4, 3, 2]  # packed sequences: rows valid per step (non-increasing, at most B)
STRIDED = {"w_hh_t", "w_hr_t", "w_hh", "w_hr"}  # the per-step GEMMs' weights: any strides


def _words(count: int) -> int:
    return (count + 7) // 8


def _spikes(*shape, dtype, seed=0):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.3).to(dtype)


def _randn(*shape, dtype, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _tiles(w):
    return compiled.pack_column_tiles(w.contiguous())


# ------------------------------------------------------------------ the correct calls, in positional order

def lstm_forward_steps(dtype):  # keep_pre and low-memory outputs at once (the loop fills whatever is given)
    w_hh = _randn(4 * H, H, dtype=dtype)
    return dict(xp=_randn(K, B, 4 * H, dtype=dtype), t0=T0, batch_sizes=list(BATCH_SIZES),
                h=torch.zeros(B, H, dtype=dtype), c=torch.zeros(B, H, dtype=dtype), w_hh_t=w_hh.t(),
                w_hh_tiles=_tiles(w_hh), w_hr_t=None, cell_mode=0, threshold=0.1,
                y=torch.zeros(T, B, H, dtype=dtype), gate_bits=torch.zeros(T, _words(B * 4 * H), dtype=torch.uint8),
                cell_store=torch.zeros(T, B, H, dtype=dtype), cell_bits=False,
                pre_store=torch.zeros(T, B, 4 * H, dtype=dtype), scratch=torch.empty(B, 4 * H, dtype=dtype),
                m=torch.empty(B, H, dtype=dtype), event_density=0.5,
                x_norm_sq=torch.rand(K, B, dtype=torch.float64), w_norm=torch.rand(4 * H, dtype=torch.float64),
                kappa=1e-6, floor=1e-30)


def lstm_forward_steps_projected(dtype):  # proj_size P: h, y [.., P], w_hr_t [H, P]
    call = lstm_forward_steps(dtype)
    call.update(h=torch.zeros(B, P, dtype=dtype), w_hh_t=_randn(4 * H, P, dtype=dtype).t().contiguous(),
                w_hh_tiles=None, w_hr_t=_randn(P, H, dtype=dtype).t().contiguous(), y=torch.zeros(T, B, P, dtype=dtype),
                cell_store=torch.zeros(T, _words(B * H), dtype=torch.uint8), cell_bits=True)
    return call


def lstm_backward_steps(dtype):
    return dict(u=_randn(K, B, 4 * H, dtype=dtype), deriv=None, gates=_spikes(K, B, 4 * H, dtype=dtype),
                cell_scale=_randn(K, B, H, dtype=dtype), c_prev=_spikes(K, B, H, dtype=dtype, seed=1),
                c_after=_spikes(K, B, H, dtype=dtype, seed=2), dy=_randn(K, B, H, dtype=dtype, seed=3), t0=T0,
                batch_sizes=list(BATCH_SIZES), w_hh=_randn(4 * H, H, dtype=dtype), w_hr=None,
                dh_carry=torch.zeros(B, H, dtype=dtype), dc_carry=torch.zeros(B, H, dtype=dtype),
                d_pre=torch.zeros(K, B, 4 * H, dtype=dtype), dh_all=None, dm_buffer=None, kind1=2, alpha1=2.0,
                kind2=1, alpha2=4.0)


def lstm_backward_steps_projected(dtype):  # with w_hr [P, H]: dh_all and dm_buffer; derivatives given
    call = lstm_backward_steps(dtype)
    call.update(deriv=_randn(K, B, 4 * H, dtype=dtype, seed=4), dy=_randn(K, B, P, dtype=dtype),
                w_hh=_randn(4 * H, P, dtype=dtype), w_hr=_randn(P, H, dtype=dtype),
                dh_carry=torch.zeros(B, P, dtype=dtype),
                dh_all=torch.zeros(K, B, P, dtype=dtype), dm_buffer=torch.empty(B, H, dtype=dtype), kind1=-1, kind2=-1)
    return call


def lstm_cell_scan(dtype):
    return dict(gates=_spikes(K, B, 4 * H, dtype=dtype), signs=False, c_start=torch.zeros(B, H, dtype=dtype), t0=T0,
                batch_sizes=list(BATCH_SIZES), cell_mode=2, threshold=0.5,
                cells=torch.empty(K + 1, B, H, dtype=dtype))


def set_gate_signs(dtype):
    listed = [((2 * k + 1) << 1) | (k % 2) for k in range(2 * T)]  # two gates listed per step of the sequence
    return dict(u=_randn(K, B, 4 * H, dtype=dtype), entries=torch.tensor(listed, dtype=torch.int32),
                offsets=torch.arange(0, 2 * T + 1, 2, dtype=torch.int64), t0=T0)


def gru_forward_steps(dtype):
    w_hh = _randn(3 * H, H, dtype=dtype)
    return dict(xp=_randn(K, B, 3 * H, dtype=dtype), t0=T0, batch_sizes=list(BATCH_SIZES),
                h=torch.zeros(B, H, dtype=dtype), w_hh_t=w_hh.t().contiguous(), w_hh_tiles=_tiles(w_hh),
                b_hh=_randn(3 * H, dtype=dtype), y=torch.zeros(T, B, H, dtype=dtype),
                gate_bits=torch.zeros(T, _words(B * 3 * H), dtype=torch.uint8),
                pre_store=torch.zeros(T, B, 4 * H, dtype=dtype), scratch=torch.empty(B, 3 * H, dtype=dtype),
                event_density=0.5)


def gru_backward_steps(dtype):
    return dict(u=_randn(K, B, 4 * H, dtype=dtype), deriv=None, gates=_spikes(K, B, 3 * H, dtype=dtype),
                h_prev=_spikes(K, B, H, dtype=dtype, seed=1), dy=_randn(K, B, H, dtype=dtype, seed=2), t0=T0,
                batch_sizes=list(BATCH_SIZES), w_hh=_randn(3 * H, H, dtype=dtype),
                dh_carry=torch.zeros(B, H, dtype=dtype), d_hidden_pre=torch.zeros(K, B, 3 * H, dtype=dtype),
                d_input_pre=torch.zeros(K, B, 3 * H, dtype=dtype), kind1=0, alpha1=1.5, kind2=7, alpha2=1.0)


def gru_backward_steps_derivatives(dtype):  # derivatives given (a user-defined surrogate): no kinds
    call = gru_backward_steps(dtype)
    call.update(deriv=_randn(K, B, 3 * H, dtype=dtype, seed=5), gates=None, kind1=-1, kind2=-1)
    return call


def sigmoid_lstm_forward_steps(dtype):  # the sigmoid form (gates="sigmoid"): analog gates and cell kept
    w_hh = _randn(4 * H, H, dtype=dtype)
    return dict(xp=_randn(K, B, 4 * H, dtype=dtype), t0=T0, batch_sizes=list(BATCH_SIZES),
                h=torch.zeros(B, H, dtype=dtype), c=torch.zeros(B, H, dtype=dtype), w_hh_t=w_hh.t(),
                w_hh_tiles=_tiles(w_hh), w_hr_t=None, threshold=0.25, y=torch.zeros(T, B, H, dtype=dtype),
                gate_store=torch.zeros(T, B, 4 * H, dtype=dtype), cell_store=torch.zeros(T, B, H, dtype=dtype),
                scratch=torch.empty(B, 4 * H, dtype=dtype), m=torch.empty(B, H, dtype=dtype), event_density=0.5)


def sigmoid_lstm_forward_steps_projected(dtype):  # proj_size P: h, y [.., P], w_hr_t [H, P]
    call = sigmoid_lstm_forward_steps(dtype)
    call.update(h=torch.zeros(B, P, dtype=dtype), w_hh_t=_randn(4 * H, P, dtype=dtype).t().contiguous(),
                w_hh_tiles=None, w_hr_t=_randn(P, H, dtype=dtype).t().contiguous(), y=torch.zeros(T, B, P, dtype=dtype))
    return call


def sigmoid_lstm_backward_steps(dtype):
    return dict(gates=torch.rand(K, B, 4 * H, generator=torch.Generator().manual_seed(0), dtype=dtype),
                c_prev=_randn(K, B, H, dtype=dtype, seed=1), c_after=_randn(K, B, H, dtype=dtype, seed=2),
                spike_deriv=None, dy=_randn(K, B, H, dtype=dtype, seed=4),
                t0=T0, batch_sizes=list(BATCH_SIZES), w_hh=_randn(4 * H, H, dtype=dtype), w_hr=None,
                dh_carry=torch.zeros(B, H, dtype=dtype), dc_carry=torch.zeros(B, H, dtype=dtype),
                d_pre=torch.zeros(K, B, 4 * H, dtype=dtype), dh_all=None, dm_buffer=None, threshold=0.25, kind=0,
                alpha=1.0)


def sigmoid_lstm_backward_steps_projected(dtype):  # with w_hr [P, H]: dh_all and dm_buffer
    call = sigmoid_lstm_backward_steps(dtype)
    call.update(dy=_randn(K, B, P, dtype=dtype), w_hh=_randn(4 * H, P, dtype=dtype), w_hr=_randn(P, H, dtype=dtype),
                dh_carry=torch.zeros(B, P, dtype=dtype), dh_all=torch.zeros(K, B, P, dtype=dtype),
                dm_buffer=torch.empty(B, H, dtype=dtype), spike_deriv=_randn(K, B, H, dtype=dtype, seed=3).abs(),
                kind=-1)
    return call


def sigmoid_gru_forward_steps(dtype):  # h: the spikes fed back, s: the analog state
    w_hh = _randn(3 * H, H, dtype=dtype)
    return dict(xp=_randn(K, B, 3 * H, dtype=dtype), t0=T0, batch_sizes=list(BATCH_SIZES),
                h=torch.zeros(B, H, dtype=dtype), s=torch.zeros(B, H, dtype=dtype), w_hh_t=w_hh.t().contiguous(),
                w_hh_tiles=_tiles(w_hh), b_hh=_randn(3 * H, dtype=dtype), threshold=0.25,
                y=torch.zeros(T, B, H, dtype=dtype), gate_store=torch.zeros(T, B, 4 * H, dtype=dtype),
                state_store=torch.zeros(T, B, H, dtype=dtype), scratch=torch.empty(B, 3 * H, dtype=dtype),
                event_density=0.5)


def sigmoid_gru_backward_steps(dtype):
    return dict(gates=torch.rand(K, B, 4 * H, generator=torch.Generator().manual_seed(0), dtype=dtype),
                s_prev=_randn(K, B, H, dtype=dtype, seed=1), s_after=_randn(K, B, H, dtype=dtype, seed=5),
                spike_deriv=None, dy=_randn(K, B, H, dtype=dtype, seed=3), t0=T0, batch_sizes=list(BATCH_SIZES),
                w_hh=_randn(3 * H, H, dtype=dtype), dh_carry=torch.zeros(B, H, dtype=dtype),
                ds_carry=torch.zeros(B, H, dtype=dtype), d_hidden_pre=torch.zeros(K, B, 3 * H, dtype=dtype),
                d_input_pre=torch.zeros(K, B, 3 * H, dtype=dtype), threshold=0.25, kind=3, alpha=1.0)


def sigmoid_gru_backward_steps_derivatives(dtype):  # derivatives given (a user-defined surrogate): no kind
    call = sigmoid_gru_backward_steps(dtype)
    call.update(spike_deriv=_randn(K, B, H, dtype=dtype, seed=2).abs(), kind=-1)
    return call


def leaky_rnn_forward_steps(dtype):  # leak=β: h the spikes fed back, v the analog membrane
    w_hh = _randn(H, H, dtype=dtype)
    return dict(xp=_randn(K, B, H, dtype=dtype), t0=T0, batch_sizes=list(BATCH_SIZES), h=torch.zeros(B, H, dtype=dtype),
                v=torch.zeros(B, H, dtype=dtype), w_hh_t=w_hh.t(), w_hh_tiles=_tiles(w_hh), leak=0.9, threshold=0.25,
                y=torch.zeros(T, B, H, dtype=dtype), state_store=torch.zeros(T, B, H, dtype=dtype),
                scratch=torch.empty(B, H, dtype=dtype), event_density=0.5)


def leaky_rnn_backward_steps(dtype):
    return dict(v_after=_randn(K, B, H, dtype=dtype, seed=2), spike_deriv=None,
                dy=_randn(K, B, H, dtype=dtype, seed=1), t0=T0, batch_sizes=list(BATCH_SIZES),
                w_hh=_randn(H, H, dtype=dtype), leak=0.9, dh_carry=torch.zeros(B, H, dtype=dtype),
                dv_carry=torch.zeros(B, H, dtype=dtype), d_pre=torch.zeros(K, B, H, dtype=dtype), threshold=0.25,
                kind=6, alpha=2.0)


def leaky_rnn_backward_steps_derivatives(dtype):  # derivatives given (a user-defined surrogate): no kind
    call = leaky_rnn_backward_steps(dtype)
    call.update(spike_deriv=_randn(K, B, H, dtype=dtype).abs(), kind=-1)
    return call


def rnn_forward_steps(dtype):
    w_hh = _randn(H, H, dtype=dtype)
    return dict(xp=_randn(K, B, H, dtype=dtype), t0=T0, batch_sizes=list(BATCH_SIZES), h=torch.zeros(B, H, dtype=dtype),
                w_hh_t=w_hh.t().contiguous(), w_hh_tiles=_tiles(w_hh), y=torch.zeros(T, B, H, dtype=dtype),
                pre_store=torch.zeros(T, B, H, dtype=dtype), event_density=0.5)


def rnn_backward_steps(dtype):
    return dict(scale=_randn(K, B, H, dtype=dtype), dy=_randn(K, B, H, dtype=dtype, seed=1), t0=T0,
                batch_sizes=list(BATCH_SIZES), w_hh=_randn(H, H, dtype=dtype), dh_carry=torch.zeros(B, H, dtype=dtype),
                d_pre=torch.zeros(K, B, H, dtype=dtype))


def unpack_bit_rows(dtype):
    return dict(bits=torch.randint(0, 256, (K, _words(B * H)), dtype=torch.uint8),
                out=torch.empty(K, B, H, dtype=dtype))


def pack_column_tiles(dtype):
    return dict(w=_randn(3 * H, B, dtype=dtype))


def binary_matmul(dtype):
    w = _randn(3 * H, B, dtype=dtype)  # [N, K]
    return dict(x=_spikes(K, B, dtype=dtype), w_tiles=_tiles(w), N=3 * H, bias=_randn(3 * H, dtype=dtype),
                out=torch.empty(K, 3 * H, dtype=dtype), max_density=1.0)


def binary_weight_grad(dtype):
    return dict(d=_randn(K * B, 3 * H, dtype=dtype), x=_spikes(K * B, H, dtype=dtype),
                grad_t=torch.zeros(H, 3 * H, dtype=dtype), max_density=1.0)


def advise_huge_pages(dtype):
    return dict(t=torch.empty(3 << 20, dtype=torch.uint8))


def use_blas(dtype):
    return dict(allowed=True)


# name -> (entry, correct call)
CALLS = {f.__name__: (name, f) for name, f in [
    ("lstm_forward_steps", lstm_forward_steps), ("lstm_forward_steps", lstm_forward_steps_projected),
    ("lstm_backward_steps", lstm_backward_steps), ("lstm_backward_steps", lstm_backward_steps_projected),
    ("lstm_cell_scan", lstm_cell_scan), ("set_gate_signs", set_gate_signs),
    ("gru_forward_steps", gru_forward_steps), ("gru_backward_steps", gru_backward_steps),
    ("gru_backward_steps", gru_backward_steps_derivatives),
    ("sigmoid_lstm_forward_steps", sigmoid_lstm_forward_steps),
    ("sigmoid_lstm_forward_steps", sigmoid_lstm_forward_steps_projected),
    ("sigmoid_lstm_backward_steps", sigmoid_lstm_backward_steps),
    ("sigmoid_lstm_backward_steps", sigmoid_lstm_backward_steps_projected),
    ("sigmoid_gru_forward_steps", sigmoid_gru_forward_steps),
    ("sigmoid_gru_backward_steps", sigmoid_gru_backward_steps),
    ("sigmoid_gru_backward_steps", sigmoid_gru_backward_steps_derivatives),
    ("leaky_rnn_forward_steps", leaky_rnn_forward_steps),
    ("leaky_rnn_backward_steps", leaky_rnn_backward_steps),
    ("leaky_rnn_backward_steps", leaky_rnn_backward_steps_derivatives),
    ("rnn_forward_steps", rnn_forward_steps),
    ("rnn_backward_steps", rnn_backward_steps), ("unpack_bit_rows", unpack_bit_rows),
    ("pack_column_tiles", pack_column_tiles), ("binary_matmul", binary_matmul),
    ("binary_weight_grad", binary_weight_grad), ("advise_huge_pages", advise_huge_pages), ("use_blas", use_blas)]}
EXPORTED = sorted({entry for entry, _ in CALLS.values()})

# Wrong sizes: call -> argument -> (dimension, change, the argument the error names). A size derived
# from another argument (K, B, H, P) is named where it disagrees first; whole-sequence tensors [T, ...]
# may hold more steps than t0 + K, not fewer (change -1).
SIZES_BY_CALL = {
    "lstm_forward_steps": {
        "xp": [(0, 1, "batch_sizes"), (1, 1, "c"), (2, 1, "xp")],
        "h": [(0, 1, "h"), (1, 1, "h")],
        "c": [(0, 1, "c"), (1, 1, "xp")],
        "w_hh_t": [(0, 1, "w_hh_t"), (1, 1, "w_hh_t")],
        "w_hh_tiles": [(0, 1, "w_hh_tiles"), (1, 1, "w_hh_tiles"), (2, 1, "w_hh_tiles")],
        "y": [(0, -1, "y"), (1, 1, "y"), (2, 1, "y")],
        "gate_bits": [(0, -1, "gate_bits"), (1, 1, "gate_bits")],
        "cell_store": [(0, -1, "cell_store"), (1, 1, "cell_store"), (2, 1, "cell_store")],
        "pre_store": [(0, -1, "pre_store"), (1, 1, "pre_store"), (2, 1, "pre_store")],
        "scratch": [(0, 1, "scratch"), (1, 1, "scratch")],
        "m": [(0, 1, "m"), (1, 1, "m")],
        "x_norm_sq": [(0, 1, "x_norm_sq"), (1, 1, "x_norm_sq")],
        "w_norm": [(0, 1, "w_norm")],
    },
    "lstm_forward_steps_projected": {
        "w_hr_t": [(0, 1, "w_hr_t"), (1, 1, "h")],
        "h": [(1, 1, "h")],
        "y": [(2, 1, "y")],
        "w_hh_t": [(0, 1, "w_hh_t")],
        "cell_store": [(1, 1, "cell_store")],
    },
    "lstm_backward_steps": {
        "u": [(0, 1, "gates"), (1, 1, "dc_carry"), (2, 1, "u")],
        "dc_carry": [(0, 1, "dc_carry"), (1, 1, "u")],
        "dh_carry": [(0, 1, "dh_carry"), (1, 1, "dh_carry")],
        "gates": [(0, 1, "gates"), (1, 1, "gates"), (2, 1, "gates")],
        "cell_scale": [(0, 1, "cell_scale"), (1, 1, "cell_scale"), (2, 1, "cell_scale")],
        "c_prev": [(0, 1, "c_prev"), (1, 1, "c_prev"), (2, 1, "c_prev")],
        "c_after": [(0, 1, "c_after"), (1, 1, "c_after"), (2, 1, "c_after")],
        "dy": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "w_hh": [(0, 1, "w_hh"), (1, 1, "w_hh")],
        "d_pre": [(0, 1, "d_pre"), (1, 1, "d_pre"), (2, 1, "d_pre")],
    },
    "lstm_backward_steps_projected": {
        "w_hr": [(0, 1, "dh_carry"), (1, 1, "w_hr")],
        "deriv": [(2, 1, "deriv")],
        "dh_all": [(0, 1, "dh_all"), (2, 1, "dh_all")],
        "dm_buffer": [(0, 1, "dm_buffer"), (1, 1, "dm_buffer")],
    },
    "lstm_cell_scan": {
        "gates": [(0, 1, "batch_sizes"), (1, 1, "gates"), (2, 1, "gates")],
        "cells": [(0, -1, "cells"), (0, 1, "cells"), (1, 1, "cells"), (2, 1, "cells")],
        "c_start": [(0, 1, "gates"), (1, 1, "gates")],
    },
    "set_gate_signs": {
        "offsets": [(0, -1, "offsets")],
    },
    "gru_forward_steps": {
        "xp": [(0, 1, "batch_sizes"), (1, 1, "h"), (2, 1, "xp")],
        "h": [(0, 1, "h"), (1, 1, "xp")],
        "w_hh_t": [(0, 1, "w_hh_t"), (1, 1, "w_hh_t")],
        "w_hh_tiles": [(0, 1, "w_hh_tiles"), (1, 1, "w_hh_tiles"), (2, 1, "w_hh_tiles")],
        "b_hh": [(0, 1, "b_hh")],
        "y": [(0, -1, "y"), (1, 1, "y"), (2, 1, "y")],
        "gate_bits": [(0, -1, "gate_bits"), (1, 1, "gate_bits")],
        "pre_store": [(0, -1, "pre_store"), (1, 1, "pre_store"), (2, 1, "pre_store")],
        "scratch": [(0, 1, "scratch"), (1, 1, "scratch")],
    },
    "gru_backward_steps": {
        "u": [(0, 1, "gates"), (1, 1, "dh_carry"), (2, 1, "u")],
        "dh_carry": [(0, 1, "dh_carry"), (1, 1, "u")],
        "gates": [(0, 1, "gates"), (1, 1, "gates"), (2, 1, "gates")],
        "h_prev": [(0, 1, "h_prev"), (1, 1, "h_prev"), (2, 1, "h_prev")],
        "dy": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "w_hh": [(0, 1, "w_hh"), (1, 1, "w_hh")],
        "d_hidden_pre": [(0, 1, "d_hidden_pre"), (1, 1, "d_hidden_pre"), (2, 1, "d_hidden_pre")],
        "d_input_pre": [(0, 1, "d_input_pre"), (1, 1, "d_input_pre"), (2, 1, "d_input_pre")],
    },
    "gru_backward_steps_derivatives": {
        "deriv": [(0, 1, "deriv"), (1, 1, "deriv"), (2, 1, "deriv")],
    },
    "sigmoid_lstm_forward_steps": {
        "xp": [(0, 1, "batch_sizes"), (1, 1, "c"), (2, 1, "xp")],
        "h": [(0, 1, "h"), (1, 1, "h")],
        "c": [(0, 1, "c"), (1, 1, "xp")],
        "w_hh_t": [(0, 1, "w_hh_t"), (1, 1, "w_hh_t")],
        "w_hh_tiles": [(0, 1, "w_hh_tiles"), (1, 1, "w_hh_tiles"), (2, 1, "w_hh_tiles")],
        "y": [(0, -1, "y"), (1, 1, "y"), (2, 1, "y")],
        "gate_store": [(0, -1, "gate_store"), (1, 1, "gate_store"), (2, 1, "gate_store")],
        "cell_store": [(0, -1, "cell_store"), (1, 1, "cell_store"), (2, 1, "cell_store")],
        "scratch": [(0, 1, "scratch"), (1, 1, "scratch")],
        "m": [(0, 1, "m"), (1, 1, "m")],
    },
    "sigmoid_lstm_forward_steps_projected": {
        "w_hr_t": [(0, 1, "w_hr_t"), (1, 1, "h")],
        "h": [(1, 1, "h")],
        "y": [(2, 1, "y")],
        "w_hh_t": [(0, 1, "w_hh_t")],
    },
    "sigmoid_lstm_backward_steps": {
        "gates": [(0, 1, "c_prev"), (1, 1, "dc_carry"), (2, 1, "gates")],
        "dc_carry": [(0, 1, "dc_carry"), (1, 1, "gates")],
        "dh_carry": [(0, 1, "dh_carry"), (1, 1, "dh_carry")],
        "c_prev": [(0, 1, "c_prev"), (1, 1, "c_prev"), (2, 1, "c_prev")],
        "c_after": [(0, 1, "c_after"), (1, 1, "c_after"), (2, 1, "c_after")],
        "dy": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "w_hh": [(0, 1, "w_hh"), (1, 1, "w_hh")],
        "d_pre": [(0, 1, "d_pre"), (1, 1, "d_pre"), (2, 1, "d_pre")],
    },
    "sigmoid_lstm_backward_steps_projected": {
        "w_hr": [(0, 1, "dh_carry"), (1, 1, "w_hr")],
        "spike_deriv": [(0, 1, "spike_deriv"), (1, 1, "spike_deriv"), (2, 1, "spike_deriv")],
        "dh_all": [(0, 1, "dh_all"), (1, 1, "dh_all"), (2, 1, "dh_all")],
        "dm_buffer": [(0, 1, "dm_buffer"), (1, 1, "dm_buffer")],
    },
    "sigmoid_gru_forward_steps": {
        "xp": [(0, 1, "batch_sizes"), (1, 1, "s"), (2, 1, "xp")],
        "s": [(0, 1, "s"), (1, 1, "xp")],
        "h": [(0, 1, "h"), (1, 1, "h")],
        "w_hh_t": [(0, 1, "w_hh_t"), (1, 1, "w_hh_t")],
        "w_hh_tiles": [(0, 1, "w_hh_tiles"), (1, 1, "w_hh_tiles"), (2, 1, "w_hh_tiles")],
        "b_hh": [(0, 1, "b_hh")],
        "y": [(0, -1, "y"), (1, 1, "y"), (2, 1, "y")],
        "gate_store": [(0, -1, "gate_store"), (1, 1, "gate_store"), (2, 1, "gate_store")],
        "state_store": [(0, -1, "state_store"), (1, 1, "state_store"), (2, 1, "state_store")],
        "scratch": [(0, 1, "scratch"), (1, 1, "scratch")],
    },
    "sigmoid_gru_backward_steps": {
        "gates": [(0, 1, "s_prev"), (1, 1, "ds_carry"), (2, 1, "gates")],
        "ds_carry": [(0, 1, "ds_carry"), (1, 1, "gates")],
        "s_prev": [(0, 1, "s_prev"), (1, 1, "s_prev"), (2, 1, "s_prev")],
        "s_after": [(0, 1, "s_after"), (1, 1, "s_after"), (2, 1, "s_after")],
        "dy": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "w_hh": [(0, 1, "w_hh"), (1, 1, "w_hh")],
        "dh_carry": [(0, 1, "dh_carry"), (1, 1, "dh_carry")],
        "d_hidden_pre": [(0, 1, "d_hidden_pre"), (1, 1, "d_hidden_pre"), (2, 1, "d_hidden_pre")],
        "d_input_pre": [(0, 1, "d_input_pre"), (1, 1, "d_input_pre"), (2, 1, "d_input_pre")],
    },
    "leaky_rnn_forward_steps": {
        "xp": [(0, 1, "batch_sizes"), (1, 1, "h"), (2, 1, "h")],
        "h": [(0, 1, "h"), (1, 1, "h")],
        "v": [(0, 1, "v"), (1, 1, "v")],
        "w_hh_t": [(0, 1, "w_hh_t"), (1, 1, "w_hh_t")],
        "w_hh_tiles": [(0, 1, "w_hh_tiles"), (1, 1, "w_hh_tiles"), (2, 1, "w_hh_tiles")],
        "y": [(0, -1, "y"), (1, 1, "y"), (2, 1, "y")],
        "state_store": [(0, -1, "state_store"), (1, 1, "state_store"), (2, 1, "state_store")],
        "scratch": [(0, 1, "scratch"), (1, 1, "scratch")],
    },
    "leaky_rnn_backward_steps": {
        "v_after": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "dy": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "w_hh": [(0, 1, "w_hh"), (1, 1, "w_hh")],
        "dh_carry": [(0, 1, "dh_carry"), (1, 1, "dh_carry")],
        "dv_carry": [(0, 1, "dv_carry"), (1, 1, "dv_carry")],
        "d_pre": [(0, 1, "d_pre"), (1, 1, "d_pre"), (2, 1, "d_pre")],
    },
    "leaky_rnn_backward_steps_derivatives": {
        "spike_deriv": [(0, 1, "spike_deriv"), (1, 1, "spike_deriv"), (2, 1, "spike_deriv")],
    },
    "rnn_forward_steps": {
        "xp": [(0, 1, "batch_sizes"), (1, 1, "h"), (2, 1, "h")],
        "h": [(0, 1, "h"), (1, 1, "h")],
        "w_hh_t": [(0, 1, "w_hh_t"), (1, 1, "w_hh_t")],
        "w_hh_tiles": [(0, 1, "w_hh_tiles"), (1, 1, "w_hh_tiles"), (2, 1, "w_hh_tiles")],
        "y": [(0, -1, "y"), (1, 1, "y"), (2, 1, "y")],
        "pre_store": [(0, -1, "pre_store"), (1, 1, "pre_store"), (2, 1, "pre_store")],
    },
    "rnn_backward_steps": {
        "scale": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "dy": [(0, 1, "dy"), (1, 1, "dy"), (2, 1, "dy")],
        "w_hh": [(0, 1, "w_hh"), (1, 1, "w_hh")],
        "dh_carry": [(0, 1, "dh_carry"), (1, 1, "dh_carry")],
        "d_pre": [(0, 1, "d_pre"), (1, 1, "d_pre"), (2, 1, "d_pre")],
    },
    "unpack_bit_rows": {
        "bits": [(0, 1, "out"), (1, 1, "bits")],
        "out": [(0, 1, "out"), (1, 2, "bits")],
    },
    "binary_matmul": {
        "x": [(0, 1, "out"), (1, 1, "w_tiles")],
        "w_tiles": [(0, 1, "w_tiles"), (1, 1, "w_tiles"), (2, 1, "w_tiles")],
        "bias": [(0, 1, "bias")],
        "out": [(0, 1, "out"), (1, 1, "out")],
    },
    "binary_weight_grad": {
        "d": [(0, 1, "x"), (1, 1, "grad_t")],
        "x": [(0, 1, "x"), (1, 1, "grad_t")],
        "grad_t": [(0, 1, "grad_t"), (1, 1, "grad_t")],
    },
}
SIZES = [(call, argument, dim, change, named) for call, arguments in SIZES_BY_CALL.items()
         for argument, changes in arguments.items() for dim, change, named in changes]


def _bad_offsets(call):
    call["offsets"][T0 + 1] = 2 * T + 5  # past the entries


def _negative_entry(call):
    call["entries"][2 * T0] = -2


def _entry_past_step(call):
    call["entries"][2 * T0 + 1] = (B * 4 * H) << 1


# Other wrong calls: (call, what, change of the call, the argument the error names)
WITH_STEPS = [name for name, (entry, _) in CALLS.items() if entry.endswith("_steps") or entry == "lstm_cell_scan"]
VALUES = [(name, "t0 negative", lambda call: call.update(t0=-1), "t0") for name in WITH_STEPS + ["set_gate_signs"]]
VALUES += [(name, "t0 past batch_sizes", lambda call: call.update(t0=T0 + 1), "batch_sizes") for name in WITH_STEPS]
VALUES += [(name, "batch_sizes above B", lambda call: call["batch_sizes"].__setitem__(T0 + 1, B + 1), "batch_sizes")
           for name in WITH_STEPS]
VALUES += [(name, "batch_sizes negative", lambda call: call["batch_sizes"].__setitem__(T0, -1), "batch_sizes")
           for name in WITH_STEPS]
VALUES += [
    ("lstm_forward_steps", "t0 past y", lambda call: call.update(t0=T0 + 1, batch_sizes=[]), "y"),
    ("lstm_forward_steps", "cell_mode 3", lambda call: call.update(cell_mode=3), "cell_mode"),
    ("lstm_forward_steps", "cell_mode -1", lambda call: call.update(cell_mode=-1), "cell_mode"),
    ("lstm_forward_steps", "w_norm missing", lambda call: call.update(w_norm=None), "w_norm"),
    ("lstm_forward_steps", "cell bits as floats", lambda call: call.update(cell_bits=True), "cell_store"),
    ("lstm_forward_steps_projected", "w_hr_t missing", lambda call: call.update(w_hr_t=None), "h"),
    ("lstm_cell_scan", "cell_mode 3", lambda call: call.update(cell_mode=3), "cell_mode"),
    ("lstm_backward_steps", "kind1 unknown", lambda call: call.update(kind1=8), "kind1"),
    ("lstm_backward_steps", "kind1 none without deriv", lambda call: call.update(kind1=-1), "kind1"),
    ("lstm_backward_steps", "kind2 unknown", lambda call: call.update(kind2=100), "kind2"),
    ("lstm_backward_steps", "w_hr without dh_all", lambda call: call.update(w_hr=torch.zeros(H, H)), "dh_all"),
    ("lstm_backward_steps_projected", "kind1 below -1", lambda call: call.update(kind1=-2), "kind1"),
    ("lstm_backward_steps_projected", "dh_all missing", lambda call: call.update(dh_all=None), "dh_all"),
    ("lstm_backward_steps_projected", "dm_buffer missing", lambda call: call.update(dm_buffer=None), "dm_buffer"),
    ("lstm_backward_steps_projected", "w_hr missing", lambda call: call.update(w_hr=None), "dh_carry"),
    ("gru_backward_steps", "kind1 unknown", lambda call: call.update(kind1=8), "kind1"),
    ("gru_backward_steps", "kind2 none without deriv", lambda call: call.update(kind2=-1), "kind2"),
    ("sigmoid_lstm_forward_steps", "t0 past y", lambda call: call.update(t0=T0 + 1, batch_sizes=[]), "y"),
    ("sigmoid_lstm_forward_steps_projected", "w_hr_t missing", lambda call: call.update(w_hr_t=None), "h"),
    ("sigmoid_lstm_backward_steps", "w_hr without dh_all", lambda call: call.update(w_hr=torch.zeros(H, H)),
     "dh_all"),
    ("sigmoid_lstm_backward_steps_projected", "dh_all missing", lambda call: call.update(dh_all=None), "dh_all"),
    ("sigmoid_lstm_backward_steps_projected", "dm_buffer missing", lambda call: call.update(dm_buffer=None),
     "dm_buffer"),
    ("sigmoid_lstm_backward_steps_projected", "w_hr missing", lambda call: call.update(w_hr=None), "dh_carry"),
    ("sigmoid_lstm_backward_steps", "kind unknown", lambda call: call.update(kind=8), "kind"),
    ("sigmoid_lstm_backward_steps", "kind none without spike_deriv", lambda call: call.update(kind=-1), "kind"),
    ("sigmoid_lstm_backward_steps_projected", "kind below -1", lambda call: call.update(kind=-2), "kind"),
    ("sigmoid_gru_forward_steps", "t0 past y", lambda call: call.update(t0=T0 + 1, batch_sizes=[]), "y"),
    ("sigmoid_gru_backward_steps", "kind unknown", lambda call: call.update(kind=8), "kind"),
    ("sigmoid_gru_backward_steps", "kind none without spike_deriv", lambda call: call.update(kind=-1), "kind"),
    ("sigmoid_gru_backward_steps_derivatives", "kind below -1", lambda call: call.update(kind=-2), "kind"),
    ("leaky_rnn_backward_steps", "kind unknown", lambda call: call.update(kind=8), "kind"),
    ("leaky_rnn_backward_steps", "kind none without spike_deriv", lambda call: call.update(kind=-1), "kind"),
    ("leaky_rnn_backward_steps_derivatives", "kind below -1", lambda call: call.update(kind=-2), "kind"),
    ("leaky_rnn_forward_steps", "t0 past y", lambda call: call.update(t0=T0 + 1, batch_sizes=[]), "y"),
    ("set_gate_signs", "offsets past the entries", _bad_offsets, "offsets"),
    ("set_gate_signs", "negative entry", _negative_entry, "entries"),
    ("set_gate_signs", "entry past a step", _entry_past_step, "entries"),
    ("binary_matmul", "N negative", lambda call: call.update(N=-1), "N"),
    ("binary_matmul", "N of more tiles", lambda call: call.update(N=3 * H + 64), "w_tiles"),
]


def _call(name, dtype=torch.float32):
    entry, build = CALLS[name]
    return getattr(compiled, entry), build(dtype)


def _raises(name, call, argument):
    """The call raises a RuntimeError that starts with the entry and the argument's name."""
    function, _ = _call(name)
    entry = CALLS[name][0]
    with pytest.raises(RuntimeError, match=re.escape(f"{entry}: {argument}") + r"\b"):
        function(**call)


def _tensors(name):
    return [arg for arg, value in _call(name)[1].items() if isinstance(value, torch.Tensor)]


def _non_contiguous(t):
    """t's values in a tensor of the same shape and dtype whose last dimension has stride 2."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    view = wide[..., ::2]
    view.copy_(t)
    assert not view.is_contiguous()
    return view


def _resized(t, dim, change):
    shape = list(t.shape)
    shape[dim] += change
    return torch.zeros(shape, dtype=t.dtype)


# ------------------------------------------------------------------------------------------------ tests

def test_every_exported_entry_is_covered():
    exported = sorted(name for name in dir(compiled) if not name.startswith("_"))
    assert exported == EXPORTED


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(CALLS))
def test_correct_call_by_position_and_by_keyword(name, dtype):
    function, call = _call(name, dtype)
    function(*call.values())  # the order of the Python call sites
    function, call = _call(name, dtype)
    function(**call)


def test_keyword_and_positional_calls_agree():
    results = []
    for by_keyword in (False, True):
        function, call = _call("lstm_forward_steps")
        found = function(**call) if by_keyword else function(*call.values())
        results.append([call["y"], call["h"], call["c"], call["gate_bits"], call["pre_store"], *found])
    for ours, theirs in zip(*results):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name, argument", [(name, arg) for name in CALLS for arg in _tensors(name)
                                            if name != "advise_huge_pages"])
def test_wrong_dtype(name, argument):
    _, call = _call(name)
    t = call[argument]
    if t.dtype == torch.float32:
        first_float = next(a for a, v in call.items() if isinstance(v, torch.Tensor) and v.is_floating_point())
        wrong = torch.int32 if argument == first_float else torch.float64  # the first float sets the dtype
    else:
        wrong = torch.float32 if t.dtype != torch.float32 else torch.float64
    call[argument] = t.to(wrong)
    _raises(name, call, argument)


@pytest.mark.parametrize("name, first, argument", [("lstm_forward_steps", "xp", "m"),
                                                   ("gru_backward_steps", "u", "d_input_pre"),
                                                   ("binary_weight_grad", "d", "grad_t"),
                                                   ("sigmoid_lstm_forward_steps", "xp", "m"),
                                                   ("sigmoid_gru_backward_steps", "gates", "d_input_pre"),
                                                   ("leaky_rnn_forward_steps", "xp", "scratch"),
                                                   ("leaky_rnn_backward_steps", "v_after", "d_pre")])
def test_float64_call_refuses_a_float32_tensor(name, first, argument):
    function, call = _call(name, torch.float64)
    call[argument] = call[argument].float()
    with pytest.raises(RuntimeError, match=re.escape(f"{name}: {argument} must be float64 ({first} is float64), "
                                                     "got float32")):
        function(**call)


@pytest.mark.parametrize("device", ["meta", "cuda"])
@pytest.mark.parametrize("name, argument", [(name, arg) for name in CALLS for arg in _tensors(name)])
def test_wrong_device(name, argument, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _, call = _call(name)
    call[argument] = call[argument].to(device)
    _raises(name, call, argument)


@pytest.mark.parametrize("name, argument", [(name, arg) for name in CALLS for arg in _tensors(name)])
def test_non_contiguous(name, argument):
    function, call = _call(name)
    call[argument] = _non_contiguous(call[argument])
    if argument in STRIDED:  # a per-step GEMM's weight: taken with any strides
        function(**call)
    else:
        _raises(name, call, argument)


@pytest.mark.parametrize("name, argument, dim, change, named", SIZES,
                         ids=[f"{s[0]}-{s[1]}-{s[2]}{s[3]:+d}" for s in SIZES])
def test_wrong_size(name, argument, dim, change, named):
    _, call = _call(name)
    call[argument] = _resized(call[argument], dim, change)
    _raises(name, call, named)


@pytest.mark.parametrize("name", [name for name in CALLS if name not in ("advise_huge_pages", "use_blas")])
def test_wrong_number_of_dimensions(name):
    _, call = _call(name)
    first = next(arg for arg in _tensors(name) if call[arg].is_floating_point())
    if name == "unpack_bit_rows":  # out's trailing dimensions are free: the bit rows' are not
        first = "bits"
    call[first] = call[first].unsqueeze(0)
    _raises(name, call, first)


@pytest.mark.parametrize("name, what, change, named", VALUES, ids=[f"{v[0]}-{v[1]}" for v in VALUES])
def test_wrong_value(name, what, change, named):
    _, call = _call(name)
    change(call)
    _raises(name, call, named)


def test_message_says_what_was_expected_and_what_was_given():
    function, call = _call("gru_forward_steps")
    call["scratch"] = torch.empty(B, 3 * H + 1)
    with pytest.raises(RuntimeError, match=re.escape(f"gru_forward_steps: scratch must have shape [{B}, {3 * H}], "
                                                     f"got [{B}, {3 * H + 1}]")):
        function(**call)
    call = _call("lstm_backward_steps")[1]
    call["c_prev"] = call["c_prev"].double()
    with pytest.raises(RuntimeError, match=re.escape("c_prev must be float32 (u is float32), got float64")):
        compiled.lstm_backward_steps(**call)


def test_a_refused_call_writes_nothing():
    function, call = _call("rnn_forward_steps")
    y, h = call["y"].clone(), call["h"].clone()
    call["pre_store"] = _resized(call["pre_store"], 2, 1)
    with pytest.raises(RuntimeError):
        function(**call)
    assert torch.equal(call["y"], y) and torch.equal(call["h"], h)
