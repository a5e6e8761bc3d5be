"""The torch.nn contract of the spiking RNN stacks and cells.

``SpikingLSTM``/``SpikingGRU``/``SpikingRNN`` and the ``Spiking*Cell`` classes are drop-ins for
``torch.nn.LSTM``/``GRU``/``RNN`` and torch's cells, so everything here is checked against torch
itself, run inside the test: constructor signatures, errors and warnings; parameter names,
shapes, order, initialisation and state_dict compatibility; forward layouts (time-major,
batch_first, unbatched, PackedSequence), state shapes and layer-major order, dtypes, gradients;
cell/stack agreement; and inter-layer dropout in train and eval mode.

Spiking outputs are 0/1, so numerical comparisons run in float64 and each compared tensor is
checked to be non-constant (a comparison of all-zero tensors would prove nothing).
"""
from __future__ import annotations

import functools
import inspect
import math
import warnings

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_sequence, pad_packed_sequence

from spikingrnn.ops.dispatch import BACKEND_CHOICES

from contract_helpers import (CONFIGS, HIDDEN_SIZE, INPUT_SIZE, MODES, SPIKING, SPIKING_CELLS, TORCH,
                              TORCH_CELLS, as_list, assert_nontrivial, assert_states_equal, config_id,
                              emitted_spikes, from_list, layer_module, memory_gate_bias, random_hx, spiking,
                              torch_twin, uniform_part)

F64 = torch.float64
EMPTY = inspect.Parameter.empty


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


@functools.lru_cache(maxsize=None)
def _refusal(backend: str) -> str | None:
    """Why ``backend`` refuses a plain CPU float64/float32 run (None when it runs it)."""
    try:
        for dtype in (torch.float32, F64):
            SPIKING["GRU"](2, 3, backend=backend, dtype=dtype)(torch.zeros(2, 1, 2, dtype=dtype))
    except ValueError as error:     # an explicit backend that cannot run an input says so
        return str(error)
    return None


@pytest.fixture(params=BACKEND_CHOICES)
def backend(request):
    """Every backend the library offers (and ``"auto"``) that runs on CPU."""
    reason = _refusal(request.param)
    if reason is not None:
        pytest.skip(f"backend {request.param!r} does not run on CPU: {reason}")
    return request.param


# ----------------------------------------------------------------------------- constructor

COMMON_HEAD = [("input_size", EMPTY), ("hidden_size", EMPTY), ("num_layers", 1)]
COMMON_TAIL = [("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)]
# torch's documented signatures (nn.LSTM/GRU/RNN.__init__ are ``*args, **kwargs`` in the source).
DOCUMENTED_SIGNATURES = {
    "LSTM": COMMON_HEAD + COMMON_TAIL + [("proj_size", 0), ("device", None), ("dtype", None)],
    "GRU": COMMON_HEAD + COMMON_TAIL + [("device", None), ("dtype", None)],
    "RNN": COMMON_HEAD + [("nonlinearity", "heaviside")] + COMMON_TAIL + [("device", None), ("dtype", None)],
}
SPIKING_KEYWORDS = {
    "LSTM": {"surrogate_function1", "surrogate_function2", "invariant_dropout_mask", "cell_state", "backend",
             "gates", "spike_threshold", "forget_bias"},
    "GRU": {"surrogate_function1", "surrogate_function2", "invariant_dropout_mask", "backend",
            "gates", "spike_threshold", "forget_bias"},
    "RNN": {"surrogate_function1", "invariant_dropout_mask", "backend", "leak", "spike_threshold"},
}


def _positional(cls) -> list[tuple[str, object]]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [(p.name, p.default) for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize("mode", MODES)
def test_constructor_signature_matches_torch_documented_signature(mode):
    assert _positional(SPIKING[mode]) == DOCUMENTED_SIGNATURES[mode]
    params = inspect.signature(SPIKING[mode].__init__).parameters
    keyword_only = {name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert SPIKING_KEYWORDS[mode] <= keyword_only


# Positional arguments in torch's order; the RNN ``nonlinearity`` slot differs by design.
# (torch's GRU/RNN forward *args to RNNBase, whose 8th slot is proj_size, so device/dtype can
# only be passed positionally to torch's LSTM; they go by keyword for GRU/RNN.)
POSITIONAL_CALLS = {
    "LSTM": ((3, 6, 2, False, True, 0.25, True, 2, None, F64), {}, None),
    "GRU": ((3, 6, 2, False, True, 0.25, True), {"dtype": F64}, None),
    "RNN": ((3, 6, 2, "NONLIN", False, True, 0.25, True), {"dtype": F64}, 3),
}


@pytest.mark.parametrize("mode", MODES)
def test_positional_arguments_land_where_torch_puts_them(mode):
    args, kwargs, nonlin_at = POSITIONAL_CALLS[mode]
    ours_args, torch_args = list(args), list(args)
    if nonlin_at is not None:
        ours_args[nonlin_at], torch_args[nonlin_at] = "heaviside", "tanh"
    ours, ref = SPIKING[mode](*ours_args, **kwargs), TORCH[mode](*torch_args, **kwargs)
    for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                 "bidirectional", "proj_size"):
        if hasattr(ref, attr) and (attr != "proj_size" or mode == "LSTM"):
            assert getattr(ours, attr) == getattr(ref, attr), attr
    assert [(n, p.shape, p.dtype) for n, p in ours.named_parameters()] == \
        [(n, p.shape, p.dtype) for n, p in ref.named_parameters()]


@pytest.mark.parametrize("mode", MODES)
def test_cell_signature_matches_torch_cell(mode):
    expected = _positional(TORCH_CELLS[mode])
    if mode == "RNN":
        expected = [(n, "heaviside" if n == "nonlinearity" else d) for n, d in expected]
    assert _positional(SPIKING_CELLS[mode]) == expected


def test_rnn_rejects_torch_nonlinearities():
    for value in ("tanh", "relu"):
        with pytest.raises(ValueError, match="nonlinearity"):
            SPIKING["RNN"](3, 5, nonlinearity=value)
        with pytest.raises(ValueError, match="nonlinearity"):
            SPIKING_CELLS["RNN"](3, 5, nonlinearity=value)
    assert SPIKING["RNN"](3, 5).nonlinearity == "heaviside"


BAD_CONSTRUCTOR_VALUES = [
    # (mode, kwargs, compare message text too)
    ("LSTM", {"num_layers": 0}, True),
    ("GRU", {"num_layers": -1}, True),
    ("LSTM", {"input_size": 0}, True),
    ("RNN", {"hidden_size": 0}, True),
    ("LSTM", {"input_size": 3.0}, True),
    ("GRU", {"hidden_size": 5.0}, True),
    ("LSTM", {"num_layers": 1.5}, False),     # torch's TypeError comes from range(); text differs
    ("LSTM", {"dropout": 1.5}, True),
    ("GRU", {"dropout": -0.1}, True),
    ("RNN", {"dropout": True}, True),
    ("LSTM", {"dropout": "0.5"}, True),
    ("LSTM", {"proj_size": 5}, True),
    ("LSTM", {"proj_size": 7}, True),
    ("LSTM", {"proj_size": -1}, True),
    ("LSTM", {"proj_size": 2.0}, False),      # torch's TypeError comes from torch.empty; text differs
    ("GRU", {"proj_size": 2}, True),
    ("RNN", {"proj_size": 2}, True),
    ("LSTM", {"bias": 1}, True),
    ("GRU", {"batch_first": 0}, True),
]


@pytest.mark.parametrize("mode,kwargs,same_text", BAD_CONSTRUCTOR_VALUES,
                         ids=[f"{m}-{k}" for m, k, _ in BAD_CONSTRUCTOR_VALUES])
def test_constructor_errors_match_torch(mode, kwargs, same_text):
    args = {"input_size": INPUT_SIZE, "hidden_size": HIDDEN_SIZE, **kwargs}
    with pytest.raises((ValueError, TypeError)) as torch_error:
        TORCH[mode](**args)
    with pytest.raises(type(torch_error.value)) as ours_error:
        SPIKING[mode](**args)
    if same_text:
        assert str(ours_error.value) == str(torch_error.value)


@pytest.mark.parametrize("mode", MODES)
def test_single_layer_dropout_warns_like_torch(mode):
    with warnings.catch_warnings(record=True) as torch_warnings:
        warnings.simplefilter("always")
        TORCH[mode](3, 5, dropout=0.5)
    with warnings.catch_warnings(record=True) as our_warnings:
        warnings.simplefilter("always")
        SPIKING[mode](3, 5, dropout=0.5)
    assert len(torch_warnings) == 1
    assert [(w.category, str(w.message)) for w in our_warnings] == \
        [(w.category, str(w.message)) for w in torch_warnings]
    assert our_warnings[0].category is UserWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SPIKING[mode](3, 5, num_layers=2, dropout=0.5)
        SPIKING[mode](3, 5, dropout=0.0)


# ----------------------------------------------------------------------------- parameters

@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_parameter_names_shapes_order_match_torch(config):
    mode, kwargs = config
    ours, ref = spiking(mode, **kwargs), torch_twin(mode, **kwargs)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert ours._flat_weights_names == ref._flat_weights_names
    assert [[p.shape for p in group] for group in ours.all_weights] == \
        [[p.shape for p in group] for group in ref.all_weights]
    named = dict(ours.named_parameters())
    assert [[id(p) for p in group] for group in ours.all_weights] == \
        [[id(named[n]) for n in names] for names in ref._all_weights]


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_state_dict_loads_strictly_both_ways(config):
    mode, kwargs = config
    ours, ref = spiking(mode, **kwargs), torch_twin(mode, **kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name
    other = torch_twin(mode, **kwargs)
    fresh = spiking(mode, **kwargs)
    other.load_state_dict(fresh.state_dict(), strict=True)
    for a, b in zip(other.parameters(), fresh.parameters()):
        assert torch.equal(a, b)


def _assert_uniform(values: torch.Tensor, bound: float) -> None:
    assert values.abs().max() <= bound
    assert values.min() < -0.9 * bound and values.max() > 0.9 * bound
    # a uniform law puts a quarter of the mass in each quarter of the range
    quarters = torch.histc(values.double(), bins=4, min=-bound, max=bound) / values.numel()
    assert torch.all((quarters - 0.25).abs() < 0.05), quarters


# (mode, forget_bias): the default (1.0 for the LSTM and GRU) and torch's init everywhere (None)
FORGET_BIAS_CASES = [("LSTM", "default"), ("LSTM", None), ("GRU", "default"), ("GRU", None), ("RNN", "default")]


def _forget_bias_kwargs(forget_bias) -> dict:
    return {} if forget_bias == "default" else {"forget_bias": forget_bias}


@pytest.mark.parametrize("mode, forget_bias", FORGET_BIAS_CASES,
                         ids=[f"{m}-forget_bias={f}" for m, f in FORGET_BIAS_CASES])
def test_init_is_uniform_in_plus_minus_one_over_sqrt_hidden(mode, forget_bias):
    """torch's U(-1/sqrt(H), 1/sqrt(H)) for every parameter, except (LSTM and GRU with a ``forget_bias``,
    default 1.0) the memory gate's bias: ``bias_ih``'s rows of that gate ``forget_bias``, ``bias_hh``'s 0."""
    hidden = 64
    kwargs = {"num_layers": 2, "bidirectional": True, **_forget_bias_kwargs(forget_bias)}
    if mode == "LSTM":
        kwargs["proj_size"] = 16
    module = SPIKING[mode](8, hidden, **kwargs)
    if mode != "RNN":
        assert module.forget_bias == (1.0 if forget_bias == "default" else forget_bias)
    assert bool(memory_gate_bias(module)) == (mode != "RNN" and forget_bias == "default")
    bound = 1 / math.sqrt(hidden)
    parts = uniform_part(module)  # checks the memory gate's rows
    for name, param in parts.items():
        assert param.abs().max() <= bound, name
        if param.dim() == 2:
            assert param.min() < -0.9 * bound and param.max() > 0.9 * bound, name
    _assert_uniform(torch.cat([p.flatten() for p in parts.values()]), bound)
    cell = SPIKING_CELLS[mode](8, hidden, **_forget_bias_kwargs(forget_bias))
    assert bool(memory_gate_bias(cell)) == (mode != "RNN" and forget_bias == "default")
    _assert_uniform(torch.cat([p.flatten() for p in uniform_part(cell).values()]), bound)


@pytest.mark.parametrize("forget_bias", ["default", None], ids=lambda v: f"forget_bias={v}")
@pytest.mark.parametrize("config", CONFIGS[:6] + CONFIGS[7:8] + CONFIGS[10:11], ids=config_id)
def test_init_draws_the_same_numbers_as_torch_for_the_same_seed(config, forget_bias):
    """The same draws as torch; with a ``forget_bias`` (the default) the memory gate's bias rows are then
    set (``bias_ih`` to it, ``bias_hh`` to 0) without drawing, so every other entry is still torch's."""
    mode, kwargs = config
    torch.manual_seed(7)
    ref = torch_twin(mode, **kwargs)
    torch.manual_seed(7)
    ours = spiking(mode, **kwargs, **({} if mode == "RNN" else _forget_bias_kwargs(forget_bias)))
    fixed = memory_gate_bias(ours)
    assert bool(fixed) == (mode != "RNN" and forget_bias == "default" and kwargs.get("bias", True))
    assert len(list(ours.parameters())) == len(list(ref.parameters()))
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        if name in fixed:
            rows, value = fixed[name]
            assert torch.all(a[rows] == value), name
            a, b = a.clone(), b.clone()
            a[rows] = b[rows] = 0  # compare the drawn rows only
        assert torch.equal(a, b), name


@pytest.mark.parametrize("mode", MODES)
def test_meta_device_and_to_empty(mode):
    kwargs = {"num_layers": 2, "bidirectional": True, **({"proj_size": 2} if mode == "LSTM" else {})}
    module = SPIKING[mode](3, 5, device="meta", **kwargs)
    assert all(p.is_meta for p in module.parameters())
    assert [(n, p.shape) for n, p in module.named_parameters()] == \
        [(n, p.shape) for n, p in torch_twin(mode, **kwargs).named_parameters()]
    module.to_empty(device="cpu")
    module.reset_parameters()
    bound = 1 / math.sqrt(5)
    assert all(p.device.type == "cpu" for p in module.parameters())
    assert bool(memory_gate_bias(module)) == (mode != "RNN")  # reset_parameters sets forget_bias again
    assert all(p.abs().max() <= bound for p in uniform_part(module).values())  # checks the memory gate's rows
    output, _ = module(torch.randn(4, 2, 3))
    assert output.shape == (4, 2, 2 * module.real_hidden_size)
    cell = SPIKING_CELLS[mode](3, 5, device="meta")
    assert all(p.is_meta for p in cell.parameters())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_factory_kwarg_and_output_dtype_follows_input(mode, dtype):
    module = SPIKING[mode](3, 5, num_layers=2, bidirectional=True, dtype=dtype)
    assert all(p.dtype == dtype for p in module.parameters())
    output, states = module(torch.randn(4, 2, 3, dtype=dtype))
    assert output.dtype == dtype
    assert all(s.dtype == dtype for s in as_list(states))
    output, states = module(torch.randn(4, 2, 3, dtype=dtype), random_hx(module, 2, dtype=dtype))
    assert output.dtype == dtype and all(s.dtype == dtype for s in as_list(states))
    cell = SPIKING_CELLS[mode](3, 5, dtype=dtype)
    assert all(p.dtype == dtype for p in cell.parameters())
    assert all(s.dtype == dtype for s in as_list(cell(torch.randn(2, 3, dtype=dtype))))
    # module.to(dtype) works like torch's
    module32 = SPIKING[mode](3, 5).to(dtype)
    assert module32(torch.randn(4, 2, 3, dtype=dtype))[0].dtype == dtype


# ----------------------------------------------------------------------------- forward shapes

def _pack(module, batch_lengths, dtype=torch.float32, enforce_sorted=False):
    seqs = [torch.randn(n, module.input_size, dtype=dtype) for n in batch_lengths]
    return seqs, pack_sequence(seqs, enforce_sorted=enforce_sorted)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched", "packed"])
@pytest.mark.parametrize("with_hx", [False, True])
def test_output_and_state_shapes_match_torch(config, layout, with_hx):
    mode, kwargs = config
    kwargs = {**kwargs, "batch_first": layout == "batch_first"}
    ours, ref = spiking(mode, **kwargs), torch_twin(mode, **kwargs)
    T, B = 4, 3
    if layout == "packed":
        _, x = _pack(ours, [2, 4, 1])
    elif layout == "unbatched":
        x = torch.randn(T, INPUT_SIZE)
    else:
        x = torch.randn(B, T, INPUT_SIZE) if layout == "batch_first" else torch.randn(T, B, INPUT_SIZE)
    hx = random_hx(ours, None if layout == "unbatched" else B, dtype=torch.float32) if with_hx else None
    out, states = ours(x, hx)
    ref_out, ref_states = ref(x, hx)
    assert type(states) is type(ref_states)
    assert [s.shape for s in as_list(states)] == [s.shape for s in as_list(ref_states)]
    if layout == "packed":
        assert isinstance(out, PackedSequence)
        assert out.data.shape == ref_out.data.shape
        assert torch.equal(out.batch_sizes, ref_out.batch_sizes)
        assert torch.equal(out.sorted_indices, ref_out.sorted_indices)
        assert torch.equal(out.unsorted_indices, ref_out.unsorted_indices)
    else:
        assert out.shape == ref_out.shape
        assert out.dtype == x.dtype


@pytest.mark.parametrize("mode", MODES)
def test_zero_batch_is_accepted_like_torch(mode, backend):
    kwargs = {"num_layers": 2, "bidirectional": True, **({"proj_size": 2} if mode == "LSTM" else {})}
    ours, ref = spiking(mode, backend=backend, **kwargs), torch_twin(mode, **kwargs)
    for batch_first in (False, True):
        ours.batch_first = ref.batch_first = batch_first
        x = torch.randn(0, 4, 3) if batch_first else torch.randn(4, 0, 3)
        out, states = ours(x)
        ref_out, ref_states = ref(x)
        assert out.shape == ref_out.shape
        assert [s.shape for s in as_list(states)] == [s.shape for s in as_list(ref_states)]
    cell, ref_cell = SPIKING_CELLS[mode](3, 5), TORCH_CELLS[mode](3, 5)
    assert [s.shape for s in as_list(cell(torch.randn(0, 3)))] == \
        [s.shape for s in as_list(ref_cell(torch.randn(0, 3)))]


# ----------------------------------------------------------------------------- forward semantics

SEMANTIC_CONFIGS = [
    ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}),
    ("LSTM", {"num_layers": 1}),
    ("GRU", {"num_layers": 2, "bidirectional": True}),
    # the heaviside form (SpikingJelly's cell, torch's init) keeps the same contract
    ("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2, "gates": "heaviside", "cell_state": "clamp",
              "forget_bias": None}),
    ("GRU", {"num_layers": 2, "bidirectional": True, "gates": "heaviside", "forget_bias": None}),
    ("RNN", {"num_layers": 3}),
    ("RNN", {"num_layers": 2, "bidirectional": True, "bias": False}),
    # the seed's RNN cell h = Θ(u) (leak=None, SpikingJelly's) keeps it too
    ("RNN", {"num_layers": 2, "bidirectional": True, "leak": None}),
]


def _f64(mode, **kwargs):
    return spiking(mode, dtype=F64, **kwargs)


@pytest.mark.parametrize("config", SEMANTIC_CONFIGS, ids=config_id)
def test_batch_first_equals_time_major_transposed(config, backend):
    mode, kwargs = config
    tm = _f64(mode, backend=backend, **kwargs)
    bf = _f64(mode, backend=backend, batch_first=True, **kwargs)
    bf.load_state_dict(tm.state_dict())
    x = torch.randn(8, 4, INPUT_SIZE, dtype=F64)
    for hx in (None, random_hx(tm, 4)):
        out_tm, st_tm = tm(x, hx)
        out_bf, st_bf = bf(x.transpose(0, 1).contiguous(), hx)   # hx stays [L*D, B, H]
        assert_nontrivial(out_tm, st_tm)
        assert out_bf.shape == (4, 8, out_tm.shape[-1])
        torch.testing.assert_close(out_bf, out_tm.transpose(0, 1))
        assert_states_equal(st_bf, st_tm)


@pytest.mark.parametrize("config", SEMANTIC_CONFIGS, ids=config_id)
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_equals_batched_with_batch_of_one(config, batch_first, backend):
    mode, kwargs = config
    module = _f64(mode, backend=backend, batch_first=batch_first, **kwargs)
    x = torch.randn(8, INPUT_SIZE, dtype=F64)          # unbatched input ignores batch_first
    batched_x = x.unsqueeze(0) if batch_first else x.unsqueeze(1)
    compared = []
    for hx in (None, random_hx(module, None)):
        out, states = module(x, hx)
        compared += [out, states]
        batched_hx = None if hx is None else from_list(mode, [s.unsqueeze(1) for s in as_list(hx)])
        ref_out, ref_states = module(batched_x, batched_hx)
        assert out.shape == (8, ref_out.shape[-1])
        torch.testing.assert_close(out, ref_out.squeeze(0 if batch_first else 1))
        assert_states_equal(states, [s.squeeze(1) for s in as_list(ref_states)])
        assert all(s.dim() == 2 for s in as_list(states))
    assert_nontrivial(*compared)


@pytest.mark.parametrize("config", SEMANTIC_CONFIGS, ids=config_id)
@pytest.mark.parametrize("enforce_sorted", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
def test_packed_sequence_equals_running_each_sequence_alone(config, enforce_sorted, with_hx, backend):
    mode, kwargs = config
    module = _f64(mode, backend=backend, **kwargs)
    lengths = [5, 3, 2, 1] if enforce_sorted else [2, 5, 1, 3]
    seqs = [torch.randn(n, INPUT_SIZE, dtype=F64) for n in lengths]
    packed = pack_sequence(seqs, enforce_sorted=enforce_sorted)
    hx = random_hx(module, len(seqs)) if with_hx else None    # in the user's (original) order
    out, states = module(packed, hx)

    assert isinstance(out, PackedSequence)
    assert torch.equal(out.batch_sizes, packed.batch_sizes)
    for got, want in ((out.sorted_indices, packed.sorted_indices), (out.unsorted_indices, packed.unsorted_indices)):
        assert (got is None and want is None) or torch.equal(got, want)
    padded, out_lengths = pad_packed_sequence(out)                 # back in the original order
    assert out_lengths.tolist() == lengths
    assert_nontrivial(padded, states)
    for b, seq in enumerate(seqs):
        alone_hx = None if hx is None else from_list(mode, [s[:, b:b + 1] for s in as_list(hx)])
        alone_out, alone_states = module(seq.unsqueeze(1), alone_hx)
        torch.testing.assert_close(padded[:lengths[b], b], alone_out[:, 0])
        assert_states_equal([s[:, b] for s in as_list(states)], [s[:, 0] for s in as_list(alone_states)])


def test_packed_input_ignores_batch_first_like_torch():
    tm = _f64("GRU", num_layers=2, bidirectional=True)
    bf = _f64("GRU", num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(tm.state_dict())
    seqs = [torch.randn(n, INPUT_SIZE, dtype=F64) for n in (3, 5, 2)]
    packed = pack_sequence(seqs, enforce_sorted=False)
    out_tm, h_tm = tm(packed)
    out_bf, h_bf = bf(packed)
    torch.testing.assert_close(out_bf.data, out_tm.data)
    torch.testing.assert_close(h_bf, h_tm)


@pytest.mark.parametrize("config", SEMANTIC_CONFIGS, ids=config_id)
def test_final_states_are_layer_major_like_torch(config, backend):
    mode, kwargs = config
    module = _f64(mode, backend=backend, **kwargs)
    x = torch.randn(8, 4, INPUT_SIZE, dtype=F64)
    hx = random_hx(module, 4)
    out, states = module(x, hx)
    assert_nontrivial(out)
    num_dirs = 2 if module.bidirectional else 1
    h_out = module.real_hidden_size
    h_n = emitted_spikes(module, as_list(states)[0])  # the sigmoid GRU's h_n is its analog state s
    if num_dirs == 1:
        torch.testing.assert_close(h_n[-1], out[-1])
    else:
        torch.testing.assert_close(h_n[-2], out[-1, :, :h_out])     # forward final: last step
        torch.testing.assert_close(h_n[-1], out[0, :, h_out:])      # reverse final: first step
    # Running the layers one by one gives rows layer * D + direction of the states.
    y = x
    for layer in range(module.num_layers):
        rows = slice(layer * num_dirs, (layer + 1) * num_dirs)
        single = layer_module(module, layer, backend=backend)
        y, layer_states = single(y, from_list(mode, [s[rows] for s in as_list(hx)]))
        assert_states_equal(layer_states, [s[rows] for s in as_list(states)])
    torch.testing.assert_close(y, out)


@pytest.mark.parametrize("config", SEMANTIC_CONFIGS, ids=config_id)
def test_gradients_flow_to_input_hx_and_every_parameter(config, backend):
    mode, kwargs = config
    module = _f64(mode, backend=backend, **kwargs)
    if mode == "LSTM":
        # Lift the forget and output gates so that c_0 and h = o * c (hence weight_hr) take part
        # whatever the random init; with default init they may legitimately never fire.
        with torch.no_grad():
            for name, param in module.named_parameters():
                if name.startswith("bias_ih"):
                    param[HIDDEN_SIZE:2 * HIDDEN_SIZE] += 0.5
                    param[3 * HIDDEN_SIZE:] += 0.5
    elif mode == "RNN" and module.bias:
        with torch.no_grad():   # keep every layer alive (a silent layer passes no weight_ih gradient)
            for name, param in module.named_parameters():
                if name.startswith("bias_ih"):
                    param += 0.3
    x = torch.randn(6, 8, INPUT_SIZE, dtype=F64, requires_grad=True)
    hx = random_hx(module, 8, requires_grad=True)
    out, states = module(x, hx)
    loss = (out * torch.randn_like(out)).sum() + sum((s * torch.randn_like(s)).sum() for s in as_list(states))
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, s in zip(("h_0", "c_0"), as_list(hx)):
        assert s.grad is not None and s.grad.abs().sum() > 0, name
    for name, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", MODES)
def test_packed_gradients_reach_hx_in_original_order(mode, backend):
    # no firing-rate penalty: its gradient reaches every sequence's spikes, and with them every initial state
    module = _f64(mode, backend=backend, bidirectional=True, rate_penalty=0.0)
    if mode == "LSTM":   # make the forget gates fire, so that c_0 reaches the final states
        with torch.no_grad():
            for name in ("bias_ih_l0", "bias_ih_l0_reverse"):
                getattr(module, name)[HIDDEN_SIZE:2 * HIDDEN_SIZE] = 10.0
    seqs = [torch.randn(n, INPUT_SIZE, dtype=F64) for n in (2, 4, 3)]
    hx = random_hx(module, 3, requires_grad=True)
    _, states = module(pack_sequence(seqs, enforce_sorted=False), hx)
    # only sequence 1's final states enter the loss: only its initial states get a gradient
    sum(s[:, 1].sum() for s in as_list(states)).backward()
    for s in as_list(hx):
        assert s.grad[:, 1].abs().sum() > 0
        assert torch.all(s.grad[:, [0, 2]] == 0)


# ----------------------------------------------------------------------------- cells

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_parameters_and_state_dict_match_torch_cell(mode, bias):
    ours, ref = SPIKING_CELLS[mode](3, 5, bias=bias), TORCH_CELLS[mode](3, 5, bias=bias)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(SPIKING_CELLS[mode](3, 5, bias=bias).state_dict(), strict=True)
    if not bias:
        assert ours.bias_ih is None and ours.bias_hh is None


@pytest.mark.parametrize("mode", MODES)
def test_cell_output_shapes_match_torch_cell(mode):
    ours, ref = SPIKING_CELLS[mode](3, 5), TORCH_CELLS[mode](3, 5)
    for x, hx in ((torch.randn(4, 3), None), (torch.randn(3), None),
                  (torch.randn(4, 3), from_list(mode, [torch.rand(4, 5)] * (2 if mode == "LSTM" else 1))),
                  (torch.randn(3), from_list(mode, [torch.rand(5)] * (2 if mode == "LSTM" else 1)))):
        got, want = ours(x, hx), ref(x, hx)
        assert type(got) is type(want)
        assert [s.shape for s in as_list(got)] == [s.shape for s in as_list(want)]


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_cell_equals_batch_of_one(mode):
    cell = SPIKING_CELLS[mode](3, 5, dtype=F64)
    x = torch.randn(3, dtype=F64)
    hx = [torch.rand(5, dtype=F64) for _ in range(2 if mode == "LSTM" else 1)]
    got = as_list(cell(x, from_list(mode, hx)))
    want = as_list(cell(x.unsqueeze(0), from_list(mode, [s.unsqueeze(0) for s in hx])))
    assert_states_equal(got, [s.squeeze(0) for s in want])


def _cell_with_module_weights(module):
    neuron = dict(spike_threshold=module.spike_threshold)
    if module.mode != "RNN":
        neuron.update(gates=module.gates)
    else:
        neuron.update(leak=module.leak)
    if module.mode == "LSTM":
        neuron.update(cell_state=module.cell_state, cell_threshold=module.cell_threshold)
    cell = SPIKING_CELLS[module.mode](module.input_size, module.hidden_size, bias=module.bias, dtype=F64, **neuron)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in module.state_dict().items()}, strict=True)
    return cell


@pytest.mark.parametrize("mode, neuron", [("LSTM", {}), ("LSTM", {"gates": "heaviside", "cell_state": "clamp"}),
                                          ("GRU", {}), ("GRU", {"gates": "heaviside"}), ("RNN", {}),
                                          ("RNN", {"leak": None}), ("RNN", {"leak": 0.5, "spike_threshold": 0.1})],
                         ids=["LSTM", "LSTM-heaviside", "GRU", "GRU-heaviside", "RNN", "RNN-seed", "RNN-leak0.5"])
@pytest.mark.parametrize("steps", [1, 5])
def test_single_layer_stack_equals_cell_applied_step_by_step(mode, neuron, steps, backend):
    module = _f64(mode, backend=backend, **neuron)
    cell = _cell_with_module_weights(module)
    x = torch.randn(steps, 8, INPUT_SIZE, dtype=F64)
    hx = random_hx(module, 8)
    out, states = module(x, hx)
    assert out.shape == (steps, 8, HIDDEN_SIZE)
    state = [s[0] for s in as_list(hx)]
    outputs = []
    for t in range(steps):
        state = as_list(cell(x[t], from_list(mode, state)))
        # the sigmoid GRU cell returns its analog state s, the leaky RNN cell its membrane v; the stack
        # outputs the spikes they emit
        outputs.append(cell.spikes(state[0]) if mode in ("GRU", "RNN") else state[0])
    assert_nontrivial(out, states)
    torch.testing.assert_close(out, torch.stack(outputs))
    assert_states_equal([s[0] for s in as_list(states)], state)


# ----------------------------------------------------------------------------- dropout

def _dropout_probe(bidirectional: bool, invariant: bool, threshold: float, backend: str, hidden: int = 16):
    """A 2-layer SpikingRNN (the seed's cell h = Θ(u), ``leak=None``) whose output shows layer 0's (scaled)
    dropout mask.

    Layer 0 always fires (bias 1, no weights). Layer 1 copies its input feature j to output j
    (forward direction: first half of the input; reverse: second half) and fires when that feature
    is ``>= threshold``. So output[t, b, j] = 1 iff layer 0's output at (t, b, j) after dropout
    is at least ``threshold``.
    """
    module = SPIKING["RNN"](2, hidden, num_layers=2, dropout=0.5, bidirectional=bidirectional,
                            invariant_dropout_mask=invariant, dtype=F64, backend=backend, leak=None)
    eye = torch.eye(hidden, dtype=F64)
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.zero_()
            if name.startswith("bias_ih_l0"):
                param.fill_(1.0)
            elif name.startswith("bias_ih_l1"):
                param.fill_(-threshold)
            elif name == "weight_ih_l1":
                param[:, :hidden] = eye
            elif name == "weight_ih_l1_reverse":
                param[:, hidden:] = eye
    return module


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("invariant", [False, True])
def test_eval_mode_disables_dropout(bidirectional, invariant, backend):
    probe = _dropout_probe(bidirectional, invariant, threshold=0.5, backend=backend).eval()
    out, _ = probe(torch.randn(6, 8, 2, dtype=F64))
    assert torch.all(out == 1)     # every layer-0 spike arrives undropped and unscaled
    # eval output of a randomly initialised stack equals a dropout-free copy's
    for mode in MODES:
        with_dropout = _f64(mode, hidden_size=16, num_layers=3, dropout=0.5, bidirectional=bidirectional,
                            invariant_dropout_mask=invariant, backend=backend).eval()
        without = _f64(mode, hidden_size=16, num_layers=3, bidirectional=bidirectional, backend=backend)
        without.load_state_dict(with_dropout.state_dict())
        x = torch.randn(6, 4, INPUT_SIZE, dtype=F64)
        hx = random_hx(without, 4)
        a, b = with_dropout(x, hx), without(x, hx)
        assert_nontrivial(a)
        torch.testing.assert_close(a[0], b[0])
        assert_states_equal(a[1], b[1])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_train_mode_drops_layer0_output_with_fresh_mask_per_step(bidirectional, backend):
    probe = _dropout_probe(bidirectional, invariant=False, threshold=1.5, backend=backend).train()
    out, _ = probe(torch.randn(8, 8, 2, dtype=F64))
    # kept spikes are scaled by 1/(1-p) = 2 (>= 1.5), dropped ones are 0: the output is the mask
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert 0.3 < out.mean().item() < 0.7
    if bidirectional:   # both halves (directions) of layer 0's output are dropped
        for half in (out[..., :16], out[..., 16:]):
            assert 0.3 < half.mean().item() < 0.7
    # a fresh mask for each step: some positions change over time
    assert not torch.all(out == out[0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_invariant_dropout_mask_is_shared_by_all_steps(bidirectional, backend):
    probe = _dropout_probe(bidirectional, invariant=True, threshold=1.5, backend=backend).train()
    out, _ = probe(torch.randn(8, 8, 2, dtype=F64))
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert 0.3 < out[0].mean().item() < 0.7
    assert torch.all(out == out[0])                      # same mask at every step
    assert not torch.all(out[0] == out[0, :1])           # but one mask per sequence
    if bidirectional:
        for half in (out[0, :, :16], out[0, :, 16:]):
            assert 0.3 < half.mean().item() < 0.7
    # a new forward call draws a new mask
    out2, _ = probe(torch.randn(8, 8, 2, dtype=F64))
    assert not torch.equal(out2, out)


@pytest.mark.parametrize("mode", MODES)
def test_dropout_never_touches_the_last_layer(mode, backend):
    with pytest.warns(UserWarning):
        module = _f64(mode, num_layers=1, dropout=0.9, bidirectional=True, backend=backend)
    x = torch.randn(8, 4, INPUT_SIZE, dtype=F64)
    hx = random_hx(module, 4)
    train_out, train_states = module.train()(x, hx)
    eval_out, eval_states = module.eval()(x, hx)
    assert_nontrivial(eval_out)
    torch.testing.assert_close(train_out, eval_out)
    assert_states_equal(train_states, eval_states)


@pytest.mark.parametrize("mode", MODES)
def test_train_mode_dropout_changes_a_multilayer_output(mode, backend):
    module = _f64(mode, hidden_size=16, num_layers=2, dropout=0.9, backend=backend)
    x = torch.randn(6, 8, INPUT_SIZE, dtype=F64)
    hx = random_hx(module, 8)
    eval_out, _ = module.eval()(x, hx)
    train_out, _ = module.train()(x, hx)
    assert_nontrivial(eval_out)
    assert not torch.equal(train_out, eval_out)
