"""The low-memory LSTM keeps no gates: backward fires the signs of recomputed pre-activations,
except the near-zero ones forward listed (spikingrnn/ops/cpu/gate_signs.py). These tests put
pre-activations within rounding of zero on purpose and check that every gate whose sign rounding
can change is listed, and that backward restores the forward's gates exactly."""
import pytest
import torch

import spikingrnn
from spikingrnn import surrogate as sg
from spikingrnn.bench.memory import module_saved_bytes
from spikingrnn.ops.cpu import gate_signs
from spikingrnn.ops.cpu import lstm as cpu_lstm
from spikingrnn.ops.cpu.common import SequenceConfig
from spikingrnn.ops.cpu.extension import loops
from spikingrnn.ops.storage import unpack_rows

STEPS, BATCH, INPUTS, HIDDEN = 6, 64, 200, 16
# the heaviside form (0/1 gates stored as bits; SpikingJelly's cell, torch's init), which this file is about
HEAVISIDE = dict(gates="heaviside", cell_state="clamp", forget_bias=None)


@pytest.fixture(params=["compiled-1-thread", "compiled-2-threads", "pytorch"])
def loop_kind(request, monkeypatch):
    """The C++ loops with one thread and with two (row blocks: each lists its own rows, merged step by
    step), and the PyTorch loop."""
    if request.param == "pytorch":
        monkeypatch.setattr(cpu_lstm, "loops", lambda: None)
        monkeypatch.setattr(gate_signs, "loops", lambda: None)
    elif loops() is None:
        pytest.skip("C++ loops unavailable")
    before = torch.get_num_threads()
    torch.set_num_threads(2 if request.param == "compiled-2-threads" else 1)
    yield request.param
    torch.set_num_threads(before)


def config(keep_pre):
    return SequenceConfig(None, sg.Erf.derivative, 2.0, sg.Erf.derivative, 2.0, keep_pre=keep_pre)


def near_tie_layer(generator):
    """Weights, and an input whose row 0 (of BATCH) starts every gate at ``W_ih x + b`` = 0 up to
    float32 rounding (the bias cancels the product, computed in float64) while h0 = 0."""
    w_ih = torch.randn(4 * HIDDEN, INPUTS, generator=generator) * INPUTS ** -0.5
    w_hh = torch.randn(4 * HIDDEN, HIDDEN, generator=generator) * HIDDEN ** -0.5
    x = torch.randn(STEPS, BATCH, INPUTS, generator=generator)
    b_ih = -(w_ih.double() @ x[0, 0].double()).float()
    b_hh = torch.zeros(4 * HIDDEN)
    return x, w_ih, w_hh, b_ih, b_hh


def test_every_gate_rounding_may_flip_is_listed_and_restored(loop_kind):
    generator = torch.Generator().manual_seed(0)
    x, w_ih, w_hh, b_ih, b_hh = near_tie_layer(generator)
    h0, c0 = torch.zeros(BATCH, HIDDEN), torch.zeros(BATCH, HIDDEN)
    y, _, _, kept = cpu_lstm.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, config(keep_pre=False))
    _, _, _, with_pre = cpu_lstm.lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, config(keep_pre=True))
    u = with_pre.pre  # the forward's own float32 pre-activations
    fired = unpack_rows(kept.gate_bits, (BATCH, 4 * HIDDEN), torch.float32)
    assert torch.equal(fired, (u >= 0).float()), "both forwards fire the same gates"

    h_prev = torch.cat([h0.unsqueeze(0), y[:-1]]).double()
    exact = x.double() @ w_ih.double().t() + h_prev @ w_hh.double().t() + (b_ih + b_hh).double()
    flipped = (u >= 0) != (exact >= 0)  # gates whose float32 sign is not the exact one
    assert int(flipped.sum()) >= 5, "degenerate test: no gate near a tie"

    source, saved = gate_signs.GateSource.choose(kept.gate_bits, kept.near_zero, kept.counts, BATCH, 4 * HIDDEN)
    assert source.listed, "the list is far shorter than the bits here"
    entries, offsets = saved
    listed = torch.zeros(STEPS * BATCH * 4 * HIDDEN, dtype=torch.bool)
    step = torch.repeat_interleave(torch.arange(STEPS), offsets[1:] - offsets[:-1])
    listed[step * BATCH * 4 * HIDDEN + (entries.long() >> 1)] = True
    assert listed.view_as(flipped)[flipped].all(), "a gate rounding can flip was not listed"
    assert int(listed.sum()) < 0.05 * listed.numel(), "the band lists a small fraction"
    listed_values = (entries.long() & 1).bool()
    assert torch.equal(listed_values, (u >= 0).view(-1)[step * BATCH * 4 * HIDDEN + (entries.long() >> 1)])

    # backward's recomputation in another order (here: exactly rounded) restores the forward's gates
    recomputed = exact.float()
    assert ((recomputed >= 0) != (u >= 0)).any(), "degenerate test: the recomputation flips no sign"
    for t0, t1 in ((0, 2), (2, STEPS)):
        u_chunk = recomputed[t0:t1].clone()
        assert source.gates(saved, u_chunk, t0, t1) is None, "listed: the signs are set in u"
        assert torch.equal((u_chunk >= 0).float(), fired[t0:t1])
        changed = u_chunk != recomputed[t0:t1]
        magnitude = recomputed[t0:t1].abs().clamp_min(torch.finfo(torch.float32).tiny)
        assert torch.equal(u_chunk.abs()[changed], magnitude[changed]), "magnitudes kept"


def test_bits_are_kept_where_the_list_would_be_longer():
    """Zero weights and no bias put every pre-activation at exactly 0: all listed, so the bits win;
    gradients still match the reference."""
    torch.manual_seed(1)
    model = spikingrnn.SpikingLSTM(3, 8, bias=False, dtype=torch.float64, backend="cpu", low_memory=True, **HEAVISIDE)
    with torch.no_grad():
        model.weight_ih_l0.zero_()
        model.weight_hh_l0.zero_()
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    zeros = torch.zeros(4, 8, dtype=torch.float64)
    with torch.no_grad():
        _, _, _, kept = cpu_lstm.lstm_forward(x, zeros, zeros, model.weight_ih_l0, model.weight_hh_l0, None, None, None,
                                              config(keep_pre=False))
    source, _ = gate_signs.GateSource.choose(kept.gate_bits, kept.near_zero, kept.counts, 4, 32)
    assert not source.listed
    grads = []
    for backend in ("reference", "cpu"):
        model.backend = backend
        model.zero_grad()
        out, (h, c) = model(x)
        (out.sum() + c.sum()).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_low_memory_keeps_about_two_bits_per_unit_and_step():
    """Spiking input, default zero states: the 0/1 input and output as bits, the short near-zero list,
    a cell state per chunk; no gates, no per-step cell states, no zero h0/c0."""
    torch.manual_seed(2)
    steps, batch, inputs, hidden = 50, 16, 32, 64
    model = spikingrnn.SpikingLSTM(inputs, hidden, backend="cpu", low_memory=True, **HEAVISIDE)
    x = (torch.rand(steps, batch, inputs) < 0.2).float()
    saved = module_saved_bytes(model, x)
    bits = steps * batch * (inputs + hidden) // 8
    gate_bits = steps * batch * 4 * hidden // 8
    assert bits < saved <= bits + 0.25 * gate_bits, (saved, bits, gate_bits)


def test_low_memory_keeps_an_eighth_of_spikingjelly_even_with_a_700_float_input():
    """The benchmark's 700-input, 2-layer shape (fewer steps and rows): the float input kept for the
    first layer's weight gradient is most of what remains, and the whole stays under 1/8 of what
    SpikingJelly's SpikingLSTM keeps."""
    sj = pytest.importorskip("spikingjelly.activation_based.rnn")
    torch.manual_seed(0)
    x = torch.randn(20, 16, 700)
    ours = module_saved_bytes(spikingrnn.SpikingLSTM(700, 256, 2, backend="cpu", low_memory=True, **HEAVISIDE), x)
    theirs = module_saved_bytes(sj.SpikingLSTM(700, 256, 2), x)
    assert ours * 8 <= theirs, (ours, theirs)
    assert ours < x.numel() * x.element_size() * 1.1, "beyond the input, little is kept"
