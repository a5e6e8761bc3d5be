"""The shared builders of the test suite: spiking stacks, same-weight clones, inputs, one forward and backward.

``conftest.py`` exposes them as fixtures (``build_model``, ``same_weights``, ``make_inputs``,
``forward_backward``); test modules may also import them from here (pytest puts ``tests/`` on
``sys.path``), e.g. to build cases at parametrization time. ``helpers.py`` and
``contract_helpers.py`` keep their historical names as thin wrappers of these.

Weights (``build_model(weights=...)``) and inputs (``make_inputs(kind=...)``) come in two kinds:

* ``"init"`` / ``"normal"``: the module's own initialisation after ``torch.manual_seed(seed)``;
  inputs ``2 * randn``, initial states in ``[0, 1)`` (``c_0`` in ``[0, 1.5)``) or 0/1 spikes;
* ``"dyadic"``: every weight a multiple of 1/8 in [-1, 1], the input biases offset by 2^-10, inputs
  and states multiples of 1/4 in [-1, 1]: every forward sum is exact in float32 whatever the order
  of the additions, and (with a bias) no pre-activation is 0, so that float32 kernels must fire
  exactly the float64 reference's spikes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import spikingrnn

MODES = ("LSTM", "GRU", "RNN")
CLASSES = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}


def dyadic(shape, generator, scale, low=-8, high=9, dtype=torch.float32):
    """Integers in ``[low, high)`` times ``scale``: few significant bits, so float32 sums are exact."""
    return torch.randint(low, high, shape, generator=generator).to(dtype) * scale


def make_dyadic(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrite ``module``'s parameters (in place) with the ``"dyadic"`` weights of ``seed``."""
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("bias_ih"):
                p.copy_(dyadic(p.shape, generator, 1 / 8, -4, 5) + 2.0 ** -10)
            elif name.startswith("bias_hh"):
                p.copy_(dyadic(p.shape, generator, 1 / 8, -4, 5))
            else:
                p.copy_(dyadic(p.shape, generator, 1 / 8))
    return module


def build_model(mode: str = "LSTM", inputs: int = 4, hidden: int = 8, layers: int = 1, *,
                bidirectional: bool = False, proj_size: int = 0, bias: bool = True, batch_first: bool = False,
                cell_state: str = "clamp", surrogate=None, surrogate2=None, dtype=torch.float64,
                backend: str = "reference", low_memory: bool = False, dropout: float = 0.0, seed: int | None = 0,
                weights: str = "init", gates: str = "heaviside", **options) -> spikingrnn.SpikingRNNBase:
    """A ``SpikingLSTM`` / ``SpikingGRU`` / ``SpikingRNN`` stack.

    ``gates`` is the LSTM's and GRU's form: ``"heaviside"`` (here the default, with torch's init:
    ``forget_bias=None`` unless given) or ``"sigmoid"`` (the modules' default; its LSTM takes
    ``cell_state="accumulate"`` whatever ``cell_state`` says). The RNN is the seed's cell (``leak=None``)
    unless ``leak`` is given. ``surrogate`` / ``surrogate2`` are
    ``surrogate_function1`` / ``surrogate_function2`` (a name, an instance or ``None`` for the
    default); ``surrogate2``, ``proj_size`` and ``cell_state`` are ignored where the cell has no such
    thing (``proj_size`` and ``cell_state``: LSTM only, ``surrogate2``: not the RNN). ``seed`` seeds the global RNG before construction (``None``:
    not); ``weights`` is ``"init"`` (the module's initialisation) or ``"dyadic"`` (see the module
    docstring). ``options`` go to the constructor as they are (``invariant_dropout_mask``, ...).
    """
    if weights not in ("init", "dyadic"):
        raise ValueError(f"weights must be 'init' or 'dyadic', got {weights!r}")
    if seed is not None:
        torch.manual_seed(seed)
    kwargs = dict(bias=bias, batch_first=batch_first, bidirectional=bidirectional, dtype=dtype,
                  surrogate_function1=surrogate, backend=backend, dropout=dropout, low_memory=low_memory, **options)
    if mode == "LSTM":
        kwargs.update(proj_size=proj_size, cell_state="accumulate" if gates == "sigmoid" else cell_state)
    if mode != "RNN":
        kwargs["surrogate_function2"] = surrogate2
        kwargs["gates"] = gates
        if gates == "heaviside":
            kwargs.setdefault("forget_bias", None)
    else:
        kwargs.setdefault("leak", None)  # the seed's cell unless a leak is given
    model = CLASSES[mode](inputs, hidden, layers, **kwargs)
    if weights == "dyadic":
        make_dyadic(model, 0 if seed is None else seed)
    return model


def same_weights(module: spikingrnn.SpikingRNNBase, backend: str | None = None, *, dtype=None,
                 **attributes) -> spikingrnn.SpikingRNNBase:
    """A deep copy of ``module`` (same weights, surrogates and options, no gradients), switched to
    ``backend`` and ``dtype`` when given, with ``attributes`` set (e.g. ``low_memory=True``)."""
    clone = copy.deepcopy(module)
    clone.zero_grad(set_to_none=True)
    if dtype is not None:
        clone.to(dtype)
    if backend is not None:
        clone.backend = backend
    for name, value in attributes.items():
        if not hasattr(clone, name):
            raise AttributeError(f"{type(clone).__name__} has no attribute {name!r}")
        setattr(clone, name, value)
    return clone


def layer_copy(stack: spikingrnn.SpikingRNNBase, layer: int, **overrides) -> spikingrnn.SpikingRNNBase:
    """A one-layer module of the same kind holding ``layer``'s weights of ``stack``: same directions,
    bias, dtype, surrogates, backend and ``low_memory`` (LSTM and GRU: ``gates``, ``spike_threshold`` and
    ``forget_bias``; LSTM: ``proj_size``, ``cell_state`` and ``cell_threshold``; RNN: ``leak`` and
    ``spike_threshold``), no dropout; ``overrides``
    go to the constructor (e.g. ``backend``)."""
    input_size = stack.input_size if layer == 0 else stack.real_hidden_size * stack.num_directions
    kwargs = dict(bidirectional=stack.bidirectional, bias=stack.bias, dtype=stack.weight_ih_l0.dtype,
                  surrogate_function1=stack.surrogate_function1, backend=stack.backend, low_memory=stack.low_memory)
    if stack.mode != "RNN":
        kwargs.update(surrogate_function2=stack.surrogate_function2, gates=stack.gates,
                      spike_threshold=stack.spike_threshold, forget_bias=stack.forget_bias)
    else:
        kwargs.update(leak=stack.leak, spike_threshold=stack.spike_threshold)
    if stack.mode == "LSTM":
        kwargs.update(proj_size=stack.proj_size, cell_state=stack.cell_state, cell_threshold=stack.cell_threshold)
    kwargs.update(overrides)
    single = type(stack)(input_size, stack.hidden_size, **kwargs)
    state = {name.replace(f"_l{layer}", "_l0"): value for name, value in stack.state_dict().items()
             if f"_l{layer}" in name}
    single.load_state_dict(state, strict=True)
    return single


def state_shapes(module, batch: int | None) -> list[tuple[int, ...]]:
    """Shapes of ``hx`` for ``module``: ``[(L*D, B, H_out)]`` plus ``(L*D, B, H)`` for the LSTM's ``c``
    (``batch=None``: unbatched, no ``B``)."""
    rows = module.num_layers * (2 if module.bidirectional else 1)
    h_out = module.proj_size if getattr(module, "proj_size", 0) > 0 else module.hidden_size
    lead = (rows,) if batch is None else (rows, batch)
    shapes = [lead + (h_out,)]
    if module.mode == "LSTM":
        shapes.append(lead + (module.hidden_size,))
    return shapes


@dataclass
class Inputs:
    """One input of a module: ``x`` (padded ``[T, B, I]``, ``[B, T, I]`` when ``batch_first``), the
    initial states ``hx`` (a tuple, empty for none) and ``lengths`` (``None``: not packed)."""

    x: torch.Tensor
    hx: tuple = ()
    lengths: list[int] | None = None
    enforce_sorted: bool = True
    batch_first: bool = False

    def to(self, dtype) -> Inputs:
        """The same values in ``dtype`` (exact for dyadic values in float32)."""
        return Inputs(self.x.to(dtype), tuple(h.to(dtype) for h in self.hx), self.lengths, self.enforce_sorted,
                      self.batch_first)

    def leaves(self) -> tuple[torch.Tensor, tuple]:
        """Fresh leaves ``(x, hx)`` requiring gradients."""
        return (self.x.detach().clone().requires_grad_(),
                tuple(h.detach().clone().requires_grad_() for h in self.hx))

    def args(self, mode: str, x: torch.Tensor, hx: tuple) -> tuple:
        """``(input, hx)`` as the module takes them: packed when ``lengths`` is set, ``hx`` a tuple for
        the LSTM, one tensor otherwise, ``None`` when there are no initial states."""
        inp = x
        if self.lengths is not None:
            inp = pack_padded_sequence(x, torch.tensor(self.lengths), batch_first=self.batch_first,
                                       enforce_sorted=self.enforce_sorted)
        if not hx:
            return inp, None
        return inp, (tuple(hx) if mode == "LSTM" else hx[0])


def make_inputs(module, steps: int, batch: int, *, lengths=None, enforce_sorted: bool = True, states="random",
                kind: str = "normal", seed: int = 0, dtype=None) -> Inputs:
    """An input for ``module`` from a generator seeded with ``seed``, in ``module``'s layout and dtype.

    ``lengths``: the rows' valid steps for a packed input (``max(lengths) == steps``; the padding
    holds values too, which must not matter), packed with ``enforce_sorted``. ``states``: ``None``
    (zeros: no ``hx``), ``"random"`` (see the module docstring) or ``"binary"`` (0/1 spikes).
    ``kind``: ``"normal"`` or ``"dyadic"``. Draws ``x`` first, then ``h_0``, then ``c_0``.
    """
    if lengths is not None and max(lengths) != steps:
        raise ValueError(f"max(lengths) must be steps={steps}, got {lengths}")
    dtype = module.weight_ih_l0.dtype if dtype is None else dtype
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, steps, module.input_size) if module.batch_first else (steps, batch, module.input_size)
    if kind == "dyadic":
        x = dyadic(shape, generator, 1 / 4, -4, 5, dtype=dtype)
    elif kind == "normal":
        x = torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype) * 2
    else:
        raise ValueError(f"kind must be 'normal' or 'dyadic', got {kind!r}")
    hx = ()
    if states is not None:
        hx = []
        for k, size in enumerate(state_shapes(module, batch)):
            if states == "binary":
                hx.append((torch.rand(size, generator=generator, dtype=torch.float64) < 0.5).to(dtype))
            elif kind == "dyadic":
                hx.append(dyadic(size, generator, 1 / 4, -4, 5, dtype=dtype))
            else:
                hx.append((torch.rand(size, generator=generator, dtype=torch.float64) * (1.5 if k else 1.0)).to(dtype))
        hx = tuple(hx)
    return Inputs(x, hx, None if lengths is None else list(lengths), enforce_sorted, module.batch_first)


@dataclass
class Result:
    """What :func:`forward_backward` returns: the output (``.data`` of a packed one), the final states
    and the gradients by name (``"x"``, ``"hx0"``, ``"hx1"``, then the parameters' names)."""

    output: torch.Tensor
    states: list[torch.Tensor]
    grads: dict[str, torch.Tensor | None] = field(default_factory=dict)


def forward_backward(module, inputs: Inputs, *, loss_seed: int = 7, rng_seed: int | None = 5) -> Result:
    """One forward and backward of ``module`` on fresh leaves of ``inputs``, with the loss
    ``sum(output * w) + sum(state_n * w_n)`` for random weights ``w`` (float32 values, so the same
    loss in any dtype). ``rng_seed`` seeds the global RNG first (the same dropout masks)."""
    x, hx = inputs.leaves()
    for p in module.parameters():
        p.grad = None
    if rng_seed is not None:
        torch.manual_seed(rng_seed)
    out, final = module(*inputs.args(module.mode, x, hx))
    final = list(final) if isinstance(final, tuple) else [final]
    data = out.data if isinstance(out, PackedSequence) else out
    generator = torch.Generator().manual_seed(loss_seed)
    loss = (data * torch.randn(data.shape, generator=generator).to(data.dtype)).sum()
    for s in final:
        loss = loss + (s * torch.randn(s.shape, generator=generator).to(s.dtype)).sum()
    loss.backward()
    grads = {"x": x.grad}
    grads.update({f"hx{k}": h.grad for k, h in enumerate(hx)})
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return Result(data.detach(), [s.detach() for s in final], grads)
