"""spikingrnn.monitor: firing rates, AC/MAC counts and energy on hand-checkable cases."""
import math

import pytest
import torch
from torch import nn

from spikingrnn import SpikingGRU, SpikingLSTM
from spikingrnn.monitor import AC_PJ, MAC_PJ, FiringRateMonitor, energy_pj, measure, measure_rnn
from spikingrnn.nn.modules import SpikingRNN


def hand_rnn():
    """SpikingRNN(2, 2), the seed's cell h = Θ(u) (leak=None), no bias, W_ih = I, W_hh = [[0, -2], [0, 0]]."""
    rnn = SpikingRNN(2, 2, bias=False, leak=None)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.eye(2))
        rnn.weight_hh_l0.copy_(torch.tensor([[0.0, -2.0], [0.0, 0.0]]))
    # t0: u = [1, 1] -> h = [1, 1]; t1: u = [1 - 2, -1] -> h = [0, 0]; t2: u = [0.5, 2] -> h = [1, 1]
    x = torch.tensor([[[1.0, 1.0]], [[1.0, -1.0]], [[0.5, 2.0]]])  # [T=3, B=1, I=2]
    return rnn, x


def test_energy_formula():
    assert energy_pj(10, 0) == pytest.approx(9.0)
    assert energy_pj(0, 10) == pytest.approx(46.0)
    assert energy_pj(4, 12) == pytest.approx(4 * 0.9 + 12 * 4.6)
    assert (AC_PJ, MAC_PJ) == (0.9, 4.6)


def test_hand_checked_vanilla_rnn():
    rnn, x = hand_rnn()
    stats, output = measure_rnn(rnn, x, return_output=True)
    assert output[:, 0].tolist() == [[1, 1], [0, 0], [1, 1]]
    assert stats["rates"] == {"layer0": {"h": 4 / 6}}
    # input is real valued -> dense MACs: T*B*I*H = 3*1*2*2; recurrent h is 0/1 -> one AC per spike
    # and target: h_{-1} = 0 (0), h_0 = [1, 1] (2 spikes * 2 targets), h_1 = 0 (0)
    assert stats["mac"] == 12 and stats["ac"] == 4 and stats["synops"] == 16
    assert stats["dense_mac"] == 3 * 2 * (2 + 2)  # nn.RNN: G*H*(I + H) per step
    assert stats["energy_pj"] == pytest.approx(4 * 0.9 + 12 * 4.6)
    assert stats["dense_energy_pj"] == pytest.approx(24 * 4.6)
    assert stats["layers"] == [{"layer": 0, "input_binary": False, "ac": 4, "mac": 12, "dense_mac": 24}]
    assert stats["samples"] == 1 and stats["sample_steps"] == 3


def test_binary_input_is_counted_as_accumulates():
    rnn, _ = hand_rnn()
    x = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])  # spikes in: 3 input spikes
    stats = measure_rnn(rnn, x)
    # t0: u = [1, 0] -> h = [1, 1]; t1: u = [1 - 2, 1] -> h = [0, 1]
    assert stats["rates"]["layer0"]["h"] == 3 / 4
    assert stats["layers"][0]["input_binary"] is True
    assert stats["mac"] == 0
    assert stats["ac"] == 3 * 2 + 2 * 2  # input spikes * fan-out 2, plus h_0's two spikes * 2


def test_two_layers_second_layer_reads_spikes():
    rnn = SpikingRNN(2, 2, num_layers=2, bias=False, leak=None)  # the seed's cell h = Θ(u)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.eye(2))
        rnn.weight_hh_l0.zero_()
        rnn.weight_ih_l1.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        rnn.weight_hh_l1.zero_()
    x = torch.tensor([[[1.0, -1.0]], [[-1.0, -1.0]]])
    # layer 0: t0 h = [1, 0]; t1 h = [0, 0]. layer 1 (input = layer 0 spikes): t0 u = [1, -1] -> [1, 0];
    # t1 u = [0, 0] -> [1, 1] (Θ(0) = 1). Recurrent products: h is 0/1, weights zero but still counted.
    stats = measure_rnn(rnn, x)
    assert stats["rates"] == {"layer0": {"h": 1 / 4}, "layer1": {"h": 3 / 4}}
    layer0, layer1 = stats["layers"]
    assert layer0 == {"layer": 0, "input_binary": False, "ac": 1 * 2, "mac": 2 * 2 * 2, "dense_mac": 16}
    assert layer1 == {"layer": 1, "input_binary": True, "ac": 1 * 2 + 1 * 2, "mac": 0, "dense_mac": 16}


HEAVISIDE = {"gates": "heaviside", "forget_bias": None}  # the seed's 0/1 gates, torch's init


@pytest.mark.parametrize("cls,kwargs,gates", [
    # the heaviside form: every gate is a spike, and so is c with cell_state="spike"
    (SpikingLSTM, {**HEAVISIDE, "cell_state": "clamp"}, {"i", "f", "g", "o", "h"}),
    (SpikingLSTM, {**HEAVISIDE, "cell_state": "spike"}, {"i", "f", "g", "o", "c", "h"}),
    (SpikingLSTM, {**HEAVISIDE, "cell_state": "clamp", "proj_size": 3}, {"i", "f", "g", "o", "h"}),
    (SpikingGRU, HEAVISIDE, {"r", "z", "n", "h"}),
    # the sigmoid form (the default): analog gates, only the emitted h fires
    (SpikingLSTM, {}, {"h"}),
    (SpikingLSTM, {"proj_size": 3}, {"h"}),
    (SpikingGRU, {}, {"h"}),
    # the vanilla RNN: the seed's cell, the leaky membrane (the default) and another leak and threshold
    (SpikingRNN, {"leak": None}, {"h"}),
    (SpikingRNN, {}, {"h"}),
    (SpikingRNN, {"leak": 0.5, "spike_threshold": 0.1}, {"h"}),
])
def test_recomputation_matches_module_output(cls, kwargs, gates):
    torch.manual_seed(0)
    rnn = cls(5, 6, num_layers=2, bidirectional=True, batch_first=True, **kwargs)
    x = torch.randn(3, 7, 5)
    stats, output = measure_rnn(rnn, x, return_output=True)
    expected, _ = rnn(x)
    torch.testing.assert_close(output.transpose(0, 1), expected.detach())
    assert set(stats["rates"]) == {"layer0", "layer1"}
    for layer in ("layer0", "layer1"):
        assert set(stats["rates"][layer]) == gates
        assert all(0.0 <= rate <= 1.0 for rate in stats["rates"][layer].values())


def test_hand_checked_leaky_rnn():
    """The leaky RNN (leak=0.5, θ=0.25) on hand_rnn's weights and input: only its spikes h are recorded."""
    seed, x = hand_rnn()
    rnn = SpikingRNN(2, 2, bias=False, leak=0.5, spike_threshold=0.25)
    rnn.load_state_dict(seed.state_dict())
    stats, output = measure_rnn(rnn, x, return_output=True)
    # v' = v/2 + u/2, u = x + W_hh Θ(v - θ): t0 u = [1, 1] -> v = [.5, .5] -> [1, 1];
    # t1 u = [1 - 2, -1] -> v = [-.25, -.25] -> [0, 0]; t2 u = [.5, 2] -> v = [.125, .875] -> [0, 1]
    assert output[:, 0].tolist() == [[1, 1], [0, 0], [0, 1]]
    expected, v_n = rnn(x)
    assert torch.equal(output, expected.detach())
    assert v_n[0, 0].tolist() == [0.125, 0.875]
    assert stats["rates"] == {"layer0": {"h": 3 / 6}}
    # real-valued input: T*B*I*H = 12 MACs; the recurrent input is the spikes Θ(v - θ): Θ(v0 - θ) = 0,
    # h_0 = [1, 1] (2 spikes * 2 targets), h_1 = 0 -> 4 ACs
    assert stats["mac"] == 12 and stats["ac"] == 4 and stats["dense_mac"] == 24
    assert stats["layers"] == [{"layer": 0, "input_binary": False, "ac": 4, "mac": 12, "dense_mac": 24}]


def test_lstm_dense_macs_and_counts():
    torch.manual_seed(1)
    rnn = SpikingLSTM(3, 4, bidirectional=True)
    x = torch.randn(5, 2, 3)
    stats = measure_rnn(rnn, x)
    # per direction: T*B*4H*(I + H) dense MACs
    assert stats["dense_mac"] == 2 * 5 * 2 * 16 * (3 + 4)
    assert stats["mac"] == 2 * 5 * 2 * 16 * 3  # real-valued input projection only
    assert stats["ac"] % 16 == 0  # recurrent spikes * fan-out 4H
    assert stats["per_sample"]["dense_mac"] == stats["dense_mac"] / 2


def test_accumulate_cell_state_makes_recurrent_products_macs():
    rnn = SpikingLSTM(1, 1, bias=False, cell_state="accumulate", gates="heaviside")  # h = o * c
    with torch.no_grad():
        rnn.weight_ih_l0.fill_(1.0)
        rnn.weight_hh_l0.zero_()
    x = torch.ones(3, 1, 1)  # every gate fires every step: c = 1, 2, 3; h = c
    stats, output = measure_rnn(rnn, x, return_output=True)
    assert output.flatten().tolist() == [1.0, 2.0, 3.0]
    assert stats["rates"]["layer0"] == {"i": 1.0, "f": 1.0, "g": 1.0, "o": 1.0, "h": 2.0}
    # input x = 1 everywhere is binary -> ACs: 3 spikes * 4; recurrent h = [0, 1, 2] not binary -> 3*1*4 MACs
    assert stats["ac"] == 12 and stats["mac"] == 12


def test_measure_on_a_model_and_monitor_accumulates():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("rnn", SpikingRNN(2, 2, bias=False, leak=None))
    rnn, x = hand_rnn()
    model.rnn.load_state_dict(rnn.state_dict())

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = model.rnn

        def forward(self, x):
            return self.rnn(x)[0].sum()

    wrapper = Wrapper().train()
    stats = measure(wrapper, x)
    assert list(stats) == ["rnn"] and stats["rnn"]["ac"] == 4 and stats["rnn"]["mac"] == 12
    assert wrapper.training  # mode restored
    with FiringRateMonitor(wrapper) as monitor:
        wrapper(x)
        wrapper(x)
    summary = monitor.summary()["rnn"]
    assert summary["calls"] == 2 and summary["samples"] == 2
    assert summary["ac"] == 8 and summary["mac"] == 24 and summary["per_sample"]["ac"] == 4
    assert summary["rates"]["layer0"]["h"] == pytest.approx(4 / 6)
    wrapper(x)  # detached: no more counting
    assert monitor.summary()["rnn"]["calls"] == 2
    assert measure(rnn, x)["ac"] == 4  # a bare spiking module gives its summary directly


def test_monitor_needs_a_spiking_module():
    with pytest.raises(ValueError, match="no SpikingLSTM/GRU/RNN"):
        FiringRateMonitor(nn.Linear(2, 2))


def test_energy_ratio_is_consistent():
    rnn, x = hand_rnn()
    stats = measure_rnn(rnn, x)
    assert math.isclose(stats["energy_ratio"], stats["energy_pj"] / stats["dense_energy_pj"])
