"""ONNX export (spikingrnn.export_onnx) against the PyTorch modules, run by onnxruntime.

Exactness: weights and biases are multiples of 1/8 and inputs and initial states multiples of 1/4
in [-1, 1] (small dyadic rationals), so every float32 product and sum in forward is exact whatever
the summation order (onnxruntime's GEMMs and fusions are free to reorder). The graph's outputs and
final states must then be identical to the module's (eval mode, reference backend), which
``np.array_equal`` checks. One test with ordinary random weights bounds the spike mismatch rate
that rounding can cause.
"""
import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import spikingrnn  # noqa: E402
from spikingrnn import SpikingGRU, SpikingLSTM, SpikingRNN, export_onnx  # noqa: E402
from spikingrnn import surrogate as sg  # noqa: E402
from spikingrnn.compat import spikingjelly as sj  # noqa: E402

DT = torch.float32
# export_onnx writes the Heaviside-gate cells only (the modules' default gates="sigmoid" and the RNN's
# default leak are refused, see test_refuses_the_sigmoid_form and test_refuses_the_leaky_rnn): every
# LSTM/GRU here is built in that form, with torch's init, and every RNN is the seed's cell (leak=None)
HEAVISIDE = {"LSTM": dict(gates="heaviside", cell_state="clamp", forget_bias=None),
             "GRU": dict(gates="heaviside", forget_bias=None), "RNN": dict(leak=None)}
SHAPES = [(1, 1), (5, 3), (17, 2)]  # (T, B); no T is seen at export time, which traces nothing


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def dyadic(shape, generator, scale, low=-4, high=5):
    return torch.randint(low, high, shape, generator=generator).to(DT) * scale


def make_dyadic(module, seed=0):
    """Overwrite every parameter with multiples of 1/8 in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(dyadic(p.shape, generator, 1 / 8, -8, 9))
    return module


def build(mode="LSTM", layers=1, bidirectional=False, proj=0, cell_state="clamp", bias=True, batch_first=False,
          hidden=8, inputs=5, seed=0):
    kwargs = dict(bias=bias, batch_first=batch_first, bidirectional=bidirectional, backend="reference")
    if mode == "LSTM":
        module = SpikingLSTM(inputs, hidden, layers, proj_size=proj, **{**HEAVISIDE["LSTM"], "cell_state": cell_state},
                             **kwargs)
    elif mode == "GRU":
        module = SpikingGRU(inputs, hidden, layers, **HEAVISIDE["GRU"], **kwargs)
    else:
        module = SpikingRNN(inputs, hidden, layers, **HEAVISIDE["RNN"], **kwargs)
    return make_dyadic(module, seed).eval()


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def inputs_for(module, steps, batch, seed):
    """Dyadic ``x`` in the module's layout and states ``[L*D, B, *]`` (h, then c for the LSTM)."""
    generator = torch.Generator().manual_seed(seed)
    x = dyadic((batch, steps, module.input_size) if module.batch_first else (steps, batch, module.input_size),
               generator, 1 / 4)
    states = [dyadic(size, generator, 1 / 4) for size in module.state_sizes(batch)]
    return x, states


def run_torch(module, x, states):
    with torch.no_grad():
        hx = None if states is None else (tuple(states) if module.mode == "LSTM" else states[0])
        output, final = module(x, hx)
    final = final if isinstance(final, tuple) else (final,)
    return [output.numpy(), *(s.numpy() for s in final)]


def run_onnx(sess, x, states):
    feeds = {"input": x.numpy()}
    if states is not None:
        feeds.update(zip(("h0", "c0"), (s.numpy() for s in states)))
    return sess.run(None, feeds)


def assert_identical(expected, actual):
    assert len(expected) == len(actual)
    for name, a, b in zip(("output", "h_n", "c_n"), expected, actual):
        assert a.shape == b.shape, name
        assert b.dtype == np.float32, name
        assert np.array_equal(a, b), f"{name}: {np.count_nonzero(a != b)} of {a.size} entries differ"


CASES = (
    [dict(mode="LSTM", cell_state=cs, proj=proj, bidirectional=bidir, layers=1 + (n % 3), bias=n % 2 == 0,
          batch_first=n % 4 >= 2)
     for n, (cs, proj, bidir) in enumerate((cs, proj, bidir) for cs in ("clamp", "accumulate", "spike")
                                           for proj in (0, 3) for bidir in (False, True))]
    + [dict(mode=mode, layers=layers, bidirectional=bidir, bias=bias, batch_first=bf)
       for mode in ("GRU", "RNN")
       for layers, bidir, bias, bf in ((1, False, True, False), (2, True, False, True), (3, True, True, False),
                                       (2, False, False, False))]
)


def case_id(case):
    return "-".join(f"{k}={v}" for k, v in case.items())


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_pytorch_exactly(case):
    module = build(**case)
    sess = session(export_onnx(module, None))
    fired = []
    for index, (steps, batch) in enumerate(SHAPES):
        x, states = inputs_for(module, steps, batch, seed=index)
        expected = run_torch(module, x, states)
        assert_identical(expected, run_onnx(sess, x, states))
        fired.append((expected[0] != 0).mean())
    assert 0.02 < np.mean(fired) < 0.98, "degenerate case: (almost) no or only spikes"


@pytest.mark.parametrize("case", [dict(mode="LSTM", layers=2, bidirectional=True, proj=3, batch_first=True),
                                  dict(mode="GRU", layers=2, bidirectional=True),
                                  dict(mode="RNN", layers=1, bias=False)], ids=case_id)
def test_without_initial_states_starts_from_zeros(case):
    module = build(**case)
    model = export_onnx(module, None, initial_states=False)
    assert [i.name for i in model.graph.input] == ["input"]
    sess = session(model)
    for index, (steps, batch) in enumerate(SHAPES):
        x, _ = inputs_for(module, steps, batch, seed=10 + index)
        assert_identical(run_torch(module, x, None), run_onnx(sess, x, None))


def test_streaming_chunks_equal_one_pass():
    """Feeding h_n/c_n back as h0/c0 continues the sequence (the reason h0/c0 are inputs)."""
    module = build("LSTM", layers=2, bidirectional=False, proj=4, cell_state="accumulate")
    sess = session(export_onnx(module, None))
    x, states = inputs_for(module, 12, 3, seed=3)
    whole = run_onnx(sess, x, states)
    first = run_onnx(sess, x[:5], states)
    second = run_onnx(sess, x[5:], [torch.from_numpy(s) for s in first[1:]])
    assert np.array_equal(np.concatenate([first[0], second[0]]), whole[0])
    assert all(np.array_equal(a, b) for a, b in zip(second[1:], whole[1:]))


@pytest.mark.parametrize("batch_first", [False, True])
def test_time_and_batch_are_dynamic(batch_first):
    module = build("LSTM", layers=2, bidirectional=True, proj=3, batch_first=batch_first)
    model = export_onnx(module, None)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    time_batch = ["B", "T"] if batch_first else ["T", "B"]
    assert {i.name: dims(i) for i in model.graph.input} == {
        "input": time_batch + [5], "h0": [4, "B", 3], "c0": [4, "B", 8]}
    assert {o.name: dims(o) for o in model.graph.output} == {
        "output": time_batch + [6], "h_n": [4, "B", 3], "c_n": [4, "B", 8]}
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Scan") == 4 and "Loop" not in ops


@pytest.mark.parametrize("opset", [14, 18, 21])
def test_opsets(opset):
    module = build("GRU", layers=2, bidirectional=True, batch_first=True)
    model = export_onnx(module, None, opset=opset)
    assert model.opset_import[0].version == opset
    x, states = inputs_for(module, 6, 2, seed=4)
    assert_identical(run_torch(module, x, states), run_onnx(session(model), x, states))


def test_writes_the_file(tmp_path):
    module = build("RNN", layers=2, bidirectional=True)
    path = tmp_path / "rnn.onnx"
    model = export_onnx(module, path)
    assert onnx.load(str(path)) == model
    x, states = inputs_for(module, 4, 2, seed=5)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_identical(run_torch(module, x, states), run_onnx(sess, x, states))
    assert spikingrnn.export_onnx is spikingrnn.export.export_onnx


def test_dropout_and_training_mode_are_ignored():
    module = build("LSTM", layers=3, bidirectional=True)
    module.dropout = 0.5
    module.train()
    model = export_onnx(module, None)
    module.eval()
    x, states = inputs_for(module, 7, 3, seed=6)
    assert_identical(run_torch(module, x, states), run_onnx(session(model), x, states))


@pytest.mark.parametrize("make", [
    lambda: SpikingLSTM(16, 32, 2, bidirectional=True, backend="reference", **HEAVISIDE["LSTM"]),
    lambda: SpikingLSTM(16, 32, 2, proj_size=12, batch_first=True, backend="reference",
                        **{**HEAVISIDE["LSTM"], "cell_state": "spike"}),
    lambda: SpikingGRU(16, 32, 2, bidirectional=True, backend="reference", **HEAVISIDE["GRU"]),
    lambda: SpikingRNN(16, 32, 3, backend="reference", **HEAVISIDE["RNN"]),
], ids=["lstm", "lstm-proj-spike", "gru", "rnn"])
def test_random_weights_rarely_flip_a_spike(make):
    """Ordinary init and Gaussian inputs: rounding may flip a spike whose pre-activation is ~0.

    From zero states the outputs are 0/1 spikes (real numbers after a projection); the fraction
    of entries that differ (beyond 1e-5 for the real ones) must stay below 1e-3.
    """
    torch.manual_seed(0)
    module = make().eval()
    sess = session(export_onnx(module, None))
    x = torch.randn((8, 40, 16) if module.batch_first else (40, 8, 16))
    states = [torch.zeros(size) for size in module.state_sizes(8)]
    expected, actual = run_torch(module, x, states), run_onnx(sess, x, states)
    if not module.proj_size:
        assert 0.05 < (expected[0] != 0).mean() < 0.95, "degenerate case: (almost) no or only spikes"
    for name, a, b in zip(("output", "h_n", "c_n"), expected, actual):
        assert np.mean(~np.isclose(a, b, rtol=1e-5, atol=1e-5)) < 1e-3, name


# ----------------------------------------------------------------------------- SpikingJelly compat stacks


@pytest.mark.parametrize("cls", [sj.SpikingLSTM, sj.SpikingGRU, sj.SpikingVanillaRNN], ids=lambda c: c.__name__)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_spikingjelly_compat_stacks(cls, bidirectional):
    module = make_dyadic(cls(5, 8, 2, bidirectional=bidirectional), seed=1).eval()
    module.backend = "reference"
    sess = session(export_onnx(module, None))
    count = module.states_num()
    rows = 2 * (2 if bidirectional else 1)
    for index, (steps, batch) in enumerate(SHAPES):
        generator = torch.Generator().manual_seed(20 + index)
        x = dyadic((steps, batch, 5), generator, 1 / 4)
        states = [dyadic((rows, batch, 8), generator, 1 / 4) for _ in range(count)]
        with torch.no_grad():
            y, final = module(x, tuple(states) if count > 1 else states[0])
        final = final if isinstance(final, tuple) else (final,)
        expected = [y.numpy(), *(s.numpy() for s in final)]
        assert_identical(expected, run_onnx(sess, x, states))


# ----------------------------------------------------------------------------- refusals


class _OwnForward(sg.SurrogateFunction):
    @staticmethod
    def primitive(x, alpha):
        return torch.sigmoid(x)

    @staticmethod
    def derivative(x, alpha):
        return torch.ones_like(x)

    def forward(self, x):
        return (x >= 0.5).to(x.dtype)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(surrogate_function1=sg.ATan(spiking=False), surrogate_function2=sg.Erf(spiking=False)),
     NotImplementedError, r"surrogate_function1 has spiking=False"),
    (dict(surrogate_function2=lambda u: (u >= 0).float()), NotImplementedError,
     r"surrogate_function2 is a function, a custom callable"),
    (dict(surrogate_function1=_OwnForward()), NotImplementedError,
     r"surrogate_function1 \(_OwnForward\) overrides forward"),
    (dict(dtype=torch.float64), ValueError, r"weight_ih_l0 is torch.float64; expected torch.float32"),
], ids=["smooth", "callable", "own-forward", "float64"])
def test_refuses_what_the_graph_cannot_run(kwargs, error, match):
    module = SpikingLSTM(4, 6, **HEAVISIDE["LSTM"], **kwargs)
    with pytest.raises(error, match=match):
        export_onnx(module, None)


@pytest.mark.parametrize("make", [lambda: SpikingLSTM(4, 6), lambda: SpikingGRU(4, 6),
                                  lambda: SpikingLSTM(4, 6, gates="sigmoid", proj_size=2)],
                         ids=["lstm", "gru", "lstm-proj"])
def test_refuses_the_sigmoid_form(make):
    """The modules' default gates="sigmoid" is not written by this exporter: a clear error naming the form
    and the working route (torch.onnx.export), not a graph that computes something else."""
    module = make()
    assert module.gates == "sigmoid"
    with pytest.raises(NotImplementedError, match=r"gates='sigmoid'.*torch\.onnx\.export"):
        export_onnx(module, None)


@pytest.mark.parametrize("make, leak", [(lambda: SpikingRNN(4, 6), 0.9),
                                        (lambda: SpikingRNN(4, 6, 2, bidirectional=True, leak=0.5), 0.5),
                                        (lambda: SpikingRNN(4, 6, leak=0.0, spike_threshold=0.1), 0.0)],
                         ids=["default", "bidirectional-leak0.5", "leak0"])
def test_refuses_the_leaky_rnn(make, leak):
    """The RNN's default leaky membrane (and any leak, 0 included) is not written by this exporter: a clear
    error naming the leak and the working route (torch.onnx.export)."""
    module = make()
    assert module.leak == leak
    with pytest.raises(NotImplementedError, match=rf"SpikingRNN\(leak={leak}\).*torch\.onnx\.export"):
        export_onnx(module, None)


@pytest.mark.parametrize("make, name", [
    (lambda: torch.nn.LSTM(4, 6), r"torch\.nn\.modules\.rnn\.LSTM"),
    (lambda: spikingrnn.SpikingLSTMCell(4, 6), r"spikingrnn\.nn\.cells\.SpikingLSTMCell"),
], ids=["torch.nn.LSTM", "SpikingLSTMCell"])
def test_refuses_other_modules(make, name):
    expected = r"module must be a spikingrnn SpikingLSTM, SpikingGRU or SpikingRNN.*got "
    with pytest.raises(TypeError, match=expected + name):
        export_onnx(make(), None)


@pytest.mark.parametrize("opset", [13, 10_000, "17", True])
def test_refuses_bad_opset(opset):
    with pytest.raises(ValueError, match=rf"opset must be an int in \[14, \d+\].*got {opset!r}"):
        export_onnx(SpikingGRU(4, 6), None, opset=opset)


def test_refuses_bad_initial_states():
    with pytest.raises(TypeError, match="initial_states must be a bool, got int"):
        export_onnx(SpikingGRU(4, 6), None, initial_states=1)


def test_refuses_custom_spikingjelly_cells():
    class MyCell(sj.SpikingVanillaRNNCell):
        pass

    class MyRNN(sj.SpikingVanillaRNN):
        @staticmethod
        def base_cell():
            return MyCell

    with pytest.raises(NotImplementedError, match=r"MyRNN\.cells\[0\] is a .*MyCell; only the built-in cells"):
        export_onnx(MyRNN(4, 6, 2), None)
    smooth = sj.SpikingVanillaRNN(4, 6, 1, bidirectional=True, surrogate_function=sg.Sigmoid(spiking=False))
    with pytest.raises(NotImplementedError, match=r"cells\[0\]\.surrogate_function has spiking=False"):
        export_onnx(smooth, None)
