"""The neuron options of issue 16: the sigmoid form (``gates="sigmoid"``, the LSTM's and GRU's default)
and the leaky vanilla RNN (``leak``, its default): their math, defaults, state semantics, checks, long
sequences, checkpoints, monitor and export routes. Backend agreement with the reference on every path
is tests/test_cells_all_backends.py's."""
from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

import spikingrnn
from spikingrnn import SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN, SpikingRNNCell
from spikingrnn.functional import gru_step_gates, lstm_step_gates, rnn_step_gates
from spikingrnn.surrogate import ATan, Erf

F64 = torch.float64


def binary(t: torch.Tensor) -> bool:
    return bool(((t == 0) | (t == 1)).all())


def test_lstm_step_is_the_formula():
    torch.manual_seed(0)
    x, h, c = torch.randn(3, 4, dtype=F64), (torch.rand(3, 5, dtype=F64) > 0.5).to(F64), torch.randn(3, 5, dtype=F64)
    w_ih, w_hh, b_ih, b_hh = (torch.randn(20, 4, dtype=F64), torch.randn(20, 5, dtype=F64), torch.randn(20, dtype=F64),
                              torch.randn(20, dtype=F64))
    (h1, c1), gates = lstm_step_gates(x, (h, c), w_ih, w_hh, b_ih, b_hh, None, spike=Erf(), spike_g=Erf(),
                                      spike_threshold=0.3)
    u = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = u.sigmoid()[:, :5], u.sigmoid()[:, 5:10], u.tanh()[:, 10:15], u.sigmoid()[:, 15:]
    c_expected = f * c + i * g
    torch.testing.assert_close(c1, c_expected, rtol=0, atol=1e-15)
    assert torch.equal(h1, (o * c_expected.tanh() - 0.3 >= 0).to(F64))
    assert binary(h1) and 0 < h1.mean() < 1
    torch.testing.assert_close(gates.o, o, rtol=0, atol=1e-15)


def test_gru_step_is_the_formula_and_feeds_back_spikes():
    torch.manual_seed(1)
    x, s = torch.randn(3, 4, dtype=F64), torch.randn(3, 5, dtype=F64)
    w_ih, w_hh, b_ih, b_hh = (torch.randn(15, 4, dtype=F64), torch.randn(15, 5, dtype=F64), torch.randn(15, dtype=F64),
                              torch.randn(15, dtype=F64))
    (s1,), gates = gru_step_gates(x, (s,), w_ih, w_hh, b_ih, b_hh, spike=Erf(), spike_n=Erf(), spike_threshold=0.2)
    h = (s - 0.2 >= 0).to(F64)
    xr, xz, xn = (x @ w_ih.T + b_ih).chunk(3, 1)
    hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, 1)
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    torch.testing.assert_close(s1, (1 - z) * n + z * s, rtol=0, atol=1e-15)
    assert torch.equal(gates.h, (s1 - 0.2 >= 0).to(F64))


def test_defaults_are_the_sigmoid_form_with_a_forget_bias():
    lstm, gru = SpikingLSTM(3, 4, num_layers=2, bidirectional=True), SpikingGRU(3, 4)
    assert (lstm.gates, lstm.cell_state, lstm.spike_threshold, lstm.forget_bias) == ("sigmoid", "accumulate", 0.25, 1.0)
    assert (gru.gates, gru.spike_threshold, gru.forget_bias) == ("sigmoid", 0.25, 1.0)
    for _, _, b_ih, b_hh, _ in lstm.layer_weights():
        assert torch.equal(b_ih[4:8], torch.ones(4)) and torch.equal(b_hh[4:8], torch.zeros(4))
        assert b_ih[:4].abs().max() <= 0.5 and not torch.equal(b_ih[:4], torch.ones(4))  # other gates: torch's init
    b_ih, b_hh = gru.bias_ih_l0, gru.bias_hh_l0
    assert torch.equal(b_ih[4:8], torch.ones(4)) and torch.equal(b_hh[4:8], torch.zeros(4))
    torch.manual_seed(3)
    plain = SpikingLSTM(3, 4, forget_bias=None)
    torch.manual_seed(3)
    torch_lstm = nn.LSTM(3, 4)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), torch_lstm.parameters()))
    assert SpikingLSTMCell(3, 4).bias_ih[4:8].eq(1).all() and SpikingGRUCell(3, 4).bias_ih[4:8].eq(1).all()
    rnn = SpikingRNN(3, 4)
    assert (rnn.leak, rnn.spike_threshold) == (0.9, 0.25) and "gates" not in repr(rnn)


def test_leaky_rnn_step_is_the_formula():
    torch.manual_seed(8)
    x, v = torch.randn(3, 4, dtype=F64), torch.randn(3, 5, dtype=F64)
    w_ih, w_hh, b_ih, b_hh = (torch.randn(5, 4, dtype=F64), torch.randn(5, 5, dtype=F64), torch.randn(5, dtype=F64),
                              torch.randn(5, dtype=F64))
    (v1,), gates = rnn_step_gates(x, (v,), w_ih, w_hh, b_ih, b_hh, spike=Erf(), leak=0.8, spike_threshold=0.1)
    u = x @ w_ih.T + b_ih + (v - 0.1 >= 0).to(F64) @ w_hh.T + b_hh
    torch.testing.assert_close(v1, 0.8 * v + 0.2 * u, rtol=0, atol=1e-14)
    assert torch.equal(gates.h, (v1 - 0.1 >= 0).to(F64))
    (h,), seed_gates = rnn_step_gates(x, (v,), w_ih, w_hh, b_ih, b_hh, spike=Erf(), leak=None)
    assert torch.equal(h, (x @ w_ih.T + b_ih + v @ w_hh.T + b_hh >= 0).to(F64)) and torch.equal(seed_gates.h, h)


def test_rnn_cell_returns_the_membrane_and_its_spikes():
    torch.manual_seed(9)
    cell, stack = SpikingRNNCell(3, 5).double(), SpikingRNN(3, 5, backend="reference").double()
    stack.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(2, 3, dtype=F64)
    v = cell(x)
    out, v_n = stack(x.unsqueeze(0))
    torch.testing.assert_close(v, v_n[0], rtol=0, atol=1e-15)
    assert torch.equal(cell.spikes(v), out[0])
    seed = SpikingRNNCell(3, 5, leak=None)
    assert torch.equal(seed.spikes(v), v)
    with pytest.raises(ValueError, match=r"SpikingRNNCell: leak must be None or in \[0, 1\), got 1.0"):
        SpikingRNNCell(3, 5, leak=1.0)
    with pytest.raises(ValueError, match=r"SpikingRNN: leak must be None or in \[0, 1\), got -0.5"):
        SpikingRNN(3, 5, leak=-0.5)


def test_swap_for_nn_lstm_keeps_the_interface():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3)
    for torch_cls, spiking_cls in ((nn.LSTM, SpikingLSTM), (nn.GRU, SpikingGRU)):
        kwargs = dict(num_layers=2, batch_first=True, bidirectional=True)
        out_t, state_t = torch_cls(3, 5, **kwargs)(x)
        out_s, state_s = spiking_cls(3, 5, **kwargs)(x)
        assert out_s.shape == out_t.shape and binary(out_s)
        for a, b in zip(state_s if isinstance(state_s, tuple) else (state_s,),
                        state_t if isinstance(state_t, tuple) else (state_t,)):
            assert a.shape == b.shape


@pytest.mark.parametrize("cls", [SpikingLSTM, SpikingGRU, SpikingRNN], ids=lambda c: c.__name__)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_a_sequence_resumes_from_its_final_state(cls, backend):
    """h_n is what continues the sequence: for the GRU the analog state s, for the RNN the membrane v,
    whose spikes are output[-1]."""
    torch.manual_seed(2)
    model = cls(3, 6, num_layers=2, backend=backend).double()
    x = torch.randn(9, 2, 3, dtype=F64)
    whole, final = model(x)
    first, middle = model(x[:4])
    rest, final_split = model(x[4:], middle)
    assert torch.equal(torch.cat([first, rest]), whole)
    for a, b in zip(final if isinstance(final, tuple) else (final,),
                    final_split if isinstance(final_split, tuple) else (final_split,)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if cls is not SpikingLSTM:
        assert not binary(final)  # the analog state
        assert torch.equal(whole[-1], (final[-1] - model.spike_threshold >= 0).to(F64))


def test_gru_cell_returns_the_state_and_its_spikes():
    torch.manual_seed(4)
    cell, stack = SpikingGRUCell(3, 5).double(), SpikingGRU(3, 5, backend="reference").double()
    stack.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(2, 3, dtype=F64)
    s = cell(x)
    out, s_n = stack(x.unsqueeze(0))
    torch.testing.assert_close(s, s_n[0], rtol=0, atol=1e-15)
    assert torch.equal(cell.spikes(s), out[0])
    assert torch.equal(SpikingGRUCell(3, 5, gates="heaviside").spikes(s), s)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(gates="tanh"), ValueError, "gates must be one of ('sigmoid', 'heaviside'), got 'tanh'"),
    (dict(cell_state="clamp"), ValueError, "cell_state must be 'accumulate', got 'clamp'"),
    (dict(spike_threshold="0.2"), TypeError, "spike_threshold must be a real number, got str"),
    (dict(forget_bias=math.nan), ValueError, "forget_bias must be finite, got nan"),
    (dict(spike_threshold=True), TypeError, "spike_threshold must be a real number, got bool"),
])
@pytest.mark.parametrize("cls", [SpikingLSTM, SpikingLSTMCell], ids=lambda c: c.__name__)
def test_bad_neuron_options_name_the_argument(cls, kwargs, error, words):
    with pytest.raises(error, match=f"{cls.__name__}: .*" + re.escape(words)):
        cls(3, 4, **kwargs)


def test_heaviside_form_keeps_every_cell_state_rule():
    for rule in ("clamp", "accumulate", "spike"):
        SpikingLSTM(3, 4, gates="heaviside", cell_state=rule)(torch.randn(5, 2, 3))


@pytest.mark.parametrize("cls", [SpikingLSTM, SpikingGRU, SpikingRNN], ids=lambda c: c.__name__)
def test_long_sequences_keep_finite_bounded_gradients(cls):
    """T = 784 (pixel MNIST) with the defaults: the cell stays bounded, the gradient finite and of
    moderate size (the heaviside accumulate recipe's grew to inf by T = 784)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 32))
    rnn = cls(32, 32)
    x = torch.rand(784, 4, 1)
    out, state = rnn(model(x))
    out.mean().backward()
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in rnn.parameters()))
    assert torch.isfinite(norm) and norm < 100
    if cls is SpikingLSTM:
        assert state[1].abs().max() < 1 / (1 - torch.sigmoid(torch.tensor(8.0)))  # |c| <= 1 / (1 - max f)


def test_checkpoints_round_trip_and_old_ones_keep_heaviside_gates(tmp_path):
    from spikingrnn.io import load_model, save_checkpoint
    from spikingrnn.io.model_configs import construct, legacy_settings
    model = SpikingGRU(3, 4, spike_threshold=0.4, forget_bias=0.5)
    save_checkpoint(tmp_path / "m.safetensors", model=model)
    loaded = load_model(tmp_path / "m.safetensors")
    assert (loaded.gates, loaded.spike_threshold, loaded.forget_bias) == ("sigmoid", 0.4, 0.5)
    x = torch.randn(5, 2, 3)
    assert torch.equal(loaded(x)[0], model(x)[0])
    # a configuration written before the option existed: the seed's gates and torch's init
    old = {"input_size": 3, "hidden_size": 4, "num_layers": 1, "bias": True, "batch_first": False,
           "dropout": 0.0, "bidirectional": False, "proj_size": 0, "invariant_dropout_mask": False,
           "low_memory": False, "cell_state": "clamp", "cell_threshold": 0.1, "backend": "auto"}
    assert legacy_settings("SpikingLSTM", old) == {"gates": "heaviside", "forget_bias": None, "rate_penalty": 0.0}
    rebuilt = construct("SpikingLSTM", old, {}, "old.safetensors", "cpu", None)
    assert (rebuilt.gates, rebuilt.cell_state, rebuilt.rate_penalty) == ("heaviside", "clamp", 0.0)
    assert legacy_settings("SpikingLSTM", {**old, "gates": "sigmoid"}) == {"rate_penalty": 0.0}
    assert legacy_settings("SpikingLSTM", {**old, "gates": "sigmoid", "rate_penalty": 0.1}) == {}
    assert legacy_settings("SpikingRNN", {"input_size": 3}) == {"leak": None, "rate_penalty": 0.0}
    assert legacy_settings("SpikingRNNCell", {"input_size": 3, "leak": 0.5}) == {}


def test_train_configs_saved_before_gates_rebuild_heaviside_models():
    from spikingrnn.train.config import TrainConfig, saved_config
    old = TrainConfig().to_dict()
    for key in ("gates", "spike_threshold", "forget_bias", "rate_penalty"):
        del old[key]
    del old["leak"]
    config = TrainConfig.from_dict(saved_config(old))
    assert (config.gates, config.forget_bias, config.leak) == ("heaviside", None, None)
    assert TrainConfig().gates == "sigmoid"
    with pytest.raises(ValueError, match="cell_state must be 'accumulate' with gates='sigmoid'"):
        TrainConfig(cell_state="clamp")
    with pytest.raises(ValueError, match="rate_penalty must be >= 0"):
        TrainConfig(rate_penalty=-1.0)


def test_monitor_counts_only_the_emitted_spikes():
    from spikingrnn.monitor import measure_rnn
    torch.manual_seed(5)
    for cls in (SpikingLSTM, SpikingGRU, SpikingRNN):
        model = cls(4, 8, num_layers=2)
        x = torch.randn(12, 3, 4)
        stats, output = measure_rnn(model, x, return_output=True)
        assert torch.equal(output, model(x)[0])
        assert set(stats["rates"]["layer0"]) == {"h"}  # analog gates are not spikes
        assert stats["rates"]["layer1"]["h"] == pytest.approx(float(output.double().mean()), abs=1e-12)
        assert stats["layers"][1]["input_binary"] and stats["layers"][1]["mac"] == 0  # event-driven layer
        assert stats["energy_ratio"] < 1


def test_export_onnx_of_bare_stacks_names_the_route_for_the_sigmoid_form():
    pytest.importorskip("onnx")
    from spikingrnn.export import export_onnx
    with pytest.raises(NotImplementedError, match="torch.onnx.export"):
        export_onnx(SpikingLSTM(3, 4), None)


def test_triton_backend_refuses_what_it_cannot_run_by_name():
    from spikingrnn.ops.spec import RNNSpec
    from spikingrnn.ops.triton import unsupported_spec
    assert unsupported_spec(RNNSpec("LSTM", 1, False)) is None
    assert unsupported_spec(RNNSpec("LSTM", 1, False, cell_state="clamp", gates="heaviside")) is None
    assert unsupported_spec(RNNSpec("RNN", 1, False, leak=None)) is None
    reason = unsupported_spec(RNNSpec("RNN", 1, False))
    assert reason is None or "leak" in reason


@pytest.mark.parametrize("cls", [SpikingLSTM, SpikingGRU, SpikingRNN], ids=lambda c: c.__name__)
def test_custom_operators_match_the_eager_functions(cls):
    """The sigmoid form's and the leaky RNN's torch.library operators (used while a graph is captured)
    give the eager Functions' outputs and gradients, and pass torch.library.opcheck."""
    from spikingrnn.ops.cpu import library
    torch.manual_seed(6)
    model = cls(3, 5, 2, bidirectional=True, backend="cpu", surrogate_function1=ATan()).double()
    x = torch.randn(6, 2, 3, dtype=F64)

    def run(captured: bool):
        m = spikingrnn_copy(model)
        xx = x.clone().requires_grad_(True)
        if captured:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(library, "capturing", lambda: True)
                out, _ = m(xx)
        else:
            out, _ = m(xx)
        (out * torch.linspace(-1, 1, out.shape[-1], dtype=F64)).sum().backward()
        return out, [xx.grad] + [p.grad for p in m.parameters()]

    out_eager, grads_eager = run(False)
    out_op, grads_op = run(True)
    assert torch.equal(out_eager, out_op)
    for a, b in zip(grads_eager, grads_op):
        assert torch.equal(a, b)
    w = model.layer_weights()[0]
    weights = tuple(t.detach().clone().requires_grad_(True) for t in w[:4])
    x_in, state = x.clone().requires_grad_(True), torch.randn(2, 5, dtype=F64)
    if cls is SpikingLSTM:
        op, args = library.sigmoid_lstm_sequence, (x_in, torch.zeros(2, 5, dtype=F64), state, *weights, None,
                                                   [], 2, 1.0, 0.25, True)
    elif cls is SpikingGRU:
        op, args = library.sigmoid_gru_sequence, (x_in, state, *weights, [], 2, 1.0, 0.25, True)
    else:
        op, args = library.leaky_rnn_sequence, (x_in, state, *weights, [], 2, 1.0, 0.9, 0.25, True)
    torch.library.opcheck(op, args)


def spikingrnn_copy(model):
    import copy
    clone = copy.deepcopy(model)
    clone.zero_grad(set_to_none=True)
    return clone


def test_compile_fullgraph_trains_the_default_lstm():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(3, 6))
    rnn = SpikingLSTM(6, 6, backend="cpu").double()
    x = torch.randn(5, 2, 3, dtype=F64)

    def loss_of(m):
        return m(model.double()(x))[0].sum()

    eager = spikingrnn_copy(rnn)
    loss_of(eager).backward()
    compiled_model = spikingrnn_copy(rnn)
    compiled = torch.compile(lambda inp: compiled_model(inp)[0].sum(), fullgraph=True, backend="aot_eager")
    compiled(model(x)).backward()
    for a, b in zip(eager.parameters(), compiled_model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
