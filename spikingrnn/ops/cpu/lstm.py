"""Spiking LSTM over a whole sequence with hand-written BPTT (one layer, one direction).

Forward, chunk by chunk: one product for the chunk's input projections, then per step one product
with the recurrent weights and one fused pointwise pass (C++ loops, or the same loop in PyTorch);
a product with a sparse 0/1 operand is an event-driven sum (csrc/products.h), else a GEMM. Kept for
backward: the input, the initial states, ``h`` and ``c`` after each step (``c`` as bits whenever
it is 0/1), and either the pre-activations (default) or, with ``low_memory``, the gates as bits,
with the input and ``h`` also as bits when they are 0/1. Backward, chunk by chunk from the end:
take (or recompute with two products) the pre-activations, run the reverse loop (one fused pass
and one GEMM per step; the pass evaluates the built-in surrogates' derivatives itself, a
user-defined surrogate's are computed for the chunk in PyTorch first), then add the weight
gradients (one GEMM each, or event-driven sums for sparse 0/1 inputs).
"""
from __future__ import annotations

import torch

from ..gemm import projection
from . import common
from .common import (GradSums, InputProjection, SequenceConfig, Workspace, before, before_and_after, carried, chunks,
                     new_output, rows)
from .extension import loops
from .storage import StepStore, bit_rows, is_binary, pack_rows

CELL_MODES = {"clamp": 0, "accumulate": 1, "spike": 2}


def lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, config: SequenceConfig):
    """Returns ``(y [T, B, P], h_n, c_n, gate_bits, cell_store, cell_binary, pre)``; ``gate_bits``,
    ``cell_store`` are ``None`` unless ``config.save``, ``pre [T, B, 4H]`` unless also ``keep_pre``."""
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0] // 4
    dtype = x.dtype
    h, c = h0.contiguous().clone(), c0.contiguous().clone()
    y = new_output(config, steps, batch, h0.shape[1], dtype=dtype)
    cell_binary = config.cell_state == "spike" or (config.cell_state == "clamp" and is_binary(c0))
    gate_bits = cell_store = pre = None
    if config.save and config.keep_pre:
        pre = new_output(config, steps, batch, 4 * hidden, dtype=dtype)
    if config.save:
        gate_bits = None if config.keep_pre else bit_rows(steps, batch * 4 * hidden)
        cell_store = bit_rows(steps, batch * hidden) if cell_binary else new_output(config, steps, batch, hidden,
                                                                                      dtype=dtype)
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
        xp = project(x[t0:t1])
        if compiled is not None:
            compiled.lstm_forward_steps(xp, t0, config.batch_sizes or [], h, c, w_hh_t, w_hh_tiles, w_hr_t,
                                        CELL_MODES[config.cell_state], config.threshold, y, gate_bits, cell_store,
                                        cell_binary, pre, scratch, m, event_density)
        else:
            _forward_steps(xp, t0, config, h, c, w_hh_t, w_hr_t, y, gate_bits, cell_store, cell_binary, pre)
    return y, h, c, gate_bits, cell_store, cell_binary, pre


def _forward_steps(xp, t0, config, h, c, w_hh_t, w_hr_t, y, gate_bits, cell_store, cell_binary, pre):
    """PyTorch version of the C++ ``lstm_forward_steps`` (same contract)."""
    chunk, batch, four_hidden = xp.shape
    hidden = four_hidden // 4
    gates = xp.new_zeros(chunk, batch, four_hidden) if gate_bits is not None else None
    cells = xp.new_zeros(chunk, batch, hidden) if cell_store is not None and cell_binary else None
    for k in range(chunk):
        t = t0 + k
        n = rows(config, t, batch)
        s = torch.addmm(xp[k, :n], h[:n], w_hh_t)
        if pre is not None:
            pre[t, :n] = s
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
        y, h_n, c_n, gate_bits, cell_store, cell_binary, pre = lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                                                            w_hr, config)
        if config.save:
            hidden = c0.shape[1]
            # bits only in low-memory mode: packing costs passes, and the float x and y often stay
            # alive anyway (the previous layer's output, this layer's output)
            compact = not config.keep_pre
            x_store, x_kept = StepStore.wrap(x, compact and is_binary(x))
            y_store, y_kept = StepStore.wrap(y, compact and w_hr is None and cell_binary)
            ctx.config = config
            ctx.stores = (x_store, y_store, StepStore((x.shape[1], 4 * hidden), True),
                          StepStore((x.shape[1], hidden), cell_binary))
            ctx.save_for_backward(x_kept, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y_kept, gate_bits, cell_store, pre)
        return y, h_n, c_n

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        x_kept, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y_kept, gate_bits, cell_kept, pre = ctx.saved_tensors
        config = ctx.config
        x_store, y_store, gate_store, cell_store = ctx.stores
        dtype = h0.dtype
        steps, batch = y_kept.shape[0], h0.shape[0]
        hidden = c0.shape[1]
        compiled = loops()
        sums = GradSums(ctx, ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr"),
                        dict(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr))
        dx = sums.input_grad(steps, batch, w_ih.shape[1], dtype)
        dh_carry, dc_carry = carried(dh_n, h0), carried(dc_n, c0)
        dy = dy.contiguous()
        w_hh_c = w_hh.contiguous()
        w_hr_c = None if w_hr is None else w_hr.contiguous()
        project_x = InputProjection(w_ih, b_ih, b_hh)
        project_h = InputProjection(w_hh)
        work = Workspace()
        for t0, t1 in reversed(chunks(steps, batch, 4 * hidden, h0.element_size())):
            chunk = t1 - t0
            x = x_store.rows(x_kept, t0, t1, dtype)
            h_prev = before(h0, y_store, y_kept, t0, t1, dtype)
            c_prev, c_after = before_and_after(c0, cell_store, cell_kept, t0, t1, dtype)
            if pre is not None:
                u, gates = pre[t0:t1], None
            else:
                u = project_x(x) + project_h(h_prev)
                gates = gate_store.rows(gate_bits, t0, t1, dtype)
            # the C++ loop evaluates built-in surrogates itself: no [K, B, 4H] derivative tensor
            kinds = common.surrogate_kinds(config) if compiled is not None else None
            deriv = gate_derivatives(u, config) if kinds is None else None
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
