"""Weight conversion: torch.nn <-> spikingrnn (compat.torch_nn) and SpikingJelly checkpoints (compat.checkpoints)."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

import spikingrnn
from spikingrnn.compat.checkpoints import (convert_spikingjelly_state_dict, from_spikingjelly,
                                           infer_spikingjelly_config, unwrap_state_dict)
from spikingrnn.compat import spikingjelly as compat_sj
from spikingrnn.compat.torch_nn import from_torch, to_torch

SPIKING = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}
TORCH = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}
SJ_NAMES = {"LSTM": "SpikingLSTM", "GRU": "SpikingGRU", "RNN": "SpikingVanillaRNN"}
I, H, T, B = 5, 7, 6, 3


def sj_rnn():
    return pytest.importorskip("spikingjelly.activation_based.rnn")


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    """Same names in the same order, equal values, dtype and device, and no shared storage."""
    pa, pb = list(a.named_parameters()), list(b.named_parameters())
    assert [n for n, _ in pa] == [n for n, _ in pb]
    for (name, x), (_, y) in zip(pa, pb):
        assert x.dtype == y.dtype and x.device == y.device, name
        assert torch.equal(x, y), name
        assert x.data_ptr() != y.data_ptr(), f"{name} shares storage"


def states_for(module, batch: int, dtype, seed: int = 1):
    """Nonzero initial states of a stack (layer-major torch layout)."""
    gen = torch.Generator().manual_seed(seed)
    rows = module.num_layers * (2 if module.bidirectional else 1)
    h_out = module.proj_size if getattr(module, "proj_size", 0) else module.hidden_size
    h = torch.randn(rows, batch, h_out, generator=gen, dtype=torch.float64).to(dtype)
    if isinstance(module, (nn.LSTM, spikingrnn.SpikingLSTM)):
        c = torch.randn(rows, batch, module.hidden_size, generator=gen, dtype=torch.float64).to(dtype)
        return h, c
    return h


def run_pair(a, b, x, hx):
    """Outputs and final states of two modules on the same input; asserts them equal."""
    ya, sa = a(x, hx)
    yb, sb = b(x, hx)
    assert torch.equal(ya, yb)
    for u, v in zip(sa if isinstance(sa, tuple) else (sa,), sb if isinstance(sb, tuple) else (sb,)):
        assert torch.equal(u, v)
    return ya


# ----------------------------------------------------------------------------- torch.nn <-> spikingrnn

STACK_CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3, bias=False, batch_first=True, dropout=0.25)),
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, proj_size=4)),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True, dropout=0.5)),
    ("GRU", dict(bias=False)),
    ("RNN", dict(num_layers=2, bidirectional=True, nonlinearity="relu")),
    ("RNN", dict(bias=False)),
]


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode,kwargs", STACK_CASES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}={w}" for k, w in v.items()) or "default")
def test_torch_stack_round_trip(mode, kwargs, dtype):
    torch.manual_seed(0)
    source = TORCH[mode](I, H, dtype=dtype, **kwargs).eval()
    spiking = from_torch(source, backend="reference")
    assert type(spiking) is SPIKING[mode]
    for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional"):
        assert getattr(spiking, name) == getattr(source, name), name
    if mode == "LSTM":
        assert spiking.proj_size == source.proj_size
    assert not spiking.training
    assert_same_parameters(source, spiking)

    # the same outputs as a spiking module built directly with the torch state_dict
    direct_kwargs = {k: v for k, v in kwargs.items() if k != "nonlinearity"}
    direct = SPIKING[mode](I, H, dtype=dtype, backend="reference", **direct_kwargs).eval()
    direct.load_state_dict(source.state_dict())
    x = torch.randn(B, T, I, dtype=dtype) * 2 if source.batch_first else torch.randn(T, B, I, dtype=dtype) * 2
    hx = states_for(source, B, dtype)
    y = run_pair(spiking, direct, x, hx)
    assert y.abs().sum() > 0  # spikes fired: the comparison is not vacuous

    # and back: a torch module equal to the source
    back = to_torch(spiking, **({"nonlinearity": source.nonlinearity} if mode == "RNN" else {}))
    assert type(back) is type(source)
    assert repr(back) == repr(source)
    assert not back.training
    assert_same_parameters(source, back)
    run_pair(source, back, x, hx)


CELL_CASES = [(nn.LSTMCell, spikingrnn.SpikingLSTMCell, {}), (nn.LSTMCell, spikingrnn.SpikingLSTMCell, {"bias": False}),
              (nn.GRUCell, spikingrnn.SpikingGRUCell, {}), (nn.GRUCell, spikingrnn.SpikingGRUCell, {"bias": False}),
              (nn.RNNCell, spikingrnn.SpikingRNNCell, {}),
              (nn.RNNCell, spikingrnn.SpikingRNNCell, {"bias": False, "nonlinearity": "relu"})]


@pytest.mark.parametrize("torch_cls,spiking_cls,kwargs", CELL_CASES,
                         ids=[f"{c[0].__name__}-{c[2]}" for c in CELL_CASES])
def test_torch_cell_round_trip(torch_cls, spiking_cls, kwargs):
    torch.manual_seed(0)
    source = torch_cls(I, H, dtype=torch.float64, **kwargs)
    spiking = from_torch(source)
    assert type(spiking) is spiking_cls
    assert (spiking.input_size, spiking.hidden_size, spiking.bias) == (I, H, source.bias)
    assert spiking.training
    assert_same_parameters(source, spiking)

    direct = spiking_cls(I, H, bias=source.bias, dtype=torch.float64)
    direct.load_state_dict(source.state_dict())
    x = torch.randn(B, I, dtype=torch.float64) * 2
    hx = torch.randn(B, H, dtype=torch.float64)
    hx = (hx, torch.randn(B, H, dtype=torch.float64)) if torch_cls is nn.LSTMCell else hx
    ours, theirs = spiking(x, hx), direct(x, hx)
    for u, v in zip(ours if isinstance(ours, tuple) else (ours,), theirs if isinstance(theirs, tuple) else (theirs,)):
        assert torch.equal(u, v)

    back = to_torch(spiking, **({"nonlinearity": source.nonlinearity} if torch_cls is nn.RNNCell else {}))
    assert type(back) is torch_cls and repr(back) == repr(source)
    assert_same_parameters(source, back)


def test_to_torch_rnn_nonlinearity_default_and_choice():
    spiking = spikingrnn.SpikingRNN(I, H)
    assert to_torch(spiking).nonlinearity == "tanh"
    assert to_torch(spiking, nonlinearity="relu").nonlinearity == "relu"
    assert to_torch(spikingrnn.SpikingRNNCell(I, H)).nonlinearity == "tanh"
    with pytest.raises(ValueError, match="tanh"):
        to_torch(spiking, nonlinearity="heaviside")
    with pytest.raises(ValueError, match="SpikingRNN"):
        to_torch(spikingrnn.SpikingLSTM(I, H), nonlinearity="tanh")


def test_from_torch_forwards_spiking_arguments():
    source = nn.LSTM(I, H)
    lstm = from_torch(source, surrogate_function1="atan", surrogate_function2="sigmoid", gates="heaviside",
                      forget_bias=None, cell_state="spike", cell_threshold=0.5,
                      invariant_dropout_mask=True, low_memory=True, backend="reference")
    assert isinstance(lstm.surrogate_function1, spikingrnn.surrogate.ATan)
    assert isinstance(lstm.surrogate_function2, spikingrnn.surrogate.Sigmoid)
    assert (lstm.gates, lstm.forget_bias, lstm.cell_state, lstm.cell_threshold,
            lstm.invariant_dropout_mask, lstm.low_memory, lstm.backend) == \
        ("heaviside", None, "spike", 0.5, True, True, "reference")
    assert from_torch(source, spike_threshold=0.4).spike_threshold == 0.4  # the sigmoid form's threshold
    with pytest.raises(ValueError, match="spike_threshold applies to"):  # the heaviside form has none
        from_torch(source, gates="heaviside", spike_threshold=0.4)
    cell = from_torch(nn.LSTMCell(I, H), cell_state="accumulate")
    assert cell.cell_state == "accumulate" and cell.gates == "sigmoid"
    # the sigmoid form's settings; the weights are torch's, whatever forget_bias says (it only initialises)
    gru_source = nn.GRU(I, H)
    gru = from_torch(gru_source, spike_threshold=0.1, forget_bias=3.0)
    assert (gru.gates, gru.spike_threshold, gru.forget_bias) == ("sigmoid", 0.1, 3.0)
    assert_same_parameters(gru_source, gru)


def test_plain_state_dict_loading_works_both_ways():
    torch.manual_seed(0)
    source = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=3)
    spiking = spikingrnn.SpikingLSTM(I, H, num_layers=2, bidirectional=True, proj_size=3)
    spiking.load_state_dict(source.state_dict())  # strict
    target = nn.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=3)
    target.load_state_dict(spiking.state_dict())  # strict
    assert_same_parameters(source, target)
    cell = spikingrnn.SpikingGRUCell(I, H)
    cell.load_state_dict(nn.GRUCell(I, H).state_dict())
    nn.GRUCell(I, H).load_state_dict(cell.state_dict())


def test_conversion_errors():
    with pytest.raises(TypeError, match=r"torch\.nn\.LSTM, torch\.nn\.GRU, torch\.nn\.RNN, torch\.nn\.LSTMCell"):
        from_torch(nn.Linear(3, 4))
    with pytest.raises(TypeError, match="to_torch"):
        from_torch(spikingrnn.SpikingLSTM(I, H))

    class MyLSTM(nn.LSTM):
        pass

    with pytest.raises(TypeError, match="MyLSTM"):
        from_torch(MyLSTM(I, H))
    with pytest.raises(TypeError, match="hidden_size"):
        from_torch(nn.LSTM(I, H), hidden_size=3)
    with pytest.raises(TypeError, match="cell_state"):
        from_torch(nn.GRU(I, H), cell_state="spike")
    with pytest.raises(TypeError, match=r"spikingrnn\.SpikingLSTM, spikingrnn\.SpikingGRU"):
        to_torch(nn.LSTM(I, H))
    sj = pytest.importorskip("spikingrnn.compat.spikingjelly")
    with pytest.raises(TypeError, match="from_spikingjelly"):
        to_torch(sj.SpikingLSTM(I, H, 1))


# ----------------------------------------------------------------------------- SpikingJelly checkpoints


def make_sj(mode, num_layers, bidirectional, bias=True, seed=0, **kwargs):
    rnn = sj_rnn()
    torch.manual_seed(seed)
    return getattr(rnn, SJ_NAMES[mode])(I, H, num_layers, bias=bias, bidirectional=bidirectional,
                                        **kwargs).to(torch.float64)


def sj_states(mode, num_layers, bidirectional, seed=2):
    """Nonzero initial states in SpikingJelly's direction-major layout, and the same in torch's layer-major one."""
    gen = torch.Generator().manual_seed(seed)
    d = 2 if bidirectional else 1
    count = 2 if mode == "LSTM" else 1
    states = tuple(torch.randn(num_layers * d, B, H, generator=gen, dtype=torch.float64) * 0.5 for _ in range(count))
    order = [direction * num_layers + layer for layer in range(num_layers) for direction in range(d)]
    ours = tuple(s[order] for s in states)
    return (states if count > 1 else states[0]), (ours if count > 1 else ours[0]), order


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_spikingjelly_checkpoint_matches_spikingjelly(tmp_path, mode, num_layers, bidirectional):
    sj_model = make_sj(mode, num_layers, bidirectional).eval()
    path = tmp_path / "sj.pt"
    torch.save(sj_model.state_dict(), path)
    state_dict = torch.load(path, weights_only=True)

    assert infer_spikingjelly_config(state_dict) == {
        "mode": mode, "input_size": I, "hidden_size": H, "num_layers": num_layers,
        "bidirectional": bidirectional, "bias": True}
    converted = convert_spikingjelly_state_dict(state_dict)
    reference = SPIKING[mode](I, H, num_layers=num_layers, bidirectional=bidirectional)
    assert list(converted) == list(reference.state_dict())  # torch's names in torch's order

    # SpikingJelly's default surrogates, which a state dict does not record
    surrogates = {"surrogate_function1": "erf"} if mode == "RNN" else {"surrogate_function1": "erf",
                                                                         "surrogate_function2": None}
    for layout in ("torch", "spikingjelly"):
        for model in (from_spikingjelly(state_dict, backend="reference", layout=layout, **surrogates),
                      from_spikingjelly(path, mode=mode, backend="reference", layout=layout,
                                        **surrogates)):  # straight from the file
            native = layout == "torch"
            assert type(model) is (SPIKING[mode] if native else getattr(compat_sj, SJ_NAMES[mode]))
            assert next(model.parameters()).dtype == torch.float64
            model.eval()
            x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
            for given in (False, True):
                sj_hx, our_hx, order = sj_states(mode, num_layers, bidirectional)
                if not native:  # SpikingJelly's own direction-major layout
                    our_hx, order = sj_hx, list(range(len(order)))
                y_sj, s_sj = sj_model(x, sj_hx if given else None)
                y, s = model(x, our_hx if given else None)
                assert torch.equal(y, y_sj)
                assert ((y_sj == 0).any() and (y_sj == 1).any()), "vacuous: no spikes or only spikes"
                for ours, theirs in zip(s if isinstance(s, tuple) else (s,),
                                        s_sj if isinstance(s_sj, tuple) else (s_sj,)):
                    assert torch.equal(ours, theirs[order])


def test_spikingjelly_layout_must_be_chosen_where_the_layouts_differ(tmp_path):
    """A bidirectional multi-layer model's (h0, c0) means different things in the two layouts."""
    sj_model = make_sj("LSTM", 2, True).eval()
    kwargs = dict(surrogate_function1="erf", surrogate_function2=None, backend="reference")
    with pytest.raises(ValueError, match="layout='spikingjelly'.*layout='torch'"):
        from_spikingjelly(sj_model.state_dict(), **kwargs)
    with pytest.raises(ValueError, match="layout must be 'torch', 'spikingjelly' or None"):
        from_spikingjelly(sj_model.state_dict(), layout="sj", **kwargs)
    # where they agree, the torch.nn layout is taken without asking
    assert type(from_spikingjelly(make_sj("LSTM", 1, True).state_dict(), **kwargs)) is spikingrnn.SpikingLSTM
    assert type(from_spikingjelly(make_sj("LSTM", 2, False).state_dict(), **kwargs)) is spikingrnn.SpikingLSTM


@pytest.mark.parametrize("mode,given", [("LSTM", {"surrogate_function1": "erf"}), ("GRU", {}), ("RNN", {})])
def test_a_state_dict_needs_its_surrogates_given(tmp_path, mode, given):
    """A file does not record the surrogates: a guessed one would silently change the gradients."""
    path = tmp_path / "sj.pt"
    torch.save(make_sj(mode, 1, False).state_dict(), path)
    with pytest.raises(ValueError, match="does not record the surrogate functions.*Erf"):
        from_spikingjelly(path, **given)
    atan = from_spikingjelly(path, surrogate_function1="atan", **({} if mode == "RNN" else
                                                                   {"surrogate_function2": None}))
    assert type(atan.surrogate_function1) is spikingrnn.surrogate.ATan


def test_spikingjelly_lstm_keeps_its_cell_rule():
    model = from_spikingjelly(make_sj("LSTM", 1, False).state_dict(), surrogate_function1="erf",
                              surrogate_function2=None)
    assert model.cell_state == "clamp"


def test_from_spikingjelly_module_carries_dropout_surrogates_and_mode():
    surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    sj_model = make_sj("LSTM", 2, True, dropout_p=0.3, invariant_dropout_mask=True,
                       surrogate_function1=surrogate.ATan(alpha=3.0),
                       surrogate_function2=surrogate.Sigmoid(alpha=5.0))
    model = from_spikingjelly(sj_model, backend="reference", layout="torch")
    assert model.training and model.dropout == 0.3 and model.invariant_dropout_mask
    assert type(model.surrogate_function1) is spikingrnn.surrogate.ATan and model.surrogate_function1.alpha == 3.0
    assert type(model.surrogate_function2) is spikingrnn.surrogate.Sigmoid and model.surrogate_function2.alpha == 5.0
    overridden = from_spikingjelly(sj_model, surrogate_function1="erf", dropout=0.0, layout="torch")
    assert type(overridden.surrogate_function1) is spikingrnn.surrogate.Erf and overridden.dropout == 0.0

    # the translated surrogates give SpikingJelly's gradients
    sj_model.eval()
    model.eval()
    x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 2
    x_sj, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_sj, _ = sj_model(x_sj)
    y, _ = model(x_ours)
    assert torch.equal(y, y_sj)
    y_sj.sum().backward()
    y.sum().backward()
    assert x_sj.grad.abs().sum() > 0
    torch.testing.assert_close(x_ours.grad, x_sj.grad, rtol=1e-10, atol=1e-10)

    rnn_model = from_spikingjelly(make_sj("RNN", 1, False, surrogate_function=surrogate.PiecewiseExp(alpha=1.7)))
    assert type(rnn_model) is spikingrnn.SpikingRNN
    assert type(rnn_model.surrogate_function1) is spikingrnn.surrogate.PiecewiseExp
    assert rnn_model.surrogate_function1.alpha == 1.7


def test_from_spikingjelly_accepts_spikingrnn_compat_modules():
    compat = pytest.importorskip("spikingrnn.compat.spikingjelly")
    torch.manual_seed(0)
    source = compat.SpikingGRU(I, H, 2, bidirectional=True, bias=False).eval()
    source.backend = "reference"  # keep the test free of the cpu backend's C++ build
    model = from_spikingjelly(source, backend="reference", layout="torch")
    assert type(model) is spikingrnn.SpikingGRU and not model.bias and not model.training
    x = torch.randn(T, B, I) * 2
    assert torch.equal(model(x)[0], source(x)[0])


def test_data_parallel_prefix_and_nesting():
    sj_model = make_sj("GRU", 2, True)
    expected = convert_spikingjelly_state_dict(sj_model.state_dict())
    wrapped = nn.DataParallel(sj_model)  # works without GPUs; only its state_dict naming matters here
    dp_state = wrapped.state_dict()
    assert all(k.startswith("module.") for k in dp_state)
    containers = [dp_state, {"epoch": 7, "state_dict": dp_state}, {"model": sj_model.state_dict()},
                  {"model": {"state_dict": dp_state}, "optimizer": {"lr": 0.1}},
                  OrderedDict(("module.module." + k, v) for k, v in sj_model.state_dict().items())]
    for container in containers:
        converted = convert_spikingjelly_state_dict(container)
        assert list(converted) == list(expected)
        assert all(torch.equal(converted[k], expected[k]) for k in expected)
    model = from_spikingjelly(wrapped, layout="torch")
    assert type(model) is spikingrnn.SpikingGRU and model.bidirectional and model.num_layers == 2

    # an RNN inside a larger model: pick it with prefix=
    larger = {"module.encoder.rnn." + k: v for k, v in sj_model.state_dict().items()}
    larger["module.head.weight"] = torch.zeros(2, 2 * H)
    with pytest.raises(ValueError, match="'encoder.rnn.cells.0.linear_ih.weight'.*prefix="):
        convert_spikingjelly_state_dict(larger)
    assert list(convert_spikingjelly_state_dict(larger, prefix="encoder.rnn.")) == list(expected)
    assert from_spikingjelly({"model": larger}, prefix="encoder.rnn.", layout="torch", surrogate_function1="erf",
                             surrogate_function2=None).hidden_size == H
    with pytest.raises(ValueError, match="decoder"):
        convert_spikingjelly_state_dict(larger, prefix="decoder.")


def _sj_state(mode="GRU", num_layers=2, bidirectional=True, bias=True):
    return OrderedDict(make_sj(mode, num_layers, bidirectional, bias).state_dict())


@pytest.mark.parametrize("case", [
    "unknown_key", "unknown_suffix", "missing_bias", "missing_layer_weight", "wrong_input_size_l1",
    "wrong_bias_shape", "wrong_hh_rows", "reverse_beyond_forward", "only_reverse", "non_tensor", "int_tensor",
    "leading_zero_layer"])
def test_spikingjelly_conversion_errors_name_the_key(case):
    state = _sj_state()
    gates = 3 * H
    if case == "unknown_key":
        bad, key, error = dict(state, **{"classifier.weight": torch.zeros(2, 2)}), "'classifier.weight'", ValueError
    elif case == "unknown_suffix":
        bad, key, error = dict(state, **{"cells.0.linear_xh.weight": torch.zeros(2)}), "'cells.0.linear_xh.weight'", \
            ValueError
    elif case == "missing_bias":
        bad = OrderedDict((k, v) for k, v in state.items() if k != "cells.1.linear_hh.bias")
        key, error = "'cells.1.linear_hh.bias'", ValueError
    elif case == "missing_layer_weight":
        bad = OrderedDict((k, v) for k, v in state.items() if k != "cells_reverse.0.linear_ih.weight")
        key, error = "'cells_reverse.0.linear_ih.weight'", ValueError
    elif case == "wrong_input_size_l1":
        bad = dict(state, **{"cells.1.linear_ih.weight": torch.zeros(gates, H, dtype=torch.float64)})
        key, error = r"'cells.1.linear_ih.weight' has shape \(21, 7\), expected \(21, 14\)", ValueError
    elif case == "wrong_bias_shape":
        bad = dict(state, **{"cells_reverse.1.linear_ih.bias": torch.zeros(gates + 1, dtype=torch.float64)})
        key, error = "'cells_reverse.1.linear_ih.bias'", ValueError
    elif case == "wrong_hh_rows":
        bad = dict(state, **{"cells.0.linear_hh.weight": torch.zeros(2 * H, H, dtype=torch.float64)})
        key, error = "'cells.0.linear_hh.weight'.*not 4, 3 or 1 times", ValueError
    elif case == "reverse_beyond_forward":
        bad = dict(state, **{"cells_reverse.2.linear_ih.weight": torch.zeros(gates, 2 * H, dtype=torch.float64)})
        key, error = "'cells_reverse.2.linear_ih.weight'", ValueError
    elif case == "only_reverse":
        bad = {k: v for k, v in state.items() if k.startswith("cells_reverse.")}
        key, error = "forward", ValueError
    elif case == "non_tensor":
        bad = dict(state, **{"cells.0.linear_ih.bias": [0.0] * gates})
        key, error = "'cells.0.linear_ih.bias'", TypeError
    elif case == "int_tensor":
        bad = dict(state, **{"cells.0.linear_hh.bias": torch.zeros(gates, dtype=torch.int64)})
        key, error = "'cells.0.linear_hh.bias'.*floating", TypeError
    else:
        bad = dict(state, **{"cells.01.linear_ih.weight": state["cells.1.linear_ih.weight"]})
        key, error = "'cells.01.linear_ih.weight'", ValueError
    with pytest.raises(error, match=key):
        convert_spikingjelly_state_dict(bad)
    with pytest.raises(error, match=key):
        from_spikingjelly(bad)


def test_spikingjelly_mode_checks():
    gru = _sj_state("GRU")
    assert infer_spikingjelly_config(gru, mode="gru")["mode"] == "GRU"
    with pytest.raises(ValueError, match=r"mode='LSTM' expects 4 x hidden_size = 28 rows in "
                                         r"'cells.0.linear_hh.weight'.*a GRU"):
        convert_spikingjelly_state_dict(gru, mode="LSTM")
    with pytest.raises(ValueError, match="'cells.0.linear_hh.weight'.*an LSTM"):
        # an early clock_driven unidirectional SpikingGRU held SpikingLSTMCell weights (4H rows)
        from_spikingjelly(_sj_state("LSTM", bidirectional=False), mode="GRU")
    assert infer_spikingjelly_config(_sj_state("RNN", 1, False, bias=False), mode="VanillaRNN") == {
        "mode": "RNN", "input_size": I, "hidden_size": H, "num_layers": 1, "bidirectional": False, "bias": False}
    with pytest.raises(ValueError, match="mode must be"):
        convert_spikingjelly_state_dict(gru, mode="transformer")
    with pytest.raises(ValueError, match="empty"):
        convert_spikingjelly_state_dict({})
    with pytest.raises(TypeError, match="hidden_size"):
        from_spikingjelly(gru, hidden_size=3)
    with pytest.raises(ValueError, match="'cells.0.linear_ih.weight' and 'module.cells.0.linear_ih.weight'"):
        duplicated = dict(gru, **{"module.cells.0.linear_ih.weight": gru["cells.0.linear_ih.weight"]})
        convert_spikingjelly_state_dict(duplicated)
    # a module's class names its mode
    assert type(from_spikingjelly(make_sj("GRU", 1, False))) is spikingrnn.SpikingGRU
    with pytest.raises(TypeError, match="expected a state dict"):
        unwrap_state_dict(42)
