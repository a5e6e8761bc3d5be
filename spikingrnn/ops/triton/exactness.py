"""The triton backend checked bit for bit against the reference backend, on a GPU or under the interpreter.

Every weight and bias is a multiple of 1/8 in [-1, 1], the input and the initial states multiples of
1/4 in [-1, 1], and the input-side biases are offset by 2^-10 (no pre-activation is exactly 0). Every
product then has few significant bits, and every forward sum is exact in float32 whatever the order
of summation, also with TF32 products (11 significant bits hold every operand): the outputs and
final states of two correct implementations are identical, bit for bit, and a single wrong spike
anywhere is a failure. The sizes are chosen so that the sums stay within float32's 24 bits (at
H = 300, two layers, eight steps of an accumulating LSTM cell: |u| < 2^13 on a 2^-10 grid).

The sigmoid gate form (``gates="sigmoid"``, the default of SpikingLSTM and SpikingGRU) computes
sigmoid and tanh, whose float32 values differ by an ulp or two between implementations (torch's,
the kernels' from ``exp``, the GPU's approximate ``exp``). Its pre-activations are still exact (what a
cell sends, its spikes, is 0/1, and a projection of them dyadic); its analog states (the LSTM's ``c``,
the GRU's ``s``) must agree within :data:`ANALOG_TOLERANCE`; its spikes must be equal bit for bit when
that rounding cannot flip any: when every input of the reference's emitted spikes that is not exactly 0
lies at least :data:`SPIKE_MARGIN` from 0 (:func:`spike_margin`; exact zeros, e.g. ``s_0 - θ``, are
computed exactly by both). A problem with a spike nearer its threshold (a flip there is rounding, and
it cascades) is compared within :data:`TRACKING_BOUNDS` ``["sigmoid"]`` instead, as
:func:`tracking_problems` compares rounded runs. The self-check's problems are all decisive
(tests/test_triton_sigmoid_gates.py); the large ones of :func:`cases` mostly are not (some 10^5
spikes: one falls within 2^-16 of its threshold).

The leaky vanilla RNN (``leak=β``, the default of SpikingRNN) is compared the same way: its membrane
``v' = β v + (1 - β) u`` is not dyadic (β = 0.9 is not), so its final ``v`` is an analog state (within
:data:`ANALOG_TOLERANCE`) and its spikes ``Θ(v - θ)`` are equal bit for bit where the problem is decisive
(:func:`spike_margin`), else within :data:`TRACKING_BOUNDS` ``["sigmoid"]``. Its pre-activations are
exact, and its kernels round ``β v + (1 - β) u`` as the reference's tensor operations do (compiled
without floating-point contraction), so they agree bit for bit in practice (the interpreter's
measure; tests/test_triton_leaky_rnn.py).

Gradients go through the surrogates' derivatives, which are not dyadic: they must agree within
1e-4 of the largest reference gradient (full-precision products) or 1e-2 (TF32 products, rounded
to 11 bits). Repeated runs of the triton backend must be identical, gradients included (the kernels
use no atomics: determinism).

``python -m spikingrnn.ops.triton.exactness`` runs every cell (the LSTM with each ``cell_state``
and with sigmoid gates, the GRU in both gate forms, the vanilla RNN leaky and not) at H = 20, 40 and 256 (the
persistent kernels) and 300 (the per-step path), with B = 33 (two full batch tiles of the persistent
kernels and a partial one), packed and not, two layers, bidirectional, five runs each, with
full-precision and TF32 products. ``--quick`` is a smaller set for the Triton interpreter on CPU
(``TRITON_INTERPRET=1``).
:func:`self_check` is the tiny version ``backend="auto"`` runs once per device before it picks the
triton backend (:mod:`spikingrnn.ops.dispatch`).

Inputs that are not dyadic cannot be compared bit for bit once products or storage round (half types,
TF32): :func:`tracking_problems` compares such runs with the float32 reference within
:data:`TRACKING_BOUNDS` (tests/test_triton_cuda.py).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import NamedTuple

import torch
from torch import Tensor

from ...functional.cells import DEFAULT_LEAK, DEFAULT_SPIKE_THRESHOLD
from ...surrogate import SURROGATES
from ..spec import GATES_PER_MODE, RNNSpec

GRADIENT_TOLERANCE = {False: 1e-4, True: 1e-2}  # by TF32: relative to the largest reference gradient
# sigmoid gate form: |triton - reference| <= ANALOG_TOLERANCE * (1 + |reference|) for the analog states (the
# interpreter's measure: a few 1e-7 after eight steps), and spikes compared bit for bit when the reference's
# emitted spikes are all decided by more than SPIKE_MARGIN (some 100 times that drift)
ANALOG_TOLERANCE = 1e-5
SPIKE_MARGIN = 2.0 ** -16


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
    # the sigmoid form (and the leaky RNN) on a problem with a spike within SPIKE_MARGIN of its threshold (see
    # the module docstring): float32 throughout, only sigmoid/tanh (the leak) round differently; the flip it
    # may take cascades
    "sigmoid": Bounds(2.0 ** -16, 0.05, 0.12, 0.85),
}


class Case(NamedTuple):
    """One problem: the stack, its sizes, the surrogates ``(first, second)`` by name, the gate form
    (``gates``: ``"heaviside"`` with any ``cell_state``, or ``"sigmoid"`` with ``cell_state="accumulate"``;
    the vanilla RNN only ``"heaviside"``), the vanilla RNN's ``leak`` (β, as SpikingRNN's default, or
    ``None``: the seed's cell ``h = Θ(u)``; the LSTM and GRU ignore it) and the ``spike_threshold`` of the
    sigmoid form and the leaky RNN."""

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
    gates: str = "heaviside"
    spike_threshold: float = DEFAULT_SPIKE_THRESHOLD
    leak: float | None = DEFAULT_LEAK

    @property
    def sigmoid(self) -> bool:
        """Whether the cells have sigmoid gates (an analog state, 0/1 emitted spikes)."""
        return self.gates == "sigmoid" and self.mode != "RNN"

    @property
    def leaky(self) -> bool:
        """Whether the cells are the leaky vanilla RNN's (an analog membrane, 0/1 emitted spikes)."""
        return self.mode == "RNN" and self.leak is not None

    @property
    def analog(self) -> bool:
        """Whether the cells keep an analog state and emit its spikes (the sigmoid form, the leaky RNN)."""
        return self.sigmoid or self.leaky

    def analog_results(self) -> tuple[int, ...]:
        """Indices in ``[output, *final states]`` of the analog ones (the sigmoid form's ``c`` or ``s``, the
        leaky RNN's ``v``)."""
        if not self.analog:
            return ()
        return (2,) if self.mode == "LSTM" else (1,)

    def describe(self) -> str:
        if self.sigmoid:
            cell = f"{self.mode}/sigmoid θ={self.spike_threshold:g}"
        elif self.leaky:
            cell = f"RNN/β={self.leak:g} θ={self.spike_threshold:g}"
        else:
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
    spec = RNNSpec(case.mode, case.layers, case.bidirectional, cell_state=case.cell_state, gates=case.gates,
                   spike_threshold=case.spike_threshold, leak=case.leak)
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


class _SpikeMargin:
    """A surrogate for the reference run that records the least ``|u|`` it fires from, exact zeros aside."""

    def __init__(self, spike):
        self.spike = spike
        self.least = math.inf

    def __call__(self, u: Tensor) -> Tensor:
        distance = u.detach().abs()
        distance = distance[distance > 0]
        if distance.numel():
            self.least = min(self.least, distance.min().item())
        return self.spike(u)


def spike_margin(case: Case, device: torch.device) -> float:
    """How far from its threshold the reference backend decides the emitted spikes of ``case``'s sigmoid
    form or leaky RNN (outputs and, for the GRU and the leaky RNN, the spikes they feed back): the least
    ``|u|`` of ``Θ(u)`` that is not exactly 0 (``inf`` when there is none, and for the heaviside form and
    the seed's RNN, whose pre-activations are exact). The kernels compute those ``u`` within rounding of
    the reference's: at least :data:`SPIKE_MARGIN` means that rounding cannot flip a spike."""
    if not case.analog:
        return math.inf
    from ..reference import reference_rnn  # the oracle: see check_case
    x, states, weights, spec, pairs, lengths, _ = problem(case, device)
    recorders = [(_SpikeMargin(first), second) for first, second in pairs]  # only the first one fires them
    with torch.no_grad():
        reference_rnn(x, states, weights, spec, recorders, lengths=lengths)
    return min(first.least for first, _ in recorders)


def check_case(case: Case, device: torch.device, repeats: int = 5, tf32: bool = False,
               tolerance: float | None = None) -> list[str]:
    """What is wrong with the triton backend on ``case`` (``[]`` when nothing): outputs and final
    states against the reference bit for bit (the analog states of the sigmoid form and the leaky RNN
    within :data:`ANALOG_TOLERANCE`, and where a spike is within :data:`SPIKE_MARGIN` of its threshold,
    all within :data:`TRACKING_BOUNDS` ``["sigmoid"]``: see the module docstring), gradients within
    ``tolerance`` (default :data:`GRADIENT_TOLERANCE`), ``repeats`` runs identical."""
    # the oracle, imported here: the triton backend's run path never imports the reference backend, only
    # this self-check does, on purpose (tests/test_import_graph.py allows this module alone)
    from ..reference import reference_rnn
    from . import triton_rnn
    tolerance = GRADIENT_TOLERANCE[tf32] if tolerance is None else tolerance
    decisive = spike_margin(case, device) >= SPIKE_MARGIN
    ref_results, ref_grads = run(reference_rnn, case, device)
    problems = []
    first = None
    for attempt in range(repeats):
        results, grads = run(triton_rnn, case, device, tf32=tf32)
        if first is None:
            first = (results, grads)
            if decisive:
                problems += _differences(ref_results, results, ref_grads, grads, tolerance, case.analog_results())
            else:
                problems += tracking_problems(ref_results, results, ref_grads, grads, "sigmoid")
        else:
            changed = [i for i, (a, b) in enumerate(zip(first[0] + first[1], results + grads)) if not torch.equal(a, b)]
            if changed:
                problems.append(f"run {attempt + 1} differs from run 1 (tensors {changed}): not deterministic")
    return problems


def _differences(ref_results, results, ref_grads, grads, tolerance: float, analog=()) -> list[str]:
    """Outputs and final states equal bit for bit, those at the indices ``analog`` within
    :data:`ANALOG_TOLERANCE`; gradients within ``tolerance`` of the largest reference gradient."""
    names = ["output", *(f"final state {i}" for i in range(len(ref_results) - 1))]
    problems = []
    for index, (name, a, b) in enumerate(zip(names, ref_results, results)):
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{name}: {tuple(b.shape)} {b.dtype}, the reference {tuple(a.shape)} {a.dtype}")
        elif index in analog:
            off = (a - b).abs() > ANALOG_TOLERANCE * (1 + a.abs())
            if bool(off.any()) or bool((a.isnan() != b.isnan()).any()):
                problems.append(f"{name}: {off.sum().item()} of {a.numel()} analog values differ from the reference "
                                f"by more than {ANALOG_TOLERANCE:g} (largest difference "
                                f"{(a - b).abs().max().item():.3g})")
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
    and not, two layers, both directions, B = 33, T = 8, and the LSTM with ``proj_size``; the heaviside
    form with every ``cell_state`` and the sigmoid form (the default configuration, and the GRU's with
    another spike threshold); the vanilla RNN leaky (SpikingRNN's default configuration) and the seed's
    (``leak=None``). ``quick``: the same cells at H = 20 and 40, T = 4, and one layer at H = 300, T = 3
    (the interpreter's pace)."""
    # (mode, gates, cell_state, surrogates, spike_threshold, leak): leak is the vanilla RNN's only
    theta = DEFAULT_SPIKE_THRESHOLD
    cells = [("LSTM", "heaviside", "clamp", ("erf", "atan"), theta, None),
             ("LSTM", "heaviside", "accumulate", ("sigmoid", "rect"), theta, None),
             ("LSTM", "heaviside", "spike", ("piecewise_quadratic", "super_spike"), theta, None),
             ("LSTM", "sigmoid", "accumulate", ("erf", "atan"), theta, None),
             ("GRU", "heaviside", "clamp", ("soft_sign", "erf"), theta, None),
             ("GRU", "sigmoid", "accumulate", ("atan", "erf"), 0.3, None),
             ("RNN", "heaviside", "clamp", ("piecewise_exp", "piecewise_exp"), theta, None),
             ("RNN", "heaviside", "clamp", ("atan", "atan"), theta, DEFAULT_LEAK)]
    packings = (False, True)
    if quick:
        chosen = [Case(mode, hidden, cell_state, steps=4, packed=packed, surrogates=pair, gates=gates,
                       spike_threshold=threshold, leak=leak)
                  for hidden in (20, 40) for packed in packings
                  for mode, gates, cell_state, pair, threshold, leak in cells]
        chosen += [Case(mode, 300, cell_state, layers=1, steps=3, packed=packed, surrogates=pair, gates=gates,
                        spike_threshold=threshold, leak=leak)
                   for packed in packings for mode, gates, cell_state, pair, threshold, leak in cells]
    else:
        chosen = [Case(mode, hidden, cell_state, packed=packed, surrogates=pair, gates=gates, spike_threshold=threshold,
                       leak=leak)
                  for hidden in (20, 40, 256, 300) for packed in packings
                  for mode, gates, cell_state, pair, threshold, leak in cells]
    # proj_size: the LSTM's per-step path at any hidden size
    chosen += [Case("LSTM", 40, cell_state, proj=7, steps=4 if quick else 8, packed=packed, gates=gates)
               for gates, cell_state in (("heaviside", "clamp"), ("heaviside", "accumulate"), ("sigmoid", "accumulate"))
               for packed in packings]
    return chosen


# the default configurations (gates="sigmoid", the leaky RNN) and the heaviside form and the seed's RNN, each
# cell, each LSTM path
SELF_CHECK_CASES = [Case("LSTM", 20, "accumulate", gates="sigmoid", layers=1, bidirectional=False, steps=3, batch=17,
                         inputs=5),
                    Case("LSTM", 8, "accumulate", gates="sigmoid", proj=3, layers=1, bidirectional=False, steps=3,
                         batch=17, inputs=5),
                    Case("GRU", 20, "accumulate", gates="sigmoid", layers=1, bidirectional=False, steps=3, batch=17,
                         inputs=5),
                    Case("LSTM", 20, "clamp", gates="heaviside", layers=1, bidirectional=False, steps=3, batch=17,
                         inputs=5),
                    Case("LSTM", 8, "clamp", gates="heaviside", proj=3, layers=1, bidirectional=False, steps=3,
                         batch=17, inputs=5),
                    Case("GRU", 20, "clamp", gates="heaviside", layers=1, bidirectional=False, steps=3, batch=17,
                         inputs=5),
                    Case("RNN", 20, "clamp", gates="heaviside", leak=None, layers=1, bidirectional=False, steps=3,
                         batch=17, inputs=5),
                    Case("RNN", 20, "clamp", gates="heaviside", leak=DEFAULT_LEAK, layers=1, bidirectional=False,
                         steps=3, batch=17, inputs=5)]


def self_check(device: torch.device) -> str | None:
    """The tiny check ``backend="auto"`` runs once per device: :data:`SELF_CHECK_CASES`, the LSTM
    (persistent kernels, and the per-step ones through ``proj_size``) and the GRU in both gate forms
    (``gates="sigmoid"``, the default, and ``"heaviside"``) and the vanilla RNN in both forms (leaky, the
    default, and ``leak=None``), 17 rows (two batch tiles), three steps, float32 with the TF32 choice the
    backend makes on ``device``, one run each. Outputs and states must equal the reference's (the analog
    states of the sigmoid form and the leaky RNN within :data:`ANALOG_TOLERANCE`), gradients agree within
    1e-2 (a broken
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


def _comparison(case: Case, device: torch.device) -> str:
    """How a case of the sigmoid form or the leaky RNN was compared (see the module docstring), for the
    report; ``""`` otherwise."""
    if not case.analog:
        return ""
    margin = spike_margin(case, device)
    if margin >= SPIKE_MARGIN:
        return " [spikes bit for bit]"
    return f" [a spike {margin:.1g} from its threshold: within TRACKING_BOUNDS['sigmoid']]"


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
                  + _comparison(case, device) + "".join(f"\n       {p}" for p in problems), flush=True)
    total = len(chosen) * len(precisions)
    print(f"# {total - failures} of {total} cases exact and deterministic in {time.perf_counter() - start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
