"""The triton backend on a CUDA GPU against the reference backend (skipped where there is none).

Run this file in its own pytest process (``scripts/gpu_check.sh`` does): ``test_triton_backend.py``
builds the kernels for the Triton interpreter, and a process keeps the first build.

float32: weights, inputs and states are small dyadic rationals, so every forward sum is exact
(also through TF32 products: 0/1 spikes times multiples of 1/8), outputs and final states must be
identical and gradients agree within 1e-4 relative, as under the interpreter: these tests run with
cuDNN's RNN precision set to full float32 (``torch.backends.cudnn.rnn.fp32_precision = "ieee"``),
which the backend follows; with TF32 (its default, as cuDNN's) see test_tf32_tracks_the_reference. bfloat16 / float16
(float32 accumulation): against the float32 reference run on the same rounded values, a spike may
flip where a pre-activation lies within rounding of 0, so at most 2 % of the outputs may differ and
every gradient must keep a cosine similarity of at least 0.98 with the reference.
"""
import pytest
import torch

pytest.importorskip("triton")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import spikingrnn  # noqa: E402
from helpers import dyadic_model  # noqa: E402
from spikingrnn.ops.triton import kernels_interpreted, load_kernels  # noqa: E402

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
    x = torch.randn(30, 33, model.input_size, device=CUDA)
    half = build(**case, exact=False).to(dtype)
    half.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
    with torch.no_grad():  # the reference sees exactly the rounded values the half model holds
        for p, q in zip(model.parameters(), half.parameters()):
            p.copy_(q.float())
    ref = run(model, "reference", x.to(dtype).float())
    tri = run(half, "triton", x.to(dtype))
    assert (ref[0] != tri[0]).float().mean() <= 0.02
    for a, b in zip(ref[2], tri[2]):
        cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cosine >= 0.98 or a.abs().max() == 0


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
    for spikes within TF32 rounding of the threshold, gradients keep their direction; low memory
    recomputes exactly what forward computed."""
    monkeypatch.setattr(torch.backends.cudnn.rnn, "fp32_precision", "tf32")
    model = build(**case, exact=False)
    x = torch.randn(30, 33, model.input_size, device=CUDA)
    ref, tri = run(model, "reference", x), run(model, "triton", x)
    assert (ref[0] != tri[0]).float().mean() <= 0.02
    for a, b in zip(ref[2], tri[2]):
        cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cosine >= 0.99 or a.abs().max() == 0
    model.low_memory = True
    low = run(model, "triton", x)
    assert torch.equal(low[0], tri[0])
    assert all(torch.equal(a, b) for a, b in zip(low[2], tri[2]))


def test_backend_auto_picks_triton_on_cuda():
    from spikingrnn.ops import dispatch

    run_fn = dispatch.resolve("auto", CUDA, torch.float32, [(spikingrnn.surrogate.Erf(), None)])
    assert run_fn is dispatch.BACKENDS["triton"][0]
