"""The functional steps that also return their gates: one definition of each cell's math, which the
reference backend (state only) and the monitor (gates) both use."""
import inspect

import pytest
import torch
import torch.nn.functional as F

from spikingrnn.functional.cells import (GRUGates, LSTMGates, RNNGates, gru_step, gru_step_gates, lstm_step,
                                         lstm_step_gates, rnn_step, rnn_step_gates)
from spikingrnn.monitor import counting
from spikingrnn.surrogate import ATan, Erf

D = torch.float64


def _bits(t):
    return t.detach().view(torch.uint8)


def _weights(gates, batch=3, inputs=5, hidden=4, proj=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    h_out = proj or hidden
    make = lambda *s: (torch.randn(*s, generator=g, dtype=D) * 0.7).requires_grad_()  # noqa: E731
    x = make(batch, inputs)
    return (x, make(gates * hidden, inputs), make(gates * hidden, h_out), make(gates * hidden), make(gates * hidden),
            make(proj, hidden) if proj else None, make(batch, h_out), make(batch, hidden))


def _grads(outputs, leaves):
    loss = sum((o * torch.linspace(-1, 2, o.numel(), dtype=D).view_as(o)).sum() for o in outputs)
    return torch.autograd.grad(loss, [leaf for leaf in leaves if leaf is not None], allow_unused=True)


THETA = 0.3  # a spike_threshold of the sigmoid form other than the default


@pytest.mark.parametrize("gates_form, cell_state", [("heaviside", "clamp"), ("heaviside", "accumulate"),
                                                    ("heaviside", "spike"), ("sigmoid", "accumulate")],
                         ids=["clamp", "accumulate", "spike", "sigmoid"])
@pytest.mark.parametrize("proj", [0, 2])
@pytest.mark.parametrize("second", [None, ATan()])
def test_lstm_step_is_lstm_step_gates(gates_form, cell_state, proj, second):
    x, w_ih, w_hh, b_ih, b_hh, w_hr, h, c = _weights(4, proj=proj)
    spike = Erf()
    kw = dict(spike=spike, spike_g=spike if second is None else second, cell_state=cell_state, gates=gates_form,
              spike_threshold=THETA)
    state = lstm_step(x, (h, c), w_ih, w_hh, b_ih, b_hh, w_hr, **kw)
    (h1, c1), gates = lstm_step_gates(x, (h, c), w_ih, w_hh, b_ih, b_hh, w_hr, **kw)
    assert isinstance(gates, LSTMGates) and gates._fields == ("i", "f", "g", "o", "c", "h")
    leaves = (x, w_ih, w_hh, b_ih, b_hh, w_hr, h, c)
    for a, b in zip(state, (h1, c1)):
        assert torch.equal(_bits(a), _bits(b))
    for a, b in zip(_grads(state, leaves), _grads((h1, c1), leaves)):
        assert torch.equal(_bits(a), _bits(b))
    assert gates.c is c1
    assert torch.equal(h1, gates.h if w_hr is None else F.linear(gates.h, w_hr))
    if gates_form == "heaviside":
        assert torch.equal(gates.h, gates.c * gates.o)
        for name in "ifgo":
            assert set(getattr(gates, name).unique().tolist()) <= {0.0, 1.0}
    else:  # analog gates and cell state, 0/1 emitted spikes
        assert torch.equal(gates.h, (gates.o * torch.tanh(gates.c) - THETA >= 0).to(D))
        assert set(gates.h.unique().tolist()) == {0.0, 1.0}
        for name in "ifo":
            assert bool(((getattr(gates, name) > 0) & (getattr(gates, name) < 1)).all()), name
        assert bool((gates.g.abs() < 1).all())
        assert not set(gates.c.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("cell_state", ["clamp", "spike"])
def test_sigmoid_lstm_step_takes_only_the_accumulating_cell_state(cell_state):
    x, w_ih, w_hh, b_ih, b_hh, w_hr, h, c = _weights(4)
    with pytest.raises(ValueError, match="cell_state must be 'accumulate'"):
        lstm_step(x, (h, c), w_ih, w_hh, b_ih, b_hh, w_hr, spike=Erf(), spike_g=Erf(), cell_state=cell_state,
                  gates="sigmoid")


@pytest.mark.parametrize("gates_form", ["heaviside", "sigmoid"])
@pytest.mark.parametrize("second", [None, ATan()])
def test_gru_step_is_gru_step_gates(second, gates_form):
    x, w_ih, w_hh, b_ih, b_hh, _, h, _ = _weights(3)
    spike = Erf()
    kw = dict(spike=spike, spike_n=spike if second is None else second, gates=gates_form, spike_threshold=THETA)
    (state,) = gru_step(x, (h,), w_ih, w_hh, b_ih, b_hh, **kw)
    (h1,), gates = gru_step_gates(x, (h,), w_ih, w_hh, b_ih, b_hh, **kw)
    assert isinstance(gates, GRUGates) and gates._fields == ("r", "z", "n", "h")
    if gates_form == "heaviside":
        assert gates.h is h1
    else:  # the state is the analog s; the step emits Θ(s - θ)
        assert torch.equal(gates.h, (h1 - THETA >= 0).to(D))
        assert set(gates.h.unique().tolist()) == {0.0, 1.0}
        assert not set(h1.unique().tolist()) <= {0.0, 1.0}
    leaves = (x, w_ih, w_hh, b_ih, b_hh, h)
    assert torch.equal(_bits(state), _bits(h1))
    for a, b in zip(_grads((state,), leaves), _grads((h1,), leaves)):
        assert torch.equal(_bits(a), _bits(b))


@pytest.mark.parametrize("leak", [None, "default", 0.6], ids=["seed", "default-leak", "leak=0.6"])
def test_rnn_step_is_rnn_step_gates(leak):
    x, w_ih, w_hh, b_ih, b_hh, _, h, _ = _weights(1)
    # "default": neither leak nor spike_threshold passed (leak 0.9, θ 0.25)
    kw = dict(spike=Erf()) if leak == "default" else dict(spike=Erf(), leak=leak, spike_threshold=THETA)
    (state,) = rnn_step(x, (h,), w_ih, w_hh, b_ih, b_hh, **kw)
    (h1,), gates = rnn_step_gates(x, (h,), w_ih, w_hh, b_ih, b_hh, **kw)
    assert isinstance(gates, RNNGates) and gates._fields == ("h",)
    if leak is None:
        assert gates.h is h1
    else:  # the state is the analog membrane v; the step emits Θ(v - θ)
        beta, theta = (0.9, 0.25) if leak == "default" else (leak, THETA)
        spikes_in = (h - theta >= 0).to(D)
        u = F.linear(x, w_ih, b_ih) + F.linear(spikes_in, w_hh, b_hh)
        assert torch.allclose(h1, beta * h + (1 - beta) * u, rtol=0, atol=1e-12)  # same math, any rounding
        assert torch.equal(gates.h, (h1 - theta >= 0).to(D))
        assert set(gates.h.unique().tolist()) == {0.0, 1.0}
        assert not set(h1.unique().tolist()) <= {0.0, 1.0}
    leaves = (x, w_ih, w_hh, b_ih, b_hh, h)
    assert torch.equal(_bits(state), _bits(h1))
    for a, b in zip(_grads((state,), leaves), _grads((h1,), leaves)):
        assert torch.equal(_bits(a), _bits(b))


def test_monitor_reads_its_gates_from_the_functional_steps():
    """The monitor holds no copy of the cell math: no projection, no gate arithmetic of its own."""
    source = inspect.getsource(counting)
    assert "linear(" not in source and "chunk(" not in source and "lstm_cell_update" not in source
    gate_fields = {"LSTM": LSTMGates._fields, "GRU": GRUGates._fields, "RNN": RNNGates._fields}
    for mode, names in counting.GATE_NAMES.items():
        assert set(names) | {"h"} <= set(gate_fields[mode])
