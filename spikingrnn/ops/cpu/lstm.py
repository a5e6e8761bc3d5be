"""Spiking LSTM over a whole sequence with hand-written BPTT (one layer, one direction).

Forward, chunk by chunk: one product for the chunk's input projections, then per step one product
with the recurrent weights and one fused pointwise pass (C++ loops, or the same loop in PyTorch);
a product with a sparse 0/1 operand is an event-driven sum (csrc/products.h), else a GEMM. Kept for
backward: the input, the initial states unless all zeros, ``h`` after each step and either (default)
the pre-activations and ``c`` after each step (bits whenever it is 0/1) or, with ``low_memory``, the
input and ``h`` as bits when they are 0/1, the few gates whose pre-activation lies within rounding
of zero (gate_signs.py; all the gates as bits where that list would be longer) and ``c`` before each
chunk. Backward, chunk by chunk from the end: take (or recompute with two products, then fire, and
replay ``c`` through the chunk) the pre-activations, run the reverse loop (one fused pass
and one GEMM per step; the pass evaluates the built-in surrogates' derivatives itself, a
user-defined surrogate's are computed for the chunk in PyTorch first), then add the weight
gradients (one GEMM each, or event-driven sums for sparse 0/1 inputs).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...functional.cells import CELL_STATE_CODES
from ..gemm import projection
from ..storage import StepStore, bit_rows, is_binary, pack_rows, restore_zero, zero_or_kept
from . import common
from . import gate_signs
from .common import (GradSums, InputProjection, SequenceConfig, Workspace, before, before_and_after, carried, chunks,
                     new_output, rows)
from .extension import loops
from .gate_signs import GateSource


class LSTMKept(NamedTuple):
    """What ``lstm_forward`` produced for backward (all ``None`` unless ``config.save``).

    With ``config.keep_pre``: ``pre [T, B, 4H]`` and ``cells``, the cell state after each step (bit
    rows ``[T, words(B*H)]`` when ``cell_binary``, else ``[T, B, H]``). In low-memory mode:
    ``gate_bits [T, words(B*4H)]`` and the chunks' near-zero gate lists ``near_zero``/``counts``
    (see gate_signs.py; ``counts`` ``None`` when not listed), and ``cells``, the cell state before
    each chunk (``[chunks, words(B*H)]`` bits or ``[chunks, B, H]``; a spiking cell's c0 need not
    be 0/1): backward replays the rest.
    """

    pre: Tensor | None
    gate_bits: Tensor | None
    near_zero: list[Tensor]
    counts: list[Tensor] | None
    cells: Tensor | None
    cell_binary: bool  # c is 0/1 after every step
    cells_binary: bool  # ``cells`` are bit rows


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config: SequenceConfig):
    """Returns ``(y [T, B, P], h_n, c_n, kept)``, ``kept`` an :class:`LSTMKept`."""
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0] // 4
    dtype = x.dtype
    h, c = h0.contiguous().clone(), c0.contiguous().clone()
    y = new_output(config, steps, batch, h0.shape[1], dtype=dtype)
    cell_binary = config.cell_state == "spike" or (config.cell_state == "clamp" and is_binary(c0))
    low_memory = config.save and not config.keep_pre
    gate_bits = cell_store = pre = band = None
    if config.save and config.keep_pre:
        pre = new_output(config, steps, batch, 4 * hidden, dtype=dtype)
        cell_store = bit_rows(steps, batch * hidden) if cell_binary else new_output(config, steps, batch, hidden,
                                                                                      dtype=dtype)
    if low_memory:
        gate_bits = bit_rows(steps, batch * 4 * hidden)
        if gate_signs.listable(batch, 4 * hidden):
            band = gate_signs.rounding_band(w_ih, w_hh, b_ih, b_hh)
    near_zero: list[Tensor] = []
    counts: list[Tensor] | None = [] if band is not None else None
    chunk_cells: list[Tensor] = []
    x_norm_sq = gate_signs.squared_norms(x) if band is not None else None
    scratch = torch.empty(batch, 4 * hidden, dtype=dtype)
    m = torch.empty(batch, hidden, dtype=dtype)
    w_hr_t = None if w_hr is None else w_hr.t().contiguous()
    compiled = loops()
    project = InputProjection(w_ih, b_ih, b_hh)
    # h = o * c is 0/1 only with a 0/1 cell and no projection: otherwise no per-step scan for spikes
    event_density = common.EVENT_DENSITY if cell_binary and w_hr is None else 0.0
    w_hh_tiles = common.column_tiles(w_hh, event_density)
    # MKL runs per-step GEMMs of few rows 1.1-1.5x faster on a contiguous W_hh^T than on the view,
    # but the copy only pays where the GEMM is the rule: not where h is 0/1 (sparse: the tiles)
    w_hh_t = w_hh.t() if w_hh_tiles is not None else w_hh.t().contiguous()
    for t0, t1 in chunks(steps, batch, 4 * hidden, x.element_size()):
        if low_memory:
            chunk_cells.append(c.clone())
        xp = project(x[t0:t1])
        if compiled is not None:
            found = compiled.lstm_forward_steps(xp, t0, config.batch_sizes or [], h, c, w_hh_t, w_hh_tiles, w_hr_t,
                                                CELL_STATE_CODES[config.cell_state], config.threshold, y, gate_bits,
                                                cell_store, cell_binary, pre, scratch, m, event_density,
                                                None if x_norm_sq is None else x_norm_sq[t0:t1],
                                                None if band is None else band.w_norm,
                                                0.0 if band is None else band.kappa,
                                                0.0 if band is None else band.floor)
        else:
            found = _forward_steps(xp, t0, config, h, c, w_hh_t, w_hr_t, y, gate_bits, cell_store, cell_binary, pre,
                                   None if x_norm_sq is None else x_norm_sq[t0:t1], band)
        if band is not None:
            assert counts is not None  # made where band is
            near_zero.append(found[0])
            counts.append(found[1])
    cells_binary = cell_binary
    if low_memory:
        cells_binary = cell_binary and is_binary(c0)
        cell_store = pack_rows(torch.stack(chunk_cells)) if cells_binary else torch.stack(chunk_cells)
    return y, h, c, LSTMKept(pre, gate_bits, near_zero, counts, cell_store, cell_binary, cells_binary)


def _forward_steps(xp, t0, config, h, c, w_hh_t, w_hr_t, y, gate_bits, cell_store, cell_binary, pre, x_norm_sq=None,
                   band=None):
    """PyTorch version of the C++ ``lstm_forward_steps`` (same contract)."""
    chunk, batch, four_hidden = xp.shape
    hidden = four_hidden // 4
    gates = xp.new_zeros(chunk, batch, four_hidden) if gate_bits is not None else None
    cells = xp.new_zeros(chunk, batch, hidden) if cell_store is not None and cell_binary else None
    near_zero, counts = [], torch.zeros(chunk if band is not None else 0, dtype=torch.int64)
    for k in range(chunk):
        t = t0 + k
        n = rows(config, t, batch)
        s = torch.addmm(xp[k, :n], h[:n], w_hh_t)
        if pre is not None:
            pre[t, :n] = s
        if band is not None:
            near_zero.append(gate_signs.near_zero_gates(s, h[:n], x_norm_sq[k, :n], band))
            counts[k] = near_zero[-1].numel()
        s.ge_(0)
        c_new = c[:n] * s[:, hidden:2 * hidden]
        c_new.addcmul_(s[:, :hidden], s[:, 2 * hidden:3 * hidden])
        if config.cell_state == "clamp":
            c_new.clamp_(max=1.0)
        elif config.cell_state == "spike":
            c_new.ge_(config.threshold)
        c[:n] = c_new
        h_new = c_new * s[:, 3 * hidden:]
        if w_hr_t is not None:
            h_new = torch.mm(h_new, w_hr_t)
        h[:n] = h_new
        y[t, :n] = h_new
        if gates is not None:
            gates[k, :n] = s
        if cells is not None:
            cells[k, :n] = c_new
        elif cell_store is not None:
            cell_store[t, :n] = c_new
    if gates is not None:
        gate_bits[t0:t0 + chunk] = pack_rows(gates)
    if cells is not None:
        cell_store[t0:t0 + chunk] = pack_rows(cells)
    return (torch.cat(near_zero) if near_zero else torch.zeros(0, dtype=torch.int32)), counts


def replay_cells(gates: Tensor, signs: bool, c_start: Tensor, t0: int, config: SequenceConfig) -> Tensor:
    """The cell states ``[K + 1, B, H]`` before steps ``t0, ..., t0 + K - 1`` and after the last,
    replayed from ``c_start [B, H]`` and the steps' gates ``[K, B, 4H]`` as forward computed them:
    0/1, or with ``signs`` pre-activations whose signs they are."""
    chunk, batch, four_hidden = gates.shape
    hidden = four_hidden // 4
    cells = torch.empty(chunk + 1, batch, hidden, dtype=gates.dtype)
    compiled = loops()
    if compiled is not None:
        compiled.lstm_cell_scan(gates.contiguous(), signs, c_start.contiguous(), t0, config.batch_sizes or [],
                                CELL_STATE_CODES[config.cell_state], config.threshold, cells)
        return cells
    if signs:
        gates = (gates >= 0).to(gates.dtype)
    cells[0] = c_start
    for k in range(chunk):
        n = rows(config, t0 + k, batch)
        i, f, g = gates[k, :n, :hidden], gates[k, :n, hidden:2 * hidden], gates[k, :n, 2 * hidden:3 * hidden]
        c_new = cells[k, :n] * f + i * g
        if config.cell_state == "clamp":
            c_new.clamp_(max=1.0)
        elif config.cell_state == "spike":
            c_new = (c_new >= config.threshold).to(gates.dtype)
        cells[k + 1, :n] = c_new
        cells[k + 1, n:] = cells[k, n:]
    return cells


def gate_derivatives(u, config: SequenceConfig):
    """Surrogate derivatives of the pre-activations ``u [K, B, 4H]``: ``derivative2`` for g, else ``derivative1``."""
    hidden = u.shape[2] // 4
    deriv = config.derivative1(u, config.alpha1)
    if (config.derivative2, config.alpha2) != (config.derivative1, config.alpha1):
        deriv[:, :, 2 * hidden:3 * hidden] = config.derivative2(u[:, :, 2 * hidden:3 * hidden], config.alpha2)
    return deriv


def _backward_steps(u, deriv, gates, cell_scale, c_prev, c_after, dy, t0, config, w_hh, w_hr, dh_carry, dc_carry,
                    d_pre, dh_all):
    """PyTorch version of the C++ ``lstm_backward_steps`` (same contract)."""
    chunk, batch, four_hidden = u.shape
    hidden = four_hidden // 4
    i, f, g, o = (gates if gates is not None else (u >= 0).to(u.dtype)).view(chunk, batch, 4, hidden).unbind(2)
    d_i, d_f, d_g, d_o = deriv.view(chunk, batch, 4, hidden).unbind(2)
    # d_pre[k] = scale[k] * (dc, dc, dc, dm): every factor that does not depend on the recurrence
    scale = torch.stack([d_i * g, d_f * c_prev, d_g * i, d_o * c_after], dim=2)
    for k in range(chunk - 1, -1, -1):
        n = rows(config, t0 + k, batch)
        dh = dh_carry[:n].add_(dy[k, :n])
        if w_hr is None:
            dm = dh
        else:
            dh_all[k, :n] = dh
            dm = torch.mm(dh, w_hr)
        dc = dc_carry[:n].addcmul_(dm, o[k, :n])
        if cell_scale is not None:
            dc.mul_(cell_scale[k, :n])
        step = d_pre[k, :n].view(n, 4, hidden)
        torch.mul(scale[k, :n, :3], dc.unsqueeze(1), out=step[:, :3])
        torch.mul(scale[k, :n, 3], dm, out=step[:, 3])
        dc.mul_(f[k, :n])
        torch.mm(d_pre[k, :n], w_hh, out=dh_carry[:n])


class LSTMSequence(torch.autograd.Function):
    """``(x [T, B, I], h0 [B, P], c0 [B, H], w_ih, w_hh, b_ih, b_hh, w_hr, config) -> (y [T, B, P], h_n, c_n)``.

    ``P`` is ``proj_size`` when ``w_hr`` is given, else ``H``. Rows past their length keep their
    state and output zeros.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config: SequenceConfig):
        y, h_n, c_n, kept = lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config)
        if config.save:
            batch, hidden = c0.shape
            # bits only in low-memory mode: packing costs passes, and the float x and y often stay
            # alive anyway (the previous layer's output, this layer's output)
            compact = not config.keep_pre
            x_store, x_kept = StepStore.wrap(x, compact and is_binary(x))
            y_store, y_kept = StepStore.wrap(y, compact and w_hr is None and kept.cell_binary)
            gate_source: GateSource | None = None
            gate_saved: tuple[Tensor | None, Tensor | None] = (None, None)
            if compact:
                gate_source, gate_saved = GateSource.choose(kept.gate_bits, kept.near_zero, kept.counts, batch,
                                                            4 * hidden)
            ctx.config = config
            ctx.state_shapes = (tuple(h0.shape), tuple(c0.shape))
            ctx.stores = (x_store, y_store, gate_source, StepStore((batch, hidden), kept.cells_binary))
            # c0 is the first of the low-memory mode's chunk cells
            ctx.save_for_backward(x_kept, zero_or_kept(h0), zero_or_kept(c0) if config.keep_pre else None, w_ih, w_hh,
                                  b_ih, b_hh, w_hr, y_kept, *gate_saved, kept.cells, kept.pre)
        return y, h_n, c_n

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        (x_kept, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y_kept, gate_saved_a, gate_saved_b, cell_kept,
         pre) = ctx.saved_tensors
        config = ctx.config
        x_store, y_store, gate_source, cell_store = ctx.stores
        dtype = w_hh.dtype
        h0 = restore_zero(h0, ctx.state_shapes[0], w_hh)
        c0 = restore_zero(c0, ctx.state_shapes[1], w_hh) if config.keep_pre else None
        steps, batch = y_kept.shape[0], h0.shape[0]
        hidden = ctx.state_shapes[1][1]
        compiled = loops()
        sums = GradSums(ctx, ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr"),
                        dict(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr))
        dx = sums.input_grad(steps, batch, w_ih.shape[1], dtype)
        dh_carry = carried(dh_n, h0)
        dc_carry = carried(dc_n, torch.empty(ctx.state_shapes[1], dtype=dtype))
        dy = dy.contiguous()
        w_hh_c = w_hh.contiguous()
        w_hr_c = None if w_hr is None else w_hr.contiguous()
        project_x = InputProjection(w_ih, b_ih, b_hh)
        project_h = InputProjection(w_hh)
        work = Workspace()
        spans = chunks(steps, batch, 4 * hidden, h0.element_size())
        for index in reversed(range(len(spans))):
            t0, t1 = spans[index]
            chunk = t1 - t0
            x = x_store.rows(x_kept, t0, t1, dtype)
            h_prev = before(h0, y_store, y_kept, t0, t1, dtype)
            # the C++ loop evaluates built-in surrogates itself: no [K, B, 4H] derivative tensor
            kinds = common.surrogate_kinds(config) if compiled is not None else None
            if pre is not None:
                u, gates = pre[t0:t1], None
                deriv = gate_derivatives(u, config) if kinds is None else None
                c_prev, c_after = before_and_after(c0, cell_store, cell_kept, t0, t1, dtype)
            else:
                u = project_x(x).add_(project_h(h_prev))  # project_x's buffer, until the next chunk
                deriv = gate_derivatives(u, config) if kinds is None else None  # before any sign is set
                gates = gate_source.gates((gate_saved_a, gate_saved_b), u, t0, t1)
                c_start = cell_store.rows(cell_kept, index, index + 1, dtype)[0]
                cells = replay_cells(u if gates is None else gates, gates is None, c_start, t0, config)
                c_prev, c_after = cells[:-1], cells[1:]
            fired = gates
            if fired is None and (config.cell_state == "spike" or w_hr is not None):
                fired = (u >= 0).to(dtype)
            cell_scale = None
            if config.cell_state == "spike":
                i, f, g = fired.view(chunk, batch, 4, hidden).unbind(2)[:3]
                cell_scale = config.derivative1(f * c_prev + i * g - config.threshold, config.alpha1)
            d_pre = work.take("d_pre", chunk, batch, 4 * hidden, dtype=dtype, zero=config.batch_sizes is not None)
            dh_all = torch.zeros(chunk, batch, h0.shape[1], dtype=dtype) if w_hr is not None else None
            if compiled is not None:
                dm_buffer = torch.empty(batch, hidden, dtype=dtype) if w_hr is not None else None
                compiled.lstm_backward_steps(u, deriv, gates, cell_scale, c_prev.contiguous(), c_after.contiguous(),
                                             dy[t0:t1], t0, config.batch_sizes or [], w_hh_c, w_hr_c, dh_carry,
                                             dc_carry, d_pre, dh_all, dm_buffer, *(kinds or (-1, 0.0, -1, 0.0)))
            else:
                _backward_steps(u, deriv, gates, cell_scale, c_prev, c_after, dy[t0:t1], t0, config, w_hh_c, w_hr_c,
                                dh_carry, dc_carry, d_pre, dh_all)
            if dx is not None:
                projection(d_pre, w_ih.t(), out=dx[t0:t1])
            sums.add_chunk(x, h_prev, d_pre)
            if dh_all is not None:
                sums.add_weight("w_hr", dh_all, c_after * fired[:, :, 3 * hidden:])
        grads = sums.grads
        return (dx, dh_carry, dc_carry, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"], grads["w_hr"],
                None)
