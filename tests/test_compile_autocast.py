"""torch.compile and torch.autocast with the spiking modules on the reference and cpu backends.

* torch.compile (``aot_eager``, no C++ codegen; one inference test with inductor): outputs equal
  eager bit for bit, gradients equal eager's; the reference backend compiles as one graph
  (``fullgraph=True``), the cpu backend graph-breaks around its autograd Functions (C++ loops and
  data-dependent checks) and still gives the same results.
* autocast on CPU (bfloat16): the reference backend runs (GEMMs in bfloat16), outputs stay 0/1
  spikes, backward works, and spikes agree with float32 eager on at least 95% of the elements.
  The cpu backend supports float32/float64 only: named explicitly it raises a ValueError naming
  autocast's dtype; ``backend="auto"`` falls back to the reference.
"""
from __future__ import annotations

import warnings

import pytest
import torch

import spikingrnn

T, B, I, H = 4, 2, 3, 5
CLASSES = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}


def make(name: str, backend: str, seed: int = 0):
    torch.manual_seed(seed)
    model = CLASSES[name](I, H, backend=backend)
    x = torch.randn(T, B, I) * 3
    return model, x


def compiled(model, backend="aot_eager"):
    """The reference backend traces as one graph (``fullgraph=True``); the cpu backend graph-breaks."""
    torch._dynamo.reset()
    return torch.compile(model, backend=backend, fullgraph=model.backend == "reference")


def flat(states):
    return list(states) if isinstance(states, tuple) else [states]


@pytest.fixture(autouse=True)
def _quiet_graph_breaks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dynamo's notes on the C++ loops it cannot trace
        yield


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("name", list(CLASSES))
def test_compiled_inference_matches_eager_bitwise(name, backend):
    model, x = make(name, backend)
    with torch.no_grad():
        y_eager, s_eager = model(x)
        y_comp, s_comp = compiled(model)(x)
    assert torch.equal(y_comp, y_eager)
    for a, b in zip(flat(s_comp), flat(s_eager)):
        assert torch.equal(a, b)
    assert bool(((y_comp == 0) | (y_comp == 1)).all())


@pytest.mark.parametrize("name,backend", [("LSTM", "reference"), ("LSTM", "cpu"), ("GRU", "reference"),
                                          ("RNN", "reference"), ("GRU", "cpu"), ("RNN", "cpu")])
def test_compiled_training_gradients_match_eager(name, backend):
    model, x = make(name, backend)
    model.train()

    def grads(run):
        model.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_()
        y, states = run(inp)
        weights = torch.linspace(-1, 1, y.numel()).view_as(y)
        loss = (y * weights).sum() + sum(s.sum() for s in flat(states))
        loss.backward()
        return [inp.grad] + [p.grad for p in model.parameters()], y

    g_eager, y_eager = grads(model)
    g_comp, y_comp = grads(compiled(model))
    assert torch.equal(y_comp, y_eager)
    for a, b in zip(g_comp, g_eager):
        assert a is not None and b is not None
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert any(bool(g.abs().sum() > 0) for g in g_eager)


def test_compiled_cpu_backend_pytorch_loops(monkeypatch):
    """Without the C++ extension (pure-PyTorch loops inside the Functions) compile also matches eager."""
    monkeypatch.setenv("SPIKINGRNN_NO_EXTENSION", "1")
    test_compiled_training_gradients_match_eager("LSTM", "cpu")


def test_compiled_reference_inductor_inference():
    """The default (inductor) backend on the reference backend: same spikes as eager."""
    model, x = make("LSTM", "reference")
    with torch.no_grad():
        y_eager, _ = model(x)
        y_comp, _ = compiled(model, backend="inductor")(x)
    assert torch.equal(y_comp, y_eager)


@pytest.mark.parametrize("name", list(CLASSES))
def test_autocast_bf16_reference(name):
    model, x = make(name, "reference")
    with torch.no_grad():
        y32, _ = model(x)
    inp = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, states = model(inp)
        # the final states feed back under autocast (state dtype may differ from the input's, as in torch)
        y2, _ = model(inp, states)
    assert y.dtype in (torch.float32, torch.bfloat16)
    assert bool(((y == 0) | (y == 1)).all()) and bool(((y2 == 0) | (y2 == 1)).all())
    mismatch = (y.float() != y32).float().mean().item()
    assert mismatch < 0.05, f"bf16 spikes differ from float32 on {mismatch:.1%} of the elements"
    (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    assert inp.grad is not None and inp.grad.dtype == torch.float32
    for p in model.parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype and bool(torch.isfinite(p.grad).all())


@pytest.mark.parametrize("name", list(CLASSES))
def test_autocast_cpu_backend_refuses_naming_dtype(name):
    model, x = make(name, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(ValueError, match=r"backend='cpu'.*autocast.*bfloat16"):
            model(x)
    y, _ = model(x)  # outside autocast it runs as before
    assert y.dtype == torch.float32


@pytest.mark.parametrize("name", list(CLASSES))
def test_autocast_auto_backend_falls_back_to_reference(name):
    model, x = make(name, "auto")
    reference, _ = make(name, "reference")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = model(x)
        y_ref, _ = reference(x)
    assert torch.equal(y, y_ref)


def test_compiled_autocast_reference_matches_eager_autocast():
    model, x = make("LSTM", "reference")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y_eager, _ = model(x)
        y_comp, _ = compiled(model)(x)
    assert torch.equal(y_comp.float(), y_eager.float())
