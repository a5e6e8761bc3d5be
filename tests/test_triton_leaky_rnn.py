"""The triton backend's leaky vanilla RNN (``leak=β``, the default of SpikingRNN) against the reference
backend, on the CPU under the Triton interpreter (tests/conftest.py).

What runs: ``leak`` 0.9, 0.5 and 0.0 with non-default spike thresholds, with and without biases, two
bidirectional layers and one, packed sequences of unequal lengths, non-zero initial membranes, the
persistent kernels and the per-step ones (``PERSISTENT_MAX_HIDDEN = 0``), with and without ``low_memory``,
full-precision and TF32 products, ATan and Erf (and Sigmoid) surrogates with non-default ``alpha``; the
SpikingRNN module on ``backend="triton"``; float16 within the tracking bounds of the float32 reference.

Exactness: the weights, biases, inputs and initial membranes are small dyadic rationals, so every
pre-activation ``u`` is exact in float32 whatever the order of summation (what the cell sends is 0/1).
``v' = β v + (1 - β) u`` is then rounded by the kernels as by the reference (the same three float32
operations), so the final membranes agree (within 1e-5 asserted, bit for bit measured) and the spikes
are equal: every problem here is decisive besides, no input ``v - θ`` of a reference spike lies within
``MARGIN`` of 0 (checked by every comparison through :func:`decided_spikes`, exact zeros included).
Gradients agree within 1e-5 of the largest reference gradient.
"""
from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("triton")

import torch

import spikingrnn
from builders import build_model, forward_backward, make_inputs, same_weights
from spikingrnn import surrogate as sg
from spikingrnn.functional.cells import DEFAULT_LEAK
from spikingrnn.ops import dispatch
from spikingrnn.ops.reference import reference_rnn
from spikingrnn.ops.spec import RNNSpec
from spikingrnn.ops.triton import kernels_interpreted, load_kernels, triton_rnn, unsupported_spec

load_kernels()  # already imported by conftest.py, for the interpreter where there is no GPU
from spikingrnn.ops.triton import exactness, persistent, persistent_leaky_rnn  # noqa: E402

DT = torch.float32
MARGIN = 1e-4  # least distance of a spike input v - θ from 0 in the reference: no rounding can flip it
TOLERANCE = 1e-5  # final membranes: absolute; gradients: relative to the largest reference gradient


@pytest.fixture(autouse=True)
def interpreter(triton_interpreter):
    """Every test runs the kernels under the Triton interpreter (conftest.py)."""
    assert kernels_interpreted()


@pytest.fixture(params=["persistent", "per-step"])
def kernel_path(request, monkeypatch):
    """The persistent kernels (one launch for all steps) and the per-step ones; yields the path and the
    counts of the persistent launchers' calls."""
    calls = {"forward": 0, "backward": 0}

    def counted(name, real):
        def run(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return run

    for name in calls:
        function = f"leaky_rnn_persistent_{name}"
        monkeypatch.setattr(persistent_leaky_rnn, function, counted(name, getattr(persistent_leaky_rnn, function)))
    if request.param == "per-step":
        monkeypatch.setattr(persistent, "PERSISTENT_MAX_HIDDEN", 0)
    yield request.param, calls


# ----------------------------------------------------------------------------------------- problems

def dyadic(shape, generator, scale, low, high):
    """Integers in ``[low, high)`` times ``scale``, float32."""
    return torch.randint(low, high, shape, generator=generator).to(DT) * scale


def problem(*, hidden=6, inputs=4, layers=2, bidirectional=True, bias=True, steps=4, batch=3, seed=0):
    """``(x [T, B, I], (v0 [L*D, B, H],), weights)`` of a vanilla RNN stack: weights multiples of 1/8 in
    [-1, 1], biases of 1/8 in [-1/2, 1/2], input and initial membranes multiples of 1/4 in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    directions = 2 if bidirectional else 1
    weights = []
    for layer in range(layers):
        width = inputs if layer == 0 else hidden * directions
        for _ in range(directions):
            w_ih = dyadic((hidden, width), generator, 1 / 8, -8, 9)
            w_hh = dyadic((hidden, hidden), generator, 1 / 8, -8, 9)
            b_ih = dyadic((hidden,), generator, 1 / 8, -4, 5) if bias else None
            b_hh = dyadic((hidden,), generator, 1 / 8, -4, 5) if bias else None
            weights.append((w_ih, w_hh, b_ih, b_hh, None))
    v0 = dyadic((layers * directions, batch, hidden), generator, 1 / 4, -4, 5)
    x = dyadic((steps, batch, inputs), generator, 1 / 4, -4, 5)
    return x, (v0,), weights


def run(backend, x, states, weights, spec, pairs, lengths=None, **options):
    """Forward and backward of ``backend`` (``reference_rnn`` or ``triton_rnn``) on fresh leaves, with the
    loss ``sum(out * w) + sum(v_n * w_n)`` (random ``w``, rows past their length excluded): the output, the
    final states and ``{leaf name: gradient}``."""
    x = x.clone().requires_grad_()
    states = tuple(s.clone().requires_grad_() for s in states)
    named = [("x", x), *((f"state{i}", s) for i, s in enumerate(states))]
    fresh = []
    for k, ws in enumerate(weights):
        copies = []
        for name, w in zip(("w_ih", "w_hh", "b_ih", "b_hh", "w_hr"), ws):
            w = None if w is None else w.clone().requires_grad_()
            if w is not None:
                named.append((f"{name}[{k}]", w))
            copies.append(w)
        fresh.append(tuple(copies))
    out, final = backend(x, states, fresh, spec, pairs, lengths=lengths, training=True, **options)
    valid = torch.ones(out.shape[0], out.shape[1], 1, dtype=out.dtype)
    if lengths is not None:
        valid = (torch.arange(out.shape[0]).unsqueeze(1) < lengths).unsqueeze(2).to(out.dtype)
    generator = torch.Generator().manual_seed(7)
    loss = (out * valid * torch.randn(out.shape, generator=generator).to(out.dtype)).sum()
    for s in final:
        loss = loss + (s * torch.randn(s.shape, generator=generator).to(s.dtype)).sum()
    grads = torch.autograd.grad(loss, [leaf for _, leaf in named], allow_unused=True)
    return (out * valid).detach(), [s.detach() for s in final], {name: g for (name, _), g in zip(named, grads)}


class SpikeInputs:
    """A surrogate for the reference run that records the least ``|v - θ|`` it fires from (zeros included)."""

    def __init__(self, spike):
        self.spike = spike
        self.least = math.inf

    def __call__(self, u):
        if u.numel():
            self.least = min(self.least, u.detach().abs().min().item())
        return self.spike(u)


def decided_spikes(x, states, weights, spec, pairs, lengths=None) -> float:
    """Asserts that no rounding can flip a spike of the reference run (see the module docstring): every
    input ``v - θ`` of the emitted (and fed back) spikes lies at least ``MARGIN`` from 0. Returns it."""
    recorders = [(SpikeInputs(first), second) for first, second in pairs]
    with torch.no_grad():
        reference_rnn(x, states, weights, spec, recorders, lengths=lengths)
    margin = min(first.least for first, _ in recorders)
    assert margin >= MARGIN, f"a spike input within {margin:.2g} of 0: not a decisive problem, choose another seed"
    return margin


def assert_matches(ref, tri):
    """The triton run ``tri`` equals the reference run ``ref``: the same 0/1 spikes (some fire, some do
    not), final membranes within ``TOLERANCE``, every gradient within ``TOLERANCE`` of the largest."""
    out_ref, final_ref, grads_ref = ref
    out, final, grads = tri
    assert torch.equal(out, out_ref), f"{(out != out_ref).sum().item()} output values differ"
    assert bool(((out == 0) | (out == 1)).all()), "the outputs are 0/1 spikes"
    assert 0 < out.mean().item() < 1, "some spikes fire, some do not"
    assert len(final) == len(final_ref) == 1
    assert not bool(((final_ref[0] == 0) | (final_ref[0] == 1)).all()), "the membrane is analog"
    torch.testing.assert_close(final[0], final_ref[0], atol=TOLERANCE, rtol=0, msg="final membrane")
    assert grads.keys() == grads_ref.keys()
    for name, a in grads_ref.items():
        b = grads[name]
        assert a is not None and b is not None, name
        scale = a.abs().max().item()
        torch.testing.assert_close(b, a, atol=TOLERANCE * scale, rtol=0, msg=name)
    assert all(g.abs().max() > 0 for name, g in grads_ref.items() if name.startswith("w_")), "a zero weight gradient"
    assert grads_ref["state0"].abs().max() > 0, "no gradient of the initial membrane"


def check(*, leak, spike_threshold, pairs, lengths=None, low_memory=False, tf32=False, **sizes):
    """One problem through the reference and the triton backend, compared by :func:`assert_matches`."""
    x, states, weights = problem(**sizes)
    spec = RNNSpec("RNN", sizes.get("layers", 2), sizes.get("bidirectional", True), leak=leak,
                   spike_threshold=spike_threshold, low_memory=low_memory)
    assert spec.leaky and spec.emits_state_spikes and unsupported_spec(spec) is None
    pairs = [pairs] * len(weights)
    decided_spikes(x, states, weights, spec, pairs, lengths)
    ref = run(reference_rnn, x, states, weights, spec, pairs, lengths)
    tri = run(triton_rnn, x, states, weights, spec, pairs, lengths, tf32=tf32)
    assert_matches(ref, tri)


# ------------------------------------------------------------------- against the reference, every path

CASES = {
    "leak0.9-2-layers-bidirectional-packed-atan": dict(leak=0.9, spike_threshold=0.3, steps=5,
                                                       lengths=torch.tensor([5, 3, 2]),
                                                       pairs=(sg.ATan(alpha=2.5), sg.ATan(alpha=2.5))),
    "leak0.5-2-layers-bidirectional-no-bias-erf": dict(leak=0.5, spike_threshold=0.35, bias=False, seed=1,
                                                       pairs=(sg.Erf(alpha=1.5), sg.Erf(alpha=1.5))),
    "leak0.0-1-layer-packed-sigmoid": dict(leak=0.0, spike_threshold=0.15, layers=1, bidirectional=False, steps=5,
                                           batch=4, lengths=torch.tensor([5, 4, 4, 1]),
                                           pairs=(sg.Sigmoid(alpha=3.0), sg.Sigmoid(alpha=3.0))),
}


@pytest.mark.parametrize("low_memory", [False, True], ids=["keep", "low_memory"])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_matches_reference(case, low_memory, kernel_path):
    path, calls = kernel_path
    check(**case, low_memory=low_memory)
    ran_persistent = calls["forward"] > 0 and calls["backward"] > 0
    assert ran_persistent == (path == "persistent"), calls  # the path under test ran
    if low_memory and path == "persistent":  # forward, then its replay in backward
        assert calls["forward"] == 2 * calls["backward"], calls


def test_tf32_products_match_reference(kernel_path, monkeypatch):
    """TF32 products (as on a GPU by default): the Triton GEMM and the persistent kernels' TF32 dots; the
    interpreter multiplies exactly and the operands are dyadic: the same results, packed and low memory."""
    from spikingrnn.ops.triton import matmul
    used = {"triton_mm": 0}
    real = matmul.triton_mm

    def counted(*args, **kwargs):
        used["triton_mm"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(matmul, "triton_mm", counted)
    check(leak=0.9, spike_threshold=0.3, pairs=(sg.ATan(), sg.ATan()), tf32=True, steps=5,
          lengths=torch.tensor([5, 4, 1]), low_memory=True)
    assert used["triton_mm"] > 0


def test_persistent_kernels_tile(kernel_path):
    """Hidden 40 and batch 20 span two BLOCK_H / BLOCK_K and two BLOCK_B tiles of the persistent kernels
    (with their masked edges), packed: larger than the other tests' shapes, on purpose."""
    lengths = torch.tensor([3] * 7 + [2] * 8 + [1] * 5)
    check(leak=0.9, spike_threshold=0.32, pairs=(sg.Erf(alpha=1.2), sg.Erf(alpha=1.2)), hidden=40, inputs=3,
          layers=1, bidirectional=False, steps=3, batch=20, lengths=lengths)


def test_gradient_reaches_the_initial_membrane_through_its_spikes(kernel_path):
    """With ``leak=0`` the membrane forgets ``v_0`` at once (``v_1 = u``): the gradient of ``v_0`` is only
    that of the initial spikes ``Θ(v_0 - θ)`` through the surrogate, as in the reference."""
    x, states, weights = problem(layers=1, bidirectional=False, steps=2, batch=2, hidden=4, inputs=2)
    spec = RNNSpec("RNN", 1, False, leak=0.0, spike_threshold=0.3)
    pairs = [(sg.ATan(alpha=2.0), sg.ATan(alpha=2.0))]
    decided_spikes(x, states, weights, spec, pairs)
    ref = run(reference_rnn, x, states, weights, spec, pairs)
    tri = run(triton_rnn, x, states, weights, spec, pairs)
    assert ref[2]["state0"].abs().max() > 0, "the gradient comes through the spikes only"
    torch.testing.assert_close(tri[2]["state0"], ref[2]["state0"], atol=TOLERANCE * ref[2]["state0"].abs().max(),
                               rtol=0)


# ---------------------------------------------------------------------- the module, packed sequences

@pytest.mark.parametrize("low_memory", [False, True], ids=["keep", "low_memory"])
def test_module_runs_the_leaky_rnn_on_triton(low_memory, kernel_path):
    """SpikingRNN with its default leak (0.9) and a non-default spike threshold on backend="triton": a
    PackedSequence of unequal lengths, unsorted, non-zero initial membranes, two bidirectional layers;
    the same output, final membranes and gradients as backend="reference"."""
    model = build_model("RNN", 3, 5, 2, bidirectional=True, surrogate=sg.Erf(alpha=1.2), dtype=DT,
                        backend="reference", weights="dyadic", low_memory=low_memory, leak=DEFAULT_LEAK,
                        spike_threshold=0.3, seed=1)
    assert model.leak == 0.9 and model.spec().leaky
    lengths = [2, 4, 3]
    inputs = make_inputs(model, 4, 3, lengths=lengths, enforce_sorted=False, kind="dyadic", seed=3)
    order = sorted(range(3), key=lambda b: -lengths[b])  # the packed order, for the margin check
    pairs = [(model.surrogate_function1, model.surrogate_function1)] * 4
    decided_spikes(inputs.x[:, order], (inputs.hx[0][:, order],), model.layer_weights(), model.spec(), pairs,
                   torch.tensor([lengths[b] for b in order]))
    ref = forward_backward(model, inputs)
    tri = forward_backward(same_weights(model, "triton"), inputs)
    assert torch.equal(tri.output, ref.output)
    assert 0 < ref.output.mean().item() < 1
    torch.testing.assert_close(tri.states[0], ref.states[0], atol=TOLERANCE, rtol=0)
    for name, a in ref.grads.items():
        torch.testing.assert_close(tri.grads[name], a, atol=TOLERANCE * a.abs().max().item(), rtol=0, msg=name)


def test_module_default_rnn_emits_spikes_of_its_membrane():
    """SpikingRNN's default configuration on triton: the output holds 0/1 spikes, the final state is the
    analog membrane and its last step's spikes are the output's (``output[-1] = Θ(h_n - θ)``)."""
    torch.manual_seed(0)
    model = spikingrnn.SpikingRNN(4, 6, backend="triton")
    assert model.leak == 0.9
    out, h_n = model(torch.randn(5, 3, 4) * 2)
    assert bool(((out == 0) | (out == 1)).all())
    assert not bool(((h_n == 0) | (h_n == 1)).all()), "the state is analog"
    assert torch.equal(out[-1], (h_n[0] - model.spike_threshold >= 0).to(DT))


# ------------------------------------------------------------------------------------ low memory

def test_low_memory_keeps_only_bits(kernel_path):
    """low_memory keeps no membranes (backward recomputes them, as forward computed them), the spikes as bit
    rows (uint8); with a 0/1 input and a zero initial membrane, nothing else but the weights. Without it,
    the membrane of every step is kept."""
    hidden, steps, batch = 8, 5, 3
    x, _, weights = problem(hidden=hidden, layers=1, bidirectional=False, steps=steps, batch=batch)
    x = (x > 0).to(DT)  # spikes in
    states = (torch.zeros(1, batch, hidden),)
    weights = [tuple(None if w is None else w.requires_grad_() for w in ws) for ws in weights]
    parameters = {id(w) for ws in weights for w in ws if w is not None}
    for low_memory in (True, False):
        spec = RNNSpec("RNN", 1, False, leak=0.9, low_memory=low_memory)
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            triton_rnn(x.requires_grad_(), states, weights, spec, [(sg.Erf(), sg.Erf())], training=True)
        floats = [t for t in kept if id(t) not in parameters and t.is_floating_point() and t.numel()]
        if low_memory:
            assert not floats, [tuple(t.shape) for t in floats]
            assert any(t.dtype == torch.uint8 for t in kept), "the 0/1 input and outputs as bit rows"
        else:
            analog = [t for t in floats
                      if tuple(t.shape) == (steps, batch, hidden) and not bool(((t == 0) | (t == 1)).all())]
            assert len(analog) == 1, "the membrane of every step"


def test_low_memory_recomputes_exactly(kernel_path):
    """Float weights (not dyadic: products round): low_memory's backward recomputes the membranes with the
    kernels and GEMM calls that computed them in forward, so its gradients equal, bit for bit, those of
    keeping them; packed rows, two bidirectional layers."""
    torch.manual_seed(3)
    model = spikingrnn.SpikingRNN(4, 8, 2, bidirectional=True, backend="triton", spike_threshold=0.05)
    with torch.no_grad():  # spikes in every layer: a gradient for every parameter
        for p in model.parameters():
            p.mul_(4)
    x = torch.randn(5, 3, 4) * 2
    lengths = torch.tensor([5, 4, 2])
    grads = {}
    for low in (False, True):
        model.low_memory = low
        model.zero_grad()
        out, h_n = model(torch.nn.utils.rnn.pack_padded_sequence(x, lengths))
        weights = torch.randn(out.data.shape, generator=torch.Generator().manual_seed(1))
        ((out.data * weights).sum() + h_n.sum()).backward()
        grads[low] = [p.grad.clone() for p in model.parameters()]
    assert all(g.abs().sum() > 0 for g in grads[False])
    for a, b in zip(grads[False], grads[True]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("low_memory", [False, True], ids=["keep", "low_memory"])
def test_float16_tracks_the_float32_reference(low_memory, kernel_path):
    """float16 (the interpreter runs it; bfloat16 needs the GPU's dot): the float32 carries of the membrane
    and of the gradients, the half-type storage, within test_triton_cuda.py's float16 bounds
    (exactness.tracking_problems) of the float32 reference on the same rounded values."""
    dt = torch.float16
    torch.manual_seed(0)
    hidden, inputs, steps, batch = 8, 4, 5, 3
    rounded = lambda t: t.to(dt).to(DT)  # noqa: E731
    weights = [(rounded(torch.randn(hidden, inputs)), rounded(torch.randn(hidden, hidden) * 0.5),
                rounded(torch.randn(hidden) * 0.3), rounded(torch.randn(hidden) * 0.3), None)]
    states = (rounded(torch.randn(1, batch, hidden)),)
    x = rounded(torch.randn(steps, batch, inputs) * 2)
    spec = RNNSpec("RNN", 1, False, leak=0.9, spike_threshold=0.1, low_memory=low_memory)
    pairs = [(sg.ATan(alpha=2.5), sg.ATan(alpha=2.5))]
    ref = run(reference_rnn, x, states, weights, spec, pairs)
    half = run(triton_rnn, x.to(dt), tuple(s.to(dt) for s in states),
               [tuple(None if w is None else w.to(dt) for w in ws) for ws in weights], spec, pairs)
    assert half[0].dtype == dt and half[1][0].dtype == dt
    assert all(g.dtype == dt for g in half[2].values())
    problems = exactness.tracking_problems([ref[0], *ref[1]], [half[0].float(), half[1][0].float()],
                                           list(ref[2].values()), [g.float() for g in half[2].values()], dt)
    assert not problems, problems


# ------------------------------------------------------------------------------- dispatch and checks

def test_unsupported_spec_accepts_the_leaky_rnn():
    for leak in (0.9, 0.5, 0.0, None):
        spec = RNNSpec("RNN", 2, True, leak=leak, spike_threshold=0.3)
        assert spec.leaky == (leak is not None)
        assert unsupported_spec(spec) is None
    spec = RNNSpec("RNN", 1, False)  # the defaults: leak=0.9
    assert spec.leaky
    pairs = [(sg.Erf(), sg.Erf())]
    assert dispatch.resolve("triton", torch.device("cpu"), DT, pairs, spec=spec) is triton_rnn


def test_self_check_covers_the_leaky_rnn_and_passes():
    rnn = [c for c in exactness.SELF_CHECK_CASES if c.mode == "RNN"]
    assert {c.leak for c in rnn} == {None, DEFAULT_LEAK}
    cpu = torch.device("cpu")
    for case in rnn:
        if case.leaky:  # compared bit for bit (spikes), not within tracking bounds
            assert case.analog and case.analog_results() == (1,)
            assert exactness.spike_margin(case, cpu) >= exactness.SPIKE_MARGIN, case.describe()
        else:
            assert not case.analog and case.analog_results() == ()
    assert exactness.self_check(cpu) is None


def test_exactness_cases_cover_both_rnn_forms():
    for quick in (True, False):
        rnn = [c for c in exactness.cases(quick) if c.mode == "RNN"]
        assert {c.leak is None for c in rnn} == {True, False}
        assert {c.hidden for c in rnn if c.leaky} >= ({20, 40, 300} if quick else {20, 40, 256, 300})


def test_exactness_reports_a_wrong_spike_of_the_leaky_rnn(monkeypatch):
    """The check itself: a leaky-RNN run with one flipped output spike fails the decisive comparison."""
    real = exactness.run

    def flipped(backend, case, device, **options):
        results, grads = real(backend, case, device, **options)
        if backend is triton_rnn:
            results[0] = results[0].clone()
            results[0][0, 0, 0] = 1 - results[0][0, 0, 0]
        return results, grads

    monkeypatch.setattr(exactness, "run", flipped)
    case = next(c for c in exactness.SELF_CHECK_CASES if c.leaky)
    problems = exactness.check_case(case, torch.device("cpu"), repeats=1)
    assert problems and problems[0].startswith("output: 1 of"), problems


def test_persistent_leaky_rnn_forms_step_offsets_in_int64():
    """As tests/test_gpu_paths.py checks the other persistent kernels: no step index times the batch in int32."""
    int32_step = re.compile(r"\(\s*t\s*(-\s*1\s*)?\)?\s*\*\s*batch|\bt\s*\*\s*batch")
    source = open(persistent_leaky_rnn.__file__).read()
    found = [line.strip() for line in source.splitlines() if int32_step.search(line) and "tl.cast" not in line]
    assert not found, found
