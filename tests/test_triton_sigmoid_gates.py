"""The triton backend's sigmoid gate form (``gates="sigmoid"``, the default of SpikingLSTM and SpikingGRU)
against the reference backend, on the CPU under the Triton interpreter (tests/conftest.py).

What runs: the LSTM (with and without ``proj_size``, with and without biases) and the GRU, two
bidirectional layers and one, packed sequences of unequal lengths, non-zero initial states, the
persistent kernels and the per-step ones (``PERSISTENT_MAX_HIDDEN = 0``), with and without
``low_memory``, full-precision and TF32 products, Erf and ATan with non-default ``alpha`` and a
non-default ``spike_threshold``.

Exactness: the weights, biases, inputs and initial states are small dyadic rationals, so every
pre-activation is exact in float32 whatever the order of summation (what a cell sends is 0/1, its
projection dyadic). sigmoid and tanh then round differently in the kernels (from ``exp``) and in torch
by an ulp or two: the analog states (the LSTM's ``c``, the GRU's ``s``) agree within 1e-5, and the
spikes are equal bit for bit because every problem here is decisive: each input of an emitted spike
that is not exactly 0 lies at least ``MARGIN`` from 0 in the reference (checked by every test through
:func:`decided_spikes`; exact zeros, e.g. ``s_0 - θ`` at ``s_0 = θ = 1/4``, are computed exactly by
both). The seeds were not searched: the default ones are decisive, by about 100 times the drift.
Gradients agree within 1e-5 of the largest reference gradient.
"""
from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("triton")

import torch
from torch.nn.utils.rnn import PackedSequence

import spikingrnn
from builders import build_model, forward_backward, make_inputs, same_weights
from spikingrnn import surrogate as sg
from spikingrnn.ops import dispatch
from spikingrnn.ops.reference import reference_rnn
from spikingrnn.ops.spec import RNNSpec
from spikingrnn.ops.triton import kernels_interpreted, load_kernels, triton_rnn, unsupported_spec

load_kernels()  # already imported by conftest.py, for the interpreter where there is no GPU
from spikingrnn.ops.triton import exactness, persistent, persistent_gru_sigmoid  # noqa: E402

DT = torch.float32
MARGIN = 1e-4  # least distance of a (non-zero) spike input from 0 in the reference: no rounding can flip it
TOLERANCE = 1e-5  # analog states: absolute; gradients: relative to the largest reference gradient


@pytest.fixture(autouse=True)
def interpreter(triton_interpreter):
    """Every test runs the kernels under the Triton interpreter (conftest.py)."""
    assert kernels_interpreted()


@pytest.fixture(params=["persistent", "per-step"])
def kernel_path(request, monkeypatch):
    """The persistent kernels (one launch for all steps) and the per-step ones; yields the counts of the
    persistent launchers' calls."""
    calls = {"forward": 0, "backward": 0}

    def counted(name, real):
        def run(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return run

    for module, prefix in ((persistent, "lstm"), (persistent_gru_sigmoid, "gru_sigmoid")):
        for name in calls:
            function = f"{prefix}_persistent_{name}"
            monkeypatch.setattr(module, function, counted(name, getattr(module, function)))
    if request.param == "per-step":
        monkeypatch.setattr(persistent, "PERSISTENT_MAX_HIDDEN", 0)
    yield request.param, calls


# ----------------------------------------------------------------------------------------- problems

def dyadic(shape, generator, scale, low, high):
    """Integers in ``[low, high)`` times ``scale``, float32."""
    return torch.randint(low, high, shape, generator=generator).to(DT) * scale


def problem(mode, *, hidden=6, inputs=4, layers=2, bidirectional=True, proj=0, bias=True, steps=4, batch=3,
            seed=0):
    """``(x [T, B, I], states, weights)`` of a stack: weights multiples of 1/8 in [-1, 1], biases of 1/8
    in [-1/2, 1/2], input and initial states multiples of 1/4 in [-1, 1] (non-zero in general)."""
    generator = torch.Generator().manual_seed(seed)
    gates = {"LSTM": 4, "GRU": 3}[mode] * hidden
    out = proj or hidden
    directions = 2 if bidirectional else 1
    weights = []
    for layer in range(layers):
        width = inputs if layer == 0 else out * directions
        for _ in range(directions):
            w_ih = dyadic((gates, width), generator, 1 / 8, -8, 9)
            w_hh = dyadic((gates, out), generator, 1 / 8, -8, 9)
            b_ih = dyadic((gates,), generator, 1 / 8, -4, 5) if bias else None
            b_hh = dyadic((gates,), generator, 1 / 8, -4, 5) if bias else None
            w_hr = dyadic((proj, hidden), generator, 1 / 8, -8, 9) if proj else None
            weights.append((w_ih, w_hh, b_ih, b_hh, w_hr))
    rows = layers * directions
    states = [dyadic((rows, batch, out), generator, 1 / 4, -4, 5)]
    if mode == "LSTM":
        states.append(dyadic((rows, batch, hidden), generator, 1 / 4, -4, 5))
    x = dyadic((steps, batch, inputs), generator, 1 / 4, -4, 5)
    return x, tuple(states), weights


def leaves_of(x, states, weights):
    """Fresh leaves requiring gradients, with their names: ``(x, states, weights, [(name, leaf)])``."""
    x = x.clone().requires_grad_()
    states = tuple(s.clone().requires_grad_() for s in states)
    fresh, named = [], [("x", x), *((f"state{i}", s) for i, s in enumerate(states))]
    for k, ws in enumerate(weights):
        copies = []
        for name, w in zip(("w_ih", "w_hh", "b_ih", "b_hh", "w_hr"), ws):
            w = None if w is None else w.clone().requires_grad_()
            if w is not None:
                named.append((f"{name}[{k}]", w))
            copies.append(w)
        fresh.append(tuple(copies))
    return x, states, fresh, named


def run(backend, x, states, weights, spec, pairs, lengths=None, **options):
    """Forward and backward of ``backend`` (``reference_rnn`` or ``triton_rnn``) on fresh leaves, with the
    loss ``sum(out * w) + sum(state_n * w_n)`` (random ``w``, rows past their length excluded): the
    output, the final states and ``{leaf name: gradient}``."""
    x, states, weights, named = leaves_of(x, states, weights)
    out, final = backend(x, states, weights, spec, pairs, lengths=lengths, training=True, **options)
    valid = torch.ones(out.shape[0], out.shape[1], 1, dtype=out.dtype)
    if lengths is not None:
        valid = (torch.arange(out.shape[0]).unsqueeze(1) < lengths).unsqueeze(2).to(out.dtype)
    generator = torch.Generator().manual_seed(7)
    loss = (out * valid * torch.randn(out.shape, generator=generator)).sum()
    for s in final:
        loss = loss + (s * torch.randn(s.shape, generator=generator)).sum()
    grads = torch.autograd.grad(loss, [leaf for _, leaf in named], allow_unused=True)
    return (out * valid).detach(), [s.detach() for s in final], {name: g for (name, _), g in zip(named, grads)}


class SpikeInputs:
    """A surrogate for the reference run that records the least non-zero ``|u|`` it fires from."""

    def __init__(self, spike):
        self.spike = spike
        self.least = math.inf

    def __call__(self, u):
        distance = u.detach().abs()
        distance = distance[distance > 0]
        if distance.numel():
            self.least = min(self.least, distance.min().item())
        return self.spike(u)


def decided_spikes(x, states, weights, spec, pairs, lengths=None) -> float:
    """Asserts that no rounding can flip a spike of the reference run (see the module docstring);
    returns the margin."""
    recorders = [(SpikeInputs(first), second) for first, second in pairs]
    with torch.no_grad():
        reference_rnn(x, states, weights, spec, recorders, lengths=lengths)
    margin = min(first.least for first, _ in recorders)
    assert margin >= MARGIN, f"a spike input within {margin:.2g} of 0: not a decisive problem, choose another seed"
    return margin


def assert_matches(ref, tri, spec, *, lstm_proj=False):
    """The triton run ``tri`` equals the reference run ``ref`` (see the module docstring); the output
    spikes are 0/1, not all alike."""
    out_ref, final_ref, grads_ref = ref
    out, final, grads = tri
    assert torch.equal(out, out_ref), f"{(out != out_ref).sum().item()} output values differ"
    if not lstm_proj:
        assert bool(((out == 0) | (out == 1)).all()), "the outputs are 0/1 spikes"
        assert 0 < out.mean().item() < 1, "some spikes fire, some do not"
    analog = {"LSTM": 1, "GRU": 0}[spec.mode]  # c, s
    for index, (a, b) in enumerate(zip(final_ref, final)):
        if index == analog:
            torch.testing.assert_close(b, a, atol=TOLERANCE, rtol=0, msg=f"final state {index}")
        else:  # the LSTM's h: spikes (or a projection of them: dyadic sums), exact
            assert torch.equal(a, b), f"final state {index}"
    assert grads.keys() == grads_ref.keys()
    for name, a in grads_ref.items():
        b = grads[name]
        assert a is not None and b is not None, name
        scale = max(1.0, a.abs().max().item())
        torch.testing.assert_close(b, a, atol=TOLERANCE * scale, rtol=0, msg=name)
    assert any(g.abs().max() > 0 for name, g in grads_ref.items() if name.startswith("w_")), "no weight gradient"


def check(mode, *, spike_threshold=0.25, pairs=None, lengths=None, low_memory=False, tf32=False, **sizes):
    """One problem through the reference and the triton backend (``tf32``: TF32 products, the Triton GEMM
    and the persistent kernels' TF32 dots), compared by :func:`assert_matches`."""
    x, states, weights = problem(mode, **sizes)
    spec = RNNSpec(mode, sizes.get("layers", 2), sizes.get("bidirectional", True), gates="sigmoid",
                   cell_state="accumulate", spike_threshold=spike_threshold, low_memory=low_memory)
    assert spec.sigmoid_gates
    pairs = [pairs or (sg.Erf(alpha=1.5), sg.ATan(alpha=3.0))] * len(weights)
    decided_spikes(x, states, weights, spec, pairs, lengths)
    ref = run(reference_rnn, x, states, weights, spec, pairs, lengths)
    tri = run(triton_rnn, x, states, weights, spec, pairs, lengths, tf32=tf32)
    assert_matches(ref, tri, spec, lstm_proj=bool(sizes.get("proj")))


# ------------------------------------------------------------------- against the reference, every path

CASES = {
    "lstm-2-layers-bidirectional": dict(mode="LSTM"),
    "lstm-proj-no-bias-atan-theta": dict(mode="LSTM", proj=3, bias=False, spike_threshold=0.4,
                                         pairs=(sg.ATan(alpha=3.0), sg.Erf())),
    "lstm-proj-1-layer-packed": dict(mode="LSTM", proj=2, layers=1, bidirectional=False, steps=5,
                                     lengths=torch.tensor([5, 3, 1])),
    "lstm-packed-bidirectional-theta": dict(mode="LSTM", spike_threshold=0.1, steps=5, lengths=torch.tensor([5, 4, 2])),
    "gru-2-layers-bidirectional": dict(mode="GRU", pairs=(sg.Erf(alpha=0.8), sg.ATan())),
    "gru-no-bias-atan-theta": dict(mode="GRU", bias=False, spike_threshold=0.3, layers=1,
                                   pairs=(sg.ATan(alpha=2.5), sg.Erf())),
    "gru-packed-bidirectional": dict(mode="GRU", steps=5, lengths=torch.tensor([5, 2, 1]), spike_threshold=0.35),
}


@pytest.mark.parametrize("low_memory", [False, True], ids=["keep", "low_memory"])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_matches_reference(case, low_memory, kernel_path):
    path, calls = kernel_path
    check(**case, low_memory=low_memory)
    ran_persistent = calls["forward"] > 0 and calls["backward"] > 0
    lstm_proj = case["mode"] == "LSTM" and case.get("proj")
    assert ran_persistent == (path == "persistent" and not lstm_proj), calls  # the path under test ran


@pytest.mark.parametrize("mode, options", [("LSTM", dict(proj=3)), ("LSTM", {}), ("GRU", {})],
                         ids=["lstm-proj", "lstm", "gru"])
def test_tf32_products_match_reference(mode, options, kernel_path, monkeypatch):
    """TF32 products (as on a GPU by default): the Triton GEMM and the persistent kernels' TF32 dots; the
    interpreter multiplies exactly and the operands are dyadic: the same results, packed and low memory."""
    from spikingrnn.ops.triton import matmul
    used = {"triton_mm": 0}
    real = matmul.triton_mm

    def counted(*args, **kwargs):
        used["triton_mm"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(matmul, "triton_mm", counted)
    check(mode, tf32=True, steps=5, lengths=torch.tensor([5, 4, 1]), low_memory=True, **options)
    assert used["triton_mm"] > 0


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_persistent_kernels_tile(mode, kernel_path):
    """Hidden 40 and batch 20 span two BLOCK_H / BLOCK_K and two BLOCK_B tiles of the persistent kernels
    (with their masked edges), packed: larger than the other tests' shapes, on purpose."""
    lengths = torch.tensor([3] * 7 + [2] * 8 + [1] * 5)
    check(mode, hidden=40, inputs=3, layers=1, bidirectional=False, steps=3, batch=20, lengths=lengths,
          spike_threshold=0.3)


def test_gradient_reaches_the_initial_state_through_its_spikes():
    """The GRU's first step reads ``Θ(s_0 - θ)``: with the state's own path cut (``z = 0``: ``s_1 = n``),
    the gradient of ``s_0`` is that of its spikes through the surrogate, as in the reference."""
    hidden, inputs = 4, 2
    x, _, weights = problem("GRU", hidden=hidden, inputs=inputs, layers=1, bidirectional=False, steps=1, batch=2)
    w_ih, w_hh, b_ih, b_hh, _ = weights[0]
    b_ih = b_ih.clone()
    b_ih[hidden:2 * hidden] = -200.0  # z = sigmoid(-200) = 0 in float32
    weights = [(w_ih, w_hh, b_ih, b_hh, None)]
    s0 = torch.tensor([[[0.3, 0.2, -0.5, 0.75], [0.0, 0.25, 1.0, -1.0]]])
    spec = RNNSpec("GRU", 1, False, gates="sigmoid", spike_threshold=0.25)
    pairs = [(sg.ATan(alpha=2.0), sg.Erf())]
    ref = run(reference_rnn, x, (s0,), weights, spec, pairs)
    tri = run(triton_rnn, x, (s0,), weights, spec, pairs)
    assert ref[2]["state0"].abs().max() > 0, "the gradient comes through the spikes only"
    torch.testing.assert_close(tri[2]["state0"], ref[2]["state0"], atol=TOLERANCE, rtol=0)


# ---------------------------------------------------------------------- the modules, packed sequences

@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("low_memory", [False, True], ids=["keep", "low_memory"])
def test_modules_run_the_sigmoid_form_on_triton(mode, low_memory):
    """SpikingLSTM / SpikingGRU with their default gates ("sigmoid") and a non-default spike threshold on
    backend="triton": a PackedSequence of unequal lengths, unsorted, non-zero initial states, two
    bidirectional layers; the same output, final states and gradients as backend="reference"."""
    options = dict(gates="sigmoid", spike_threshold=0.3)
    model = build_model(mode, 3, 5, 2, bidirectional=True, proj_size=2 if mode == "LSTM" else 0,
                        cell_state="accumulate", surrogate=sg.Erf(alpha=1.2), surrogate2=sg.ATan(alpha=2.5),
                        dtype=DT, backend="reference", weights="dyadic", low_memory=low_memory, **options)
    assert model.gates == "sigmoid" and model.spec().sigmoid_gates
    inputs = make_inputs(model, 4, 3, lengths=[2, 4, 3], enforce_sorted=False, kind="dyadic", seed=3)
    ref = forward_backward(model, inputs)
    tri = forward_backward(same_weights(model, "triton"), inputs)
    assert torch.equal(tri.output, ref.output)
    for index, (a, b) in enumerate(zip(ref.states, tri.states)):
        torch.testing.assert_close(b, a, atol=TOLERANCE, rtol=0, msg=f"state {index}")
    for name, a in ref.grads.items():
        scale = max(1.0, a.abs().max().item())
        torch.testing.assert_close(tri.grads[name], a, atol=TOLERANCE * scale, rtol=0, msg=name)


def test_module_default_gru_emits_spikes():
    """The GRU's default configuration on triton: the output holds 0/1 spikes, the final state is analog
    and its last step's spikes are the output's (``output[-1] = Θ(h_n - θ)``)."""
    torch.manual_seed(0)
    model = spikingrnn.SpikingGRU(4, 6, backend="triton")
    assert model.gates == "sigmoid"
    x = torch.randn(5, 3, 4)
    out, h_n = model(torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([5, 5, 5])))
    assert isinstance(out, PackedSequence)
    y = out.data.view(5, 3, 6)
    assert bool(((y == 0) | (y == 1)).all())
    assert not bool(((h_n == 0) | (h_n == 1)).all()), "the state is analog"
    assert torch.equal(y[-1], (h_n[0] - model.spike_threshold >= 0).to(DT))


# ------------------------------------------------------------------------------------ low memory

@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_low_memory_keeps_only_bits(mode, kernel_path):
    """low_memory keeps no pre-activations, projections or analog states (backward recomputes them, as
    forward computed them: test_matches_reference), the spikes as bit rows (uint8); with a 0/1 input and a
    zero initial state, nothing else but the weights. Without it, the analog state of every step is kept."""
    hidden, steps, batch = 8, 5, 3
    x, _, weights = problem(mode, hidden=hidden, layers=1, bidirectional=False, steps=steps, batch=batch)
    x = (x > 0).to(DT)  # spikes in
    states = tuple(torch.zeros(1, batch, hidden) for _ in range(2 if mode == "LSTM" else 1))
    x, states, weights, _ = leaves_of(x, states, weights)
    parameters = {id(w) for ws in weights for w in ws if w is not None}
    for low_memory in (True, False):
        spec = RNNSpec(mode, 1, False, gates="sigmoid", low_memory=low_memory)
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            triton_rnn(x, states, weights, spec, [(sg.Erf(), sg.Erf())], training=True)
        floats = [t for t in kept if id(t) not in parameters and t.is_floating_point() and t.numel()]
        if low_memory:
            assert not floats, [tuple(t.shape) for t in floats]
            assert any(t.dtype == torch.uint8 for t in kept), "the 0/1 input and outputs as bit rows"
        else:
            analog = [t for t in floats
                      if tuple(t.shape) == (steps, batch, hidden) and not bool(((t == 0) | (t == 1)).all())]
            assert len(analog) == 1, "the analog state of every step"


@pytest.mark.parametrize("mode, proj", [("LSTM", 0), ("LSTM", 3), ("GRU", 0)], ids=["lstm", "lstm-proj", "gru"])
def test_low_memory_recomputes_exactly(mode, proj, kernel_path):
    """Float weights (not dyadic: products round): low_memory's backward recomputes the pre-activations
    and the analog states with the kernels and GEMM calls that computed them in forward, so its
    gradients equal, bit for bit, those of keeping them; packed rows, two bidirectional layers."""
    torch.manual_seed(3)
    classes = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU}
    options = dict(proj_size=proj) if mode == "LSTM" else {}
    model = classes[mode](4, 8, 2, bidirectional=True, backend="triton", gates="sigmoid", spike_threshold=0.05,
                          **options)
    with torch.no_grad():  # spikes in every layer: a gradient for every parameter
        for p in model.parameters():
            p.mul_(4)
    x = torch.randn(5, 3, 4) * 2
    lengths = torch.tensor([5, 4, 2])
    grads = {}
    for low in (False, True):
        model.low_memory = low
        model.zero_grad()
        out, final = model(torch.nn.utils.rnn.pack_padded_sequence(x, lengths))
        final = final if isinstance(final, tuple) else (final,)
        weights = torch.randn(out.data.shape, generator=torch.Generator().manual_seed(1))
        ((out.data * weights).sum() + sum(s.sum() for s in final)).backward()
        grads[low] = [p.grad.clone() for p in model.parameters()]
    assert all(g.abs().sum() > 0 for g in grads[False])
    for a, b in zip(grads[False], grads[True]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("low_memory", [False, True], ids=["keep", "low_memory"])
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_float16_tracks_the_float32_reference(mode, low_memory, kernel_path):
    """float16 (the interpreter runs it; bfloat16 needs the GPU's dot): the float32 carries of the analog
    state and of the gradients, the half-type storage, within test_triton_cuda.py's float16 bounds
    (exactness.tracking_problems) of the float32 reference on the same rounded values."""
    dt = torch.float16
    torch.manual_seed(0)
    hidden, inputs, steps, batch = 8, 4, 5, 3
    gates = {"LSTM": 4, "GRU": 3}[mode] * hidden
    rounded = lambda t: t.to(dt).to(DT)  # noqa: E731
    weights = [(rounded(torch.randn(gates, inputs) * 0.5), rounded(torch.randn(gates, hidden) * 0.5),
                rounded(torch.randn(gates) * 0.3), rounded(torch.randn(gates) * 0.3), None)]
    states = tuple(rounded(torch.randn(1, batch, hidden)) for _ in range(2 if mode == "LSTM" else 1))
    x = rounded(torch.randn(steps, batch, inputs))
    spec = RNNSpec(mode, 1, False, gates="sigmoid", low_memory=low_memory)
    pairs = [(sg.ATan(alpha=2.5), sg.Erf())]
    ref = run(reference_rnn, x, states, weights, spec, pairs)
    half = run(triton_rnn, x.to(dt), tuple(s.to(dt) for s in states),
               [tuple(None if w is None else w.to(dt) for w in ws) for ws in weights], spec, pairs)
    assert half[0].dtype == dt and all(s.dtype == dt for s in half[1])
    assert all(g.dtype == dt for g in half[2].values())
    problems = exactness.tracking_problems([ref[0], *ref[1]], [half[0].float(), *(s.float() for s in half[1])],
                                           list(ref[2].values()), [g.float() for g in half[2].values()], dt)
    assert not problems, problems


# ------------------------------------------------------------------------------- dispatch and checks

def test_unsupported_spec_accepts_the_sigmoid_form():
    for mode in ("LSTM", "GRU", "RNN"):
        for gates in ("sigmoid", "heaviside"):
            cell_state = "accumulate" if gates == "sigmoid" else "clamp"
            assert unsupported_spec(RNNSpec(mode, 1, False, gates=gates, cell_state=cell_state)) is None
    spec = RNNSpec("GRU", 1, False)  # the defaults: gates="sigmoid"
    assert spec.sigmoid_gates
    pairs = [(sg.Erf(), sg.ATan())]
    assert dispatch.resolve("triton", torch.device("cpu"), DT, pairs, spec=spec) is triton_rnn


def test_an_invalid_gate_form_raises_instead_of_running_another():
    x, states, weights = problem("LSTM", layers=1, bidirectional=False)
    pairs = [(sg.Erf(), sg.Erf())]
    with pytest.raises(ValueError, match="cell_state must be 'accumulate'"):
        triton_rnn(x, states, weights, RNNSpec("LSTM", 1, False, gates="sigmoid", cell_state="clamp"), pairs)
    with pytest.raises(ValueError, match="gates must be one of"):
        triton_rnn(x, states, weights, RNNSpec("LSTM", 1, False, gates="relu", cell_state="clamp"), pairs)


def test_self_check_covers_the_default_configuration_and_passes():
    sigmoid = [c for c in exactness.SELF_CHECK_CASES if c.gates == "sigmoid"]
    assert {c.mode for c in sigmoid} == {"LSTM", "GRU"} and any(c.proj for c in sigmoid)
    assert all(c.cell_state == "accumulate" for c in sigmoid)
    heaviside = [c for c in exactness.SELF_CHECK_CASES if c.gates == "heaviside"]
    assert {c.mode for c in heaviside} == {"LSTM", "GRU", "RNN"}
    cpu = torch.device("cpu")
    for case in sigmoid:  # compared bit for bit (spikes) there, not within tracking bounds
        assert exactness.spike_margin(case, cpu) >= exactness.SPIKE_MARGIN, case.describe()
    assert exactness.self_check(cpu) is None


def test_exactness_cases_name_their_gate_form():
    cases = exactness.cases(quick=True)
    assert all(c.gates in ("sigmoid", "heaviside") for c in cases)
    assert all(c.cell_state == "accumulate" for c in cases if c.gates == "sigmoid")
    assert {c.mode for c in cases if c.sigmoid} == {"LSTM", "GRU"}
    assert any(c.sigmoid and c.proj for c in cases)
    full = exactness.cases()
    assert {(c.mode, c.hidden) for c in full if c.sigmoid} >= {(m, h) for m in ("LSTM", "GRU") for h in (20, 256, 300)}


def test_exactness_reports_a_wrong_spike_of_the_sigmoid_form(monkeypatch):
    """The check itself: a sigmoid-form run with one flipped output spike fails the decisive comparison."""
    real = exactness.run

    def flipped(backend, case, device, **options):
        results, grads = real(backend, case, device, **options)
        if backend is triton_rnn:
            results[0] = results[0].clone()
            results[0][0, 0, 0] = 1 - results[0][0, 0, 0]
        return results, grads

    monkeypatch.setattr(exactness, "run", flipped)
    case = exactness.SELF_CHECK_CASES[2]
    assert case.mode == "GRU" and case.sigmoid
    problems = exactness.check_case(case, torch.device("cpu"), repeats=1)
    assert problems and problems[0].startswith("output: 1 of"), problems


def test_persistent_sigmoid_gru_forms_step_offsets_in_int64():
    """As tests/test_gpu_paths.py checks the other persistent kernels: no step index times the batch in int32."""
    int32_step = re.compile(r"\(\s*t\s*(-\s*1\s*)?\)?\s*\*\s*batch|\bt\s*\*\s*batch")
    source = open(persistent_gru_sigmoid.__file__).read()
    found = [line.strip() for line in source.splitlines() if int32_step.search(line) and "tl.cast" not in line]
    assert not found, found
