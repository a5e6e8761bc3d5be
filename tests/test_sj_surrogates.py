"""SpikingJelly surrogate objects given to spikingrnn's modules (issue 14, item 11).

SpikingJelly's built-in surrogates with an equivalent here (same formula, same ``alpha``, same
``spiking`` flag) are replaced by spikingrnn's class when a module is built, so that
``backend="auto"`` runs a fast backend instead of the reference one; a surrogate without an
equivalent is kept as given and ``auto`` says once per module, with a :class:`BackendWarning`, that
it runs the reference backend and why (never silently).
"""
import warnings

import pytest
import torch

sj = pytest.importorskip("spikingjelly.activation_based.surrogate")

import spikingrnn  # noqa: E402
from spikingrnn import surrogate as ours  # noqa: E402
from spikingrnn.nn.surrogates import surrogate_pair  # noqa: E402
from spikingrnn.ops import dispatch  # noqa: E402

CPU = torch.device("cpu")
# (class name, alpha): every SpikingJelly surrogate with an equivalent here, at its default and another alpha
CONVERTIBLE = [(name, alpha) for name in ("Erf", "Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp",
                                          "SoftSign", "SuperSpike", "Rect") for alpha in (None, 0.7)]


def make_sj(name, alpha, spiking=True):
    cls = getattr(sj, name)
    return cls(spiking=spiking) if alpha is None else cls(alpha=alpha, spiking=spiking)


def backend_warnings(record):
    """The slow-path warnings among recorded ones (by message, so that this also runs where the library
    has no BackendWarning class)."""
    return [str(w.message) for w in record if "backend" in str(w.message) and "reference" in str(w.message)]


def forward_backward(model, x):
    x = x.detach().clone().requires_grad_()
    model.zero_grad()
    out, (h, c) = model(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    ((out * weights).sum() + h.sum() + c.sum()).backward()
    return [out.detach(), h.detach(), c.detach(), x.grad, *(p.grad for p in model.parameters())]


@pytest.mark.parametrize("name, alpha", CONVERTIBLE, ids=[f"{n}-{a}" for n, a in CONVERTIBLE])
def test_each_surrogate_has_the_same_spikes_and_backward(name, alpha):
    """The converted surrogate computes what SpikingJelly's computes: the same 0/1 spikes and the same
    backward (within one rounding), and in smooth mode the same primitive."""
    theirs = make_sj(name, alpha)
    mine = ours.get_surrogate(theirs)
    assert type(mine) is getattr(ours, name)
    assert mine.alpha == theirs.alpha and mine.spiking
    x = torch.linspace(-3, 3, 241, dtype=torch.float64).requires_grad_()
    grads = []
    for fn in (theirs, mine):
        x.grad = None
        out = fn(x)
        (out * torch.linspace(0.5, 1.5, 241, dtype=torch.float64)).sum().backward()
        grads.append((out.detach(), x.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-12, atol=1e-15)
    smooth_theirs, smooth_mine = make_sj(name, alpha, spiking=False), ours.get_surrogate(make_sj(name, alpha, False))
    assert type(smooth_mine) is getattr(ours, name) and smooth_mine.spiking is False
    if name != "SuperSpike":  # SpikingJelly's SuperSpike has no primitive (its smooth mode raises)
        torch.testing.assert_close(smooth_mine(x.detach()), smooth_theirs(x.detach()), rtol=1e-12, atol=1e-15)


# SpikingJelly's cell (0/1 gates, the clamped cell state, torch's init), and the modules' default form
NEURONS = {"heaviside": dict(gates="heaviside", cell_state="clamp", forget_bias=None), "sigmoid": {}}


@pytest.mark.parametrize("gates", list(NEURONS))
@pytest.mark.parametrize("name, alpha", [("ATan", None), ("Sigmoid", 3.0), ("Erf", 0.7), ("PiecewiseQuadratic", None)],
                         ids=["ATan", "Sigmoid-3", "Erf-0.7", "PiecewiseQuadratic"])
def test_spiking_lstm_with_a_spikingjelly_surrogate_runs_the_cpu_backend(name, alpha, gates):
    """The issue's case: ``SpikingLSTM(surrogate_function1=<SpikingJelly surrogate>)`` with
    ``backend="auto"`` on CPU runs the cpu backend, with no warning, and computes what the reference
    backend computes with SpikingJelly's own surrogate objects (in the sigmoid form only the emitted
    spikes use a surrogate: surrogate_function1)."""
    torch.manual_seed(0)
    model = spikingrnn.SpikingLSTM(5, 8, 2, surrogate_function1=make_sj(name, alpha),
                                   surrogate_function2=sj.ATan(alpha=1.5), dtype=torch.float64, **NEURONS[gates])
    first, second = surrogate_pair(model)
    assert type(first) is getattr(ours, name) and type(second) is ours.ATan and second.alpha == 1.5
    assert dispatch.resolve("auto", CPU, torch.float64, [(first, second)]) is dispatch.BACKENDS["cpu"][0]

    twin = spikingrnn.SpikingLSTM(5, 8, 2, dtype=torch.float64, backend="reference", **NEURONS[gates])
    twin.load_state_dict(model.state_dict())
    twin.surrogate_function1 = make_sj(name, alpha)  # SpikingJelly's objects, as given
    twin.surrogate_function2 = sj.ATan(alpha=1.5)
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fast = forward_backward(model, x)
    assert not backend_warnings(record)
    slow = forward_backward(twin, x)
    assert slow[0].any(), "no spike: the comparison would be vacuous"
    for a, b in zip(slow[:2], fast[:2]):  # the spikes: output and h
        assert torch.equal(a, b)
    if gates == "heaviside":
        assert torch.equal(slow[2], fast[2])
    else:  # the analog c: the cpu backend sums the products in another order than the reference
        torch.testing.assert_close(fast[2], slow[2], rtol=1e-12, atol=1e-12)
    for a, b in zip(slow[3:], fast[3:]):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


class MyATan(sj.ATan):
    """A user's subclass of a SpikingJelly surrogate: its backward may differ, so it is never converted."""


UNCONVERTIBLE = {
    "S2NN": lambda: sj.S2NN(),  # two parameters, no equivalent
    "PiecewiseLeakyReLU": lambda: sj.PiecewiseLeakyReLU(),
    "subclass": lambda: MyATan(),
    "lambda": lambda: (lambda u: (u >= 0).to(u.dtype)),
}


@pytest.mark.parametrize("kind", sorted(UNCONVERTIBLE))
def test_an_unconvertible_surrogate_warns_once_that_the_reference_backend_runs(kind):
    model = spikingrnn.SpikingLSTM(4, 6, surrogate_function1=UNCONVERTIBLE[kind]())
    assert model.surrogate_function1 is not None and not isinstance(model.surrogate_function1, ours.SurrogateFunction)
    x = torch.randn(3, 2, 4)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):
            model(x)
    messages = backend_warnings(record)
    assert len(messages) == 1, f"one warning per module and reason, got {messages}"
    assert "'reference'" in messages[0] and "'cpu'" in messages[0] and "surrogate" in messages[0]
    with warnings.catch_warnings(record=True) as record:  # another module: its own warning
        warnings.simplefilter("always")
        spikingrnn.SpikingLSTM(4, 6, surrogate_function1=UNCONVERTIBLE[kind]())(x)
    assert len(backend_warnings(record)) == 1
    with warnings.catch_warnings(record=True) as record:  # asked for by name: no warning
        warnings.simplefilter("always")
        spikingrnn.SpikingLSTM(4, 6, surrogate_function1=UNCONVERTIBLE[kind](), backend="reference")(x)
    assert not backend_warnings(record)


def test_the_warning_is_a_backend_warning():
    model = spikingrnn.SpikingGRU(4, 6, surrogate_function1=sj.S2NN())
    with pytest.warns(dispatch.BackendWarning, match=r"SpikingGRU\(backend='auto'\) runs the slower 'reference' "
                                                     r"backend: .*S2NN"):
        model(torch.randn(2, 1, 4))


def test_learnable_or_odd_parameters_are_not_converted():
    """A surrogate whose alpha is a tensor (learnable) or that ours refuses keeps SpikingJelly's object."""
    learnable = sj.ATan()
    learnable.alpha = torch.nn.Parameter(torch.tensor(2.0))
    assert ours.builtin_equivalent(learnable) is None
    assert ours.get_surrogate(learnable) is learnable
    negative = sj.Sigmoid(alpha=-1.0)
    assert ours.get_surrogate(negative) is negative
