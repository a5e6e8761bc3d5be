"""One regression test per bug of the seed's SpikingRNNBase code (DESIGN.md §1)."""
import pytest
import torch

import spikingrnn
from helpers import copy_layer

CLASSES = [spikingrnn.SpikingLSTM, spikingrnn.SpikingGRU, spikingrnn.SpikingRNN]
# the stacking bugs do not depend on the cell: the modules' default form (sigmoid gates, the RNN's leaky
# membrane) and the seed's heaviside one (the RNN's leak=None)
HEAVISIDE = {"gates": "heaviside", "forget_bias": None}
FORMS = [(spikingrnn.SpikingLSTM, {}), (spikingrnn.SpikingLSTM, {**HEAVISIDE, "cell_state": "clamp"}),
         (spikingrnn.SpikingGRU, {}), (spikingrnn.SpikingGRU, HEAVISIDE), (spikingrnn.SpikingRNN, {}),
         (spikingrnn.SpikingRNN, {"leak": None})]
FORM_IDS = ["SpikingLSTM", "SpikingLSTM-heaviside", "SpikingGRU", "SpikingGRU-heaviside", "SpikingRNN",
            "SpikingRNN-seed"]


def states_of(hx):
    return hx if isinstance(hx, tuple) else (hx,)


def layer_states(hx, rows):
    return tuple(s[rows] for s in states_of(hx))


def as_hx(cls, states):
    return states if cls is spikingrnn.SpikingLSTM else states[0]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cls, neuron", FORMS, ids=FORM_IDS)
def test_layers_read_the_previous_layer_at_the_same_step(cls, neuron, bidirectional):
    """Seed bug: layer l at step t read layer l-1's output of step t-1 (one-step lag)."""
    torch.manual_seed(0)
    stack = cls(4, 6, 2, bidirectional=bidirectional, **neuron).eval()
    x = torch.randn(7, 3, 4) * 2
    hx = tuple(torch.rand_like(s) for s in states_of(stack(x)[1]))
    out, final = stack(x, as_hx(cls, hx))
    d = 2 if bidirectional else 1
    y0, f0 = copy_layer(stack, 0)(x, as_hx(cls, layer_states(hx, slice(0, d))))
    y1, f1 = copy_layer(stack, 1)(y0, as_hx(cls, layer_states(hx, slice(d, 2 * d))))
    assert torch.equal(out, y1)
    for s, a, b in zip(states_of(final), states_of(f0), states_of(f1)):
        assert torch.equal(s, torch.cat([a, b]))


def test_multi_layer_gru_runs():
    """Seed bug: a multi-layer GRU crashed (states indexed as if it had two)."""
    out, h = spikingrnn.SpikingGRU(4, 5, 3)(torch.randn(6, 2, 4))
    assert out.shape == (6, 2, 5) and h.shape == (3, 2, 5)


@pytest.mark.parametrize("cls, neuron", FORMS, ids=FORM_IDS)
def test_batch_rows_are_independent(cls, neuron):
    """Seed bug: a multi-layer vanilla RNN mixed batch rows (states_list[0, i-1] indexing)."""
    torch.manual_seed(1)
    stack = cls(4, 6, 3, **neuron)
    x = torch.randn(5, 4, 4) * 2
    out, final = stack(x)
    assert out.any(), "no spike: the comparison would be vacuous"
    # the analog states (sigmoid form: LSTM c, GRU s; leaky RNN: v): the products of one row alone and of
    # the batch go through different GEMMs, which may round the last bits differently; spikes must be equal
    analog = {spikingrnn.SpikingLSTM: {1}, spikingrnn.SpikingGRU: {0}}.get(cls, set()) \
        if getattr(stack, "gates", "heaviside") == "sigmoid" else set()
    if cls is spikingrnn.SpikingRNN and stack.leak is not None:
        analog = {0}
    for row in range(4):
        alone, alone_final = stack(x[:, row:row + 1])
        assert torch.equal(out[:, row:row + 1], alone)
        for k, (s, a) in enumerate(zip(states_of(final), states_of(alone_final))):
            if k in analog:
                torch.testing.assert_close(s[:, row:row + 1], a, rtol=1e-6, atol=1e-6)
            else:
                assert torch.equal(s[:, row:row + 1], a)


@pytest.mark.parametrize("cls, neuron", FORMS, ids=FORM_IDS)
def test_bidirectional_layers_above_zero_use_and_return_their_states(cls, neuron):
    """Seed bug: bidirectional stacks dropped h0 of layers >= 1 and returned zeros for them."""
    torch.manual_seed(2)
    stack = cls(3, 8, 2, bidirectional=True, **neuron).eval()
    x = torch.randn(6, 2, 3) * 2
    zeros = tuple(torch.zeros_like(s) for s in states_of(stack(x)[1]))
    ones = tuple(torch.ones_like(s) for s in zeros)
    upper_ones = tuple(torch.cat([z[:2], o[2:]]) for z, o in zip(zeros, ones))
    out_zero, final_zero = stack(x, as_hx(cls, zeros))
    out_upper, final_upper = stack(x, as_hx(cls, upper_ones))
    assert not torch.equal(out_zero, out_upper), "h0 of layer 1 must change the output"
    for s in states_of(final_upper):
        assert s[2:].abs().sum() > 0, "layer 1's final states must be returned"
    _, layer1_final = copy_layer(stack, 1)(copy_layer(stack, 0)(x)[0], as_hx(cls, tuple(o[2:] for o in ones)))
    for s, expected in zip(states_of(final_upper), states_of(layer1_final)):
        assert torch.equal(s[2:], expected)


@pytest.mark.parametrize("invariant", [False, True])
def test_bidirectional_dropout_applies_after_layer_zero(invariant):
    """Seed bug: bidirectional stacks applied dropout only from layer 2 on (``if i > 1``)."""
    torch.manual_seed(3)
    stack = spikingrnn.SpikingLSTM(3, 5, 2, dropout=1.0, bidirectional=True, invariant_dropout_mask=invariant)
    stack.train()
    x = torch.randn(4, 2, 3) * 3
    out, _ = stack(x)
    layer1 = copy_layer(stack, 1)
    expected, _ = layer1(torch.zeros(4, 2, 10))
    assert torch.equal(out, expected), "with dropout=1 layer 1 must see an all-zero input"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_final_states_have_torch_shape(cls):
    """Seed bug: states came back with an extra leading dim ([1, L*D, B, H] from torch.split)."""
    _, final = cls(3, 5, 2, bidirectional=True)(torch.randn(4, 2, 3))
    for s in states_of(final):
        assert s.shape == (4, 2, 5)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_float64_end_to_end(cls):
    """Seed bug: cells created their zero states in float32 whatever the input dtype."""
    stack = cls(3, 5, 2, dtype=torch.float64)
    out, final = stack(torch.randn(4, 2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert all(s.dtype == torch.float64 for s in states_of(final))
    cell_cls = {spikingrnn.SpikingLSTM: spikingrnn.SpikingLSTMCell, spikingrnn.SpikingGRU: spikingrnn.SpikingGRUCell,
                spikingrnn.SpikingRNN: spikingrnn.SpikingRNNCell}[cls]
    cell_out = cell_cls(3, 5, dtype=torch.float64)(torch.randn(2, 3, dtype=torch.float64))
    assert all(s.dtype == torch.float64 for s in states_of(cell_out))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_states_are_validated(cls):
    """Seed bug: wrongly shaped states were used silently (or broadcast)."""
    stack = cls(3, 5, 2)
    bad = tuple(torch.zeros(2, 1, 5) for _ in states_of(stack(torch.randn(4, 2, 3))[1]))
    with pytest.raises(RuntimeError, match=r"Expected hidden(\[0\])? size \(2, 2, 5\), got \[2, 1, 5\]"):
        stack(torch.randn(4, 2, 3), as_hx(cls, bad))
