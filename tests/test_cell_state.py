"""The LSTM cell-state rules and the one-step functions.

The rules ``clamp``/``accumulate``/``spike`` belong to the heaviside form (``gates="heaviside"``, 0/1 gates,
``h = o * c``); the modules' default sigmoid form keeps an analog, accumulating cell state. The modules here
are built in the heaviside form with torch's init (``forget_bias=None``) unless a test says otherwise.
"""
import pytest
import torch

import spikingrnn
from spikingrnn.functional import clamp_max_straight_through, lstm_step
from spikingrnn.surrogate import Erf


HEAVISIDE = dict(gates="heaviside", forget_bias=None)


def saturated_lstm(cell_state, hidden=4):
    """An LSTM whose gates all fire at every step (large positive biases, zero weights)."""
    layer = spikingrnn.SpikingLSTM(2, hidden, cell_state=cell_state, **HEAVISIDE)
    with torch.no_grad():
        layer.weight_ih_l0.zero_()
        layer.weight_hh_l0.zero_()
        layer.bias_ih_l0.fill_(5.0)
        layer.bias_hh_l0.zero_()
    return layer


def test_accumulate_counts_up():
    _, (h, c) = saturated_lstm("accumulate")(torch.randn(6, 3, 2))
    assert torch.all(c == 6.0) and torch.all(h == 6.0)


def test_clamp_keeps_cell_state_at_most_one():
    out, (h, c) = saturated_lstm("clamp")(torch.randn(6, 3, 2))
    assert torch.all(c == 1.0) and torch.all(out == 1.0)


def test_spike_cell_state_is_binary_and_thresholded():
    torch.manual_seed(0)
    layer = spikingrnn.SpikingLSTM(3, 16, cell_state="spike", cell_threshold=0.5, **HEAVISIDE)
    x = torch.randn(20, 4, 3) * 3
    out, (h, c) = layer(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert set(c.unique().tolist()) <= {0.0, 1.0}
    gates = torch.nn.functional.linear(x[0], layer.weight_ih_l0, layer.bias_ih_l0) + layer.bias_hh_l0
    i, f, g, o = (gates >= 0).float().chunk(4, dim=1)
    c1 = ((i * g) - 0.5 >= 0).float()
    _, (_, c_first) = layer(x[:1])
    assert torch.equal(c_first[0], c1)


def test_spike_cell_state_gets_gradient():
    torch.manual_seed(1)
    layer = spikingrnn.SpikingLSTM(3, 8, cell_state="spike", **HEAVISIDE)
    x = torch.randn(10, 2, 3, requires_grad=True)
    out, (h, c) = layer(x)
    (out.sum() + c.sum()).backward()
    assert x.grad.abs().sum() > 0 and layer.weight_hh_l0.grad.abs().sum() > 0


def test_clamp_gradient_passes_straight_through():
    x = torch.tensor([0.5, 1.0, 2.0, 3.0], requires_grad=True)
    y = clamp_max_straight_through(x, 1.0)
    assert y.tolist() == [0.5, 1.0, 1.0, 1.0]
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("gates, cell_state", [("heaviside", "clamp"), ("heaviside", "accumulate"),
                                               ("heaviside", "spike"), ("sigmoid", "accumulate")],
                         ids=["clamp", "accumulate", "spike", "sigmoid"])
def test_module_matches_cell_and_step_function(gates, cell_state):
    torch.manual_seed(2)
    neuron = HEAVISIDE if gates == "heaviside" else {}
    layer = spikingrnn.SpikingLSTM(3, 5, cell_state=cell_state, **neuron)
    cell = spikingrnn.SpikingLSTMCell(3, 5, cell_state=cell_state, **neuron)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = torch.randn(6, 2, 3) * 2
    out, (h, c) = layer(x)
    state = (torch.zeros(2, 5), torch.zeros(2, 5))
    erf = Erf()
    for t in range(6):
        via_cell = cell(x[t], state)
        via_step = lstm_step(x[t], state, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, None,
                             spike=erf, spike_g=erf, cell_state=cell_state, gates=gates)
        assert all(torch.equal(a, b) for a, b in zip(via_cell, via_step))
        state = via_cell
        assert torch.equal(out[t], state[0])
    assert torch.equal(h[0], state[0])
    if gates == "sigmoid":
        assert out.any(), "no spike: the comparison of the outputs would be vacuous"
        # the analog c: the module's backend sums the products in another order than the step function
        torch.testing.assert_close(c[0], state[1], rtol=1e-6, atol=1e-6)
    else:
        assert torch.equal(c[0], state[1])


def test_cell_state_is_an_lstm_only_argument():
    with pytest.raises(TypeError):
        spikingrnn.SpikingGRU(3, 4, cell_state="spike")
    with pytest.raises(ValueError, match="SpikingLSTM: cell_state must be one of"):
        spikingrnn.SpikingLSTM(3, 4, cell_state="leaky")


def test_smooth_mode_gives_analog_outputs_and_grad():
    layer = spikingrnn.SpikingLSTM(3, 5, surrogate_function1=Erf(spiking=False))
    x = torch.randn(4, 2, 3, requires_grad=True)
    out, _ = layer(x)
    assert not set(out.unique().tolist()) <= {0.0, 1.0}
    out.sum().backward()
    assert x.grad.abs().sum() > 0
