"""The triton backend's GPU paths, checked without a GPU (issue 14, item 12).

Each test stands for one fix of what only a GPU would show, shown here under the Triton interpreter
(``TRITON_INTERPRET=1``, as in test_triton_backend.py) or by the dispatch logic with CUDA, ROCm or a
broken kernel simulated:

* kernels launch inside ``torch.cuda.device(x.device)`` (a model on ``cuda:1`` while ``cuda:0`` is
  current);
* the LSTM's running ``c`` and the carried gradients are float32 for half types (bfloat16 stops
  counting at 256);
* ROCm (``torch.version.hip``) never asks Triton for TF32;
* the persistent kernels form the row offset of step ``t`` in int64 (``t * batch`` passes 2^31);
* the persistent kernels' ``tl.dot`` precision is the backend's TF32 decision, not Triton's default
  (``TRITON_F32_DEFAULT``);
* ``backend="auto"`` picks triton only after its kernels matched the reference in this process, and
  falls back with a warning when they do not;
* the tolerances of tests/test_triton_cuda.py hold for what half types and TF32 legitimately do
  (emulated here).

Like test_triton_backend.py, the tests that run kernels need them built for the interpreter: tests/conftest.py
decides that once per session, before any test module is imported (where there is no CUDA GPU it
imports them under ``TRITON_INTERPRET=1``), and those tests request its ``triton_interpreter`` fixture
(``needs_interpreter``: ``TRITON_INTERPRET=1`` for the test, or a skip with the reason).
"""
import logging
import re
import types
import warnings

import pytest

pytest.importorskip("triton")

import numpy as np
import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpreterBuilder

import spikingrnn
import spikingrnn.ops.triton as triton_backend
from helpers import dyadic, dyadic_model
from spikingrnn import surrogate as sg
from spikingrnn.ops import dispatch
from spikingrnn.ops.reference import reference_rnn
from spikingrnn.ops.spec import RNNSpec
from spikingrnn.ops.triton import load_kernels, triton_rnn

load_kernels()  # already imported by conftest.py, for the interpreter where there is no GPU
from spikingrnn.ops.triton import matmul, persistent, persistent_gru, persistent_rnn  # noqa: E402


def _step_rows_kernel(out_ptr, t, batch):  # a Triton kernel: triton.jit in its test, under the interpreter
    rows = tl.arange(0, 4)
    tl.store(out_ptr + rows, persistent.step_rows(t, batch, rows))


needs_interpreter = pytest.mark.usefixtures("triton_interpreter")  # skips, with the reason, where it cannot be
CPU = torch.device("cpu")
DT = torch.float32


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture(params=["persistent", "per-step"])
def kernel_path(request, monkeypatch):
    """The persistent kernels (one launch for all steps) and the per-step ones."""
    if request.param == "per-step":
        monkeypatch.setattr(persistent, "PERSISTENT_MAX_HIDDEN", 0)
    return request.param


@pytest.fixture
def fresh_dispatch(monkeypatch):
    """``auto``'s one-time self-checks and its warnings forgotten (``raising=False``: the names may not
    exist, and then the tests fail on their assertions)."""
    monkeypatch.setattr(dispatch, "_self_checked", {}, raising=False)
    monkeypatch.setattr(dispatch, "_warned_without_owner", set(), raising=False)


def _widen_bfloat16(handle):
    """The interpreter holds bfloat16 as raw 16-bit patterns; its ``tl.dot`` multiplies those as
    integers. The same values as float32 (bfloat16 is float32's upper half)."""
    bits = handle.data.view(np.uint16).astype(np.uint32) << np.uint32(16)
    return type(handle)(bits.view(np.float32), tl.float32)


def _round_to_tf32(handle):
    """float32 operands rounded to TF32 (10 mantissa bits, to nearest, ties away: ``cvt.rna.tf32.f32``)."""
    bits = (handle.data.view(np.uint32) + np.uint32(0x1000)) & np.uint32(0xFFFFE000)
    return type(handle)(bits.view(np.float32), handle.dtype)


@pytest.fixture
def gpu_like_dot(monkeypatch):
    """The interpreter's ``tl.dot`` as a GPU computes it: bfloat16 operands as values (the interpreter
    multiplies their bit patterns), TF32 operands rounded to TF32 (the interpreter multiplies float32
    in full precision whatever the precision asked). Yields the precisions asked, one per dot."""
    real = InterpreterBuilder.create_dot
    asked = []

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        asked.append(str(input_precision))
        if a.dtype == tl.bfloat16:
            a, b = _widen_bfloat16(a), _widen_bfloat16(b)
        elif a.dtype == tl.float32 and "TF32" in str(input_precision).upper():
            a, b = _round_to_tf32(a), _round_to_tf32(b)
        return real(self, a, b, d, input_precision, max_num_imprecise_acc)

    monkeypatch.setattr(InterpreterBuilder, "create_dot", create_dot)
    return asked


# --------------------------------------------------------------------------------- the input's device

class _Entered(Exception):
    """Raised where the kernels would launch, with the CUDA device current there."""


def test_kernels_launch_on_the_inputs_device(monkeypatch):
    """Triton launches on the current CUDA device and stream: triton_rnn must make the input's device
    current (a model on cuda:1 while cuda:0 is current would launch on the wrong GPU)."""
    current = []

    class FakeDevice:  # torch.cuda.device without a GPU: records which device is current
        def __init__(self, device):
            self.device = torch.device(device)

        def __enter__(self):
            current.append(self.device)

        def __exit__(self, *exc):
            current.pop()

    def at_launch():
        raise _Entered(current[-1] if current else None)

    monkeypatch.setattr(torch.cuda, "device", FakeDevice)
    monkeypatch.setattr(triton_backend, "load_kernels", at_launch)  # the first thing a run does
    x = types.SimpleNamespace(device=torch.device("cuda", 1), dtype=DT, shape=(2, 1, 3))
    with pytest.raises(_Entered) as entered:
        triton_rnn(x, (), [], RNNSpec("LSTM", 1, False), [])
    assert entered.value.args[0] == torch.device("cuda", 1), "the kernels run with the input's device current"


# ------------------------------------------------------------------------ float32 carries of half types

def _all_gates_on_lstm(hidden=4, inputs=3):
    """One-layer weights: no recurrent weights, every gate fires (bias 1): ``c_t = c_{t-1} + 1``."""
    w_ih = torch.zeros(4 * hidden, inputs)
    w_hh = torch.zeros(4 * hidden, hidden)
    return [(w_ih, w_hh, torch.ones(4 * hidden), torch.zeros(4 * hidden), None)]


@needs_interpreter
def test_an_accumulating_cell_counts_past_256_in_bfloat16(kernel_path):
    """``cell_state="accumulate"`` adds 1 a step: from c0 = 256, four steps give 260 (bfloat16 holds
    260), not 256 (``256 + 1`` is 256 in bfloat16: a c stored every step would stop counting)."""
    dt = torch.bfloat16
    weights = [tuple(w.to(dt) for w in ws[:4]) + (None,) for ws in _all_gates_on_lstm()]
    x = torch.zeros(4, 2, 3, dtype=dt)
    h0, c0 = torch.zeros(1, 2, 4, dtype=dt), torch.full((1, 2, 4), 256.0, dtype=dt)
    spec = RNNSpec("LSTM", 1, False, cell_state="accumulate", gates="heaviside")
    out, (h_n, c_n) = triton_rnn(x, (h0, c0), weights, spec, [(sg.Erf(), sg.Erf())])
    assert c_n.dtype == dt
    assert torch.equal(c_n, torch.full_like(c_n, 260.0)), f"c_n = {c_n.flatten()[0].item()}, expected 260"
    assert torch.equal(out[-1], c_n[0]), "h = o * c with o = 1"


@needs_interpreter
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_carried_gradients_count_past_256_in_bfloat16(mode, kernel_path):
    """The gradient carried back through the steps sums the output gradients: 256 from the final state
    plus 1 from each of four steps is 260 (the LSTM's dc through f = 1, the GRU's dh through z = 1);
    carried in bfloat16 it would stay 256."""
    dt = torch.bfloat16
    hidden, inputs, steps = 4, 3, 4
    gates = {"LSTM": 4, "GRU": 3}[mode] * hidden
    w_ih, w_hh = torch.zeros(gates, inputs, dtype=dt), torch.zeros(gates, hidden, dtype=dt)
    b_ih, b_hh = torch.ones(gates, dtype=dt), torch.zeros(gates, dtype=dt)
    weights = [(w_ih, w_hh, b_ih, b_hh, None)]  # no projection
    x = torch.zeros(steps, 2, inputs, dtype=dt)
    states = [torch.zeros(1, 2, hidden, dtype=dt, requires_grad=True)]
    if mode == "LSTM":
        states.append(torch.zeros(1, 2, hidden, dtype=dt, requires_grad=True))
    spec = RNNSpec(mode, 1, False, cell_state="accumulate", gates="heaviside")
    out, final = triton_rnn(x, tuple(states), weights, spec, [(sg.Erf(), sg.Erf())], training=True)
    carried = final[-1]  # the LSTM's c_n, the GRU's h_n
    (out.float().sum() + 256 * carried.float().sum()).backward()
    grad = states[-1].grad
    assert grad.dtype == dt
    assert torch.equal(grad, torch.full_like(grad, 260.0)), f"gradient {grad.flatten()[0].item()}, expected 260"


def test_carry_dtype_is_float32_for_half_types():
    from spikingrnn.ops.triton.kernels import carry_dtype
    assert carry_dtype(torch.bfloat16) == carry_dtype(torch.float16) == torch.float32
    assert carry_dtype(torch.float32) == torch.float32


# ----------------------------------------------------------------------------------------------- ROCm

def test_rocm_asks_triton_for_no_tf32(monkeypatch):
    """ROCm reports its GPUs as device type "cuda"; Triton's AMD backend refuses TF32 dots (all but
    gfx942) and MIOpen's RNNs have no TF32: float32 products stay full precision there."""
    monkeypatch.setattr(torch.backends.cudnn.rnn, "fp32_precision", "tf32")
    on_gpu = types.SimpleNamespace(is_cuda=True, dtype=DT)
    monkeypatch.setattr(torch.version, "hip", None)
    assert matmul.tf32_allowed(on_gpu), "NVIDIA: TF32 as cuDNN's RNNs"
    monkeypatch.setattr(torch.version, "hip", "6.2.41133")
    assert not matmul.tf32_allowed(on_gpu), "ROCm: no TF32"
    assert persistent.full_precision(DT, matmul.tf32_allowed(on_gpu))


def test_half_types_ask_for_no_tf32():
    """Half-type products are exact in any precision; asking for TF32 would be refused on AMD."""
    assert persistent.full_precision(torch.bfloat16, True) and persistent.full_precision(torch.float16, True)
    assert not persistent.full_precision(DT, True) and persistent.full_precision(DT, False)


# --------------------------------------------------------------------------------------- int64 offsets

@needs_interpreter
def test_step_rows_are_formed_in_int64():
    """``t * batch`` of two int32 values wraps past 2^31 (T * B rows of a long sequence): the rows of
    step ``t`` are formed with ``t`` widened first."""
    out = torch.zeros(4, dtype=torch.int64)
    t, batch = 40_000, 60_000  # t * batch = 2.4e9 > 2^31
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's overflow warning where int32 wraps
        triton.jit(_step_rows_kernel)[(1,)](out, t, batch)
    assert out.tolist() == [t * batch + r for r in range(4)]


def test_persistent_kernels_form_every_step_offset_in_int64():
    """No persistent kernel multiplies a step index by the batch in int32 (``t * batch``,
    ``(t - 1) * batch``): all go through :func:`persistent.step_rows`."""
    int32_step = re.compile(r"\(\s*t\s*(-\s*1\s*)?\)?\s*\*\s*batch|\bt\s*\*\s*batch")
    for module in (persistent, persistent_gru, persistent_rnn):
        source = open(module.__file__).read()
        body = source.split("def step_rows", 1)[-1].split("\n\n\n", 1)[-1] if module is persistent else source
        found = [line.strip() for line in body.splitlines() if int32_step.search(line) and "tl.cast" not in line]
        assert not found, f"{module.__name__}: int32 step offsets: {found}"


# ---------------------------------------------------------------------------------- tl.dot's precision

@needs_interpreter
@pytest.mark.parametrize("tf32, triton_default", [(True, "ieee"), (False, "tf32")],
                         ids=["tf32-despite-default-ieee", "ieee-despite-default-tf32"])
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_persistent_dot_precision_is_the_backends_choice(mode, tf32, triton_default, gpu_like_dot, monkeypatch):
    """Every ``tl.dot`` of the persistent kernels (and the Triton GEMM) asks for the precision the backend
    decided (TF32 as cuDNN's RNNs, or full precision), whatever ``TRITON_F32_DEFAULT`` says."""
    monkeypatch.setenv("TRITON_F32_DEFAULT", triton_default)
    monkeypatch.setattr(matmul, "tf32_allowed", lambda x: tf32)
    model = dyadic_model(mode, hidden=20, inputs=5)
    model.backend = "triton"
    x = dyadic((3, 4, 5), torch.Generator().manual_seed(0), 1 / 4, -4, 5).requires_grad_()
    out, _ = model(x)
    out.sum().backward()
    assert gpu_like_dot, "the persistent kernels ran"
    wanted = "TF32" if tf32 else "IEEE"
    wrong = sorted({p for p in gpu_like_dot if wanted not in p.upper()})
    assert not wrong, f"dots in {wrong}, the backend decided {wanted}"


# ------------------------------------------------------------------------------- auto's one-time check

@pytest.fixture
def triton_on_cpu(monkeypatch, fresh_dispatch):
    """``auto`` considers triton on the CPU (the interpreter standing in for CUDA)."""
    monkeypatch.setattr(dispatch, "AUTO_DEVICE_TYPES", {"triton": ("cuda", "cpu")})


@needs_interpreter
def test_auto_picks_triton_after_its_kernels_matched_the_reference(triton_on_cpu, monkeypatch, caplog):
    from spikingrnn.ops.triton import exactness
    runs = []
    real = exactness.self_check
    monkeypatch.setattr(exactness, "self_check", lambda device: runs.append(device) or real(device))
    pairs = [(sg.Erf(), sg.ATan())]
    with caplog.at_level(logging.INFO, logger="spikingrnn"), warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on this path
        assert dispatch.resolve("auto", CPU, DT, pairs) is dispatch.BACKENDS["triton"][0]
        assert dispatch.resolve("auto", CPU, DT, pairs) is dispatch.BACKENDS["triton"][0]
    assert len(runs) == 1, "once per device and process"
    assert any("match the reference" in r.getMessage() and "self-check" in r.getMessage() for r in caplog.records)


@needs_interpreter
def test_auto_falls_back_when_the_kernels_fail_their_self_check(triton_on_cpu, monkeypatch):
    """A kernel that fires one wrong spike: auto warns once, names what differs and runs the next
    backend; the kernels still run when asked for by name."""
    real = triton_backend.run_stack

    def one_wrong_spike(*args, **kwargs):
        out, state = real(*args, **kwargs)
        flip = torch.zeros_like(out)
        flip[0, 0, 0] = 1 - 2 * out[0, 0, 0].detach()
        return out + flip, state

    monkeypatch.setattr(triton_backend, "run_stack", one_wrong_spike)
    pairs = [(sg.Erf(), sg.Erf())]
    with pytest.warns(UserWarning, match=r"does not use the 'triton' backend: .*self-check.*output: 1 of"):
        chosen = dispatch.resolve("auto", CPU, DT, pairs)
    assert chosen is dispatch.BACKENDS["cpu"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided once: no second warning
        assert dispatch.resolve("auto", CPU, DT, pairs) is dispatch.BACKENDS["cpu"][0]
    assert dispatch.resolve("triton", CPU, DT, pairs) is dispatch.BACKENDS["triton"][0]


def test_auto_on_cuda_never_picks_unchecked_kernels(monkeypatch, fresh_dispatch):
    """CUDA simulated: the triton backend claims the input, but its self-check cannot run (here: no GPU
    at all, as a kernel that does not compile or launch): auto warns and runs the reference backend."""
    def kernels(*args, **kwargs):
        raise AssertionError("unchecked kernels ran")

    monkeypatch.setitem(dispatch.BACKENDS, "triton", (kernels, lambda device, dtype, surrogates: None))
    cuda = torch.device("cuda")
    with pytest.warns(UserWarning, match=r"does not use the 'triton' backend: its kernels failed their self-check"):
        chosen = dispatch.resolve("auto", cuda, DT, [(sg.Erf(), sg.Erf())])
    assert chosen is dispatch.BACKENDS["reference"][0]


# ------------------------------------------------------------------ tolerances of test_triton_cuda.py

def _run(model, backend, x):
    """test_triton_cuda.py's ``run`` on the CPU: output, final states, gradients (input, parameters)."""
    model.backend = backend
    x = x.detach().clone().requires_grad_()
    model.zero_grad()
    out, final = model(x)
    final = final if isinstance(final, tuple) else (final,)
    generator = torch.Generator().manual_seed(7)
    loss = (out.float() * torch.randn(out.shape, generator=generator)).sum()
    for s in final:
        loss = loss + (s.float() * torch.randn(s.shape, generator=generator)).sum()
    loss.backward()
    grads = [x.grad] + [p.grad for p in model.parameters()]
    return [out.detach().float(), *(s.detach().float() for s in final)], [g.float() for g in grads]


@pytest.fixture
def half_types_on_cpu(monkeypatch):
    """The triton backend takes bfloat16 and float16 under the interpreter (as on CUDA)."""
    monkeypatch.setitem(dispatch.BACKENDS, "triton", (triton_rnn, lambda device, dtype, surrogates: None))


@needs_interpreter
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("case", [dict(mode="LSTM", cell_state="spike", proj=5), dict(mode="GRU", layers=2)],
                         ids=["lstm-proj", "gru-2-layers"])
def test_half_type_runs_are_within_the_cuda_tests_bounds(dtype, case, gpu_like_dot, half_types_on_cpu):
    """test_triton_cuda.py's half-type test, emulated: the kernels in ``dtype`` against the float32
    reference on the same rounded values. Projected outputs are compared within the half type's
    rounding (most of them differ by it alone); flipped spikes cascade through steps and layers."""
    from spikingrnn.ops.triton.exactness import tracking_problems
    model = dyadic_model(hidden=40, inputs=12, exact=False, **case)
    half = dyadic_model(hidden=40, inputs=12, exact=False, **case).to(dtype)
    half.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
    with torch.no_grad():
        for p, q in zip(model.parameters(), half.parameters()):
            p.copy_(q.float())
    x = torch.randn(8, 33, 12, generator=torch.Generator().manual_seed(1)).to(dtype)
    ref, tri = _run(model, "reference", x.float()), _run(half, "triton", x)
    problems = tracking_problems(ref[0], tri[0], ref[1], tri[1], dtype)
    assert not problems, problems
    if case.get("proj"):  # why outputs are compared within rounding: exactly, most differ
        assert (ref[0][0] != tri[0][0]).float().mean() > 0.5


@needs_interpreter
@pytest.mark.parametrize("case", [dict(mode="LSTM"), dict(mode="RNN", layers=2, s1="atan")], ids=["lstm", "rnn-2-layers"])
def test_tf32_runs_are_within_the_cuda_tests_bounds(case, gpu_like_dot, monkeypatch):
    """test_triton_cuda.py's TF32 test, emulated: TF32 products (the interpreter's dots rounded as a GPU
    rounds them) against the full float32 reference."""
    from spikingrnn.ops.triton.exactness import tracking_problems
    monkeypatch.setattr(matmul, "tf32_allowed", lambda x: x.dtype == torch.float32)
    model = dyadic_model(hidden=40, inputs=12, exact=False, **case)
    x = torch.randn(8, 33, 12, generator=torch.Generator().manual_seed(1))
    ref, tri = _run(model, "reference", x), _run(model, "triton", x)
    assert any("TF32" in p.upper() for p in gpu_like_dot)
    problems = tracking_problems(ref[0], tri[0], ref[1], tri[1], "tf32")
    assert not problems, problems
    assert tracking_problems(ref[0], tri[0], ref[1], tri[1], "ieee"), "TF32 rounds: not exact"


def test_tracking_problems_catch_a_broken_kernel():
    """The bounds pass rounding and a few flipped spikes, not a kernel that is wrong."""
    from spikingrnn.ops.triton.exactness import tracking_problems
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(8, 33, 40, generator=generator) > 0.5).float()
    grads = [torch.randn(200, generator=generator)]
    assert not tracking_problems([spikes], [spikes.clone()], grads, [g.clone() for g in grads], torch.bfloat16)
    assert tracking_problems([spikes], [1 - spikes], grads, grads, torch.bfloat16)
    assert tracking_problems([spikes], [spikes], grads, [-g for g in grads], torch.bfloat16)
    projected = torch.randn(8, 33, 5, generator=generator)
    rounded = projected.to(torch.bfloat16).float()
    assert not tracking_problems([projected], [rounded], grads, grads, torch.bfloat16)
    assert tracking_problems([projected], [rounded], grads, grads, "ieee"), "exact means exact"
