"""Deployment routes on a whole model that contains spiking layers (issue 15).

A classifier ``Linear -> SpikingLSTM/GRU/RNN (2 layers, bidirectional) -> Linear``, default backend
(cpu): ``torch.onnx.export`` (dynamo) runs in onnxruntime at sequence lengths and batch sizes not seen at
export, ``torch.export.export`` with a dynamic T and B matches eager, ``torch.compile(fullgraph=True)``
trains like eager, ``torch.jit.trace`` holds at other lengths, and the routes that cannot be correct
raise an error naming the one that is. Also: the custom operators agree bitwise with the eager
Functions (float64, outputs and every gradient) and pass ``torch.library.opcheck``.
"""
from __future__ import annotations

import pytest
import torch

import spikingrnn
from spikingrnn.ops import capture
from spikingrnn.ops.cpu.extension import loops

MODULES = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}


class Classifier(torch.nn.Module):
    """``[B, T, 5] -> (logits [B, T, 3], spikes [B, T, 2 * H_out])``."""

    def __init__(self, mode: str, **kwargs):
        super().__init__()
        self.embed = torch.nn.Linear(5, 8)
        self.rnn = MODULES[mode](8, 7, num_layers=2, bidirectional=True, batch_first=True, **kwargs)
        self.head = torch.nn.Linear(2 * self.rnn.real_hidden_size, 3)

    def forward(self, x):
        spikes, _ = self.rnn(self.embed(x))
        return self.head(spikes), spikes


def classifier(mode: str, seed: int = 0, **kwargs) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(mode, **kwargs)


def dynamic_shapes():
    return ({0: torch.export.Dim("B", min=2, max=64), 1: torch.export.Dim("T", min=2, max=4096)},)


UNSEEN = ((3, 11), (5, 23))  # (batch, steps) not used at export (which sees batch 4, 6 steps)
HEAVISIDE = {"gates": "heaviside", "forget_bias": None}  # the seed's 0/1 gates, torch's init
# the whole-model routes: the modules' default form, and the heaviside form (other operators) where cheap
MODELS = [("LSTM", {}), ("LSTM", {**HEAVISIDE, "cell_state": "clamp"}), ("GRU", {}), ("GRU", HEAVISIDE), ("RNN", {})]
MODEL_IDS = ["LSTM", "LSTM-heaviside", "GRU", "GRU-heaviside", "RNN"]


@pytest.mark.parametrize("mode", list(MODULES))
def test_onnx_dynamo_export_runs_in_onnxruntime_at_unseen_lengths(mode, tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model = classifier(mode).eval()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (torch.randn(4, 6, 5),), str(path), dynamo=True, dynamic_shapes=dynamic_shapes(),
                      input_names=["x"], output_names=["logits", "spikes"], verbose=False)
    import onnx
    op_types = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Scan" in op_types, op_types
    session = ort.InferenceSession(str(path))
    for batch, steps in UNSEEN:
        x = torch.randn(batch, steps, 5)
        with torch.no_grad():
            logits, spikes = model(x)
        got_logits, got_spikes = session.run(None, {"x": x.numpy()})
        assert torch.equal(torch.from_numpy(got_spikes), spikes), (batch, steps)
        torch.testing.assert_close(torch.from_numpy(got_logits), logits, rtol=1e-5, atol=1e-5)


def test_legacy_onnx_exporter_names_the_supported_route(tmp_path):
    with pytest.raises(RuntimeError, match=r"dynamo=True"):
        torch.onnx.export(classifier("LSTM").eval(), (torch.randn(4, 6, 5),), str(tmp_path / "m.onnx"),
                          dynamo=False)


@pytest.mark.parametrize("mode, neuron", MODELS, ids=MODEL_IDS)
def test_torch_export_with_dynamic_time_and_batch_matches_eager(mode, neuron):
    model = classifier(mode, **neuron).eval()
    program = torch.export.export(model, (torch.randn(4, 6, 5),), dynamic_shapes=dynamic_shapes())
    assert any("spikingrnn" in str(node.target) for node in program.graph.nodes)  # the operators, not an unrolled loop
    for batch, steps in UNSEEN:
        x = torch.randn(batch, steps, 5)
        with torch.no_grad():
            expected = model(x)
            got = program.module()(x)
        for g, e in zip(got, expected):
            assert torch.equal(g, e), (batch, steps)


@pytest.mark.parametrize("mode, neuron", MODELS, ids=MODEL_IDS)
def test_compiled_train_step_matches_eager(mode, neuron):
    if loops() is None:
        pytest.skip("the C++ extension of the cpu backend is not built here")
    torch._dynamo.reset()
    eager, compiled_model = classifier(mode, seed=1, **neuron), classifier(mode, seed=1, **neuron)
    compiled = torch.compile(compiled_model, fullgraph=True)  # fullgraph: a graph break raises
    x, target = torch.randn(4, 9, 5), torch.randn(4, 9, 3)
    for model in (eager, compiled):
        logits, _ = model(x)
        torch.nn.functional.mse_loss(logits, target).backward()
    for (name, p), q in zip(eager.named_parameters(), compiled_model.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("mode, neuron", MODELS, ids=MODEL_IDS)
def test_jit_trace_records_the_operators_and_holds_at_other_lengths(mode, neuron):
    model = classifier(mode, **neuron).eval()
    traced = torch.jit.trace(model, (torch.randn(4, 6, 5),))
    for batch, steps in UNSEEN:
        x = torch.randn(batch, steps, 5)
        with torch.no_grad():
            for g, e in zip(traced(x), model(x)):
                assert torch.equal(g, e), (batch, steps)


def test_jit_trace_of_a_loop_that_would_unroll_raises():
    with pytest.raises(RuntimeError, match="torch.jit.trace"):
        torch.jit.trace(classifier("GRU", backend="reference").eval(), (torch.randn(4, 6, 5),))


# ----------------------------------------------------------------- the operators against the Functions

# the default (sigmoid) form and the heaviside form, whose LSTM takes every cell_state rule
CASES = [("LSTM", {}), ("LSTM", {"proj_size": 3}), ("LSTM", {"bias": False}),
         ("LSTM", {**HEAVISIDE, "cell_state": "clamp"}),
         ("LSTM", {**HEAVISIDE, "cell_state": "accumulate", "proj_size": 3}),
         ("LSTM", {**HEAVISIDE, "cell_state": "spike"}), ("LSTM", {**HEAVISIDE, "cell_state": "clamp", "bias": False}),
         ("GRU", {}), ("GRU", {"bias": False}), ("GRU", HEAVISIDE), ("GRU", {**HEAVISIDE, "bias": False}), ("RNN", {})]


def _run(model, x, lengths, h0):
    if lengths is not None:
        x = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
    out, state = model(x, h0)
    if lengths is not None:
        out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]
    states = state if isinstance(state, tuple) else (state,)
    return out, states


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("mode,kwargs", CASES)
def test_operators_match_the_eager_functions_bitwise(mode, kwargs, packed, monkeypatch):
    torch.manual_seed(3)
    model = MODULES[mode](5, 6, num_layers=2, bidirectional=True, batch_first=True, backend="cpu",
                          dtype=torch.float64, **kwargs)
    x = torch.randn(4, 7, 5, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([7, 5, 5, 2]) if packed else None
    sizes = model.state_sizes(4)
    h0 = tuple(torch.rand(size, dtype=torch.float64, requires_grad=True) for size in sizes)
    h0 = h0 if mode == "LSTM" else h0[0]
    results = []
    for through_operators in (False, True):
        monkeypatch.setattr("spikingrnn.ops.cpu.library.capturing", lambda: through_operators)
        out, states = _run(model, x, lengths, h0)
        loss = out.square().sum() + sum((s * torch.linspace(-1, 1, s.shape[-1], dtype=s.dtype)).sum() for s in states)
        inputs = [x, *(h0 if isinstance(h0, tuple) else (h0,)), *model.parameters()]
        results.append((out, states, torch.autograd.grad(loss, inputs)))
    (out_f, states_f, grads_f), (out_o, states_o, grads_o) = results
    assert torch.equal(out_f, out_o)
    assert all(torch.equal(a, b) for a, b in zip(states_f, states_o))
    assert all(torch.equal(a, b) for a, b in zip(grads_f, grads_o))


@pytest.mark.parametrize("mode", list(MODULES))
def test_operators_pass_opcheck(mode):
    """``torch.library.opcheck``: schema, shape functions and autograd registration are consistent."""
    torch.manual_seed(0)
    steps, batch, hidden, inputs = 5, 3, 4, 6
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[mode]

    def t(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    scalars = ([], 0, 2.0, 0, 2.0)
    weights = (t(gates * hidden, inputs), t(gates * hidden, hidden), t(gates * hidden), t(gates * hidden))
    if mode == "LSTM":
        args = (t(steps, batch, inputs), t(batch, hidden), t(batch, hidden), *weights, None, *scalars, 0, 0.1, True)
        operator = torch.ops.spikingrnn.lstm_sequence.default
    else:
        args = (t(steps, batch, inputs), t(batch, hidden), *weights, *scalars, True)
        operator = getattr(torch.ops.spikingrnn, f"{mode.lower()}_sequence").default
    torch.library.opcheck(operator, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_sigmoid_operators_pass_opcheck(mode):
    """The same for the sigmoid form's operators (``gates="sigmoid"``, the modules' default)."""
    torch.manual_seed(0)
    steps, batch, hidden, inputs = 5, 3, 4, 6
    gates = {"LSTM": 4, "GRU": 3}[mode]

    def t(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    scalars = ([], 0, 2.0, 0.25, True)  # batch_sizes, surrogate id, alpha, spike_threshold, save
    weights = (t(gates * hidden, inputs), t(gates * hidden, hidden), t(gates * hidden), t(gates * hidden))
    if mode == "LSTM":
        args = (t(steps, batch, inputs), t(batch, hidden), t(batch, hidden), *weights, None, *scalars)
    else:
        args = (t(steps, batch, inputs), t(batch, hidden), *weights, *scalars)
    operator = getattr(torch.ops.spikingrnn, f"sigmoid_{mode.lower()}_sequence").default
    torch.library.opcheck(operator, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_capturing_is_false_in_eager_mode():
    assert not capture.capturing()
