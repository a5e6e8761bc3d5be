"""NaN and Inf go through the cpu backend exactly as through the reference.

The cpu backend multiplies a sparse 0/1 operand (spikes) by a weight matrix as a sum of the rows its
ones pick (csrc/products.h); a dense GEMM, as in the reference, also multiplies the zeros, and
0 x NaN and 0 x Inf are NaN. So a NaN or Inf in the input, a weight, an initial state or the
output gradient must give NaN and Inf in the same places of the outputs, final states and every
gradient on both backends (on main, LSTM ``dW_hh`` had 128 NaN entries where the reference had 1,024).
"""
from __future__ import annotations

import pytest
import torch

import spikingrnn
from spikingrnn.ops.cpu.extension import loops

MODULES = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN,
           "RNN-seed": spikingrnn.SpikingRNN}
# "RNN": the default leaky membrane; "RNN-seed": the seed's cell h = Θ(u) (its 0/1 state is what the
# event-driven products take), whose NaN placement this test was written for
NEURON = {"RNN-seed": dict(leak=None)}
STEPS, BATCH, INPUTS, HIDDEN = 20, 16, 32, 64
NAN, INF = float("nan"), float("inf")
# where the non-finite value goes: the input, a weight of the first layer (dense input, spiking
# state) or of the second (spiking input and state), an initial state, the output's gradient
CASES = {
    "nan-input": ("x", (3, 2, 5), NAN),
    "inf-input": ("x", (3, 2, 5), INF),
    "minus-inf-input": ("x", (7, 0, 1), -INF),
    "nan-weight_hh_l0": ("weight_hh_l0", (1, 3), NAN),
    "inf-weight_hh_l1": ("weight_hh_l1", (1, 3), INF),
    "nan-weight_ih_l1": ("weight_ih_l1", (2, 4), NAN),
    "nan-bias_hh_l1": ("bias_hh_l1", (5,), NAN),
    "nan-h0": ("h0", (1, 2, 7), NAN),
    "nan-output-gradient": ("dy", (9, 4, 11), NAN),
    "inf-output-gradient": ("dy", (9, 4, 11), INF),
}


def run(mode: str, backend: str, where: str, index: tuple, value: float, low_memory: bool, proj_size: int = 0):
    """Outputs, final states and every gradient of one forward and backward with ``value`` planted."""
    torch.manual_seed(1)
    extra = dict(proj_size=proj_size) if proj_size else {}
    model = MODULES[mode](INPUTS, HIDDEN, 2, backend=backend, low_memory=low_memory, **NEURON.get(mode, {}),
                          **extra)
    generator = torch.Generator().manual_seed(2)
    x = (torch.rand(STEPS, BATCH, INPUTS, generator=generator) < 0.1).float()  # spikes: event-driven products
    out_size = proj_size or HIDDEN
    states = [torch.zeros(2, BATCH, out_size)] + ([torch.zeros(2, BATCH, HIDDEN)] if mode == "LSTM" else [])
    dy = torch.rand(STEPS, BATCH, out_size, generator=generator)
    if where == "x":
        x[index] = value
    elif where == "h0":
        states[0][index] = value
    elif where == "dy":
        dy[index] = value
    else:
        with torch.no_grad():
            getattr(model, where)[index] = value
    x.requires_grad_(True)
    for state in states:
        state.requires_grad_(True)
    y, final = model(x, tuple(states) if mode == "LSTM" else states[0])
    final = final if isinstance(final, tuple) else (final,)
    ((y * dy).sum() + sum(state.sum() for state in final)).backward()
    results = {"output": y, "dx": x.grad}
    results.update({f"final state {k}": state for k, state in enumerate(final)})
    results.update({f"initial state {k} grad": state.grad for k, state in enumerate(states)})
    results.update({f"{name} grad": p.grad for name, p in model.named_parameters()})
    return results


def assert_same_non_finite(ours: dict, reference: dict) -> None:
    assert ours.keys() == reference.keys()
    for name, expected in reference.items():
        actual = ours[name]
        for kind in (torch.isnan, torch.isposinf, torch.isneginf):
            mismatch = int((kind(actual) != kind(expected)).sum())
            assert mismatch == 0, (f"{name}: {kind.__name__} differs at {mismatch} of {expected.numel()} entries "
                                   f"(cpu {int(kind(actual).sum())}, reference {int(kind(expected).sum())})")
        # finite values: up to the order of the float32 additions (event-driven sums, blocked GEMMs)
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4, equal_nan=True,
                                   msg=lambda text: f"{name}: {text}")


@pytest.mark.parametrize("low_memory", [False, True], ids=["default", "low_memory"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", list(MODULES))
def test_non_finite_values_land_where_the_reference_puts_them(mode, case, low_memory):
    where, index, value = CASES[case]
    reference = run(mode, "reference", where, index, value, low_memory)
    if mode == "RNN" and case in ("inf-input", "minus-inf-input"):
        # the leaky membrane keeps the ±Inf (v' = βv + (1-β)u, the surrogate's derivative there is 0, and
        # nothing multiplies it by 0): it comes out as Inf, in the final state and W_ih's gradient
        assert bool(reference["final state 0"].isinf().any()) and bool(reference["weight_ih_l0 grad"].isinf().any())
    elif where != "dy":  # the planted value reached the gradients, else the case tests nothing
        assert any(bool(t.isnan().any()) for t in reference.values()), "nothing non-finite came out"
    assert_same_non_finite(run(mode, "cpu", where, index, value, low_memory), reference)


@pytest.mark.parametrize("case", ["nan-input", "nan-output-gradient", "inf-output-gradient"])
def test_lstm_projection_gradient_matches_with_non_finite_values(case):
    """``weight_hr``'s gradient is an event-driven sum over the 0/1 ``o * c`` too."""
    where, index, value = CASES[case]
    if where == "dy":
        index = index[:2] + (3,)
    reference = run("LSTM", "reference", where, index, value, False, proj_size=12)
    assert_same_non_finite(run("LSTM", "cpu", where, index, value, False, proj_size=12), reference)


@pytest.mark.skipif(loops() is None, reason="C++ loops unavailable (no compiler)")
@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_event_driven_weight_gradient_makes_the_gemms_nans(value, dtype):
    """``binary_weight_grad`` (grad_t += x^T d for 0/1 x) against ``torch.mm`` with non-finite values
    in d: NaN wherever a non-finite d meets a zero of x, the non-finite sum where it meets only ones."""
    compiled = loops()
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 70, generator=generator) < 0.1).to(dtype)
    d = torch.randn(300, 130, generator=generator, dtype=dtype)
    d[5, 7] = d[200, 7] = d[17, 100] = value
    x[5, :] = 0
    x[5, 3] = x[200, 3] = 1  # column 3 of x is 1 on both non-finite rows of column 7 of d
    x[17, 3] = 1
    grad_t = torch.zeros(70, 130, dtype=dtype)
    assert compiled.binary_weight_grad(d, x, grad_t, 0.5)
    expected = x.t() @ d
    assert torch.equal(grad_t.isnan(), expected.isnan()) and torch.equal(grad_t.isinf(), expected.isinf())
    torch.testing.assert_close(grad_t, expected, equal_nan=True)


@pytest.mark.skipif(loops() is None, reason="C++ loops unavailable (no compiler)")
@pytest.mark.parametrize("value", [NAN, INF])
def test_non_finite_weights_are_not_packed_for_event_driven_products(value):
    compiled = loops()
    w = torch.randn(40, 24)
    assert compiled.pack_column_tiles(w) is not None
    w[39, 23] = value
    assert compiled.pack_column_tiles(w) is None
