"""The triton backend checked bit for bit against the reference backend, on a GPU or under the interpreter.

Every weight and bias is a multiple of 1/8 in [-1, 1], the input and the initial states multiples of
1/4 in [-1, 1], and the input-side biases are offset by 2^-10 (no pre-activation is exactly 0). Every
product then has few significant bits, and every forward sum is exact in float32 whatever the order
of summation, also with TF32 products (11 significant bits hold every operand): the outputs and
final states of two correct implementations are identical, bit for bit, and a single wrong spike
anywhere is a failure. The sizes are chosen so that the sums stay within float32's 24 bits (at
H = 300, two layers, eight steps of an accumulating LSTM cell: |u| < 2^13 on a 2^-10 grid).

Gradients go through the surrogates' derivatives, which are not dyadic: they must agree within
1e-4 of the largest reference gradient (full-precision products) or 1e-2 (TF32 products, rounded
to 11 bits). Repeated runs of the triton backend must be identical, gradients included (the kernels
use no atomics: determinism).

``python -m spikingrnn.ops.triton.exactness`` runs every cell (the LSTM with each ``cell_state``,
the GRU, the vanilla RNN) at H = 20, 40 and 256 (the persistent kernels) and 300 (the per-step
path), with B = 33 (two full batch tiles of the persistent kernels and a partial one), packed and
not, two layers, bidirectional, five runs each, with full-precision and TF32 products. ``--quick``
is a smaller set for the Triton interpreter on CPU (``TRITON_INTERPRET=1``).
:func:`self_check` is the tiny version ``backend="auto"`` runs once per device before it picks the
triton backend (:mod:`spikingrnn.ops.dispatch`).

Inputs that are not dyadic cannot be compared bit for bit once products or storage round (half types,
TF32): :func:`tracking_problems` compares such runs with the float32 reference within
:data:`TRACKING_BOUNDS` (tests/test_triton_cuda.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import NamedTuple

import torch
from torch import Tensor

from ...surrogate import SURROGATES
from ..spec import GATES_PER_MODE, RNNSpec

GRADIENT_TOLERANCE = {False: 1e-4, True: 1e-2}  # by TF32: relative to the largest reference gradient


class Bounds(NamedTuple):
    """How far a run whose products or storage round may stray from the float32 reference (see
    :func:`tracking_problems`)."""

    rounding: float  # two values are the same within this, relative to the value plus the tensor's mean
    outputs: float  # share of the output's values that may differ by more (flipped spikes, their cascades)
    states: float  # the same for each final state (the last step, where cascades have grown most)
    cosine: float  # least cosine similarity of each gradient with the reference's


# Inputs that are not dyadic (tests/test_triton_cuda.py's half-type and TF32 tests, T = 8, B = 33, default
# init): a spike flips where a pre-activation lies within rounding of 0, the flip cascades through later
# steps and layers, and backward rounds every carried term. Measured under the interpreter with the GPU's
# roundings emulated, on every case of those tests (largest share of differing outputs / final states,
# least gradient cosine): bfloat16 3.5 % / 10 % / 0.81 (the per-step LSTM at H = 300), TF32 1.2 % / 4 % /
# 0.94; at T = 30 the cascades reach 13 % / 30 % / 0.22 for bfloat16 and 5 % / 13 % / 0.74 for TF32. The
# bounds leave a margin of about 3 (the GPU sums in another order, and one more flip cascades); a broken
# kernel differs in about half of the spikes and its gradients point elsewhere.
TRACKING_BOUNDS = {
    "ieee": Bounds(0.0, 0.0, 0.0, 1.0),
    "tf32": Bounds(2.0 ** -8, 0.05, 0.12, 0.85),  # TF32 rounds each operand: sums of many products spread
    torch.float16: Bounds(2.0 ** -10, 0.05, 0.12, 0.85),
    torch.bfloat16: Bounds(2.0 ** -7, 0.10, 0.25, 0.60),
}


class Case(NamedTuple):
    """One problem: the stack, its sizes, the surrogates ``(first, second)`` by name."""

    mode: str
    hidden: int
    cell_state: str = "clamp"
    layers: int = 2
    bidirectional: bool = True
    proj: int = 0
    packed: bool = False
    steps: int = 8
    batch: int = 33
    inputs: int = 12
    surrogates: tuple[str, str] = ("erf", "atan")

    def describe(self) -> str:
        cell = f"LSTM/{self.cell_state}" if self.mode == "LSTM" else self.mode
        extra = f" proj={self.proj}" if self.proj else ""
        return (f"{cell:<15} H={self.hidden:<3}{extra} L={self.layers} D={2 if self.bidirectional else 1} "
                f"T={self.steps} B={self.batch} {'packed' if self.packed else 'padded'} {'/'.join(self.surrogates)}")


def _dyadic(shape, generator: torch.Generator, scale: float, low: int, high: int) -> Tensor:
    """Integers in ``[low, high)`` times ``scale`` (float32, on the CPU)."""
    return torch.randint(low, high, shape, generator=generator).to(torch.float32) * scale


def problem(case: Case, device: torch.device, seed: int = 0):
    """``(x, states, weights, spec, surrogates, lengths, loss weights)`` of ``case`` on ``device``, dyadic
    (see the module docstring); ``lengths`` is ``None`` unless packed (then decreasing from ``steps``)."""
    generator = torch.Generator().manual_seed(seed)
    gates = GATES_PER_MODE[case.mode] * case.hidden
    directions = 2 if case.bidirectional else 1
    out = case.proj or case.hidden
    weights = []
    for layer in range(case.layers):
        width = case.inputs if layer == 0 else out * directions
        for _ in range(directions):
            w_ih = _dyadic((gates, width), generator, 1 / 8, -8, 9)
            w_hh = _dyadic((gates, out), generator, 1 / 8, -8, 9)
            b_ih = _dyadic((gates,), generator, 1 / 8, -4, 5) + 2.0 ** -10
            b_hh = _dyadic((gates,), generator, 1 / 8, -4, 5)
            w_hr = _dyadic((case.proj, case.hidden), generator, 1 / 8, -8, 9) if case.proj else None
            weights.append((w_ih, w_hh, b_ih, b_hh, w_hr))
    rows = case.layers * directions
    states = [_dyadic((rows, case.batch, out), generator, 1 / 4, -4, 5)]
    if case.mode == "LSTM":
        states.append(_dyadic((rows, case.batch, case.hidden), generator, 1 / 4, -4, 5))
    x = _dyadic((case.steps, case.batch, case.inputs), generator, 1 / 4, -4, 5)
    lengths = None
    if case.packed:  # every length from steps down to 1, longest first (as packed sequences are)
        lengths = torch.linspace(case.steps, 1, case.batch).round().long()
    loss_weights = _dyadic((case.steps, case.batch, out * directions), generator, 1 / 4, -4, 5)
    spec = RNNSpec(case.mode, case.layers, case.bidirectional, cell_state=case.cell_state)
    first, second = (SURROGATES[name]() for name in case.surrogates)
    pairs = [(first, first if case.mode == "RNN" else second)] * len(weights)

    def on_device(t):
        return None if t is None else t.to(device)

    return (x.to(device), tuple(s.to(device) for s in states),
            [tuple(on_device(w) for w in ws) for ws in weights], spec, pairs, lengths, loss_weights.to(device))


def run(backend, case: Case, device: torch.device, **options) -> tuple[list[Tensor], list[Tensor]]:
    """Forward and backward of ``case`` through the backend function ``backend``: ``(outputs and final
    states, gradients of x, the states and every weight)``."""
    x, states, weights, spec, pairs, lengths, loss_weights = problem(case, device)
    leaves = [x, *states, *(w for ws in weights for w in ws if w is not None)]
    for leaf in leaves:
        leaf.requires_grad_(True)
    with torch.enable_grad():
        out, final = backend(x, states, weights, spec, pairs, lengths=lengths, training=True, **options)
        valid = torch.ones(case.steps, case.batch, 1, device=device)
        if lengths is not None:  # the rows past a sequence's end are not part of the result
            valid = (torch.arange(case.steps).unsqueeze(1) < lengths).unsqueeze(2).float().to(device)
        loss = (out * valid * loss_weights).sum() + sum(s.sum() / 4 for s in final)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    results = [(out * valid).detach(), *(s.detach() for s in final)]
    return results, [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]


def check_case(case: Case, device: torch.device, repeats: int = 5, tf32: bool = False,
               tolerance: float | None = None) -> list[str]:
    """What is wrong with the triton backend on ``case`` (``[]`` when nothing): outputs and final
    states against the reference bit for bit, gradients within ``tolerance`` (default
    :data:`GRADIENT_TOLERANCE`), ``repeats`` runs identical."""
    # the oracle, imported here: the triton backend's run path never imports the reference backend, only
    # this self-check does, on purpose (tests/test_import_graph.py allows this module alone)
    from ..reference import reference_rnn
    from . import triton_rnn
    tolerance = GRADIENT_TOLERANCE[tf32] if tolerance is None else tolerance
    ref_results, ref_grads = run(reference_rnn, case, device)
    problems = []
    first = None
    for attempt in range(repeats):
        results, grads = run(triton_rnn, case, device, tf32=tf32)
        if first is None:
            first = (results, grads)
            problems += _differences(ref_results, results, ref_grads, grads, tolerance)
        else:
            changed = [i for i, (a, b) in enumerate(zip(first[0] + first[1], results + grads)) if not torch.equal(a, b)]
            if changed:
                problems.append(f"run {attempt + 1} differs from run 1 (tensors {changed}): not deterministic")
    return problems


def _differences(ref_results, results, ref_grads, grads, tolerance: float) -> list[str]:
    names = ["output", *(f"final state {i}" for i in range(len(ref_results) - 1))]
    problems = []
    for name, a, b in zip(names, ref_results, results):
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{name}: {tuple(b.shape)} {b.dtype}, the reference {tuple(a.shape)} {a.dtype}")
        elif not torch.equal(a, b):
            wrong = (a != b).sum().item()
            problems.append(f"{name}: {wrong} of {a.numel()} values differ from the reference "
                            f"(largest difference {(a - b).abs().max().item():.3g})")
    for index, (a, b) in enumerate(zip(ref_grads, grads)):
        scale = a.abs().max().clamp(min=1e-6)
        error = ((a - b).abs().max() / scale).item() if a.numel() else 0.0
        if not error <= tolerance:  # also NaN
            problems.append(f"gradient {index}: off by {error:.3g} of its largest value (allowed {tolerance:g})")
    return problems


def tracking_problems(ref_results: list[Tensor], results: list[Tensor], ref_grads: list[Tensor], grads: list[Tensor],
                      precision) -> list[str]:
    """What is wrong with a run whose products or storage round (``precision``: ``torch.bfloat16``,
    ``torch.float16``, ``"tf32"``, or ``"ieee"`` for none), against the float32 reference run on the
    same rounded inputs and weights (``[]`` when nothing); see :data:`TRACKING_BOUNDS`.

    Two values are the same when they differ by at most the precision's rounding, relative to the value
    and to the mean magnitude of the tensor: 0/1 spikes must be equal, outputs through ``proj_size``
    (sums of rounded products) may differ by rounding; each output or state may have a bounded share
    of other values (flipped spikes and what they cascade into), and each gradient that is not zero
    must point the reference's way (cosine similarity)."""
    bounds = TRACKING_BOUNDS[precision]
    names = ["output", *(f"final state {i}" for i in range(len(ref_results) - 1))]
    problems = []
    for name, a, b in zip(names, ref_results, results):
        a, b = a.float(), b.float()
        if a.shape != b.shape:
            problems.append(f"{name}: shape {tuple(b.shape)}, the reference {tuple(a.shape)}")
            continue
        if not a.numel():
            continue
        share = bounds.outputs if name == "output" else bounds.states
        allowed = bounds.rounding * (a.abs() + a.abs().mean())
        differ = ((a - b).abs() > allowed) | (a.isnan() != b.isnan())
        fraction = differ.float().mean().item()
        if fraction > share:
            problems.append(f"{name}: {fraction:.1%} of the values differ from the reference by more than "
                            f"rounding (allowed {share:.0%})")
    for index, (a, b) in enumerate(zip(ref_grads, grads)):
        a, b = a.float().flatten(), b.float().flatten()
        if not a.numel() or a.abs().max() == 0:
            continue
        similarity = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
        if not similarity >= bounds.cosine:  # also NaN
            problems.append(f"gradient {index}: cosine similarity {similarity:.3f} with the reference "
                            f"(at least {bounds.cosine} allowed)")
    return problems


def cases(quick: bool = False) -> list[Case]:
    """The full set: every cell at H = 20, 40, 256 (persistent kernels) and 300 (per-step path), packed
    and not, two layers, both directions, B = 33, T = 8, and the LSTM with ``proj_size``. ``quick``: the
    same cells at H = 20 and 40, T = 4, and one layer at H = 300, T = 3 (the interpreter's pace)."""
    cells = [("LSTM", "clamp", ("erf", "atan")), ("LSTM", "accumulate", ("sigmoid", "rect")),
             ("LSTM", "spike", ("piecewise_quadratic", "super_spike")), ("GRU", "clamp", ("soft_sign", "erf")),
             ("RNN", "clamp", ("piecewise_exp", "piecewise_exp"))]
    packings = (False, True)
    if quick:
        chosen = [Case(mode, hidden, cell_state, steps=4, packed=packed, surrogates=pair)
                  for hidden in (20, 40) for packed in packings for mode, cell_state, pair in cells]
        chosen += [Case(mode, 300, cell_state, layers=1, steps=3, packed=packed, surrogates=pair)
                   for packed in packings for mode, cell_state, pair in cells]
    else:
        chosen = [Case(mode, hidden, cell_state, packed=packed, surrogates=pair)
                  for hidden in (20, 40, 256, 300) for packed in packings for mode, cell_state, pair in cells]
    # proj_size: the LSTM's per-step path at any hidden size
    chosen += [Case("LSTM", 40, cell_state, proj=7, steps=4 if quick else 8, packed=packed)
               for cell_state in ("clamp", "accumulate") for packed in packings]
    return chosen


SELF_CHECK_CASES = [Case("LSTM", 20, layers=1, bidirectional=False, steps=3, batch=17, inputs=5),
                    Case("LSTM", 8, proj=3, layers=1, bidirectional=False, steps=3, batch=17, inputs=5),
                    Case("GRU", 20, layers=1, bidirectional=False, steps=3, batch=17, inputs=5),
                    Case("RNN", 20, layers=1, bidirectional=False, steps=3, batch=17, inputs=5)]


def self_check(device: torch.device) -> str | None:
    """The tiny check ``backend="auto"`` runs once per device: :data:`SELF_CHECK_CASES`, the LSTM
    (persistent kernels, and the per-step ones through ``proj_size``), the GRU and the vanilla RNN, 17
    rows (two batch tiles), three steps, float32 with the TF32 choice the backend makes on ``device``,
    one run each. Outputs and states must equal the reference's, gradients agree within 1e-2 (a broken
    kernel is off by far more; the user's own precision settings, e.g. TF32 in the reference's GEMMs,
    stay within it). Runs with gradients on and autocast off, whatever the caller's mode, and draws no
    random numbers from torch's generators. ``None`` when all agree, else the first case that does not
    and how."""
    from .matmul import tf32_allowed
    tf32 = tf32_allowed(torch.empty(0, device=device))
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        for case in SELF_CHECK_CASES:
            problems = check_case(case, device, repeats=1, tf32=tf32, tolerance=GRADIENT_TOLERANCE[True])
            if problems:
                return f"{case.describe()}: {'; '.join(problems)}"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when there is one)")
    parser.add_argument("--quick", action="store_true", help="the small set (for the interpreter on CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per case (default 5, --quick 2)")
    parser.add_argument("--precision", choices=("ieee", "tf32", "both"), default="both",
                        help="float32 products in full precision, TF32 or both (default both)")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    repeats = args.repeats or (2 if args.quick else 5)
    from . import kernels_interpreted, load_kernels, unsupported_reason
    load_kernels()
    reason = unsupported_reason(device, torch.float32, [SURROGATES["erf"]()])
    if reason is not None:
        print(f"the triton backend cannot run on {device}: {reason}", file=sys.stderr)
        return 2
    precisions = {"ieee": (False,), "tf32": (True,), "both": (False, True)}[args.precision]
    chosen = cases(args.quick)
    print(f"# triton vs reference, bit for bit: {len(chosen)} cases x {len(precisions)} precisions, {repeats} runs "
          f"each, on {device}{' (Triton interpreter)' if kernels_interpreted() else ''}", flush=True)
    failures, start = 0, time.perf_counter()
    for tf32 in precisions:
        for case in chosen:
            began = time.perf_counter()
            try:
                problems = check_case(case, device, repeats, tf32)
            except Exception as error:  # one broken case must not hide the others
                problems = [f"raised {type(error).__name__}: {error}"]
            failures += bool(problems)
            status = "ok  " if not problems else "FAIL"
            print(f"{status} {'tf32' if tf32 else 'ieee'} {case.describe()} ({time.perf_counter() - began:.1f} s)"
                  + "".join(f"\n       {p}" for p in problems), flush=True)
    total = len(chosen) * len(precisions)
    print(f"# {total - failures} of {total} cases exact and deterministic in {time.perf_counter() - start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
