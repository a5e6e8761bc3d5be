"""The surrogate registry (:data:`spikingrnn.surrogate.KERNEL_IDS`) against every kernel language.

Each built-in surrogate has one registry entry, its kernel id, which selects its derivative formula
in the compiled kernels. For every entry:

(a) the C++ loops (``derivative_row`` in spikingrnn/ops/cpu/csrc/surrogates.h, evaluated inside the
    LSTM and GRU backward loops) compute the gradients that the Python ``derivative`` gives: the cpu
    backend's backward with ``FUSED_DERIVATIVES`` on and off, float64. Not bitwise (the C++ ``exp`` is
    a polynomial within a few ulp of the library's, and a few formulas divide where PyTorch multiplies
    by a reciprocal): within 1e-12 of the largest gradient (measured: below 2e-15). There is no
    binding that evaluates one derivative alone; the backward is the direct use;
(b) the Triton kernels (``surrogate_derivative`` in spikingrnn/ops/triton/kernels.py, under the
    Triton interpreter: see tests/conftest.py) compute the reference backend's gradients, for every
    cell, with the persistent and the per-step kernels, and the derivative kernel alone matches the
    formula;
(c) the id is the case number of that surrogate in both switches (read from the source text).

Each entry runs in both surrogate slots: as the first surrogate with the next entry as the second.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import spikingrnn
from builders import build_model, forward_backward, make_inputs, same_weights
from spikingrnn.surrogate import KERNEL_IDS, SURROGATES, kernel_id

try:
    import triton
    import triton.language as tl
except Exception:  # not installed, or a broken install: the Triton tests skip (triton_interpreter fixture)
    triton = None

if triton is not None:
    from spikingrnn.ops.triton.kernels import surrogate_derivative

    def _derivative_kernel(x_ptr, out_ptr, n, alpha, KIND: tl.constexpr, BLOCK: tl.constexpr):
        """``out = surrogate_derivative(x, alpha, KIND)``; ``triton.jit`` in its test, under the
        interpreter (tests/conftest.py)."""
        e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = e < n
        tl.store(out_ptr + e, surrogate_derivative(tl.load(x_ptr + e, mask=mask, other=0.0), alpha, KIND), mask=mask)

ENTRIES = sorted(KERNEL_IDS.items(), key=lambda entry: entry[1])
NAMES = [cls.__name__ for cls, _ in ENTRIES]
OPS = Path(spikingrnn.__file__).parent / "ops"


def _partner(kernel: int):
    """The surrogate class with the next kernel id (wrapping), for the second surrogate slot."""
    return ENTRIES[(kernel + 1) % len(ENTRIES)][0]


def _relative_error(result, expected) -> float:
    """Largest ``|result - expected|`` over the largest ``|expected|`` across all gradients."""
    worst = 0.0
    for name, want in expected.grads.items():
        got = result.grads[name]
        assert (got is None) == (want is None), name
        if want is not None:
            worst = max(worst, float((got - want).abs().max() / want.abs().max().clamp(min=1e-30)))
    return worst


def test_registry_ids_are_distinct_and_cover_every_builtin():
    assert sorted(KERNEL_IDS.values()) == list(range(len(KERNEL_IDS)))
    assert set(KERNEL_IDS) == set(SURROGATES.values())
    for cls, kernel in KERNEL_IDS.items():
        assert kernel_id(cls()) == kernel

    class Subclass(spikingrnn.surrogate.Erf):
        pass

    assert kernel_id(Subclass()) is None, "a subclass may override derivative: no kernel id"
    assert kernel_id(lambda u: u) is None


def test_cpu_surrogate_kinds_come_from_the_registry():
    from spikingrnn.ops.cpu.common import SURROGATE_KINDS
    assert SURROGATE_KINDS == {cls.derivative: kernel for cls, kernel in KERNEL_IDS.items()}


# ------------------------------------------------------------------ (a) C++ derivative vs Python formula
# (the heaviside form's gates and cell; the sigmoid forms' and the leaky RNN's spike, at o tanh(c) - θ,
# s - θ or v - θ)

CPU_CASES = [("LSTM", {"cell_state": "spike"}), ("LSTM", {"cell_state": "accumulate", "low_memory": True}),
             ("GRU", {}), ("GRU", {"low_memory": True}), ("LSTM", {"gates": "sigmoid"}),
             ("LSTM", {"gates": "sigmoid", "low_memory": True}), ("GRU", {"gates": "sigmoid"}),
             ("RNN", {"leak": 0.9})]


@pytest.mark.parametrize("alpha", [None, 1.7], ids=["default-alpha", "alpha-1.7"])
@pytest.mark.parametrize("mode,options", CPU_CASES, ids=[f"{m}-{'-'.join(o) or 'keep-pre'}" for m, o in CPU_CASES])
@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_cpp_fused_derivative_matches_python_formula(entry, mode, options, alpha, monkeypatch):
    from spikingrnn.ops.cpu import common
    from spikingrnn.ops.cpu.extension import loops
    if loops() is None:
        pytest.skip("C++ loops unavailable (no compiler, or another process is building them)")
    cls, kernel = entry
    model = build_model(mode, inputs=5, hidden=12, layers=2, bidirectional=True, surrogate=cls(alpha),
                        surrogate2=_partner(kernel)(alpha), backend="cpu", **{"gates": "heaviside", **options})
    inputs = make_inputs(model, 6, 5, lengths=[6, 5, 5, 3, 1])
    monkeypatch.setattr(common, "FUSED_DERIVATIVES", True)
    fused = forward_backward(model, inputs)
    monkeypatch.setattr(common, "FUSED_DERIVATIVES", False)
    python = forward_backward(model, inputs)
    assert torch.equal(fused.output, python.output)
    assert any(bool(g.any()) for g in python.grads.values() if g is not None)
    assert _relative_error(fused, python) <= 1e-12


# ------------------------------------------------------------------ (b) Triton kernels vs reference

TRITON_CASES = [("LSTM", {"cell_state": "spike"}), ("GRU", {}), ("RNN", {})]


@pytest.fixture(params=["persistent", "per-step"])
def kernel_path(request, triton_interpreter, monkeypatch):
    """The persistent kernels (one launch for all steps) and the per-step ones."""
    from spikingrnn.ops.triton import persistent
    if request.param == "per-step":
        monkeypatch.setattr(persistent, "PERSISTENT_MAX_HIDDEN", 0)
    return request.param


@pytest.mark.parametrize("mode,options", TRITON_CASES, ids=[m for m, _ in TRITON_CASES])
@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_triton_kernels_match_reference_gradients(entry, mode, options, kernel_path):
    """Dyadic weights and inputs (tests/builders.py): outputs and states bit for bit, gradients within
    float32 rounding (measured: below 5e-7 of the largest)."""
    cls, kernel = entry
    model = build_model(mode, inputs=4, hidden=8, surrogate=cls(1.5), surrogate2=_partner(kernel)(),
                        dtype=torch.float32, weights="dyadic", gates="heaviside", **options)
    inputs = make_inputs(model, 4, 3, kind="dyadic")
    expected = forward_backward(model, inputs)
    result = forward_backward(same_weights(model, "triton"), inputs)
    assert torch.equal(result.output, expected.output)
    assert all(torch.equal(a, b) for a, b in zip(result.states, expected.states))
    assert _relative_error(result, expected) <= 1e-5


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_triton_derivative_alone_matches_python_formula(entry, triton_interpreter):
    from triton.runtime.interpreter import InterpretedFunction
    derivative = triton.jit(_derivative_kernel)  # TRITON_INTERPRET=1 now (the fixture)
    assert isinstance(derivative, InterpretedFunction)
    cls, kernel = entry
    x = torch.linspace(-4, 4, 201, dtype=torch.float32)
    for alpha in (cls.default_alpha, 0.7, 2.5):
        out = torch.empty_like(x)
        derivative[(1,)](x, out, x.numel(), alpha, KIND=kernel, BLOCK=256)
        torch.testing.assert_close(out, cls.derivative(x.clone(), alpha), rtol=1e-5, atol=1e-6,
                                   msg=f"{cls.__name__} alpha={alpha}")


# ------------------------------------------------------------------ (c) case numbers in the source

def _switch(cases: list[tuple[str, str]], default: list[str], what: str) -> dict[str, int]:
    """Surrogate class name -> kernel id from a switch's ``(id, name)`` cases and its default's name
    (the one id without a case)."""
    ids = {name: int(number) for number, name in cases}
    assert len(ids) == len(cases), f"{what}: a surrogate named by two cases: {cases}"
    assert len(default) <= 1, f"{what}: several defaults {default}"
    if default:
        missing = sorted(set(range(len(KERNEL_IDS))) - set(ids.values()))
        assert len(missing) == 1, f"{what}: the default branch must be the one id without a case, free: {missing}"
        ids[default[0]] = missing[0]
    return ids


def test_cpp_switch_cases_are_the_registry_ids():
    csrc = OPS / "cpu" / "csrc"
    header = (csrc / "surrogates.h").read_text()
    body = header[header.index("derivative_row("):]
    cases = re.findall(r"case\s+(\d+)\s*:\s*\{?\s*//\s*(\w+)", body)
    default = re.findall(r"default\s*:\s*//\s*(\w+)", body)
    assert _switch(cases, default, "csrc/surrogates.h") == {cls.__name__: kernel for cls, kernel in ENTRIES}
    # the exported loops refuse a kind id outside 0 .. kSurrogateKinds - 1
    counts = [int(n) for path in sorted(csrc.glob("*.h")) + sorted(csrc.glob("*.cpp"))
              for n in re.findall(r"kSurrogateKinds\s*=\s*(\d+)", path.read_text())]
    assert counts == [len(KERNEL_IDS)], f"kSurrogateKinds definitions in csrc/: {counts}"


def test_triton_switch_cases_are_the_registry_ids():
    source = (OPS / "triton" / "kernels.py").read_text()
    start = source.index("def surrogate_derivative(")
    body = source[start:source.index("\n@triton.jit", start)]
    cases = re.findall(r"(?:if|elif)\s+KIND\s*==\s*(\d+)\s*:\s*#\s*(\w+)", body)
    default = re.findall(r"else\s*:\s*#\s*(\w+)", body)
    assert _switch(cases, default, "ops/triton/kernels.py") == {cls.__name__: kernel for cls, kernel in ENTRIES}
