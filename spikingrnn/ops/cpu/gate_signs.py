"""The low-memory LSTM's gates: read in backward from the signs of recomputed pre-activations.

The low-memory mode keeps no per-step gates. Backward recomputes the pre-activations
``u' = x W_ih^T + h W_hh^T + b`` with GEMMs that sum in another order than forward did, so ``u'``
and the forward's ``u`` differ by rounding, and a gate ``u >= 0`` can be read from ``u'`` except
where ``u`` lies within that rounding of zero. A sum of ``N`` products, in any order, with or
without fused multiply-adds, errs by at most ``gamma_N * sum_k |w_k z_k|`` with
``gamma_N = N u / (1 - N u)`` and ``u`` the unit roundoff, half of ``torch.finfo(dtype).eps``
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.1; underflow adds at
most ``floor``), and
``sum_k |w_k z_k| <= ||w|| ||z||`` (Cauchy-Schwarz) over ``z = (x, h, 1, 1)`` and
``w = (W_ih row, W_hh row, b_ih, b_hh)``. Both sums err by at most that, so wherever
``|u| > 2 gamma_N ||w|| ||z|| + floor``, ``u'`` has the sign of ``u``.

Forward therefore lists only the gates inside that band, with their values (C++
``list_near_zero_gates``; :func:`near_zero_gates` in PyTorch), 4 bytes each: 0.01-0.3 % of the
gates on the benchmark shapes, against 4 bits per unit and step for all of them as bits. Where the
list would take more bytes than the bits (inputs and weights that put many ``u`` at or near 0),
the bits are kept instead. Backward (:meth:`GateSource.gates`) gives the listed ``u'`` the signs of
their gates and fires ``u' >= 0``: the gates of forward, exactly.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..storage import unpack_rows
from .extension import loops

BIAS_TERMS = 2  # b_ih and b_hh: two entries 1 of z
MAX_LISTED_ROW = 1 << 30  # entries (row * 4H + j) << 1 | gate must fit an int32


class RoundingBand(NamedTuple):
    """Gate ``j`` of a row with ``||z||^2 = x_norm_sq + ||h||^2 + BIAS_TERMS`` is listed when
    ``|u| <= kappa * ||z|| * w_norm[j] + floor``."""

    kappa: float
    floor: float
    w_norm: Tensor  # [4H] float64


def rounding_band(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> RoundingBand:
    """The band of pre-activations whose sign backward's recomputation may not reproduce (module
    docstring), for weights ``w_ih [4H, I]``, ``w_hh [4H, P]`` and biases ``[4H]``."""
    info = torch.finfo(w_ih.dtype)
    terms = w_ih.shape[1] + w_hh.shape[1] + BIAS_TERMS
    unit = info.eps / 2
    gamma = terms * unit / (1 - terms * unit)
    # 1 % above the bound pays for the roundings of the norms and the comparison themselves
    kappa = 2 * gamma * 1.01
    floor = 4 * terms * info.tiny
    with torch.no_grad():
        w_sq = squared_norms(w_ih) + squared_norms(w_hh)
        for b in (b_ih, b_hh):
            if b is not None:
                w_sq += b.double().square()
    return RoundingBand(kappa, floor, w_sq.sqrt_().contiguous())


def squared_norms(t: Tensor) -> Tensor:
    """Upper bounds of the squared norms of ``t [..., F]`` along its last dimension (``[...]``, float64):
    computed in t's precision (fast) and enlarged by their own rounding bound (a sum of F squares)."""
    terms = t.shape[-1] + 2
    unit = torch.finfo(t.dtype).eps / 2
    gamma = terms * unit / (1 - terms * unit)
    return torch.linalg.vector_norm(t, dim=-1).double().square_().mul_(1 + 2 * gamma)


def listable(batch: int, four_hidden: int) -> bool:
    """Whether the entries of a step's ``batch * 4H`` gates fit an int32."""
    return batch * four_hidden < MAX_LISTED_ROW


def near_zero_gates(u: Tensor, h_prev: Tensor, x_norm_sq: Tensor, band: RoundingBand) -> Tensor:
    """The entries of one step's near-zero gates, PyTorch version of the C++ ``list_near_zero_gates``:
    ``u [n, 4H]`` pre-activations, ``h_prev [n, P]`` the state they were computed from,
    ``x_norm_sq [n]``; int32 ``((row * 4H + j) << 1) | gate`` in row-major order."""
    z_norm = (x_norm_sq + h_prev.double().pow(2).sum(1) + BIAS_TERMS).sqrt()
    near = u.double().abs() <= band.kappa * z_norm.unsqueeze(1) * band.w_norm + band.floor
    rows, cols = near.nonzero(as_tuple=True)
    fired = (u[rows, cols] >= 0).long()
    return (((rows * u.shape[1] + cols) << 1) | fired).to(torch.int32)


class GateSource:
    """How a low-memory LSTM's backward gets the 0/1 gates ``[K, B, 4H]`` of steps ``[t0, t1)``.

    ``listed``: saved ``(entries, offsets)``, the near-zero gates of step ``t`` being
    ``entries[offsets[t]:offsets[t + 1]]``; the others fire from the recomputed ``u``. Else
    ``(bits, empty)``: the bit rows of every gate.
    """

    def __init__(self, listed: bool, batch: int, four_hidden: int):
        self.listed, self.batch, self.four_hidden = listed, batch, four_hidden

    @classmethod
    def choose(cls, gate_bits: Tensor, entries: list[Tensor], counts: list[Tensor] | None, batch: int,
               four_hidden: int) -> tuple["GateSource", tuple[Tensor, Tensor]]:
        """The smaller of the forward's near-zero lists (per chunk; ``counts`` ``None`` when none were
        made) and its bit rows ``gate_bits [T, words(B * 4H)]``: the source and the tensors to save."""
        if counts is not None:
            steps = gate_bits.shape[0]
            offsets = torch.zeros(steps + 1, dtype=torch.int64)
            torch.cumsum(torch.cat(counts), 0, out=offsets[1:])
            listed = torch.cat(entries)
            if listed.numel() * listed.element_size() + offsets.numel() * 8 < gate_bits.numel():
                return cls(True, batch, four_hidden), (listed, offsets)
        return cls(False, batch, four_hidden), (gate_bits, gate_bits.new_empty(0))

    def gates(self, saved: tuple[Tensor, Tensor], u: Tensor, t0: int, t1: int) -> Tensor | None:
        """The gates of steps ``[t0, t1)`` from their recomputed pre-activations ``u [K, B, 4H]``: ``None``
        when listed, after giving each listed ``u`` the sign of its gate (its magnitude kept, so that
        the built-in surrogates' derivatives, even functions, see the recomputed value): then the
        gates are ``u >= 0``; else the 0/1 gates unpacked from the bits."""
        if not self.listed:
            return unpack_rows(saved[0][t0:t1], (self.batch, self.four_hidden), u.dtype)
        entries, offsets = saved
        compiled = loops()
        if compiled is not None and u.dtype in (torch.float32, torch.float64):
            compiled.set_gate_signs(u, entries, offsets, t0)
            return None
        lo, hi = int(offsets[t0]), int(offsets[t1])
        if hi > lo:
            listed = entries[lo:hi].long()
            step = torch.repeat_interleave(torch.arange(t1 - t0), offsets[t0 + 1:t1 + 1] - offsets[t0:t1])
            where = step * (self.batch * self.four_hidden) + (listed >> 1)
            flat = u.view(-1)
            magnitude = flat[where].abs()
            # a gate that did not fire needs u < 0: -0.0 would fire
            flat[where] = torch.where((listed & 1).bool(), magnitude,
                                      -magnitude.clamp_min(torch.finfo(u.dtype).tiny))
        return None
