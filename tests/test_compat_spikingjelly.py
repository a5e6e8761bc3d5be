"""spikingrnn.compat.spikingjelly as a drop-in for SpikingJelly 2.0's ``activation_based.rnn``.

Compat classes against SpikingJelly's with the same weights (state_dicts are interchangeable):
identical outputs/states, gradients within 1e-5 relative; SpikingJelly's return types, state
forms, constructor signatures and extension API (custom ``base_cell()``/``states_num()``,
subclassed cells); and regression tests of SpikingJelly bugs fixed here (one default surrogate
object shared by every cell and model, unvalidated states).
"""
import inspect

import pytest
import torch
from torch import nn

sj_rnn = pytest.importorskip("spikingjelly.activation_based.rnn")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

import spikingrnn  # noqa: E402
from spikingrnn.compat import spikingjelly as compat  # noqa: E402
from sj_helpers import MODES, SJ_CLASS_NAMES, Config, compare_with_sj, make_inputs, pack_states  # noqa: E402

SURROGATE_ARGS = {"surrogate_function", "surrogate_function1", "surrogate_function2"}
PUBLIC_NAMES = ["directional_rnn_cell_forward", "bidirectional_rnn_cell_forward", "SpikingRNNCellBase",
                "SpikingRNNBase", "SpikingLSTMCell", "SpikingLSTM", "SpikingVanillaRNNCell",
                "SpikingVanillaRNN", "SpikingGRUCell", "SpikingGRU"]
CELL_NAMES = {"LSTM": "SpikingLSTMCell", "GRU": "SpikingGRUCell", "RNN": "SpikingVanillaRNNCell"}


def build_pair(cfg: Config, *surrogates, compat_surrogates=None, **kwargs):
    """SpikingJelly's model and the compat one loaded with its state_dict (strict).

    ``surrogates`` are passed positionally after ``bidirectional`` to SpikingJelly's class;
    ``compat_surrogates`` (default: the same objects) to the compat one. The compat model runs
    the reference backend, which repeats SpikingJelly's float operations in its order, so that
    float32 spikes are bitwise comparable; ``test_float64`` covers the default (cpu) backend.
    """
    compat_surrogates = surrogates if compat_surrogates is None else compat_surrogates
    name = SJ_CLASS_NAMES[cfg.mode]
    torch.manual_seed(1234)
    args = (cfg.I, cfg.H, cfg.num_layers, cfg.bias, kwargs.pop("dropout_p", 0), False, cfg.bidirectional)
    sj_model = getattr(sj_rnn, name)(*args, *surrogates, **kwargs).to(cfg.dtype)
    model = getattr(compat, name)(*args, *compat_surrogates, **kwargs).to(cfg.dtype)
    model.load_state_dict(sj_model.state_dict())
    model.backend = "reference"
    return sj_model, model


# ------------------------------------------------------------------------------ numerics


@pytest.mark.parametrize("with_states", [False, True], ids=["zero_states", "given_states"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("mode", MODES)
def test_matches_spikingjelly(mode, num_layers, bidirectional, bias, with_states):
    cfg = Config(mode, num_layers, bidirectional, bias)
    sj_model, model = build_pair(cfg)
    compare_with_sj(sj_model, model, cfg, with_states=with_states, layout="sj")


@pytest.mark.parametrize("backend", ["reference", "auto", "cpu"])
@pytest.mark.parametrize("mode", MODES)
def test_float64(mode, backend):
    cfg = Config(mode, num_layers=2, bidirectional=True, dtype=torch.float64)
    sj_model, model = build_pair(cfg)
    model.backend = backend
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")


@pytest.mark.parametrize("mode", MODES)
def test_compat_surrogate_module_matches_spikingjelly_surrogate(mode):
    """``from spikingrnn.compat.spikingjelly import surrogate`` replaces SpikingJelly's."""
    assert compat.surrogate is spikingrnn.surrogate
    cfg = Config(mode, num_layers=2, bidirectional=True)
    if mode == "RNN":
        sj_args, compat_args = (sj_surrogate.ATan(alpha=3.0),), (compat.surrogate.ATan(alpha=3.0),)
    else:
        sj_args = (sj_surrogate.ATan(alpha=3.0), sj_surrogate.Sigmoid(alpha=5.0))
        compat_args = (compat.surrogate.ATan(alpha=3.0), compat.surrogate.Sigmoid(alpha=5.0))
    sj_model, model = build_pair(cfg, *sj_args, compat_surrogates=compat_args)
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")


@pytest.mark.parametrize("make_surrogate", [lambda: sj_surrogate.ATan(alpha=3.0),
                                            lambda: sj_surrogate.QPseudoSpike(alpha=2.5),
                                            lambda: sj_surrogate.PiecewiseLeakyReLU(w=0.8, c=0.05)],
                         ids=["ATan", "QPseudoSpike", "PiecewiseLeakyReLU"])
@pytest.mark.parametrize("mode", MODES)
def test_spikingjelly_surrogate_objects_work(mode, make_surrogate):
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_model, model = build_pair(cfg, make_surrogate(), compat_surrogates=(make_surrogate(),))
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")


@pytest.mark.parametrize("mode", MODES)
def test_smooth_mode(mode):
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_model, model = build_pair(cfg, sj_surrogate.ATan(alpha=3.0, spiking=False),
                                 compat_surrogates=(compat.surrogate.ATan(alpha=3.0, spiking=False),))
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj", exact=False)


@pytest.mark.parametrize("mode", MODES)
def test_dropout(mode):
    """Eval mode ignores dropout; in training the same seed draws the same masks as SpikingJelly
    (per-step masks: both call ``F.dropout`` on each layer's output in the same order)."""
    cfg = Config(mode, num_layers=3, bidirectional=True)
    sj_model, model = build_pair(cfg, dropout_p=0.5)
    compare_with_sj(sj_model.eval(), model.eval(), cfg, with_states=True, layout="sj")
    x = make_inputs(cfg)[0]
    sj_model.train()
    model.train()
    torch.manual_seed(7)
    y_sj = sj_model(x)[0]
    torch.manual_seed(7)
    y = model(x)[0]
    torch.manual_seed(8)
    assert not torch.equal(model(x)[0], y), "dropout had no effect in training mode"
    assert torch.equal(y, y_sj)


@pytest.mark.parametrize("mode", MODES)
def test_single_cells_match_spikingjelly(mode):
    cfg = Config(mode)
    torch.manual_seed(0)
    sj_cell = getattr(sj_rnn, CELL_NAMES[mode])(cfg.I, cfg.H)
    cell = getattr(compat, CELL_NAMES[mode])(cfg.I, cfg.H)
    cell.load_state_dict(sj_cell.state_dict())
    x, states, _, _ = make_inputs(cfg)
    state = tuple(s[0] for s in states) if mode == "LSTM" else states[0][0]
    for given in (None, state):
        out_sj, out = sj_cell(x[0], given), cell(x[0], given)
        for a, b in zip(out_sj if mode == "LSTM" else (out_sj,), out if mode == "LSTM" else (out,)):
            assert torch.equal(a, b)
    assert type(out) is type(out_sj)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode", MODES)
def test_cell_forward_functions_match_spikingjelly(mode, bidirectional):
    cfg = Config(mode)
    torch.manual_seed(0)
    sj_cells = [getattr(sj_rnn, CELL_NAMES[mode])(cfg.I, cfg.H) for _ in range(2)]
    cells = [getattr(compat, CELL_NAMES[mode])(cfg.I, cfg.H) for _ in range(2)]
    for cell, sj_cell in zip(cells, sj_cells):
        cell.load_state_dict(sj_cell.state_dict())
    x, states, _, _ = make_inputs(cfg)
    state = torch.stack([s[0] for s in states]) if mode == "LSTM" else states[0][0]
    if bidirectional:
        expected = sj_rnn.bidirectional_rnn_cell_forward(*sj_cells, x, state, state * 0.5)
        actual = compat.bidirectional_rnn_cell_forward(*cells, x, state, state * 0.5)
    else:
        expected = sj_rnn.directional_rnn_cell_forward(sj_cells[0], x, state)
        actual = compat.directional_rnn_cell_forward(cells[0], x, state)
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        a, b = (torch.stack(tuple(v)) if isinstance(v, tuple) else v for v in (a, b))
        assert torch.equal(a, b)


def test_cell_forward_function_rejects_bad_states():
    cell = compat.SpikingGRUCell(5, 7)
    with pytest.raises(ValueError, match="states"):
        compat.directional_rnn_cell_forward(cell, torch.randn(6, 3, 5), torch.zeros(7))
    with pytest.raises(ValueError, match="states"):
        compat.bidirectional_rnn_cell_forward(cell, cell, torch.randn(6, 3, 5), torch.zeros(3, 7),
                                              torch.zeros(1, 3, 7))


@pytest.mark.parametrize("mode", MODES)
def test_surrogates_replaced_per_cell(mode):
    """Users set a cell's surrogate after construction; each cell must use its own."""
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_model, model = build_pair(cfg, *([sj_surrogate.Erf()] if mode == "RNN" else [sj_surrogate.Erf(), None]))
    attribute = "surrogate_function" if mode == "RNN" else "surrogate_function1"
    choices = [("ATan", 3.0), ("Sigmoid", 5.0), ("Rect", 0.7), ("SoftSign", 2.5)]
    for net, library in ((sj_model, sj_surrogate), (model, compat.surrogate)):
        for cell, (name, alpha) in zip([*net.cells, *net.cells_reverse], choices):
            setattr(cell, attribute, getattr(library, name)(alpha=alpha))
    if mode == "LSTM":
        model.cells[1].surrogate_function2 = compat.surrogate.PiecewiseExp(alpha=1.7)
        sj_model.cells[1].surrogate_function2 = sj_surrogate.PiecewiseExp(alpha=1.7)
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")


# ------------------------------------------------------------------------------ interface


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode", MODES)
def test_state_dicts_are_interchangeable(mode, bidirectional):
    cfg = Config(mode, num_layers=2, bidirectional=bidirectional, bias=True)
    name = SJ_CLASS_NAMES[cfg.mode]
    torch.manual_seed(0)
    sj_model = getattr(sj_rnn, name)(cfg.I, cfg.H, cfg.num_layers, bidirectional=bidirectional)
    model = getattr(compat, name)(cfg.I, cfg.H, cfg.num_layers, bidirectional=bidirectional)
    sj_state, state = sj_model.state_dict(), model.state_dict()
    assert list(state) == list(sj_state)
    assert all(state[k].shape == sj_state[k].shape for k in state)
    # compat -> SpikingJelly, strict; then both compute the same
    sj_model.load_state_dict(state)
    assert all(torch.equal(sj_model.state_dict()[k], state[k]) for k in state)
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")
    # SpikingJelly -> compat, strict
    torch.manual_seed(1)
    other = getattr(sj_rnn, name)(cfg.I, cfg.H, cfg.num_layers, bidirectional=bidirectional)
    model.load_state_dict(other.state_dict())
    compare_with_sj(other, model, cfg, with_states=True, layout="sj")


@pytest.mark.parametrize("mode", MODES)
def test_return_types_match_spikingjelly(mode):
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_model, model = build_pair(cfg)
    x = make_inputs(cfg)[0]
    out_sj, out = sj_model(x), model(x)
    assert type(out) is type(out_sj) is tuple and len(out) == len(out_sj) == 2
    y, states = out
    assert isinstance(y, torch.Tensor) and y.shape == (cfg.T, cfg.B, 2 * cfg.H)
    if mode == "LSTM":
        assert type(states) is type(out_sj[1]) is tuple and len(states) == 2
        assert all(isinstance(s, torch.Tensor) and s.shape == (cfg.rows, cfg.B, cfg.H) for s in states)
    else:
        assert isinstance(states, torch.Tensor) and isinstance(out_sj[1], torch.Tensor)
        assert states.shape == out_sj[1].shape == (cfg.rows, cfg.B, cfg.H)


@pytest.mark.parametrize("mode", ["GRU", "RNN"])
def test_single_state_accepted_as_tuple(mode):
    """SpikingJelly also takes ``(h,)`` for a one-state model."""
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_model, model = build_pair(cfg)
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj", state_form="tuple")


@pytest.mark.parametrize("mode", MODES)
def test_returned_states_feed_back(mode):
    """``y, s = net(x); net(x, s)`` works as in SpikingJelly (chunked sequences)."""
    cfg = Config(mode, num_layers=2, bidirectional=True)
    sj_model, model = build_pair(cfg)
    x = make_inputs(cfg)[0]
    y_sj, s_sj = sj_model(x[:3])
    y, s = model(x[:3])
    y_sj, s_sj = sj_model(x[3:], s_sj)
    y, s = model(x[3:], s)
    assert torch.equal(y, y_sj)
    for a, b in zip(s if mode == "LSTM" else (s,), s_sj if mode == "LSTM" else (s_sj,)):
        assert torch.equal(a, b)


def test_lstm_rejects_single_tensor_state_like_spikingjelly():
    cfg = Config("LSTM", num_layers=2)
    sj_model, model = build_pair(cfg)
    x, states, _, _ = make_inputs(cfg)
    for net in (sj_model, model):
        with pytest.raises(ValueError, match="states"):
            net(x, states[0])


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_signatures_match_spikingjelly(name):
    sj_obj, obj = getattr(sj_rnn, name), getattr(compat, name)
    functions = [("__init__", sj_obj.__init__, obj.__init__)] if inspect.isclass(sj_obj) else [(name, sj_obj, obj)]
    if inspect.isclass(sj_obj) and "forward" in vars(sj_obj):
        functions.append(("forward", sj_obj.forward, obj.forward))
    for what, sj_fn, fn in functions:
        sj_params = list(inspect.signature(sj_fn).parameters.values())
        params = list(inspect.signature(fn).parameters.values())
        assert [(p.name, p.kind) for p in params] == [(p.name, p.kind) for p in sj_params], what
        for p, sj_p in zip(params, sj_params):
            if p.name in SURROGATE_ARGS:  # SpikingJelly's default is a shared Erf(); ours a fresh one
                assert (p.default is inspect.Parameter.empty) == (sj_p.default is inspect.Parameter.empty)
            else:
                assert p.default == sj_p.default, f"{what}: default of {p.name}"


@pytest.mark.parametrize("mode", MODES)
def test_static_methods_match_spikingjelly(mode):
    cls, sj_cls = getattr(compat, SJ_CLASS_NAMES[mode]), getattr(sj_rnn, SJ_CLASS_NAMES[mode])
    assert cls.states_num() == sj_cls.states_num()
    assert cls.base_cell() is getattr(compat, CELL_NAMES[mode])
    assert issubclass(cls, compat.SpikingRNNBase) and issubclass(cls.base_cell(), compat.SpikingRNNCellBase)


@pytest.mark.parametrize("mode", MODES)
def test_positional_construction(mode):
    """Every argument positionally, in SpikingJelly's order."""
    name = SJ_CLASS_NAMES[mode]
    surrogates = (compat.surrogate.ATan(),) if mode == "RNN" else (compat.surrogate.ATan(), compat.surrogate.Sigmoid())
    net = getattr(compat, name)(5, 7, 2, False, 0.25, True, True, *surrogates)
    assert (net.input_size, net.hidden_size, net.num_layers, net.bias, net.dropout_p,
            net.invariant_dropout_mask, net.bidirectional) == (5, 7, 2, False, 0.25, True, True)
    cell = net.cells_reverse[1]
    if mode == "RNN":
        assert cell.surrogate_function is surrogates[0]
    else:
        assert (cell.surrogate_function1, cell.surrogate_function2) == surrogates
    assert cell.linear_ih.in_features == 14 and cell.linear_ih.bias is None
    assert cell.weight_ih() is cell.linear_ih.weight and cell.bias_hh() is None


# ------------------------------------------------------------------------------ extension API


class LeakySpikingCell(nn.Module):
    """A user-defined two-state cell: leaky membrane ``v`` reset by the spike ``s``.

    ``v' = decay * v * (1 - s) + W_ih x + W_hh s``, ``s' = Θ(v' - threshold)``; states ``[s, v]``.
    """

    def __init__(self, input_size, hidden_size, bias=True, decay=0.5, threshold=0.3, surrogate_function=None):
        super().__init__()
        self.linear_ih = nn.Linear(input_size, hidden_size, bias=bias)
        self.linear_hh = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.decay, self.threshold = decay, threshold
        self.surrogate_function = surrogate_function or spikingrnn.surrogate.ATan()

    def forward(self, x, states):
        s, v = states[0], states[1]
        v = self.decay * v * (1.0 - s) + self.linear_ih(x) + self.linear_hh(s)
        return torch.stack((self.surrogate_function(v - self.threshold), v))


class ThresholdSpikingCell(nn.Module):
    """A user-defined one-state cell: ``h' = Θ(W_ih x + W_hh h - threshold)``."""

    def __init__(self, input_size, hidden_size, bias=True, threshold=0.2):
        super().__init__()
        self.linear_ih = nn.Linear(input_size, hidden_size, bias=bias)
        self.linear_hh = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.threshold = threshold
        self.surrogate_function = spikingrnn.surrogate.Sigmoid()

    def forward(self, x, h):
        return self.surrogate_function(self.linear_ih(x) + self.linear_hh(h) - self.threshold)


def stack_class(base, cell, num):
    class Stack(base):
        @staticmethod
        def base_cell():
            return cell

        @staticmethod
        def states_num():
            return num

    return Stack


@pytest.mark.parametrize("with_states", [False, True], ids=["zero_states", "given_states"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=lambda n: f"L{n}")
@pytest.mark.parametrize("cell,num", [(LeakySpikingCell, 2), (ThresholdSpikingCell, 1)], ids=["leaky", "threshold"])
def test_custom_cell_matches_spikingjelly_base(cell, num, num_layers, bidirectional, with_states):
    cfg = Config("custom", num_layers, bidirectional, num_states=num)
    torch.manual_seed(0)
    sj_model = stack_class(sj_rnn.SpikingRNNBase, cell, num)(cfg.I, cfg.H, num_layers, bidirectional=bidirectional)
    model = stack_class(compat.SpikingRNNBase, cell, num)(cfg.I, cfg.H, num_layers, bidirectional=bidirectional)
    model.load_state_dict(sj_model.state_dict())
    compare_with_sj(sj_model, model, cfg, with_states=with_states, layout="sj")


def test_custom_cell_gets_extra_constructor_arguments():
    cfg = Config("custom", num_layers=2, bidirectional=True, num_states=2)
    kwargs = dict(decay=0.8, threshold=0.1)
    torch.manual_seed(0)
    sj_model = stack_class(sj_rnn.SpikingRNNBase, LeakySpikingCell, 2)(cfg.I, cfg.H, 2, True, 0, False, True, **kwargs)
    model = stack_class(compat.SpikingRNNBase, LeakySpikingCell, 2)(cfg.I, cfg.H, 2, True, 0, False, True, **kwargs)
    assert all(c.decay == 0.8 and c.threshold == 0.1 for c in [*model.cells, *model.cells_reverse])
    model.load_state_dict(sj_model.state_dict())
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")


def make_leaky_cell_class(cell_base):
    """The leaky cell written on a library's ``SpikingRNNCellBase``, as a SpikingJelly user would."""

    class Leaky(cell_base):
        def __init__(self, input_size, hidden_size, bias=True):
            super().__init__(input_size, hidden_size, bias)
            self.linear_ih = nn.Linear(input_size, hidden_size, bias=bias)
            self.linear_hh = nn.Linear(hidden_size, hidden_size, bias=bias)
            self.surrogate_function = spikingrnn.surrogate.ATan()
            self.reset_parameters()

        def forward(self, x, states):
            s, v = states[0], states[1]
            v = 0.5 * v * (1.0 - s) + x @ self.weight_ih().T + self.bias_ih() + s @ self.weight_hh().T + self.bias_hh()
            return self.surrogate_function(v - 0.3), v  # a tuple of states works too

    return Leaky


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_custom_cell_on_cell_base(bidirectional):
    cfg = Config("custom", num_layers=2, bidirectional=bidirectional, num_states=2)
    torch.manual_seed(0)
    sj_model = stack_class(sj_rnn.SpikingRNNBase, make_leaky_cell_class(sj_rnn.SpikingRNNCellBase), 2)(
        cfg.I, cfg.H, 2, bidirectional=bidirectional)
    model = stack_class(compat.SpikingRNNBase, make_leaky_cell_class(compat.SpikingRNNCellBase), 2)(
        cfg.I, cfg.H, 2, bidirectional=bidirectional)
    model.load_state_dict(sj_model.state_dict())
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")


def halved_output_cell(cell_class):
    """A subclass of a built-in LSTM cell that halves ``h``."""

    class Halved(cell_class):
        calls = 0

        def forward(self, x, hc=None):
            type(self).calls += 1
            h, c = super().forward(x, hc)
            return h * 0.5, c

    return Halved


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_subclassed_builtin_cell(bidirectional):
    cfg = Config("LSTM", num_layers=2, bidirectional=bidirectional)
    sj_cell, cell = halved_output_cell(sj_rnn.SpikingLSTMCell), halved_output_cell(compat.SpikingLSTMCell)

    class SJNet(sj_rnn.SpikingLSTM):
        @staticmethod
        def base_cell():
            return sj_cell

    class Net(compat.SpikingLSTM):
        @staticmethod
        def base_cell():
            return cell

    torch.manual_seed(0)
    sj_model = SJNet(cfg.I, cfg.H, 2, bidirectional=bidirectional)
    model = Net(cfg.I, cfg.H, 2, bidirectional=bidirectional)
    model.load_state_dict(sj_model.state_dict())
    assert all(type(c) is cell for c in model.cells)
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")
    assert cell.calls == cfg.T * cfg.rows  # the override ran for every step of every cell
    # and it changed the result: the plain compat LSTM with the same weights differs
    plain = compat.SpikingLSTM(cfg.I, cfg.H, 2, bidirectional=bidirectional)
    plain.load_state_dict(model.state_dict())
    x = make_inputs(cfg)[0]
    assert not torch.equal(plain(x)[0], model(x)[0])


def test_subclassed_builtin_gru_cell_with_same_behaviour():
    """A subclass that only observes (counts) still gives the built-in GRU's result."""
    class CountingGRUCell(compat.SpikingGRUCell):
        calls = 0

        def forward(self, x, h=None):
            CountingGRUCell.calls += 1
            return super().forward(x, h)

    class Net(compat.SpikingGRU):
        @staticmethod
        def base_cell():
            return CountingGRUCell

    cfg = Config("GRU", num_layers=2, bidirectional=True)
    sj_model, _ = build_pair(cfg)
    model = Net(cfg.I, cfg.H, 2, bidirectional=True)
    model.load_state_dict(sj_model.state_dict())
    compare_with_sj(sj_model, model, cfg, with_states=True, layout="sj")
    assert CountingGRUCell.calls == cfg.T * cfg.rows


# ------------------------------------------------------------------------------ fixed SpikingJelly bugs


def _surrogate_of(cell):
    return cell.surrogate_function if isinstance(cell, compat.SpikingVanillaRNNCell) else cell.surrogate_function1


def _surrogates(net):
    return [_surrogate_of(c) for c in [*net.cells, *(net.cells_reverse if net.bidirectional else [])]]


@pytest.mark.parametrize("mode", MODES)
def test_default_surrogate_is_fresh_per_cell_and_model(mode):
    """SpikingJelly's default ``surrogate.Erf()`` is one object shared by every cell of every model."""
    cls = getattr(compat, SJ_CLASS_NAMES[mode])
    a, b = cls(5, 7, 2, bidirectional=True), cls(5, 7, 2)
    assert a.cells[0] is not a.cells[1]
    assert _surrogates(a)[0] is not _surrogates(a)[1]
    objects = _surrogates(a) + _surrogates(b)
    assert len({id(s) for s in objects}) == len(objects) == 6
    assert all(type(s) is spikingrnn.surrogate.Erf and s.alpha == 2.0 and s.spiking for s in objects)
    assert getattr(a.cells[0], "surrogate_function2", None) is None  # None means "same as the first"
    cell_cls = getattr(compat, CELL_NAMES[mode])
    assert _surrogate_of(cell_cls(5, 7)) is not _surrogate_of(cell_cls(5, 7))


@pytest.mark.parametrize("mode", MODES)
def test_changing_one_models_surrogate_leaves_others_alone(mode):
    cfg = Config(mode, num_layers=2)
    cls = getattr(compat, SJ_CLASS_NAMES[mode])
    torch.manual_seed(0)
    a = cls(cfg.I, cfg.H, 2)
    b = cls(cfg.I, cfg.H, 2)
    b.load_state_dict(a.state_dict())
    x = make_inputs(cfg)[0]
    y_before = b(x)[0]
    for s in _surrogates(a)[:1]:  # layer 0 of model a only
        s.set_spiking_mode(False)
    assert not torch.equal(a(x)[0], y_before)
    assert torch.equal(b(x)[0], y_before)
    assert _surrogates(a)[1].spiking


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_mismatched_spiking_modes_raise_value_error(mode):
    cls = getattr(compat, SJ_CLASS_NAMES[mode])
    with pytest.raises(ValueError, match="spiking"):
        cls(5, 7, 1, True, 0, False, False, compat.surrogate.ATan(spiking=True), compat.surrogate.ATan(spiking=False))


def _bad_states(mode):
    """``(description, states)`` SpikingJelly mishandles; each must raise a clear error."""
    cfg = Config(mode, num_layers=2, bidirectional=True)
    good = make_inputs(cfg)[1]
    shape = (cfg.rows, cfg.B, cfg.H)
    cases = [
        ("too many states", (*good, good[0])),
        ("wrong row count", pack_states(tuple(torch.zeros(cfg.rows - 1, cfg.B, cfg.H) for _ in good))),
        ("wrong batch size", pack_states(tuple(torch.zeros(cfg.rows, cfg.B + 1, cfg.H) for _ in good))),
        ("wrong hidden size", pack_states(tuple(torch.zeros(cfg.rows, cfg.B, cfg.H + 1) for _ in good))),
        ("wrong dtype", pack_states(tuple(torch.zeros(shape, dtype=torch.float64) for _ in good))),
        ("4-D tensor", torch.zeros(1, *shape)),
        ("2-D tensor", torch.zeros(cfg.B, cfg.H)),
        ("a number", 0.0),
        ("a string", "zeros"),
        ("non-tensor items", tuple([[0.0]] * len(good))),
    ]
    if mode == "LSTM":
        cases.append(("mismatched h and c", (good[0], torch.zeros(cfg.rows, cfg.B, cfg.H + 1))))
    return cfg, cases


@pytest.mark.parametrize("mode", MODES)
def test_invalid_states_raise_clear_errors(mode):
    cfg, cases = _bad_states(mode)
    _, model = build_pair(cfg)
    x = make_inputs(cfg)[0]
    for description, states in cases:
        with pytest.raises((TypeError, ValueError), match="states"):
            model(x, states)


def test_non_tensor_state_items_are_named_in_the_error():
    """``states=([[0.0]], [[0.0]])``: the message must say what was wrong (lists, not tensors)."""
    cfg = Config("LSTM", num_layers=2)
    _, model = build_pair(cfg)
    with pytest.raises((TypeError, ValueError), match="list"):
        model(make_inputs(cfg)[0], ([[0.0]], [[0.0]]))


def test_invalid_states_error_types():
    cfg = Config("GRU", num_layers=2)
    _, model = build_pair(cfg)
    x = make_inputs(cfg)[0]
    with pytest.raises(TypeError, match="states must be None, a 3-D torch.Tensor, or a tuple"):
        model(x, torch.zeros(1, 2, cfg.B, cfg.H))  # SpikingJelly's own TypeError
    with pytest.raises(ValueError, match=r"states must have shape \[1, 2, batch_size, hidden_size\]"):
        model(x, torch.zeros(2, cfg.B, cfg.H + 1))


@pytest.mark.parametrize("bad_x", [torch.zeros(6, 5), torch.zeros(6, 3, 4), torch.zeros(0, 3, 5)],
                         ids=["2-D", "input_size", "empty"])
def test_invalid_input_raises_value_error(bad_x):
    with pytest.raises(ValueError, match="x must have shape"):
        compat.SpikingLSTM(5, 7, 1)(bad_x)


@pytest.mark.parametrize("kwargs", [dict(num_layers=0), dict(num_layers=1.5), dict(dropout_p=1.5)])
def test_invalid_constructor_arguments_raise_value_error(kwargs):
    args = dict(input_size=5, hidden_size=7, num_layers=1) | kwargs
    with pytest.raises(ValueError):
        compat.SpikingGRU(**args)
