"""Property-based fuzzing (hypothesis) of the spiking modules.

1. ``test_cpu_backend_matches_reference``: random configurations (mode, layers, bidirectional, bias,
   proj_size, gates (LSTM and GRU: the default sigmoid form, or the heaviside form with torch's init),
   cell_state, batch_first, surrogate and alpha, sizes) x random inputs (batched,
   unbatched, PackedSequence with enforce_sorted True/False, hx given or not). The "cpu" backend
   (low_memory False and True) must match the "reference" backend (same weights via
   load_state_dict) in float64: outputs and final states to atol 1e-10, gradients of the input, hx
   and every weight to rtol 1e-7 / atol 1e-9. 600 examples per run.
2. ``test_malformed_inputs_raise_clearly``: random malformed calls (wrong rank, feature size,
   dtype, device, T=0, bad hx shapes/counts/types) on both backends must raise TypeError,
   ValueError or RuntimeError whose message names the problem. Valid-but-odd inputs are checked
   for the documented behaviour: B=0 works like torch (empty output of the right shape), NaN/Inf
   inputs do not crash, give finite outputs (0/1 spikes without proj/accumulate) and agree between the backends. 400 examples per run.

Total: >= 1000 examples per run (counted by module-level counters asserted at the end of each test).
Settings are ``derandomize=True`` so CI runs are deterministic.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("hypothesis")   # not a declared dependency of the package: skip cleanly without it

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import spikingrnn
from spikingrnn import surrogate as sg

DT = torch.float64
MODES = {"LSTM": spikingrnn.SpikingLSTM, "GRU": spikingrnn.SpikingGRU, "RNN": spikingrnn.SpikingRNN}
SURROGATE_NAMES = sorted(sg.SURROGATES)

EQUIV_EXAMPLES = 600
MALFORMED_EXAMPLES = 400
COUNTS = {"equiv": 0, "malformed": 0}


# ----------------------------------------------------------------------------------------- helpers

def make(cfg, backend, low_memory=False, dtype=DT):
    kwargs = dict(bias=cfg["bias"], batch_first=cfg["batch_first"], bidirectional=cfg["bidirectional"],
                  dtype=dtype, backend=backend, low_memory=low_memory,
                  surrogate_function1=sg.SURROGATES[cfg["sg1"]](alpha=cfg["alpha1"]))
    if cfg["mode"] != "RNN":
        kwargs["surrogate_function2"] = sg.SURROGATES[cfg["sg2"]](alpha=cfg["alpha2"])
        kwargs["gates"] = cfg["gates"]
        if cfg["gates"] == "heaviside":
            kwargs["forget_bias"] = None  # torch's init, as the seed's modules
    if cfg["mode"] == "LSTM":
        kwargs.update(proj_size=cfg["proj"], cell_state=cfg["cell_state"])
    return MODES[cfg["mode"]](cfg["I"], cfg["H"], cfg["layers"], **kwargs)


@st.composite
def configs(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    H = draw(st.integers(1, 8))
    cfg = dict(mode=mode, H=H, I=draw(st.integers(1, 5)), layers=draw(st.integers(1, 3)),
               bidirectional=draw(st.booleans()), bias=draw(st.booleans()), batch_first=draw(st.booleans()),
               sg1=draw(st.sampled_from(SURROGATE_NAMES)), sg2=draw(st.sampled_from(SURROGATE_NAMES)),
               alpha1=draw(st.floats(0.5, 4.0)), alpha2=draw(st.floats(0.5, 4.0)), proj=0, cell_state="clamp",
               gates="heaviside")
    if mode != "RNN":  # the vanilla RNN has the one (heaviside) form
        cfg["gates"] = draw(st.sampled_from(["sigmoid", "heaviside"]))
    if mode == "LSTM":
        cfg["proj"] = draw(st.integers(0, H - 1)) if H > 1 else 0
        # the sigmoid form's cell state is analog: "accumulate" is its only rule
        cfg["cell_state"] = "accumulate" if cfg["gates"] == "sigmoid" else draw(
            st.sampled_from(spikingrnn.functional.CELL_STATES))
    return cfg


def hx_shape(cfg, batch):
    rows = cfg["layers"] * (2 if cfg["bidirectional"] else 1)
    h_out = cfg["proj"] or cfg["H"]
    lead = (rows,) if batch is None else (rows, batch)
    if cfg["mode"] == "LSTM":
        return [lead + (h_out,), lead + (cfg["H"],)]
    return [lead + (h_out,)]


def states(final):
    return list(final) if isinstance(final, tuple) else [final]


def run(model, cfg, layout, x_base, lengths, enforce_sorted, hx_base, seed):
    """Forward + backward of a random linear loss; returns (output data, final states, grads)."""
    x_leaf = x_base.clone().requires_grad_(True)
    hx_leaves = [h.clone().requires_grad_(True) for h in hx_base] if hx_base is not None else []
    for p in model.parameters():
        p.grad = None
    if layout == "packed":
        # x_base is time-major padded (T, B, I), or (B, T, I) when batch_first
        inp = pack_padded_sequence(x_leaf, torch.tensor(lengths), batch_first=cfg["batch_first"],
                                   enforce_sorted=enforce_sorted)
    else:
        inp = x_leaf
    hx = None
    if hx_base is not None:
        hx = tuple(hx_leaves) if cfg["mode"] == "LSTM" else hx_leaves[0]
    out, final = model(inp, hx)
    data = out.data if isinstance(out, PackedSequence) else out
    gen = torch.Generator().manual_seed(seed)
    loss = (data * torch.randn(data.shape, generator=gen, dtype=DT)).sum()
    for s in states(final):
        loss = loss + (s * torch.randn(s.shape, generator=gen, dtype=DT)).sum()
    if loss.requires_grad:
        loss.backward()
    grads = [x_leaf.grad] + [h.grad for h in hx_leaves] + [p.grad for p in model.parameters()]
    return data.detach(), [s.detach() for s in states(final)], grads


# ------------------------------------------------------------------- 1. cpu backend vs reference

@settings(max_examples=EQUIV_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cfg=configs(), data=st.data())
def test_cpu_backend_matches_reference(cfg, data):
    COUNTS["equiv"] += 1
    layout = data.draw(st.sampled_from(["batched", "unbatched", "packed"]), label="layout")
    T = data.draw(st.integers(1, 6), label="T")
    B = data.draw(st.integers(1 if layout == "packed" else 0, 4), label="B")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    scale = data.draw(st.floats(0.5, 3.0), label="scale")
    give_hx = data.draw(st.booleans(), label="hx")
    enforce_sorted = data.draw(st.booleans(), label="enforce_sorted") if layout == "packed" else True
    lengths = None
    if layout == "packed":
        lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B), label="lengths")
        lengths[data.draw(st.integers(0, B - 1), label="longest")] = T
        if enforce_sorted:
            lengths.sort(reverse=True)

    gen = torch.Generator().manual_seed(seed)
    if layout == "unbatched":
        shape = (T, cfg["I"])
        batch = None
    else:
        shape = (B, T, cfg["I"]) if cfg["batch_first"] else (T, B, cfg["I"])
        batch = B
    x = torch.randn(shape, generator=gen, dtype=DT) * scale
    hx = None
    if give_hx:
        hx = [torch.randn(s, generator=gen, dtype=DT) for s in hx_shape(cfg, batch)]
        if cfg["mode"] == "LSTM" and cfg["cell_state"] != "accumulate":
            hx[1] = hx[1].clamp(max=1.0)

    torch.manual_seed(seed)
    reference = make(cfg, "reference")
    ref = run(reference, cfg, layout, x, lengths, enforce_sorted, hx, seed)
    for low_memory in (False, True):
        fast_model = make(cfg, "cpu", low_memory)
        fast_model.load_state_dict(reference.state_dict())
        fast = run(fast_model, cfg, layout, x, lengths, enforce_sorted, hx, seed)
        torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-10)
        assert len(fast[1]) == len(ref[1])
        for a, b in zip(fast[1], ref[1]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
        assert len(fast[2]) == len(ref[2])
        for i, (a, b) in enumerate(zip(fast[2], ref[2])):
            assert (a is None) == (b is None), f"gradient {i}: presence differs (low_memory={low_memory})"
            if b is not None:
                torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9,
                                           msg=lambda m: f"gradient {i} (low_memory={low_memory}): {m}")


def test_zz_equiv_count():
    print(f"\ncpu-vs-reference examples: {COUNTS['equiv']}")
    if COUNTS["equiv"] == 0:
        pytest.skip("equivalence test not run in this session")
    assert COUNTS["equiv"] >= EQUIV_EXAMPLES


# ------------------------------------------------------------------------- 2. malformed inputs

MALFORMATIONS = ["rank_low", "rank_high", "feature_size", "int_dtype", "half_dtype", "meta_device",
                 "seq_len_zero", "hx_shape", "hx_count", "hx_not_tensor", "hx_dtype", "hx_rank",
                 "empty_batch", "nan_inf", "input_not_tensor"]


@settings(max_examples=MALFORMED_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cfg=configs(), kind=st.sampled_from(MALFORMATIONS), backend=st.sampled_from(["reference", "cpu"]),
       data=st.data())
def test_malformed_inputs_raise_clearly(cfg, kind, backend, data):
    COUNTS["malformed"] += 1
    T = data.draw(st.integers(1, 4), label="T")
    B = data.draw(st.integers(1, 3), label="B")
    unbatched = data.draw(st.booleans(), label="unbatched")
    torch.manual_seed(0)
    model = make(cfg, backend, dtype=torch.float32)
    I = cfg["I"]
    if unbatched:
        good_shape = (T, I)
        batch = None
    else:
        good_shape = (B, T, I) if cfg["batch_first"] else (T, B, I)
        batch = B
    x = torch.randn(good_shape)
    good_hx = [torch.zeros(s) for s in hx_shape(cfg, batch)]

    def pack_hx(hs):
        return tuple(hs) if cfg["mode"] == "LSTM" else hs[0]

    def expect(exc, words, *args):
        with pytest.raises(exc) as info:
            model(*args)
        message = str(info.value).lower()
        assert any(w in message for w in words), f"{kind}: unclear message {info.value!r}"

    if kind == "rank_low":
        expect(ValueError, ["2d or 3d", "dimension"], torch.randn(T * I if data.draw(st.booleans()) else ()))
    elif kind == "rank_high":
        expect(ValueError, ["2d or 3d", "dimension"], torch.randn((1,) * (4 - len(good_shape)) + good_shape))
    elif kind == "feature_size":
        bad_i = data.draw(st.integers(1, 7).filter(lambda v: v != I), label="bad_I")
        expect(RuntimeError, ["input_size", "size"], torch.randn(good_shape[:-1] + (bad_i,)))
    elif kind == "int_dtype":
        expect((TypeError, ValueError, RuntimeError), ["dtype"], torch.ones(good_shape, dtype=torch.int64))
    elif kind == "half_dtype":
        expect((TypeError, ValueError, RuntimeError), ["dtype"], x.to(torch.float16))
    elif kind == "meta_device":
        expect((ValueError, RuntimeError), ["device"], torch.empty(good_shape, device="meta"))
    elif kind == "seq_len_zero":
        shape = list(good_shape)
        shape[1 if (cfg["batch_first"] and not unbatched) else 0] = 0
        with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0 in RNN"):
            model(torch.randn(shape))
    elif kind == "hx_shape":
        which = data.draw(st.integers(0, len(good_hx) - 1), label="which")
        dim = data.draw(st.integers(0, good_hx[which].dim() - 1), label="dim")
        shape = list(good_hx[which].shape)
        shape[dim] += data.draw(st.sampled_from([-1, 1, 2]) if shape[dim] > 1 else st.sampled_from([1, 2]))
        hs = list(good_hx)
        hs[which] = torch.zeros(shape)
        expect(RuntimeError, ["hidden", "size"], x, pack_hx(hs))
    elif kind == "hx_count":
        if cfg["mode"] == "LSTM":
            n = data.draw(st.sampled_from([1, 3]), label="n")
            expect((TypeError, ValueError, RuntimeError), ["hx", "tuple", "hidden"], x,
                   tuple(good_hx[0] for _ in range(n)))
        else:
            expect((TypeError, ValueError, RuntimeError), ["hx", "tensor", "hidden"], x,
                   (good_hx[0], good_hx[0]))
    elif kind == "hx_not_tensor":
        junk = data.draw(st.sampled_from([3, 1.5, "h", [0.0]]), label="junk")
        hs = list(good_hx)
        hs[data.draw(st.integers(0, len(hs) - 1), label="which")] = junk
        expect(TypeError, ["tensor", "hx", "h_0", "c_0"], x, pack_hx(hs))
    elif kind == "hx_dtype":
        hs = list(good_hx)
        hs[data.draw(st.integers(0, len(hs) - 1), label="which")] = good_hx[0].new_zeros(
            hs[0].shape if len(hs) == 1 else hs[0].shape, dtype=torch.float64)
        if cfg["mode"] == "LSTM" and hs[1].dtype == torch.float64 and hs[1].shape != good_hx[1].shape:
            hs[1] = torch.zeros(good_hx[1].shape, dtype=torch.float64)
        expect((TypeError, ValueError, RuntimeError), ["dtype"], x, pack_hx(hs))
    elif kind == "hx_rank":
        hs = [h[0] if h.dim() == 3 else h.unsqueeze(0) for h in good_hx]
        expect(RuntimeError, ["hx", "hidden", "dimension", "-d"], x, pack_hx(hs))
    elif kind == "input_not_tensor":
        expect(TypeError, ["tensor", "input"], x.tolist())
    elif kind == "empty_batch":
        empty_shape = (0, T, I) if cfg["batch_first"] else (T, 0, I)
        out, final = model(torch.randn(empty_shape))
        h_out = cfg["proj"] or cfg["H"]
        dirs = 2 if cfg["bidirectional"] else 1
        assert out.shape == ((0, T, dirs * h_out) if cfg["batch_first"] else (T, 0, dirs * h_out))
        assert [tuple(s.shape) for s in states(final)] == [tuple(s) for s in hx_shape(cfg, 0)]
    elif kind == "nan_inf":
        # documented behaviour: no error; spikes stay 0/1 (Heaviside(NaN) = 0); backends agree
        bad = x.clone().reshape(-1)
        idx = data.draw(st.lists(st.integers(0, bad.numel() - 1), min_size=1, max_size=3), label="idx")
        value = data.draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]), label="value")
        bad[idx] = value
        bad = bad.reshape(good_shape).to(DT)
        model = make(cfg, backend)
        out, final = model(bad)
        assert out.shape[-1] == (2 if cfg["bidirectional"] else 1) * (cfg["proj"] or cfg["H"])
        assert bool(torch.isfinite(out).all()), "NaN/Inf must not leak past the spiking gates"
        # heaviside accumulate: h = o * c, c counts up; the sigmoid form always emits 0/1 spikes
        if not cfg["proj"] and (cfg["gates"] == "sigmoid" or cfg["cell_state"] != "accumulate"):
            assert bool(((out == 0) | (out == 1)).all()), "spike outputs must be 0/1"
        other = make(cfg, "cpu" if backend == "reference" else "reference")
        other.load_state_dict(model.state_dict())
        out2, final2 = other(bad)
        torch.testing.assert_close(out2, out, rtol=0, atol=1e-10, equal_nan=True)
        for a, b in zip(states(final2), states(final)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10, equal_nan=True)
    else:  # pragma: no cover
        raise AssertionError(kind)


def test_zz_malformed_count():
    print(f"\nmalformed-input examples: {COUNTS['malformed']}")
    if COUNTS["malformed"] == 0:
        pytest.skip("malformed-input test not run in this session")
    assert COUNTS["malformed"] >= MALFORMED_EXAMPLES
