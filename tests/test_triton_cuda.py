"""The triton backend on a CUDA GPU against the reference backend (skipped where there is none).

Run this file in its own pytest process (``scripts/gpu_check.sh`` does): ``test_triton_backend.py``
builds the kernels for the Triton interpreter, and a process keeps the first build.

float32: weights, inputs and states are small dyadic rationals, so every forward sum is exact
(also through TF32 products: 0/1 spikes times multiples of 1/8), outputs and final states must be
identical and gradients agree within 1e-4 relative, as under the interpreter: these tests run with
cuDNN's RNN precision set to full float32 (``torch.backends.cudnn.rnn.fp32_precision = "ieee"``),
which the backend follows; with TF32 (its default, as cuDNN's) see test_tf32_tracks_the_reference.

bfloat16 / float16 and TF32 runs of inputs that are not dyadic are compared with the float32
reference by :func:`spikingrnn.ops.triton.exactness.tracking_problems`: values equal within the
precision's rounding (outputs through ``proj_size`` are sums of rounded products: most differ from
the float32 reference by rounding alone), a bounded share of other values (a spike flips where a
pre-activation lies within rounding of 0, and the flip cascades through later steps and layers), and
gradients that point the reference's way (over 8 steps: over 30 the cascades leave bfloat16 gradients
little of the reference's direction). tests/test_gpu_paths.py checks those bounds against the GPU's
roundings emulated under the interpreter.
"""
import pytest
import torch

pytest.importorskip("triton")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import spikingrnn  # noqa: E402
from helpers import dyadic_model  # noqa: E402
from spikingrnn.ops.triton import kernels_interpreted, load_kernels  # noqa: E402
from spikingrnn.ops.triton.exactness import tracking_problems  # noqa: E402

load_kernels()
if kernels_interpreted():
    pytest.skip("the Triton kernels were built for the interpreter in this process; run this file alone",
                allow_module_level=True)

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def full_float32(monkeypatch):
    """Float32 products in full precision (the backend follows cuDNN's RNN setting), restored after."""
    monkeypatch.setattr(torch.backends.cudnn.rnn, "fp32_precision", "ieee")
CASES = [
    dict(mode="LSTM"),
    dict(mode="LSTM", cell_state="accumulate", s1="sigmoid", s2="atan", layers=2, bidirectional=True),
    dict(mode="LSTM", cell_state="spike", proj=5),
    dict(mode="LSTM", hidden=300),  # past the persistent kernels' hidden limit: per-step path
    dict(mode="GRU", layers=2, bidirectional=True),
    dict(mode="GRU", hidden=300),  # per-step path
    dict(mode="RNN", layers=2, s1="atan"),
    dict(mode="RNN", hidden=300, bias=False),  # per-step path
]
SHAPES = [(1, 1), (7, 3), (40, 33)]  # (steps, batch): several batch tiles of the persistent kernels
# steps of the half-type and TF32 tests: long enough for flipped spikes to cascade, short enough that the
# gradients still point the reference's way (see exactness.TRACKING_BOUNDS)
TRACKING_STEPS = 8


def build(mode, hidden=40, inputs=12, exact=True, **case):
    """The shared dyadic test stack (tests/helpers.py), wider by default, on the GPU."""
    return dyadic_model(mode, hidden=hidden, inputs=inputs, exact=exact, **case).to(CUDA)


def run(model, backend, x, lengths=None):
    model.backend = backend
    x = x.detach().clone().requires_grad_()
    model.zero_grad()
    inp = x if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
    out, final = model(inp)
    data = out.data if lengths is not None else out
    final = final if isinstance(final, tuple) else (final,)
    generator = torch.Generator(device=CUDA).manual_seed(7)
    loss = (data.float() * torch.randn(data.shape, generator=generator, device=CUDA)).sum()
    for s in final:
        loss = loss + (s.float() * torch.randn(s.shape, generator=generator, device=CUDA)).sum()
    loss.backward()
    grads = [x.grad] + [p.grad for p in model.parameters()]
    return data.detach().float(), [s.detach().float() for s in final], [g.float() for g in grads]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"T{s[0]}-B{s[1]}")
@pytest.mark.parametrize("packed", [False, True])
def test_float32_matches_reference(case, shape, packed):
    steps, batch = shape
    model = build(**case)
    x = (torch.randint(-4, 5, (steps, batch, model.input_size)).float() / 4).to(CUDA)
    lengths = torch.linspace(steps, 1, batch).round().long() if packed else None
    ref, tri = run(model, "reference", x, lengths), run(model, "triton", x, lengths)
    assert torch.equal(ref[0], tri[0])
    assert all(torch.equal(a, b) for a, b in zip(ref[1], tri[1]))
    for a, b in zip(ref[2], tri[2]):
        assert (a - b).abs().max() <= 1e-4 * a.abs().max().clamp(min=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_half_types_track_the_float32_reference(dtype, case):
    model = build(**case, exact=False)
    x = torch.randn(TRACKING_STEPS, 33, model.input_size, device=CUDA)
    half = build(**case, exact=False).to(dtype)
    half.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
    with torch.no_grad():  # the reference sees exactly the rounded values the half model holds
        for p, q in zip(model.parameters(), half.parameters()):
            p.copy_(q.float())
    ref = run(model, "reference", x.to(dtype).float())
    tri = run(half, "triton", x.to(dtype))
    problems = tracking_problems([ref[0], *ref[1]], [tri[0], *tri[1]], ref[2], tri[2], dtype)
    assert not problems, "\n".join(problems)


def test_an_accumulating_cell_counts_past_256_in_bfloat16():
    """The running c is float32 in the kernels for half types: from c0 = 256, adding 1 a step reaches 260
    (in bfloat16 storage, 256 + 1 == 256)."""
    model = build(mode="LSTM", cell_state="accumulate", hidden=4, inputs=3).to(torch.bfloat16)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if name.startswith("bias_ih") else 0.0)
    model.backend = "triton"
    h0 = torch.zeros(1, 2, 4, device=CUDA, dtype=torch.bfloat16)
    c0 = torch.full((1, 2, 4), 256.0, device=CUDA, dtype=torch.bfloat16)
    _, (_, c_n) = model(torch.zeros(4, 2, 3, device=CUDA, dtype=torch.bfloat16), (h0, c0))
    assert torch.equal(c_n, torch.full_like(c_n, 260.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", [dict(mode="LSTM"),
                                  dict(mode="LSTM", cell_state="spike", layers=2, bidirectional=True),
                                  dict(mode="GRU", layers=2), dict(mode="RNN", layers=2)],
                         ids=["lstm", "lstm-spike-2-layers-bidirectional", "gru", "rnn"])
def test_low_memory_replays_the_persistent_forward_exactly(dtype, case):
    """Float weights, TF32 products in the persistent forward kernel: low_memory's backward replays that
    kernel, so it fires the same gates and gives the same gradients, bit for bit, as keeping the
    pre-activations (a recomputation with torch.mm would not: its products are not TF32)."""
    model = build(**case, exact=False).to(dtype)
    x = torch.randn(30, 33, model.input_size, device=CUDA, dtype=dtype)
    model.low_memory = False
    kept = run(model, "triton", x)
    model.low_memory = True
    low = run(model, "triton", x)
    assert torch.equal(kept[0], low[0])
    assert all(torch.equal(a, b) for a, b in zip(kept[2], low[2]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[4]], ids=["lstm", "lstm-proj", "gru"])
def test_autocast_runs_the_whole_recurrence_in_the_autocast_dtype(dtype, case):
    """Under torch.autocast (as cuDNN's LSTM): float32 module and input, the recurrence in ``dtype``
    exactly as a model converted to ``dtype``, gradients back to the float32 parameters."""
    model = build(**case, exact=False)
    half = build(**case, exact=False)
    half.load_state_dict(model.state_dict())
    half.to(dtype)
    x = torch.randn(20, 9, model.input_size, device=CUDA)
    converted = run(half, "triton", x.to(dtype))
    with torch.autocast("cuda", dtype=dtype):
        model.backend = "triton"
        out, _ = model(x)
        assert out.dtype == dtype
        autocast = run(model, "triton", x)
    assert torch.equal(autocast[0], converted[0])
    for a, b in zip(autocast[2], converted[2]):  # float32 grads of the cast, the half model's own
        assert a.dtype == torch.float32
        assert torch.equal(a.to(dtype).float(), b)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[4], CASES[6]],
                         ids=["lstm", "lstm-per-step", "gru", "rnn"])
def test_tf32_tracks_the_reference(case, monkeypatch):
    """With cuDNN's default RNN precision (TF32) every float32 product of the backend is TF32 (the
    persistent kernels' tl.dot and the Triton GEMM): outputs agree with the float32 reference except
    for spikes within TF32 rounding of the threshold and their cascades (emulated: about 1 % of the
    per-step LSTM's outputs over 8 steps, 5 % over 30), gradients keep their direction; low memory
    recomputes exactly what forward computed."""
    monkeypatch.setattr(torch.backends.cudnn.rnn, "fp32_precision", "tf32")
    model = build(**case, exact=False)
    x = torch.randn(TRACKING_STEPS, 33, model.input_size, device=CUDA)
    ref, tri = run(model, "reference", x), run(model, "triton", x)
    problems = tracking_problems([ref[0], *ref[1]], [tri[0], *tri[1]], ref[2], tri[2], "tf32")
    assert not problems, "\n".join(problems)
    model.low_memory = True
    low = run(model, "triton", x)
    assert torch.equal(low[0], tri[0])
    assert all(torch.equal(a, b) for a, b in zip(low[2], tri[2]))


def test_backend_auto_picks_triton_on_cuda_after_its_self_check(monkeypatch, caplog):
    """backend="auto" runs the kernels' one-time self-check against the reference (logged), then picks
    triton; a model on the GPU with built-in surrogates runs it."""
    import logging

    from spikingrnn.ops import dispatch

    monkeypatch.setattr(dispatch, "_self_checked", {})
    pair = (spikingrnn.surrogate.Erf(), spikingrnn.surrogate.Erf())
    with caplog.at_level(logging.INFO, logger="spikingrnn"):
        run_fn = dispatch.resolve("auto", CUDA, torch.float32, [pair])
    assert run_fn is dispatch.BACKENDS["triton"][0]
    assert any("match the reference" in r.getMessage() for r in caplog.records)
    assert dispatch.resolve("auto", CUDA, torch.bfloat16, [pair]) is dispatch.BACKENDS["triton"][0]


def test_self_check_passes_with_either_precision(monkeypatch):
    from spikingrnn.ops.triton.exactness import self_check
    for precision in ("ieee", "tf32"):
        monkeypatch.setattr(torch.backends.cudnn.rnn, "fp32_precision", precision)
        assert self_check(CUDA) is None


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_a_model_on_another_gpu_than_the_current_one():
    """The kernels launch on the input's device, not the current one."""
    model = build(mode="LSTM", layers=2).to("cuda:1")
    x = (torch.randint(-4, 5, (7, 33, model.input_size)).float() / 4).to("cuda:1")
    with torch.cuda.device(0):
        ref, tri = run_on(model, "reference", x), run_on(model, "triton", x)
    assert torch.equal(ref, tri)


def run_on(model, backend, x):
    model.backend = backend
    with torch.no_grad():
        return model(x)[0]
