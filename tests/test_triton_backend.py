"""The triton backend against the reference, on the CPU under the Triton interpreter.

Triton decides interpreter vs GPU compilation when a ``@triton.jit`` function is decorated, i.e.
when the kernel modules of :mod:`spikingrnn.ops.triton` are first imported. tests/conftest.py takes
that decision once per session, before any test module is imported (where there is no CUDA GPU it
imports them under ``TRITON_INTERPRET=1``), so that these tests run whatever ran before them. Every
test here requests its ``triton_interpreter`` fixture: ``TRITON_INTERPRET=1`` for the test
(``unsupported_reason`` reads it at call time), or a skip with the reason where the kernels cannot
run under the interpreter (triton not installed, or a GPU build: see conftest.py). This module's own
test kernel is decorated in its test, under that setting.

Exactness: weights, biases, inputs and initial states are small dyadic rationals (multiples of
1/8 or 1/4, plus a 2^-10 bias offset so no pre-activation is exactly 0), so every float32 sum in
forward is exact whatever the summation order. Outputs and final states must therefore be
identical (no mismatch rate), and gradients must agree within 1e-4 relative (max abs difference
over the max abs reference gradient).
"""
import pytest

pytest.importorskip("triton")

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

import spikingrnn
from builders import make_inputs
from helpers import dyadic
from helpers import dyadic_model as build
from spikingrnn import surrogate as sg
from spikingrnn.ops import dispatch
from spikingrnn.ops.triton import kernels_interpreted, load_kernels, unsupported_reason

load_kernels()  # already imported by conftest.py, for the interpreter where there is no GPU
from spikingrnn.ops.triton.kernels import surrogate_derivative  # noqa: E402
from spikingrnn.surrogate import KERNEL_IDS as SURROGATE_IDS  # noqa: E402


def _derivative_kernel(x_ptr, out_ptr, n, alpha, KIND: tl.constexpr, BLOCK: tl.constexpr):
    e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = e < n
    x = tl.load(x_ptr + e, mask=mask, other=0.0)
    tl.store(out_ptr + e, surrogate_derivative(x, alpha, KIND), mask=mask)  # triton.jit in its test


DT = torch.float32


@pytest.fixture(autouse=True)
def interpreter(triton_interpreter):
    """Every test runs the kernels under the Triton interpreter (conftest.py)."""
    assert kernels_interpreted()


@pytest.fixture(autouse=True, params=["persistent", "per-step"])
def lstm_forward_path(request, monkeypatch):
    """Every test runs with the forward and backward loops of every cell as persistent kernels (where
    they apply: hidden <= 256, for the LSTM no proj_size) and with the v0 per-step path."""
    from spikingrnn.ops.triton import persistent
    if request.param == "per-step":
        monkeypatch.setattr(persistent, "PERSISTENT_MAX_HIDDEN", 0)
    return request.param


def run(model, backend, x, hx, lengths=None):
    model.backend = backend
    leaves = [x, *hx, *model.parameters()]
    for leaf in leaves:
        leaf.grad = None
    inp = x if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
    torch.manual_seed(5)  # the same dropout masks for both backends
    out, final = model(inp, hx if len(hx) == 2 else hx[0])
    final = final if isinstance(final, tuple) else (final,)
    data = out.data if lengths is not None else out
    generator = torch.Generator().manual_seed(7)
    loss = (data * torch.randn(data.shape, generator=generator)).sum()
    for s in final:
        loss = loss + (s * torch.randn(s.shape, generator=generator)).sum()
    loss.backward()
    return data.detach(), [s.detach() for s in final], [leaf.grad.clone() for leaf in leaves]


def check(model, steps=4, batch=3, lengths=None, seed=1, require_gradient=True):
    inputs = make_inputs(model, steps, batch, kind="dyadic", seed=seed)  # x, then h0 (and c0): multiples of 1/4
    x, hx = inputs.leaves()
    ref = run(model, "reference", x, hx, lengths)
    tri = run(model, "triton", x, hx, lengths)
    assert torch.equal(ref[0], tri[0])
    assert all(torch.equal(a, b) for a, b in zip(ref[1], tri[1]))
    names = ["x", *(f"hx{i}" for i in range(len(hx))), *(n for n, _ in model.named_parameters())]
    degenerate = not any(g.abs().max() > 0 for g in ref[2][1 + len(hx):])
    assert not (require_gradient and degenerate), "degenerate case: no weight gradient"
    for name, a, b in zip(names, ref[2], tri[2]):
        scale = a.abs().max().clamp(min=1e-6)
        assert (a - b).abs().max() / scale <= 1e-4, name


CASES = [
    dict(),
    dict(cell_state="accumulate", s1="sigmoid", s2="atan"),
    dict(cell_state="spike", s1="piecewise_quadratic", s2="super_spike", proj=3),
    dict(layers=2, bidirectional=True, s1="rect", s2="soft_sign"),
    dict(layers=2, bidirectional=True, proj=5, cell_state="accumulate", s1="piecewise_exp", bias=False),
    dict(layers=2, dropout=0.5, s1="erf", s2="sigmoid"),
    dict(mode="GRU"),
    dict(mode="GRU", layers=2, bidirectional=True, s1="sigmoid", s2="rect"),
    dict(mode="GRU", bias=False, s1="super_spike", s2="piecewise_quadratic"),
    dict(mode="RNN", s1="atan"),
    dict(mode="RNN", layers=2, bidirectional=True, s1="soft_sign", bias=False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_matches_reference(case):
    check(build(**case))


@pytest.mark.parametrize("case", [dict(cell_state="clamp"), dict(cell_state="spike", proj=3),
                                  dict(mode="GRU", s2="erf"), dict(mode="RNN")],
                         ids=["lstm-clamp", "lstm-spike-proj", "gru", "rnn"])
def test_packed_bidirectional_matches_reference(case):
    check(build(layers=2, bidirectional=True, s1="atan", **case), lengths=torch.tensor([4, 3, 1]))


LOW_MEMORY_CASES = [
    dict(),
    dict(cell_state="spike", s1="sigmoid", s2="atan"),
    dict(cell_state="accumulate", proj=3, s1="rect"),
    dict(layers=2, bidirectional=True, s1="super_spike", s2="soft_sign", bias=False),
    dict(mode="GRU", layers=2, s1="atan", s2="erf"),
    dict(mode="GRU", bias=False, bidirectional=True),
    dict(mode="RNN", layers=2, bidirectional=True, s1="piecewise_exp"),
]


@pytest.mark.parametrize("case", LOW_MEMORY_CASES,
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("packed", [False, True])
def test_low_memory_matches_reference(case, packed):
    """``low_memory``: no pre-activations kept, backward recomputes them; same results."""
    model = build(**case)
    model.low_memory = True
    check(model, lengths=torch.tensor([4, 3, 1]) if packed else None)


def test_low_memory_lstm_keeps_far_less():
    model = build(layers=2)
    model.backend = "triton"
    x = dyadic((16, 3, 4), torch.Generator().manual_seed(2), 1 / 4).requires_grad_()
    kept = {}
    for low in (False, True):
        model.low_memory = low
        packed = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
            model(x)
        kept[low] = packed
    big = [t for t in kept[True] if t.dim() == 3 and t.shape[-1] == 4 * model.hidden_size and t.dtype == DT]
    assert not big, "low_memory keeps no [T, B, 4H] pre-activations"
    assert any(t.dtype == torch.uint8 for t in kept[True]), "0/1 cell states are kept as bytes"
    size = lambda ts: sum(t.numel() * t.element_size() for t in ts if t.dim() == 3)  # noqa: E731
    assert size(kept[True]) * 3 < size(kept[False])


@pytest.mark.parametrize("mode, fraction", [("LSTM", 8), ("GRU", 8), ("RNN", 3)])
def test_low_memory_keeps_a_fraction_of_spikingjelly(mode, fraction):
    """Bytes held for backward (saved_tensors_hooks, as the benchmark counts them) on a 2-layer stack:
    at most 1/8 of SpikingJelly's for the LSTM and GRU; SpikingJelly's vanilla RNN keeps little, and
    the float input of layer 0 (kept for the weight gradient) dominates ours: 1/3."""
    sj = pytest.importorskip("spikingjelly.activation_based.rnn")
    from spikingrnn.bench.memory import module_saved_bytes
    torch.manual_seed(0)
    steps, batch, inputs, hidden = 12, 16, 32, 64
    x = torch.randn(steps, batch, inputs)
    cls = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}[mode]
    ours = module_saved_bytes(cls(inputs, hidden, 2, backend="triton", low_memory=True), x)
    theirs_cls = {"LSTM": sj.SpikingLSTM, "GRU": sj.SpikingGRU, "RNN": sj.SpikingVanillaRNN}[mode]
    theirs = module_saved_bytes(theirs_cls(inputs, hidden, 2), x)
    assert ours * fraction <= theirs, (ours, theirs)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_low_memory_keeps_an_eighth_of_spikingjelly_with_a_700_float_input(mode):
    """The benchmark's 100x64x700x256x2 shape, fewer steps and rows: the float input (kept for the
    first layer's weight gradient) is most of what is kept; 0/1 outputs, inputs and cell states as
    bit rows, zero initial states not at all, and the whole is under 1/8 of SpikingJelly's."""
    sj = pytest.importorskip("spikingjelly.activation_based.rnn")
    from spikingrnn.bench.memory import module_saved_bytes
    torch.manual_seed(0)
    x = torch.randn(3, 16, 700)
    pairs = {"LSTM": (spikingrnn.SpikingLSTM, sj.SpikingLSTM), "GRU": (spikingrnn.SpikingGRU, sj.SpikingGRU)}
    cls, theirs_cls = pairs[mode]
    ours = module_saved_bytes(cls(700, 256, 2, backend="triton", low_memory=True), x)
    theirs = module_saved_bytes(theirs_cls(700, 256, 2), x)
    assert ours * 8 <= theirs, (ours, theirs)
    assert ours < x.numel() * x.element_size() * 1.1, "beyond the input, little is kept"


PERSISTENT_CASES = [dict(cell_state="clamp"), dict(cell_state="accumulate"), dict(cell_state="spike"),
                    dict(mode="GRU"), dict(mode="GRU", bias=False, s1="atan", s2="rect"), dict(mode="RNN"),
                    dict(mode="RNN", bias=False, s1="sigmoid")]
PERSISTENT_FUNCTIONS = {"LSTM": ("persistent", "lstm"), "GRU": ("persistent_gru", "gru"),
                        "RNN": ("persistent_rnn", "rnn")}


@pytest.mark.parametrize("case", PERSISTENT_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_persistent_kernel_runs_and_tiles(case, lstm_forward_path, monkeypatch):
    """Hidden 40 and batch 20 span several BLOCK_H / BLOCK_K / BLOCK_B tiles of the persistent kernels
    (with their masked edges), packed and not; the kernels are really the ones that ran, forward and
    backward."""
    import importlib
    module_name, prefix = PERSISTENT_FUNCTIONS[case.get("mode", "LSTM")]
    module = importlib.import_module(f"spikingrnn.ops.triton.{module_name}")
    calls = {"forward": 0, "backward": 0}

    def counted(name, real):
        def run(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return run

    for name in calls:
        function = f"{prefix}_persistent_{name}"
        monkeypatch.setattr(module, function, counted(name, getattr(module, function)))
    model = build(**case, hidden=40, inputs=5, layers=2, bidirectional=True)
    check(model, steps=5, batch=20)
    lengths = torch.tensor([5] * 3 + [4] * 7 + [2] * 6 + [1] * 4)
    check(model, steps=5, batch=20, lengths=lengths)
    expected = 8 if lstm_forward_path == "persistent" else 0  # 2 runs x 2 layers x 2 directions
    assert calls == {"forward": expected, "backward": expected}


@pytest.mark.parametrize("case", [dict(mode="LSTM", gates="heaviside", cell_state="clamp"),
                                  dict(mode="LSTM", gates="heaviside", cell_state="spike"), dict(mode="LSTM"),
                                  dict(mode="GRU", gates="heaviside"), dict(mode="GRU"), dict(mode="RNN")],
                         ids=["lstm-clamp", "lstm-spike", "lstm-sigmoid", "gru-heaviside", "gru-sigmoid", "rnn"])
def test_low_memory_replays_the_persistent_forward_exactly(case, lstm_forward_path):
    """Float weights (not dyadic: products round): low_memory's backward recomputes the pre-activations
    with the kernel that computed them in forward, so it fires the same gates and gives the same
    gradients, bit for bit, as keeping them; packed rows too."""
    torch.manual_seed(3)
    options = {k: v for k, v in case.items() if k != "mode"}
    classes = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}
    model = classes[case["mode"]](6, 24, 2, backend="triton", **options)
    lengths = torch.tensor([7, 7, 5, 3, 1])
    x = torch.randn(7, 5, 6)
    grads = {}
    for low in (False, True):
        model.low_memory = low
        model.zero_grad()
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
        out, final = model(packed)
        final = final if isinstance(final, tuple) else (final,)
        weights = torch.randn(out.data.shape, generator=torch.Generator().manual_seed(1))
        ((out.data * weights).sum() + sum(s.sum() for s in final)).backward()
        grads[low] = [p.grad.clone() for p in model.parameters()]
    assert any(g.abs().sum() > 0 for g in grads[False])
    for a, b in zip(grads[False], grads[True]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (70, 33, 65), (64, 64, 64), (3, 0, 4)])
def test_triton_mm_matches_torch(shape):
    """The Triton GEMM the backend uses for TF32: transposed operands, bias, an added matrix, in place."""
    from spikingrnn.ops.triton.matmul import mm, triton_mm
    m, k, n = shape
    generator = torch.Generator().manual_seed(m * 100 + k)
    a = dyadic((m, k), generator, 1 / 4, -4, 5)
    b_t = dyadic((n, k), generator, 1 / 8, -8, 9)  # b as a transposed view
    bias = dyadic((n,), generator, 1 / 8, -8, 9)
    add = dyadic((m, n), generator, 1 / 4, -4, 5)
    assert torch.equal(triton_mm(a, b_t.t()), a @ b_t.t())
    assert torch.equal(triton_mm(a, b_t.t(), bias=bias, add=add), add + bias + a @ b_t.t())
    out = add.clone()
    triton_mm(a, b_t.t(), add=out, out=out)  # accumulate in place
    assert torch.equal(out, add + a @ b_t.t())
    columns = torch.zeros(n, m).t()  # a strided output
    triton_mm(a, b_t.t(), out=columns)
    assert torch.equal(columns, a @ b_t.t())
    for tf32 in (False, True):  # the backend's dispatch: torch's GEMM or this one, same sums here
        assert torch.equal(mm(a, b_t.t(), add=add, bias=bias, tf32=tf32), add + bias + a @ b_t.t())


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3], CASES[7], CASES[10]],
                         ids=["lstm", "lstm-spike-proj", "lstm-2-layers-bidirectional", "gru-2-layers", "rnn-no-bias"])
def test_tf32_path_matches_reference(case, monkeypatch):
    """With TF32 allowed (as on a GPU by default) every float32 GEMM of the backend runs in the Triton
    GEMM and the persistent kernels take their TF32 branch; the interpreter multiplies exactly, so the
    results must equal the reference's, also in low-memory mode and packed."""
    from spikingrnn.ops.triton import matmul
    used = {"triton_mm": 0}
    real = matmul.triton_mm

    def counted(*args, **kwargs):
        used["triton_mm"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(matmul, "tf32_allowed", lambda x: True)
    monkeypatch.setattr(matmul, "triton_mm", counted)
    model = build(**case)
    check(model)
    check(model, steps=5, batch=4, lengths=torch.tensor([5, 4, 2, 1]))
    model.low_memory = True
    check(model)
    assert used["triton_mm"] > 0


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_zero_batch(mode):
    model = build(mode, layers=2, bidirectional=True, proj=(2 if mode == "LSTM" else 0))
    model.backend = "triton"
    x = torch.zeros(4, 0, 4, requires_grad=True)
    out, _ = model(x)
    assert out.shape == (4, 0, 4 if mode == "LSTM" else 16)
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_dropout_is_applied():
    model = build(layers=2, dropout=0.5)
    x = dyadic((4, 3, 4), torch.Generator().manual_seed(3), 1 / 4)
    model.backend = "triton"
    torch.manual_seed(5)
    train = model(x)[0]
    model.eval()
    assert not torch.equal(train, model(x)[0])


def test_surrogate_derivative_kernel_matches_formulas():
    kernel = triton.jit(_derivative_kernel)  # under the interpreter: TRITON_INTERPRET=1 (conftest.py's fixture)
    assert isinstance(kernel, InterpretedFunction)
    x = torch.linspace(-3, 3, 97, dtype=DT)
    for cls, kind in SURROGATE_IDS.items():
        for alpha in (cls.default_alpha, 0.7):
            out = torch.empty_like(x)
            kernel[(1,)](x, out, x.numel(), alpha, KIND=kind, BLOCK=128)
            torch.testing.assert_close(out, cls.derivative(x.clone(), alpha), rtol=1e-5, atol=1e-6,
                                       msg=f"{cls.__name__} alpha={alpha}")


def test_no_grad_forward_matches_reference():
    model = build(layers=2, bidirectional=True, proj=3)
    x = dyadic((4, 2, 4), torch.Generator().manual_seed(3), 1 / 4)
    with torch.no_grad():
        model.backend = "reference"
        ref = model(x)
        model.backend = "triton"
        tri = model(x)
    assert torch.equal(ref[0], tri[0]) and all(torch.equal(a, b) for a, b in zip(ref[1], tri[1]))


def test_unsupported_reasons():
    cpu = torch.device("cpu")
    assert unsupported_reason(cpu, DT, [sg.Erf(), sg.ATan()]) is None
    assert "spiking=False" in unsupported_reason(cpu, DT, [sg.Erf(spiking=False)])
    assert "not a built-in" in unsupported_reason(cpu, DT, [lambda u: (u >= 0).float()])

    class MyErf(sg.Erf):
        @staticmethod
        def derivative(x, alpha):
            return x * 0 + 1

    assert "not a built-in" in unsupported_reason(cpu, DT, [MyErf()])
    assert "float32 only" in unsupported_reason(cpu, torch.float64, [sg.Erf()])
    assert "float32, bfloat16 and float16" in unsupported_reason(torch.device("cuda"), torch.float64, [sg.Erf()])
    assert "interpreter" in unsupported_reason(torch.device("cuda"), DT, [sg.Erf()])
    assert "got device meta" in unsupported_reason(torch.device("meta"), DT, [sg.Erf()])


def test_autocast_needs_its_dtype_supported():
    """Under torch.autocast the recurrence would run in the autocast dtype: bfloat16 is not one the
    interpreter takes, so backend='triton' refuses naming it; float32 autocast runs as before."""
    cpu = torch.device("cpu")
    model = build()
    model.backend = "triton"
    x = torch.zeros(2, 1, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reason = unsupported_reason(cpu, DT, [sg.Erf()])
        assert "autocast" in reason and "bfloat16" in reason and "float32 only" in reason
        with pytest.raises(ValueError, match=r"backend='triton' cannot run this input: .*autocast.*bfloat16"):
            model(x)
    assert unsupported_reason(cpu, DT, [sg.Erf()]) is None
    y, _ = model(x)
    assert y.dtype == DT


def test_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    reason = unsupported_reason(torch.device("cpu"), DT, [sg.Erf()])
    assert "TRITON_INTERPRET=1" in reason
    model = build()
    model.backend = "triton"
    with pytest.raises(ValueError, match="backend='triton' cannot run this input: .*TRITON_INTERPRET"):
        model(torch.zeros(2, 1, 4))
    model.backend = "auto"
    assert dispatch.resolve("auto", torch.device("cpu"), DT, [(sg.Erf(), sg.Erf())]) is dispatch.BACKENDS["cpu"][0]
    model(torch.zeros(2, 1, 4))


def test_registered_first_in_auto_order():
    assert dispatch.AUTO_ORDER[0] == "triton"
    assert dispatch.BACKENDS["triton"][1] is unsupported_reason


# ------------------------------------------------------------------------ fuzzing against the reference

SURROGATE_NAMES = ["erf", "sigmoid", "atan", "piecewise_quadratic", "piecewise_exp", "soft_sign", "super_spike",
                   "rect"]
FUZZ_EXAMPLES = 100  # each runs the interpreter forward and backward on small shapes (~0.15 s apiece)


def test_fuzz_random_configurations_match_reference():
    """Random configurations and shapes (hypothesis, derandomized): the triton backend equals the
    reference on outputs and states, and on every gradient within 1e-4, like the fixed cases above."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    ran = []

    @hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(mode=st.sampled_from(["LSTM", "GRU", "RNN"]), layers=st.integers(1, 2),
                      bidirectional=st.booleans(), bias=st.booleans(), proj=st.integers(0, 3),
                      cell_state=st.sampled_from(["clamp", "accumulate", "spike"]),
                      s1=st.sampled_from(SURROGATE_NAMES), s2=st.sampled_from(SURROGATE_NAMES),
                      hidden=st.integers(1, 9), inputs=st.integers(1, 5), steps=st.integers(1, 5),
                      batch=st.integers(1, 3), packed=st.booleans(), seed=st.integers(0, 1000))
    def one(mode, layers, bidirectional, bias, proj, cell_state, s1, s2, hidden, inputs, steps, batch, packed,
            seed):
        proj = proj if mode == "LSTM" and proj < hidden else 0
        model = build(mode, layers, bidirectional, proj, cell_state, s1, s2 if mode != "RNN" else None, hidden,
                      inputs, seed, bias)
        lengths = None
        if packed:
            lengths = torch.sort(torch.randint(1, steps + 1, (batch,), generator=torch.Generator().manual_seed(seed)),
                                 descending=True).values
            lengths[0] = steps
        check(model, steps, batch, lengths, seed, require_gradient=False)
        ran.append(mode)

    one()
    assert len(ran) == FUZZ_EXAMPLES and set(ran) == {"LSTM", "GRU", "RNN"}
