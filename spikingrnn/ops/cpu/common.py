"""What the CPU backend's sequence Functions share: configuration, chunking, small helpers."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ...surrogate import KERNEL_IDS
from ..gemm import projection
from .extension import loops

CHUNK_BYTES = 1 << 20
MIN_CHUNK_ROWS = 512
# The C++ loops multiply a 0/1 operand by a weight matrix as a sum of the weight rows its 1s pick
# (no multiplications, work proportional to the 1s) when at most this fraction of it is 1, and run
# the dense GEMM otherwise: below these densities the event-driven sums measured faster than MKL's
# GEMM on this project's benchmark shapes (``python -m spikingrnn.bench.events --threads 1|2``):
# products with the hidden state or a spiking input take 0.5-0.65 of the GEMM's time at 0.3 of
# ones and 0.75-0.96 at 0.5 (where GRU and vanilla-RNN states usually are); weight gradients
# (sums of the rows of d listed by each column of x) take 0.45-0.55 at 0.1, 0.6-0.8 at 0.2 and
# break even at ~0.3, with 1 or 2 threads.
EVENT_DENSITY = 0.5
WEIGHT_GRAD_EVENT_DENSITY = 0.25
# The built-in surrogates' derivatives, which the C++ LSTM and GRU backward loops evaluate themselves
# (csrc/surrogates.h) instead of receiving a [K, B, 4H] or [K, B, 3H] tensor of them; to their kernel
# id (spikingrnn.surrogate.KERNEL_IDS). A subclass that overrides ``derivative`` is not in here and
# gets the PyTorch path. FUSED_DERIVATIVES = False forces that path.
SURROGATE_KINDS = {cls.derivative: kernel for cls, kernel in KERNEL_IDS.items()}
FUSED_DERIVATIVES = True


class SequenceConfig(NamedTuple):
    """Static arguments of one (layer, direction) Function.

    ``batch_sizes[t]`` is the number of leading rows valid at step ``t`` (non-increasing;
    ``None``: all rows, every step). ``derivative*(u, alpha)`` are surrogate derivatives: 1 for the
    gates i, f, o / r, z / h (and the LSTM's spiking cell), 2 for g / n. ``save`` is false when no
    gradient will be asked for: nothing is kept. ``keep_pre`` keeps the pre-activations for
    backward (faster); otherwise backward recomputes them with two GEMMs per chunk (less memory).
    ``gates``: the form of the LSTM's and GRU's gates; ``leak``: the vanilla RNN's leak (``None``: the
    seed's cell); ``spike_threshold``: θ of the emitted spikes of the sigmoid form (sigmoid_lstm.py,
    sigmoid_gru.py) and the leaky RNN (leaky_rnn.py).
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
    spike_threshold: float = 0.25
    gates: str = "heaviside"
    leak: float | None = None


def surrogate_kinds(config: "SequenceConfig") -> tuple[int, float, int, float] | None:
    """``(kind1, alpha1, kind2, alpha2)`` when the C++ loops can evaluate both surrogate derivatives."""
    kind1, kind2 = SURROGATE_KINDS.get(config.derivative1), SURROGATE_KINDS.get(config.derivative2)
    if not FUSED_DERIVATIVES or kind1 is None or kind2 is None:
        return None
    return kind1, float(config.alpha1), kind2, float(config.alpha2)


def spike_surrogate_kind(config: "SequenceConfig") -> tuple[int, float] | None:
    """``(kind1, alpha1)`` when the C++ loops can evaluate the spike's surrogate derivative
    (``derivative1``, the only one the sigmoid-form cells use) themselves."""
    kind1 = SURROGATE_KINDS.get(config.derivative1)
    if not FUSED_DERIVATIVES or kind1 is None:
        return None
    return kind1, float(config.alpha1)


def spikes_of(state: Tensor, config: SequenceConfig) -> Tensor:
    """The spikes ``Θ(state - spike_threshold)`` that a cell with an analog state emits and feeds back
    (the sigmoid-form GRU's ``s``, the leaky RNN's ``v``), in ``state``'s dtype."""
    return (state - config.spike_threshold >= 0).to(state.dtype)


def add_first_spikes_grad(d_state0: Tensor, d_spikes0: Tensor, state0: Tensor, config: SequenceConfig) -> Tensor:
    """``d_state0 += d_spikes0 * surrogate'(state0 - θ)`` (in place): the gradient that reached the first
    step's input spikes ``Θ(state0 - θ)`` passed on to the initial analog state."""
    return d_state0.add_(d_spikes0 * config.derivative1(state0 - config.spike_threshold, config.alpha1))


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


HUGE_PAGE_BYTES = 2 << 20  # buffers at least this large are backed by huge pages where the OS allows


def empty_buffer(*shape: int, dtype: torch.dtype) -> Tensor:
    """``torch.empty(shape)``; a large one is first marked for transparent huge pages (see
    ``advise_huge_pages`` in csrc/bits.cpp), before any of it is touched."""
    t = torch.empty(shape, dtype=dtype)
    if t.numel() * t.element_size() >= HUGE_PAGE_BYTES:
        compiled = loops()
        if compiled is not None:
            compiled.advise_huge_pages(t)
    return t


class Workspace:
    """Buffers reused across the chunks of one forward or backward pass: one allocation per name
    (grown to the largest chunk), where a fresh allocation per chunk would be returned to the OS by
    the allocator and page-faulted in again, at a cost comparable to the chunk's arithmetic."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def take(self, name: str, *shape: int, dtype: torch.dtype, zero: bool = False) -> Tensor:
        """A contiguous ``shape`` tensor in the buffer ``name`` (its earlier contents overwritten or, with
        ``zero``, cleared)."""
        numel = 1
        for size in shape:
            numel *= size
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < numel or buffer.dtype != dtype:
            buffer = self._buffers[name] = empty_buffer(numel, dtype=dtype)
        view = buffer[:numel].view(shape)
        return view.zero_() if zero else view


def new_output(config: SequenceConfig, *shape: int, dtype: torch.dtype) -> Tensor:
    """An output buffer: uninitialised when every row runs every step, else zeros (rows past
    their length are never written and must read as zero)."""
    t = empty_buffer(*shape, dtype=dtype)
    return t if config.batch_sizes is None else t.zero_()


def before(first: Tensor, store, stored: Tensor, t0: int, t1: int, dtype: torch.dtype) -> Tensor:
    """States before steps ``[t0, t1)``: ``first`` (the initial state) then the stored states after."""
    if t0 > 0:
        return store.rows(stored, t0 - 1, t1 - 1, dtype)
    return torch.cat([first.unsqueeze(0), store.rows(stored, 0, t1 - 1, dtype)])


def before_and_after(first: Tensor, store, stored: Tensor, t0: int, t1: int,
                     dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """States before and after steps ``[t0, t1)`` (``[K, ...]`` each), restored from the store once."""
    if t0 > 0:
        states = store.rows(stored, t0 - 1, t1, dtype)
    else:
        states = torch.cat([first.unsqueeze(0).to(dtype), store.rows(stored, 0, t1, dtype)])
    return states[:-1], states[1:]


class GradSums:
    """Weight and bias gradients accumulated chunk by chunk with one GEMM each.

    ``GradSums(ctx, names, params)``: ``names`` are the Function's inputs in order (``"x"`` first),
    ``params`` the weights by name; ``needs[name]`` says whether autograd asked for that input's
    gradient; ``grads`` holds zeros to accumulate into (``None`` where not needed).
    """

    def __init__(self, ctx, names: tuple[str, ...], params: dict[str, Tensor | None]):
        self.needs = dict(zip(names, ctx.needs_input_grad))
        self._grads = {name: torch.zeros_like(p) if p is not None and self.needs[name] else None
                       for name, p in params.items()}
        self._compiled = loops()  # the event-driven sums; None without the C++ extension
        self._transposed: dict[str, Tensor] = {}  # event-driven sums, [F, G], added to the grads at the end
        self._dense: set[str] = set()  # weights whose inputs turned out not 0/1 and sparse: GEMM from then on

    @property
    def grads(self) -> dict[str, Tensor | None]:
        """The accumulated gradients by name (``None`` where not needed)."""
        for name, transposed in self._transposed.items():
            grad = self._grads[name]
            assert grad is not None  # only needed gradients get an event-driven sum
            grad.add_(transposed.t())
        self._transposed.clear()
        return self._grads

    def input_grad(self, steps: int, batch: int, input_size: int, dtype: torch.dtype) -> Tensor | None:
        """Storage for the input gradient ``[T, B, I]``, or ``None`` when it is not needed."""
        return empty_buffer(steps, batch, input_size, dtype=dtype) if self.needs["x"] else None

    def add_weight(self, name: str, d_pre: Tensor, inputs: Tensor) -> None:
        """``grad += sum_k d_pre[k]^T inputs[k]`` for ``[K, B, G]`` and ``[K, B, F]``: the event-driven
        sum when ``inputs`` are 0/1 and sparse (spikes), else one GEMM."""
        grad = self._grads[name]
        if grad is None:
            return
        flat_d, flat_in = d_pre.reshape(-1, d_pre.shape[-1]), inputs.reshape(-1, inputs.shape[-1])
        transposed = self._transposed.get(name)
        # float inputs or too many ones are turned away before an [F, G] scratch is zeroed for them;
        # once it exists, the C++ sum checks the later chunks itself
        if self._compiled is not None and name not in self._dense and (transposed is not None or
                                                                       _sparse_enough(flat_in)):
            if transposed is None:
                transposed = torch.zeros(grad.shape[1], grad.shape[0], dtype=grad.dtype)
            if self._compiled.binary_weight_grad(flat_d.contiguous(), flat_in.contiguous(), transposed,
                                                 WEIGHT_GRAD_EVENT_DENSITY):
                self._transposed[name] = transposed
                return
        self._dense.add(name)  # the GEMM from now on
        grad.addmm_(flat_d.t(), flat_in)

    def add_chunk(self, x: Tensor, h_prev: Tensor, d_input_pre: Tensor, d_hidden_pre: Tensor | None = None) -> None:
        """One chunk's ``w_ih``/``b_ih`` gradients from the input-side pre-activation gradients and
        ``w_hh``/``b_hh`` from the hidden-side ones (the same tensor except in the GRU, else summed once
        for both biases)."""
        d_hidden_pre = d_input_pre if d_hidden_pre is None else d_hidden_pre
        self.add_weight("w_ih", d_input_pre, x)
        self.add_weight("w_hh", d_hidden_pre, h_prev)
        sums: dict[int, Tensor] = {}
        for name, d_pre in (("b_ih", d_input_pre), ("b_hh", d_hidden_pre)):
            grad = self._grads[name]
            if grad is not None:
                if id(d_pre) not in sums:
                    sums[id(d_pre)] = d_pre.sum(dim=(0, 1))
                grad.add_(sums[id(d_pre)])


def _starts_binary(flat: Tensor) -> bool:
    """Whether the first values of ``flat`` are 0 or 1: a float input shows itself there, before any
    work is spent on an event-driven product for it (the C++ sums check every value)."""
    head = flat.reshape(-1)[:64]
    return bool(((head == 0) | (head == 1)).all())


def _sparse_enough(flat: Tensor) -> bool:
    """Whether ``flat`` may be 0/1 with at most ``WEIGHT_GRAD_EVENT_DENSITY`` ones."""
    return _starts_binary(flat) and int(torch.count_nonzero(flat)) <= WEIGHT_GRAD_EVENT_DENSITY * flat.numel()


class InputProjection:
    """``x [K, B, I] -> x @ weight.T + sum(biases)`` chunk by chunk: the event-driven sum while the
    chunks are 0/1 and sparse (spiking inputs, e.g. the layers past the first), else one GEMM. The
    result lives in a buffer reused by the next call."""

    def __init__(self, weight: Tensor, *biases: Tensor | None):
        self.weight, self.compiled = weight, loops()
        self.bias: Tensor | None = None
        for b in biases:
            if b is not None:
                self.bias = b if self.bias is None else self.bias + b
        self.tiles: Tensor | None = None
        self.dense = self.compiled is None
        self.workspace = Workspace()

    def __call__(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = self.workspace.take("out", flat.shape[0], self.weight.shape[0], dtype=x.dtype)
        if not self.dense:
            flat = flat.contiguous()
            if _starts_binary(flat):  # else no packing of the weights
                if self.tiles is None:
                    self.tiles = column_tiles(self.weight, EVENT_DENSITY)
                if self.tiles is not None and self.compiled.binary_matmul(flat, self.tiles, self.weight.shape[0],
                                                                          self.bias, out, EVENT_DENSITY):
                    return out.view(*x.shape[:-1], self.weight.shape[0])
            self.dense = True  # not spikes, or too many: the GEMM from now on
        return projection(x, self.weight, self.bias, out=out)


def column_tiles(weight: Tensor, event_density: float) -> Tensor | None:
    """``weight [N, K]`` rearranged for the C++ event-driven products (``pack_column_tiles`` in
    csrc/products.h), or ``None`` when no event-driven product will run (no extension,
    ``event_density`` 0: the other operand cannot be 0/1, or a NaN or Inf in ``weight``: an
    event-driven sum skips the 0 x NaN terms that make the reference's GEMM NaN)."""
    compiled = loops()
    if compiled is None or event_density <= 0:
        return None
    return compiled.pack_column_tiles(weight.contiguous())


def carried(grad: Tensor | None, like: Tensor) -> Tensor:
    """A writable contiguous copy of an incoming state gradient (zeros when autograd passed ``None``)."""
    return grad.contiguous().clone() if grad is not None else torch.zeros_like(like).contiguous()
