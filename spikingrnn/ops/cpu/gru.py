"""Spiking GRU over a whole sequence with hand-written BPTT (one layer, one direction).

``r = Θ(x_r + h_r)``, ``z = Θ(x_z + h_z)``, ``n = Θ(x_n + r * h_n)`` with ``x_* = W_i* x + b_i*``
and ``h_* = W_h* h + b_h*``; ``h' = (1 - z) * n + z * h``. Chunked like the LSTM: kept for backward
are the input, ``h0``, ``h`` after each step and the pre-activations (the gates are their signs);
with ``low_memory`` the gates as bits instead, input and ``h`` as bits when 0/1, and backward
recomputes ``x_*`` and ``h_*`` with two GEMMs per chunk. The reverse loop (C++) evaluates the
built-in surrogates' derivatives itself and writes the input- and hidden-side pre-activation
gradients, which differ only in the n gate (``d u_n`` and ``d u_n * r``).
"""
from __future__ import annotations

import torch

from ..gemm import projection
from ..storage import StepStore, bit_rows, is_binary, pack_rows, restore_zero, zero_or_kept
from . import common
from .common import GradSums, InputProjection, SequenceConfig, Workspace, before, carried, chunks, new_output, rows
from .extension import loops


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
    """Returns ``(y [T, B, H], h_n, gate_bits, pre)``; when ``config.save``: ``pre [T, B, 4H]``
    (``u_r|u_z|u_n|h_n``) if ``keep_pre``, else ``gate_bits``; ``None`` otherwise."""
    steps, batch, _ = x.shape
    hidden = w_ih.shape[0] // 3
    h = h0.contiguous().clone()
    y = new_output(config, steps, batch, hidden, dtype=x.dtype)
    # with the pre-activations kept, the gates are their signs: bits only in low-memory mode
    gate_bits = bit_rows(steps, batch * 3 * hidden) if config.save and not config.keep_pre else None
    pre = new_output(config, steps, batch, 4 * hidden, dtype=x.dtype) if config.save and config.keep_pre else None
    scratch = torch.empty(batch, 3 * hidden, dtype=x.dtype)
    w_hh_t = w_hh.t().contiguous()  # about half of h fires: mostly per-step GEMMs, faster on a contiguous W_hh^T
    compiled = loops()
    project = InputProjection(w_ih, b_ih)
    # h' = z ? h : n stays 0/1 only from a 0/1 h0: otherwise no per-step scan for spikes
    event_density = common.EVENT_DENSITY if is_binary(h0) else 0.0
    w_hh_tiles = common.column_tiles(w_hh, event_density)
    for t0, t1 in chunks(steps, batch, 3 * hidden, x.element_size()):
        xp = project(x[t0:t1])
        if compiled is not None:
            compiled.gru_forward_steps(xp, t0, config.batch_sizes or [], h, w_hh_t, w_hh_tiles, b_hh, y, gate_bits,
                                       pre, scratch, event_density)
        else:
            _forward_steps(xp, t0, config, h, w_hh_t, b_hh, y, gate_bits, pre)
    return y, h, gate_bits, pre


def _forward_steps(xp, t0, config, h, w_hh_t, b_hh, y, gate_bits, pre):
    """PyTorch version of the C++ ``gru_forward_steps`` (same contract)."""
    chunk, batch, three_hidden = xp.shape
    hidden = three_hidden // 3
    gates = xp.new_zeros(chunk, batch, 3, hidden) if gate_bits is not None else None
    for k in range(chunk):
        t = t0 + k
        n = rows(config, t, batch)
        hp = (torch.mm(h[:n], w_hh_t) if b_hh is None else torch.addmm(b_hh, h[:n], w_hh_t)).view(n, 3, hidden)
        x_r, x_z, x_n = xp[k, :n].view(n, 3, hidden).unbind(1)
        u_r, u_z = x_r + hp[:, 0], x_z + hp[:, 1]
        r = (u_r >= 0).to(xp.dtype)
        u_n = torch.addcmul(x_n, r, hp[:, 2])
        if pre is not None:
            pre[t, :n] = torch.cat([u_r, u_z, u_n, hp[:, 2]], dim=1)
        z = (u_z >= 0).to(xp.dtype)
        new = (u_n >= 0).to(xp.dtype)
        # the reference's arithmetic, not a select: equal for a finite h, and a NaN or Inf in h (from h0)
        # becomes NaN where z is 0, as there
        h_new = torch.addcmul((1 - z) * new, z, h[:n])
        h[:n] = h_new
        y[t, :n] = h_new
        if gates is not None:
            gates[k, :n] = torch.stack([r, z, new], dim=1)
    if gates is not None:
        gate_bits[t0:t0 + chunk] = pack_rows(gates)


def gate_derivatives(u, config: SequenceConfig):
    """Surrogate derivatives ``[K, B, 3H]`` (r|z|n) of the pre-activations ``u [K, B, 4H]`` (u_r|u_z|u_n|h_n)."""
    hidden = u.shape[2] // 4
    return torch.cat([config.derivative1(u[:, :, :2 * hidden], config.alpha1),
                      config.derivative2(u[:, :, 2 * hidden:3 * hidden], config.alpha2)], dim=2)


def _backward_steps(u, deriv, gates, h_prev, dy, t0, config, w_hh, dh_carry, d_hidden_pre, d_input_pre):
    """PyTorch version of the C++ ``gru_backward_steps`` (same contract; ``deriv`` must be given)."""
    chunk, batch, four_hidden = u.shape
    hidden = four_hidden // 4
    h_n = u[:, :, 3 * hidden:]
    if gates is None:
        gates = (u[:, :, :3 * hidden] >= 0).to(u.dtype)
    r, z, new = gates.view(chunk, batch, 3, hidden).unbind(2)
    d_r, d_z, d_n = deriv.view(chunk, batch, 3, hidden).unbind(2)
    hidden_pre = d_hidden_pre.view(chunk, batch, 3, hidden)
    input_pre = d_input_pre.view(chunk, batch, 3, hidden)
    for k in range(chunk - 1, -1, -1):
        n = rows(config, t0 + k, batch)
        d = dh_carry[:n].add_(dy[k, :n])
        du_n = torch.mul(d * (1 - z[k, :n]), d_n[k, :n], out=input_pre[k, :n, 2])
        torch.mul(d * (h_prev[k, :n] - new[k, :n]), d_z[k, :n], out=hidden_pre[k, :n, 1])
        torch.mul(du_n * h_n[k, :n], d_r[k, :n], out=hidden_pre[k, :n, 0])
        torch.mul(du_n, r[k, :n], out=hidden_pre[k, :n, 2])
        input_pre[k, :n, :2] = hidden_pre[k, :n, :2]
        d.mul_(z[k, :n]).addmm_(d_hidden_pre[k, :n], w_hh)


class GRUSequence(torch.autograd.Function):
    """``(x [T, B, I], h0 [B, H], w_ih, w_hh, b_ih, b_hh, config) -> (y [T, B, H], h_n)``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, config: SequenceConfig):
        y, h_n, gate_bits, pre = gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, config)
        if config.save:
            compact = not config.keep_pre  # bits only in low-memory mode (see lstm.py)
            x_store, x_kept = StepStore.wrap(x, compact and is_binary(x))
            y_store, y_kept = StepStore.wrap(y, compact and is_binary(h0))
            ctx.config = config
            ctx.stores = (x_store, y_store, StepStore((x.shape[1], w_ih.shape[0]), True))
            ctx.state_shape = tuple(h0.shape)
            ctx.save_for_backward(x_kept, zero_or_kept(h0), w_ih, w_hh, b_ih, b_hh, y_kept, gate_bits, pre)
        return y, h_n

    @staticmethod
    def backward(ctx, dy, dh_n):
        x_kept, h0, w_ih, w_hh, b_ih, b_hh, y_kept, gate_bits, pre = ctx.saved_tensors
        h0 = restore_zero(h0, ctx.state_shape, w_hh)
        config = ctx.config
        x_store, y_store, gate_store = ctx.stores
        dtype = h0.dtype
        steps, (batch, hidden) = y_kept.shape[0], h0.shape
        compiled = loops()
        sums = GradSums(ctx, ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"),
                        dict(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh))
        dx = sums.input_grad(steps, batch, w_ih.shape[1], dtype)
        dh_carry = carried(dh_n, h0)
        dy = dy.contiguous()
        w_hh_c = w_hh.contiguous()
        project_x = InputProjection(w_ih, b_ih)
        project_h = InputProjection(w_hh, b_hh)
        work = Workspace()
        for t0, t1 in reversed(chunks(steps, batch, 3 * hidden, h0.element_size())):
            chunk = t1 - t0
            x = x_store.rows(x_kept, t0, t1, dtype)
            h_prev = before(h0, y_store, y_kept, t0, t1, dtype)
            if pre is not None:
                u, gates = pre[t0:t1], None  # the gates are the signs of the kept u
            else:  # recompute u (u_r|u_z|u_n|h_n) with the gates fired in forward
                gates = gate_store.rows(gate_bits, t0, t1, dtype)
                u = work.take("u", chunk, batch, 4, hidden, dtype=dtype)
                x_r, x_z, x_n = project_x(x).view(chunk, batch, 3, hidden).unbind(2)
                h_r, h_z, h_n = project_h(h_prev).view(chunk, batch, 3, hidden).unbind(2)
                torch.add(x_r, h_r, out=u[:, :, 0])
                torch.add(x_z, h_z, out=u[:, :, 1])
                torch.addcmul(x_n, gates.view(chunk, batch, 3, hidden)[:, :, 0], h_n, out=u[:, :, 2])
                u[:, :, 3] = h_n
                u = u.view(chunk, batch, 4 * hidden)
            # the C++ loop evaluates built-in surrogates itself: no [K, B, 3H] derivative tensor
            kinds = common.surrogate_kinds(config) if compiled is not None else None
            deriv = gate_derivatives(u, config) if kinds is None else None
            packed = config.batch_sizes is not None  # rows past their length are never written: zeros
            d_hidden_pre = work.take("d_hidden_pre", chunk, batch, 3 * hidden, dtype=dtype, zero=packed)
            d_input_pre = work.take("d_input_pre", chunk, batch, 3 * hidden, dtype=dtype, zero=packed)
            if compiled is not None:
                compiled.gru_backward_steps(u, deriv, gates, h_prev.contiguous(), dy[t0:t1], t0,
                                            config.batch_sizes or [], w_hh_c, dh_carry, d_hidden_pre, d_input_pre,
                                            *(kinds or (-1, 0.0, -1, 0.0)))
            else:
                _backward_steps(u, deriv, gates, h_prev, dy[t0:t1], t0, config, w_hh_c, dh_carry, d_hidden_pre,
                                d_input_pre)
            if dx is not None:
                projection(d_input_pre, w_ih.t(), out=dx[t0:t1])
            sums.add_chunk(x, h_prev, d_input_pre, d_hidden_pre)
        grads = sums.grads
        return dx, dh_carry, grads["w_ih"], grads["w_hh"], grads["b_ih"], grads["b_hh"], None
