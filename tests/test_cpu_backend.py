"""The cpu backend against the reference: outputs, final states and every gradient.

Every test runs with the products of 0/1 operands computed as GEMMs and as event-driven sums.
Comparisons run in float64, where the cpu backend's different float summation order (one GEMM
for all input projections) moves pre-activations by ~1e-16: no spike can flip unless some |u| is
below that, so spikes and states must be identical and gradients agree to 1e-9. A float32 test
bounds the spike mismatch rate instead.
"""
import itertools
import zlib

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import spikingrnn
from spikingrnn import surrogate as sg
from spikingrnn.ops import dispatch

DT = torch.float64


@pytest.fixture(autouse=True, params=["gemm", "events"])
def product_path(request, monkeypatch):
    """Every test runs twice: products with 0/1 operands as dense GEMMs and surrogate derivatives from
    PyTorch, then event-driven sums (whatever the firing rate) and derivatives evaluated in the C++
    loops, so that both paths meet the reference."""
    from spikingrnn.ops.cpu import common
    density = 0.0 if request.param == "gemm" else 1.0
    monkeypatch.setattr(common, "EVENT_DENSITY", density)
    monkeypatch.setattr(common, "WEIGHT_GRAD_EVENT_DENSITY", density)
    monkeypatch.setattr(common, "FUSED_DERIVATIVES", request.param == "events")
    return request.param


def build(mode, input_size, hidden, layers, bidirectional, *, bias=True, proj=0, cell_state="clamp",
          backend="reference", gates="heaviside", **spiking):
    """A float64 stack; the LSTM and GRU in the heaviside form (the bit-exact 0/1 paths this file checks,
    with torch's init) unless ``gates="sigmoid"`` (then the LSTM's ``cell_state`` must be "accumulate").
    ``"RNN"``: the seed's cell (``leak=None``, the same 0/1 paths); ``"leaky-RNN"``: SpikingRNN with its
    default leak unless ``leak`` is given (``gates`` does not apply to either)."""
    if mode == "RNN":
        spiking.setdefault("leak", None)
    kwargs = dict(bidirectional=bidirectional, bias=bias, dtype=DT, backend=backend, **spiking)
    if mode not in ("RNN", "leaky-RNN"):
        kwargs["gates"] = gates
        if gates == "heaviside":
            kwargs.setdefault("forget_bias", None)
    if mode == "LSTM":
        return spikingrnn.SpikingLSTM(input_size, hidden, layers, proj_size=proj, cell_state=cell_state, **kwargs)
    cls = spikingrnn.SpikingGRU if mode == "GRU" else spikingrnn.SpikingRNN
    return cls(input_size, hidden, layers, **kwargs)


def states_of(hx):
    return hx if isinstance(hx, tuple) else (hx,)


def run_both(model, x, hx=None, seed=0, inputs=()):
    """Outputs, states and gradients (input leaves, hx, parameters) of the reference backend, then of
    the cpu backend keeping pre-activations and in its low-memory mode.

    ``x`` is a tensor or a function building the input from the leaves ``inputs``.
    """
    results = []
    for backend, low_memory in (("reference", False), ("cpu", False), ("cpu", True)):
        model.backend = backend
        model.low_memory = low_memory
        torch.manual_seed(seed)
        leaves = ([x] if isinstance(x, torch.Tensor) else list(inputs)) + list(
            states_of(hx) if hx is not None else ()) + list(model.parameters())
        for leaf in leaves:
            leaf.grad = None
        out, final = model(x if isinstance(x, torch.Tensor) else x(), hx)
        data = out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out
        generator = torch.Generator().manual_seed(1)
        loss = (data * torch.randn(data.shape, generator=generator, dtype=DT)).sum()
        for s in states_of(final):
            loss = loss + (s * torch.randn(s.shape, generator=generator, dtype=DT)).sum()
        loss.backward()
        grads = [leaf.grad.clone() if leaf.grad is not None else None for leaf in leaves]
        results.append((data.detach(), [s.detach() for s in states_of(final)], grads))
    return results


def assert_same(results, require_spikes=True):
    """Reference and both cpu modes agree; returns whether the run had any spike (a vacuous test has none)."""
    for fast in results[1:]:
        spiked = _assert_pair(results[0], fast, require_spikes)
    return spiked


def _assert_pair(reference, fast, require_spikes):
    (out_ref, states_ref, grads_ref), (out_cpu, states_cpu, grads_cpu) = reference, fast
    torch.testing.assert_close(out_cpu, out_ref, rtol=1e-12, atol=1e-12)
    spiked = bool(out_ref.abs().sum() > 0)
    assert spiked or not require_spikes, "degenerate test: no spikes"
    for a, b in zip(states_cpu, states_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_cpu, grads_ref):
        assert (a is None) == (b is None)
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert not require_spikes or any(g is not None and g.abs().sum() > 0 for g in grads_ref)
    return spiked


def random_hx(model, batch, generator=None):
    shapes = model.state_sizes(batch)
    hx = tuple(torch.rand(shape, dtype=DT).round().requires_grad_() for shape in shapes)
    return hx if model.mode == "LSTM" else hx[0]


MODES = ["LSTM", "GRU", "RNN", "leaky-RNN"]
SHAPES = [(1, 1, 1, 1), (5, 3, 4, 33), (7, 2, 1, 8), (3, 4, 6, 5)]  # T, B, I, H


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-I%d-H%d" % s)
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True), (3, False)])
def test_shapes_layers_directions(mode, shape, layers, bidirectional):
    T, B, I, H = shape
    torch.manual_seed(zlib.crc32(repr((mode, shape, layers)).encode()) + 1)
    model = build(mode, I, H, layers, bidirectional)
    x = (torch.randn(T, B, I, dtype=DT) * 2).requires_grad_()
    spiked = assert_same(run_both(model, x, random_hx(model, B)), require_spikes=False)
    spiked |= assert_same(run_both(model, x), require_spikes=False)
    assert spiked or T * B * H < 20, "degenerate test: no spikes in either run"


@pytest.mark.parametrize("cell_state, proj, bias", list(itertools.product(["clamp", "accumulate", "spike"],
                                                                          [0, 3], [True, False])))
def test_lstm_cell_states_projection_bias(cell_state, proj, bias):
    torch.manual_seed(7)
    model = build("LSTM", 4, 6, 2, True, bias=bias, proj=proj, cell_state=cell_state)
    x = (torch.randn(6, 3, 4, dtype=DT) * 2).requires_grad_()
    hx = tuple((torch.rand(s, dtype=DT) * 1.5).requires_grad_() for s in model.state_sizes(3))
    assert_same(run_both(model, x, hx))


@pytest.mark.parametrize("cls", [sg.Erf, sg.Sigmoid, sg.ATan, sg.PiecewiseQuadratic, sg.PiecewiseExp, sg.SoftSign,
                                 sg.SuperSpike, sg.Rect])
@pytest.mark.parametrize("mode", MODES)
def test_every_surrogate(cls, mode):
    torch.manual_seed(3)
    spiking = dict(surrogate_function1=cls(alpha=0.8))
    if mode not in ("RNN", "leaky-RNN"):
        spiking["surrogate_function2"] = sg.ATan(alpha=1.7)
    if mode == "leaky-RNN":  # the default leak 0.9 gives no spike in these 5 steps: a faster membrane
        spiking.update(leak=0.5, spike_threshold=0.1)
    model = build(mode, 3, 9, 2, True, **spiking)
    x = (torch.randn(5, 2, 3, dtype=DT) * 2).requires_grad_()
    assert_same(run_both(model, x))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequences(mode, enforce_sorted):
    torch.manual_seed(11)
    model = build(mode, 3, 7, 2, True, **({"proj": 2} if mode == "LSTM" else {}))
    lengths = [6, 4, 4, 1] if enforce_sorted else [2, 6, 1, 5]
    seqs = [(torch.randn(n, 3, dtype=DT) * 2).requires_grad_() for n in lengths]
    assert_same(run_both(model, lambda: pack_sequence(seqs, enforce_sorted=enforce_sorted), random_hx(model, 4),
                         inputs=seqs))


@pytest.mark.parametrize("mode, extra", [("LSTM", {}), ("LSTM", {"cell_state": "spike"}),
                                         ("LSTM", {"cell_state": "accumulate", "proj": 3}), ("GRU", {}), ("RNN", {}),
                                         ("leaky-RNN", {})])
def test_threads_split_the_batch_into_row_blocks(mode, extra, monkeypatch):
    """With 2 threads and at least 16 rows the C++ loops run row blocks (multiples of 8 rows) on
    separate threads; 21 rows (blocks of 16 and 5), H = 5 (bit rows of a block start mid-row, on
    byte boundaries), packed lengths that empty the second block first: the same as the reference."""
    from spikingrnn.ops.cpu.extension import loops
    if loops() is None:
        pytest.skip("C++ loops unavailable")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(13)
        model = build(mode, 3, 5, 2, True, **extra)
        lengths = [7] * 4 + [6] * 5 + [3] * 8 + [2] * 3 + [1]
        seqs = [(torch.randn(n, 3, dtype=DT) * 2).requires_grad_() for n in lengths]
        assert_same(run_both(model, lambda: pack_sequence(seqs), random_hx(model, 21), inputs=seqs))
        x = (torch.randn(6, 21, 3, dtype=DT) * 2).requires_grad_()
        assert_same(run_both(model, x, random_hx(model, 21)))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("mode", MODES)
def test_per_step_products_without_direct_blas(mode):
    """The C++ loops call torch's BLAS (sgemm_/dgemm_) directly for their per-step products; where
    it is missing they fall back to at::mm: both give the reference's results."""
    from spikingrnn.ops.cpu.extension import loops
    compiled = loops()
    if compiled is None:
        pytest.skip("C++ loops unavailable")
    assert compiled.use_blas(True)  # torch's CPU wheels export them
    try:
        compiled.use_blas(False)
        torch.manual_seed(17)
        model = build(mode, 3, 6, 2, True, **({"proj": 2} if mode == "LSTM" else {}))
        x = (torch.randn(5, 4, 3, dtype=DT) * 2).requires_grad_()
        assert_same(run_both(model, x, random_hx(model, 4)))
    finally:
        compiled.use_blas(True)


@pytest.mark.parametrize("invariant", [False, True])
def test_training_dropout_draws_the_same_masks(invariant):
    torch.manual_seed(5)
    model = build("LSTM", 3, 8, 3, True, invariant_dropout_mask=invariant)
    model.dropout = 0.4
    model.train()
    x = (torch.randn(5, 3, 3, dtype=DT) * 2).requires_grad_()
    assert_same(run_both(model, x, seed=123))


@pytest.mark.parametrize("gates", ["sigmoid", "heaviside"])
def test_float32_spike_mismatch_rate_is_tiny(gates):
    torch.manual_seed(0)
    model = spikingrnn.SpikingLSTM(16, 64, 2, backend="reference", gates=gates,
                                   **({"cell_state": "clamp", "forget_bias": None} if gates == "heaviside" else {}))
    x = torch.randn(50, 8, 16)
    ref, _ = model(x)
    model.backend = "cpu"
    fast, _ = model(x)
    mismatch = (ref != fast).float().mean().item()
    assert mismatch < 1e-3, mismatch


@pytest.mark.parametrize("mode, gates", [("LSTM", "heaviside"), ("LSTM", "sigmoid"), ("GRU", "heaviside"),
                                         ("GRU", "sigmoid"), ("RNN", "heaviside"), ("leaky-RNN", "leaky")])
def test_long_sequence_stays_finite(mode, gates):
    torch.manual_seed(2)
    model = build(mode, 2, 16, 1, False, backend="cpu", gates=gates,
                  **({"cell_state": "accumulate"} if mode == "LSTM" else {}))
    x = (torch.randn(3000, 2, 2, dtype=DT)).requires_grad_()
    out, final = model(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(s).all() for s in states_of(final))
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_inference_saves_nothing_and_matches():
    torch.manual_seed(4)
    model = spikingrnn.SpikingGRU(3, 5, 2, backend="cpu")
    x = torch.randn(6, 2, 3)
    with torch.no_grad():
        out, h = model(x)
    assert out.grad_fn is None
    torch.testing.assert_close(out, model(x)[0].detach())


def test_auto_picks_cpu_and_explains_refusals(caplog):
    pairs = [(sg.Erf(), sg.Erf())]
    assert dispatch.resolve("auto", torch.device("cpu"), torch.float32, pairs) is dispatch.BACKENDS["cpu"][0]
    smooth = [(sg.Erf(spiking=False), sg.Erf(spiking=False))]
    with caplog.at_level("DEBUG", logger="spikingrnn"):
        assert dispatch.resolve("auto", torch.device("cpu"), torch.float32, smooth) is dispatch.BACKENDS["reference"][0]
    assert "spiking=False" in caplog.text
    with pytest.raises(ValueError, match="backend='cpu' cannot run this input: .*spiking=False"):
        dispatch.resolve("cpu", torch.device("cpu"), torch.float32, smooth)
    with pytest.raises(ValueError, match="backend='cpu' cannot run this input: it supports float32 and float64"):
        dispatch.resolve("cpu", torch.device("cpu"), torch.bfloat16, pairs)


def test_custom_callable_surrogate_falls_back_to_reference():
    layer = spikingrnn.SpikingLSTM(3, 4, surrogate_function1=lambda u: sg.spike(u, sg.Rect.derivative, 1.0))
    out, _ = layer(torch.randn(4, 2, 3))
    assert out.shape == (4, 2, 4)
    layer.backend = "cpu"
    with pytest.raises(ValueError, match="is not a spikingrnn.surrogate.SurrogateFunction"):
        layer(torch.randn(4, 2, 3))
