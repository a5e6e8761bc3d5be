"""The chrono initialisation of the memory gate (``forget_bias="chrono", chrono_steps=N`` and
``spikingrnn.nn.chrono_bias_``): which biases it sets, to what, for every layer and direction of the
spiking and torch.nn LSTMs and GRUs; its argument errors; checkpoints and the training CLI."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spikingrnn import SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell
from spikingrnn.nn import chrono_bias_

H = 6


def _blocks(bias: torch.Tensor, hidden: int) -> list[torch.Tensor]:
    return list(bias.detach().view(-1, hidden))


def _bias_pairs(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    parameters = dict(module.named_parameters())
    return [(parameters[name], parameters[name.replace("bias_ih", "bias_hh")])
            for name in sorted(parameters) if name.startswith("bias_ih")]


def assert_chrono(module: nn.Module, mode: str, steps: int) -> None:
    """Memory gate: total bias log(u), u in [1, steps - 1], all in bias_ih; LSTM input gate: its negative;
    every other row keeps torch's U(-1/sqrt(H), 1/sqrt(H))."""
    hidden, bound = module.hidden_size, 1 / math.sqrt(module.hidden_size)
    pairs = _bias_pairs(module)
    assert pairs
    for bias_ih, bias_hh in pairs:
        ih, hh = _blocks(bias_ih, hidden), _blocks(bias_hh, hidden)
        memory = ih[1]  # LSTM f (i|f|g|o), GRU z (r|z|n)
        assert bool((memory >= 0).all()) and bool((memory <= math.log(steps - 1) + 1e-6).all())
        assert float(memory.std()) > 0  # drawn per unit, not one constant
        assert bool((hh[1] == 0).all())
        if mode == "LSTM":
            assert torch.equal(ih[0], -memory) and bool((hh[0] == 0).all())
        for block in ([2, 3] if mode == "LSTM" else [0, 2]):
            assert bool((ih[block].abs() <= bound).all()) and bool((hh[block].abs() <= bound).all())


@pytest.mark.parametrize("cls,mode,kwargs", [
    (SpikingLSTM, "LSTM", dict(num_layers=2, bidirectional=True, proj_size=2)),
    (SpikingGRU, "GRU", dict(num_layers=2, bidirectional=True)),
    (SpikingLSTMCell, "LSTM", {}),
    (SpikingGRUCell, "GRU", {}),
    (SpikingLSTM, "LSTM", dict(gates="heaviside", cell_state="clamp")),
], ids=["lstm", "gru", "lstm_cell", "gru_cell", "lstm_heaviside"])
def test_modules_built_with_chrono_draw_their_memory_gate(cls, mode, kwargs):
    module = cls(3, H, forget_bias="chrono", chrono_steps=40, **kwargs)
    assert (module.forget_bias, module.chrono_steps) == ("chrono", 40)
    assert "forget_bias='chrono', chrono_steps=40" in repr(module)
    assert_chrono(module, mode, 40)
    torch.manual_seed(0)
    module.reset_parameters()
    first = [p.detach().clone() for p in module.parameters()]
    torch.manual_seed(0)
    module.reset_parameters()
    assert all(torch.equal(a, b) for a, b in zip(first, module.parameters()))  # reproducible, and re-drawn
    assert_chrono(module, mode, 40)


def test_time_scales_are_uniform_between_one_and_the_steps():
    torch.manual_seed(0)
    lstm = SpikingLSTM(2, 4000, forget_bias="chrono", chrono_steps=101)
    scales = lstm.bias_ih_l0.detach()[4000:8000].exp()  # u ~ U(1, 100)
    assert 1 - 1e-4 <= float(scales.min()) and float(scales.max()) <= 100 + 1e-3
    assert abs(float(scales.mean()) - 50.5) < 1.5
    assert abs(float((scales < 25.75).float().mean()) - 0.25) < 0.03


def test_other_forget_bias_values_are_unchanged():
    assert SpikingLSTM(3, H).chrono_steps is None
    constant = SpikingGRU(3, H, forget_bias=2.0)
    assert bool((_blocks(constant.bias_ih_l0, H)[1] == 2.0).all())


@pytest.mark.parametrize("module,mode", [
    (nn.LSTM(3, H, num_layers=2, bidirectional=True, proj_size=2), "LSTM"),
    (nn.GRU(3, H, num_layers=2), "GRU"),
    (nn.LSTMCell(3, H), "LSTM"),
    (nn.GRUCell(3, H), "GRU"),
    (SpikingLSTM(3, H), "LSTM"),
], ids=["nn.LSTM", "nn.GRU", "nn.LSTMCell", "nn.GRUCell", "SpikingLSTM"])
def test_chrono_bias_applies_to_torch_and_spiking_modules(module, mode):
    generator = torch.Generator().manual_seed(3)
    assert chrono_bias_(module, 30, generator=generator) is module
    assert_chrono(module, mode, 30)


@pytest.mark.parametrize("call,error,message", [
    (lambda: chrono_bias_(nn.RNN(3, H), 30), ValueError, "module must be an LSTM or GRU"),
    (lambda: chrono_bias_(nn.LSTM(3, H, bias=False), 30), ValueError, "has no biases"),
    (lambda: chrono_bias_(nn.LSTM(3, H), 1), ValueError, "max_steps must be an int >= 2, got 1"),
    (lambda: chrono_bias_(nn.LSTM(3, H), 30.0), TypeError, "max_steps must be an int >= 2, got float"),
    (lambda: SpikingLSTM(3, H, forget_bias="chrono"), ValueError, "forget_bias='chrono' needs chrono_steps"),
    (lambda: SpikingGRU(3, H, chrono_steps=20), ValueError, "chrono_steps applies to forget_bias='chrono' only"),
    (lambda: SpikingLSTMCell(3, H, forget_bias="slow"), ValueError, "forget_bias must be a real number, 'chrono' or None"),
    (lambda: SpikingGRUCell(3, H, forget_bias="chrono", chrono_steps=True), TypeError, "chrono_steps must be an int"),
], ids=["rnn", "no_bias", "steps_1", "steps_float", "no_steps", "steps_without_chrono", "bad_string", "steps_bool"])
def test_argument_errors_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_checkpoints_keep_the_setting(tmp_path):
    from spikingrnn.io import load_model, save_checkpoint
    model = SpikingLSTM(3, H, forget_bias="chrono", chrono_steps=25)
    save_checkpoint(tmp_path / "m.safetensors", model=model)
    loaded = load_model(tmp_path / "m.safetensors")
    assert (loaded.forget_bias, loaded.chrono_steps) == ("chrono", 25)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), loaded.parameters()))
    loaded.reset_parameters()
    assert_chrono(loaded, "LSTM", 25)


@pytest.mark.parametrize("model", ["lstm", "torch_lstm", "gru", "torch_gru"])
def test_training_config_builds_chrono_models(model):
    from spikingrnn.train import TrainConfig
    from spikingrnn.train.model import SpikingClassifier
    config = TrainConfig(model=model, hidden=H, forget_bias="chrono", chrono_steps=50)
    classifier = SpikingClassifier(2, 2, config)
    assert_chrono(classifier.rnn, "LSTM" if model.endswith("lstm") else "GRU", 50)


def test_training_config_and_cli_check_the_pair():
    from spikingrnn.cli import main
    from spikingrnn.train import TrainConfig
    with pytest.raises(ValueError, match="chrono_steps must be an int >= 2 with forget_bias='chrono'"):
        TrainConfig(forget_bias="chrono")
    with pytest.raises(ValueError, match="chrono_steps applies to forget_bias='chrono' only"):
        TrainConfig(chrono_steps=10)
    with pytest.raises(ValueError, match="forget_bias must be a finite number, None or 'chrono'"):
        TrainConfig(forget_bias="fast")
    with pytest.raises(SystemExit):
        main(["train", "--forget-bias", "fast"])
    assert main(["train", "--forget-bias", "chrono"]) == 1  # refused by TrainConfig: no --chrono-steps
