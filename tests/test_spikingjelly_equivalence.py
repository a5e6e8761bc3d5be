"""spikingrnn's torch-style SpikingLSTM/SpikingGRU/SpikingRNN against SpikingJelly 2.0's rnn module.

SpikingJelly's weights are copied into ours (``cells.{l}.linear_ih.weight`` -> ``weight_ih_l{l}``,
``cells_reverse`` -> ``_reverse``) and initial states converted from SpikingJelly's direction-major
layout to torch's layer-major one. Spikes, outputs and final states must be bitwise identical;
gradients of the input, the initial states and every weight within 1e-5 relative (float32).

The reference backend performs SpikingJelly's float operations in SpikingJelly's order, so it is
compared in float32. The cpu backend sums the pre-activations in another order (one GEMM for all
input projections), which can flip a spike whose pre-activation is within float32 rounding of 0,
so its bitwise comparison runs in float64.
"""
import pytest
import torch

sj_rnn = pytest.importorskip("spikingjelly.activation_based.rnn")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

import spikingrnn  # noqa: E402
from spikingrnn import surrogate as our_surrogate  # noqa: E402
from sj_helpers import (MODES, SJ_CLASS_NAMES, SJ_NEURON, Config, compare_with_sj,  # noqa: E402
                        sj_state_dict_to_torch)

OUR_CLASSES = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}

# (surrogate class name, non-default alpha); the same names exist in both libraries
SURROGATES = [("Erf", 1.5), ("Sigmoid", 5.0), ("ATan", 3.0), ("PiecewiseQuadratic", 0.8),
              ("PiecewiseExp", 1.7), ("SoftSign", 2.5), ("SuperSpike", 1.3), ("Rect", 0.7)]
# SpikingJelly's SuperSpike has no primitive, so it cannot run with spiking=False
SMOOTH_SURROGATES = [s for s in SURROGATES if s[0] != "SuperSpike"]


def build_pair(cfg: Config, sj_surrogates=(), our_surrogates=(), backend="reference"):
    """A SpikingJelly model and ours (SpikingJelly's cell: :data:`sj_helpers.SJ_NEURON`) with SpikingJelly's
    weights; surrogates ``(sf1[, sf2])``."""
    torch.manual_seed(1234)
    if cfg.mode == "RNN":
        sj_kwargs = dict(zip(("surrogate_function",), sj_surrogates))
    else:
        sj_kwargs = dict(zip(("surrogate_function1", "surrogate_function2"), sj_surrogates))
    our_kwargs = dict(zip(("surrogate_function1", "surrogate_function2"), our_surrogates))
    sj_model = getattr(sj_rnn, SJ_CLASS_NAMES[cfg.mode])(
        cfg.I, cfg.H, cfg.num_layers, bias=cfg.bias, bidirectional=cfg.bidirectional, **sj_kwargs).to(cfg.dtype)
    model = OUR_CLASSES[cfg.mode](cfg.I, cfg.H, num_layers=cfg.num_layers, bias=cfg.bias,
                                  bidirectional=cfg.bidirectional, dtype=cfg.dtype, backend=backend,
                                  **SJ_NEURON[cfg.mode], **our_kwargs)
    model.load_state_dict(sj_state_dict_to_torch(sj_model.state_dict()))  # strict: names and shapes match
    return sj_model, model


def surrogate_pair(name: str, alpha: float, spiking: bool = True):
    return (getattr(sj_surrogate, name)(alpha=alpha, spiking=spiking),
            getattr(our_surrogate, name)(alpha=alpha, spiking=spiking))


@pytest.mark.parametrize("with_states", [False, True], ids=["zero_states", "given_states"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("mode", MODES)
def test_matches_spikingjelly(mode, num_layers, bidirectional, bias, with_states):
    cfg = Config(mode, num_layers, bidirectional, bias)
    sj_model, model = build_pair(cfg)
    compare_with_sj(sj_model, model, cfg, with_states=with_states, layout="torch")


@pytest.mark.parametrize("with_states", [False, True], ids=["zero_states", "given_states"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("mode", MODES)
def test_cpu_backend_matches_spikingjelly(mode, num_layers, bidirectional, with_states):
    cfg = Config(mode, num_layers, bidirectional, dtype=torch.float64)
    sj_model, model = build_pair(cfg, backend="cpu")
    compare_with_sj(sj_model, model, cfg, with_states=with_states, layout="torch")


@pytest.mark.parametrize("name,alpha", SURROGATES, ids=[s[0] for s in SURROGATES])
@pytest.mark.parametrize("mode", MODES)
def test_surrogate_function1(mode, name, alpha):
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_sf, our_sf = surrogate_pair(name, alpha)
    sj_model, model = build_pair(cfg, (sj_sf,), (our_sf,))
    assert model.surrogate_function1 is our_sf
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="torch")


@pytest.mark.parametrize("first,second", [(("ATan", 3.0), ("Sigmoid", 5.0)),
                                          (("Rect", 0.7), ("SuperSpike", 1.3)),
                                          (("PiecewiseQuadratic", 0.8), ("Erf", 1.5))],
                         ids=lambda s: s[0])
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_distinct_surrogate_function2(mode, first, second):
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_sf1, our_sf1 = surrogate_pair(*first)
    sj_sf2, our_sf2 = surrogate_pair(*second)
    sj_model, model = build_pair(cfg, (sj_sf1, sj_sf2), (our_sf1, our_sf2))
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="torch")


def test_surrogate_function2_changes_the_gradient():
    """Guards the test above: a different g-gate surrogate must change the result."""
    cfg = Config("LSTM", num_layers=2, bidirectional=True)
    sj_model, _ = build_pair(cfg, (sj_surrogate.ATan(alpha=3.0), sj_surrogate.Sigmoid(alpha=5.0)))
    _, model = build_pair(cfg, (), (our_surrogate.ATan(alpha=3.0),))
    with pytest.raises(AssertionError, match="gradient"):
        compare_with_sj(sj_model, model, cfg, with_states=True, layout="torch")


@pytest.mark.parametrize("name,alpha", SURROGATES, ids=[s[0] for s in SURROGATES])
def test_default_alpha_matches_spikingjelly(name, alpha):
    assert getattr(our_surrogate, name)().alpha == getattr(sj_surrogate, name)().alpha


@pytest.mark.parametrize("name,alpha", SMOOTH_SURROGATES, ids=[s[0] for s in SMOOTH_SURROGATES])
def test_smooth_mode_lstm(name, alpha):
    cfg = Config("LSTM", num_layers=2, bidirectional=True)
    sj_sf, our_sf = surrogate_pair(name, alpha, spiking=False)
    sj_model, model = build_pair(cfg, (sj_sf,), (our_sf,))
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="torch", exact=False)


@pytest.mark.parametrize("mode", MODES)
def test_smooth_mode_with_two_surrogates(mode):
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_sf1, our_sf1 = surrogate_pair("ATan", 3.0, spiking=False)
    sj_sf2, our_sf2 = surrogate_pair("Sigmoid", 5.0, spiking=False)
    if mode == "RNN":
        sj_model, model = build_pair(cfg, (sj_sf1,), (our_sf1,))
    else:
        sj_model, model = build_pair(cfg, (sj_sf1, sj_sf2), (our_sf1, our_sf2))
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="torch", exact=False)


@pytest.mark.parametrize("with_surrogate", [False, True], ids=["default", "ATan"])
@pytest.mark.parametrize("mode", MODES)
def test_float64(mode, with_surrogate):
    cfg = Config(mode, num_layers=2, bidirectional=True, dtype=torch.float64)
    sj_sf, our_sf = surrogate_pair("ATan", 3.0) if with_surrogate else (None, None)
    sj_model, model = build_pair(cfg, (sj_sf,) if sj_sf else (), (our_sf,) if our_sf else ())
    assert all(p.dtype == torch.float64 for p in model.parameters())
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="torch")


@pytest.mark.parametrize("mode", MODES)
def test_spikingjelly_surrogate_module_in_our_classes(mode):
    """Any callable surrogate module plugs in, e.g. SpikingJelly's QPseudoSpike (ours has none)."""
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_model, model = build_pair(cfg, (sj_surrogate.QPseudoSpike(alpha=2.5),),
                                 (sj_surrogate.QPseudoSpike(alpha=2.5),))
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="torch")
