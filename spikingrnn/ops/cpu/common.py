"""What the CPU backend's sequence Functions share: configuration, chunking, small helpers."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

CHUNK_BYTES = 1 << 20
MIN_CHUNK_ROWS = 512


class SequenceConfig(NamedTuple):
    """Static arguments of one (layer, direction) Function.

    ``batch_sizes[t]`` is the number of leading rows valid at step ``t`` (non-increasing;
    ``None``: all rows, every step). ``derivative*(u, alpha)`` are surrogate derivatives: 1 for the
    gates i, f, o / r, z / h (and the LSTM's spiking cell), 2 for g / n. ``save`` is false when no
    gradient will be asked for: nothing is kept. ``keep_pre`` keeps the pre-activations for
    backward (faster); otherwise backward recomputes them with two GEMMs per chunk (less memory).
    """

    batch_sizes: list[int] | None
    derivative1: Callable
    alpha1: float
    derivative2: Callable
    alpha2: float
    cell_state: str = "clamp"
    threshold: float = 0.1
    save: bool = True
    keep_pre: bool = True


def rows(config: SequenceConfig, t: int, batch: int) -> int:
    """Rows valid at step ``t``."""
    return batch if config.batch_sizes is None else config.batch_sizes[t]


def chunks(steps: int, batch: int, gates: int, itemsize: int) -> list[tuple[int, int]]:
    """``[t0, t1)`` ranges of about ``CHUNK_BYTES`` of per-step gate buffers (``batch * gates``
    values a step), so that a chunk's buffers stay in cache and no buffer is allocated for the
    whole sequence, but of at least ``MIN_CHUNK_ROWS`` rows (steps x batch), so that the chunk's
    input-projection and weight-gradient GEMMs stay large enough to run at full speed."""
    size = CHUNK_BYTES // max(1, batch * gates * itemsize)
    size = max(1, size, -(-MIN_CHUNK_ROWS // max(1, batch)))
    size = min(steps, size)
    return [(t0, min(steps, t0 + size)) for t0 in range(0, steps, size)]


def new_output(config: SequenceConfig, *shape: int, dtype: torch.dtype) -> Tensor:
    """An output buffer: uninitialised when every row runs every step, else zeros (rows past
    their length are never written and must read as zero)."""
    if config.batch_sizes is None:
        return torch.empty(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)


def before(first: Tensor, store, stored: Tensor, t0: int, t1: int, dtype: torch.dtype) -> Tensor:
    """States before steps ``[t0, t1)``: ``first`` (the initial state) then the stored states after."""
    if t0 > 0:
        return store.rows(stored, t0 - 1, t1 - 1, dtype)
    return torch.cat([first.unsqueeze(0), store.rows(stored, 0, t1 - 1, dtype)])


class GradSums:
    """Weight and bias gradients accumulated chunk by chunk with one GEMM each.

    ``GradSums(ctx, names, params)``: ``names`` are the Function's inputs in order (``"x"`` first),
    ``params`` the weights by name; ``needs[name]`` says whether autograd asked for that input's
    gradient; ``grads`` holds zeros to accumulate into (``None`` where not needed).
    """

    def __init__(self, ctx, names: tuple[str, ...], params: dict[str, Tensor | None]):
        self.needs = dict(zip(names, ctx.needs_input_grad))
        self.grads = {name: torch.zeros_like(p) if p is not None and self.needs[name] else None
                      for name, p in params.items()}

    def input_grad(self, steps: int, batch: int, input_size: int, dtype: torch.dtype) -> Tensor | None:
        """Storage for the input gradient ``[T, B, I]``, or ``None`` when it is not needed."""
        return torch.empty(steps, batch, input_size, dtype=dtype) if self.needs["x"] else None

    def add_weight(self, name: str, d_pre: Tensor, inputs: Tensor) -> None:
        """``grad += sum_k d_pre[k]^T inputs[k]`` for ``[K, B, G]`` and ``[K, B, F]``."""
        if self.grads[name] is not None:
            self.grads[name].addmm_(d_pre.reshape(-1, d_pre.shape[-1]).t(), inputs.reshape(-1, inputs.shape[-1]))

    def add_bias(self, name: str, d_pre: Tensor) -> None:
        if self.grads[name] is not None:
            self.grads[name].add_(d_pre.sum(dim=(0, 1)))

    def add_chunk(self, x: Tensor, h_prev: Tensor, d_input_pre: Tensor, d_hidden_pre: Tensor | None = None) -> None:
        """One chunk's ``w_ih``/``b_ih`` gradients from the input-side pre-activation gradients and
        ``w_hh``/``b_hh`` from the hidden-side ones (the same tensor except in the GRU)."""
        d_hidden_pre = d_input_pre if d_hidden_pre is None else d_hidden_pre
        self.add_weight("w_ih", d_input_pre, x)
        self.add_weight("w_hh", d_hidden_pre, h_prev)
        self.add_bias("b_ih", d_input_pre)
        self.add_bias("b_hh", d_hidden_pre)


def carried(grad: Tensor | None, like: Tensor) -> Tensor:
    """A writable contiguous copy of an incoming state gradient (zeros when autograd passed ``None``)."""
    return grad.contiguous().clone() if grad is not None else torch.zeros_like(like).contiguous()
