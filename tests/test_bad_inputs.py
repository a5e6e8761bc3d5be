"""Bad inputs and bad constructor arguments: exception type and message, checked against torch.

Each case calls a spiking module or cell with one bad value and asserts the exception type and
message (``pytest.raises(..., match=...)``). Where ``torch.nn`` raises a deliberate error for the
same case, the same call is run on the torch twin and the spiking exception must be an instance of
torch's exception type, so ``except <torch's type>`` in user code keeps working; where torch's
message is a fixed sentence (its own checks), the text must be identical too.

Cases where torch only fails by accident (``AttributeError: 'list' object has no attribute 'dim'``
for a list input, ``IndexError`` for a bare tensor passed as LSTM ``hx``) have no torch
comparison: the spiking modules raise a ``TypeError`` that names the argument instead.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

from contract_helpers import SPIKING, SPIKING_CELLS, TORCH, TORCH_CELLS

F64 = torch.float64


@dataclass(frozen=True)
class Case:
    id: str
    ours: Callable[[], object]            # must raise ``exc`` matching ``match``
    exc: type[BaseException]
    match: str                            # regular expression searched in the message
    torch: Callable[[], object] | None = None   # the same call on torch, when torch has a real check
    same_text: bool = False               # torch's message is a fixed sentence: require it verbatim


def lit(text: str) -> str:
    return re.escape(text)


def mod(mode, *args, **kwargs):
    """Spiking module ``(4 -> 8)`` unless sizes are given; kwargs go to the constructor."""
    return SPIKING[mode](*(args or (4, 8)), **kwargs)


def tmod(mode, *args, **kwargs):
    return TORCH[mode](*(args or (4, 8)), **kwargs)


def cell(mode, *args, **kwargs):
    return SPIKING_CELLS[mode](*(args or (4, 8)), **kwargs)


def tcell(mode, *args, **kwargs):
    return TORCH_CELLS[mode](*(args or (4, 8)), **kwargs)


def both(build_ours, build_torch, call):
    """``(ours, torch)`` thunks applying ``call(module)`` to each."""
    return (lambda: call(build_ours()), lambda: call(build_torch()))


def z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


def x(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


def packed(*lengths, features=4, dtype=torch.float32, enforce_sorted=True):
    return pack_sequence([torch.randn(n, features, dtype=dtype) for n in lengths], enforce_sorted=enforce_sorted)


def module_case(id, mode, call, exc, match, *, kwargs=None, same_text=False, compare=True):
    kwargs = kwargs or {}
    ours, theirs = both(lambda: mod(mode, **kwargs), lambda: tmod(mode, **kwargs), call)
    return Case(id, ours, exc, match, theirs if compare else None, same_text)


def cell_case(id, mode, call, exc, match, *, same_text=False, compare=True):
    ours, theirs = both(lambda: cell(mode), lambda: tcell(mode), call)
    return Case(id, ours, exc, match, theirs if compare else None, same_text)


def ctor_case(id, mode, kwargs, exc, match, *, same_text=False, compare=True, args=(4, 8)):
    return Case(id, lambda: SPIKING[mode](*args, **kwargs), exc, match,
                (lambda: TORCH[mode](*args, **kwargs)) if compare else None, same_text)


HIDDEN_SHAPE = "Expected hidden{} size ({}), got [{}]"

FORWARD_CASES = [
    # --- input rank / size
    module_case("lstm-input-1d", "LSTM", lambda m: m(x(4)), ValueError,
                lit("LSTM: Expected input to be 2D or 3D, got 1D instead"), same_text=True),
    module_case("gru-input-4d", "GRU", lambda m: m(x(1, 5, 2, 4)), ValueError,
                lit("GRU: Expected input to be 2D or 3D, got 4D instead"), same_text=True),
    module_case("rnn-wrong-input-size", "RNN", lambda m: m(x(5, 2, 3)), RuntimeError,
                lit("input.size(-1) must be equal to input_size. Expected 4, got 3"), same_text=True),
    module_case("lstm-batch-first-wrong-input-size", "LSTM", lambda m: m(x(2, 5, 6)), RuntimeError,
                lit("input.size(-1) must be equal to input_size. Expected 4, got 6"),
                kwargs={"batch_first": True}, same_text=True),
    module_case("gru-unbatched-wrong-input-size", "GRU", lambda m: m(x(5, 3)), RuntimeError,
                lit("input.size(-1) must be equal to input_size. Expected 4, got 3"), same_text=True),
    # --- hx rank
    module_case("lstm-h-rank-batched", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 8), z(1, 2, 8))), RuntimeError,
                lit("For batched 3-D input, hx and cx should also be 3-D but got (2-D, 3-D) tensors"),
                same_text=True),
    module_case("lstm-c-rank-batched", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 8), z(2, 8))), RuntimeError,
                lit("For batched 3-D input, hx and cx should also be 3-D but got (3-D, 2-D) tensors"),
                same_text=True),
    module_case("gru-hx-rank-batched", "GRU", lambda m: m(x(5, 2, 4), z(1, 8)), RuntimeError,
                lit("For batched 3-D input, hx should also be 3-D but got 2-D tensor"), same_text=True),
    module_case("lstm-hx-rank-unbatched", "LSTM", lambda m: m(x(5, 4), (z(1, 1, 8), z(1, 1, 8))), RuntimeError,
                lit("For unbatched 2-D input, hx and cx should also be 2-D but got (3-D, 3-D) tensors"),
                same_text=True),
    module_case("rnn-hx-rank-unbatched", "RNN", lambda m: m(x(5, 4), z(1, 1, 8)), RuntimeError,
                lit("For unbatched 2-D input, hx should also be 2-D but got 3-D tensor"), same_text=True),
    # --- hidden shapes
    module_case("lstm-wrong-h-size", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 7), z(1, 2, 8))), RuntimeError,
                lit(HIDDEN_SHAPE.format("[0]", "1, 2, 8", "1, 2, 7")), same_text=True),
    module_case("lstm-wrong-c-size", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 8), z(1, 2, 7))), RuntimeError,
                lit(HIDDEN_SHAPE.format("[1]", "1, 2, 8", "1, 2, 7")), same_text=True),
    module_case("lstm-proj-h-given-hidden-size", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 8), z(1, 2, 8))),
                RuntimeError, lit(HIDDEN_SHAPE.format("[0]", "1, 2, 3", "1, 2, 8")),
                kwargs={"proj_size": 3}, same_text=True),
    module_case("lstm-proj-c-given-proj-size", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 3), z(1, 2, 3))),
                RuntimeError, lit(HIDDEN_SHAPE.format("[1]", "1, 2, 8", "1, 2, 3")),
                kwargs={"proj_size": 3}, same_text=True),
    module_case("gru-bidirectional-too-few-hx-rows", "GRU", lambda m: m(x(5, 2, 4), z(2, 2, 8)), RuntimeError,
                lit(HIDDEN_SHAPE.format("", "4, 2, 8", "2, 2, 8")),
                kwargs={"num_layers": 2, "bidirectional": True}, same_text=True),
    module_case("lstm-unbatched-wrong-h-size", "LSTM", lambda m: m(x(5, 4), (z(1, 7), z(1, 8))), RuntimeError,
                r"Expected hidden\[0\] size .*got .*7\]"),
    # --- batch mismatch
    module_case("lstm-hx-batch-mismatch", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 3, 8), z(1, 3, 8))),
                RuntimeError, lit(HIDDEN_SHAPE.format("[0]", "1, 2, 8", "1, 3, 8")), same_text=True),
    module_case("rnn-hx-batch-mismatch", "RNN", lambda m: m(x(5, 2, 4), z(1, 3, 8)), RuntimeError,
                lit(HIDDEN_SHAPE.format("", "1, 2, 8", "1, 3, 8")), same_text=True),
    module_case("lstm-batch-first-hx-given-batch-major", "LSTM",
                lambda m: m(x(3, 5, 4), (z(3, 2, 8), z(3, 2, 8))), RuntimeError,
                lit(HIDDEN_SHAPE.format("[0]", "2, 3, 8", "3, 2, 8")),
                kwargs={"batch_first": True, "num_layers": 2}, same_text=True),
    # --- hx container types
    module_case("lstm-hx-not-a-tuple", "LSTM", lambda m: m(x(5, 2, 4), z(1, 2, 8)), TypeError,
                lit("SpikingLSTM: hx must be a tuple (h_0, c_0) of two tensors, got Tensor"),
                compare=False),   # torch: IndexError from hx[1]
    # torch: RuntimeError "lstm expects two hidden states"
    module_case("lstm-hx-three-tensors", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 8),) * 3),
                RuntimeError, r"two hidden states|\(h_0, c_0\) of two tensors"),
    module_case("lstm-hx-elements-not-tensors", "LSTM", lambda m: m(x(5, 2, 4), (0.0, 0.0)), TypeError,
                lit("SpikingLSTM: h_0 must be a torch.Tensor, got float"), compare=False),
    module_case("gru-hx-is-a-tuple", "GRU", lambda m: m(x(5, 2, 4), (z(1, 2, 8),)), TypeError,
                lit("SpikingGRU: hx must be a torch.Tensor, got tuple"), compare=False),
    module_case("rnn-hx-is-a-list", "RNN", lambda m: m(x(5, 2, 4), [[0.0] * 8] * 2), TypeError,
                lit("SpikingRNN: hx must be a torch.Tensor, got list"), compare=False),
    # --- dtypes
    module_case("lstm-float64-input-float32-weights", "LSTM", lambda m: m(x(5, 2, 4, dtype=F64)), ValueError,
                lit("RNN input dtype (torch.float64) does not match weight dtype (torch.float32)"),
                same_text=True),
    module_case("gru-float32-input-float64-weights", "GRU", lambda m: m(x(5, 2, 4)), ValueError,
                lit("RNN input dtype (torch.float32) does not match weight dtype (torch.float64)"),
                kwargs={"dtype": F64}, same_text=True),
    module_case("lstm-int64-input", "LSTM", lambda m: m(torch.ones(5, 2, 4, dtype=torch.int64)), ValueError,
                lit("RNN input dtype (torch.int64) does not match weight dtype (torch.float32)"), same_text=True),
    module_case("rnn-bool-input", "RNN", lambda m: m(torch.ones(5, 2, 4, dtype=torch.bool)), ValueError,
                lit("RNN input dtype (torch.bool) does not match weight dtype (torch.float32)"), same_text=True),
    module_case("lstm-h-dtype-mismatch", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 8, dtype=F64), z(1, 2, 8))),
                RuntimeError, lit("hidden[0] dtype (torch.float64) does not match input dtype (torch.float32)")),
    module_case("lstm-c-dtype-mismatch", "LSTM", lambda m: m(x(5, 2, 4), (z(1, 2, 8), z(1, 2, 8, dtype=F64))),
                RuntimeError, lit("hidden[1] dtype (torch.float64) does not match input dtype (torch.float32)")),
    module_case("gru-hx-dtype-mismatch", "GRU", lambda m: m(x(5, 2, 4), z(1, 2, 8, dtype=F64)), RuntimeError,
                lit("hidden dtype (torch.float64) does not match input dtype (torch.float32)")),
    # --- empty sequences and non-tensors
    module_case("lstm-empty-sequence", "LSTM", lambda m: m(x(0, 2, 4)), RuntimeError,
                lit("Expected sequence length to be larger than 0 in RNN"), same_text=True),
    module_case("gru-empty-sequence-batch-first", "GRU", lambda m: m(x(2, 0, 4)), RuntimeError,
                lit("Expected sequence length to be larger than 0 in RNN"), kwargs={"batch_first": True},
                same_text=True),
    module_case("rnn-empty-unbatched-sequence", "RNN", lambda m: m(x(0, 4)), RuntimeError,
                lit("Expected sequence length to be larger than 0 in RNN"), same_text=True),
    module_case("lstm-list-input", "LSTM", lambda m: m([[0.0] * 4] * 5), TypeError,
                lit("SpikingLSTM: input must be a torch.Tensor, got list"), compare=False),
    module_case("gru-numpy-input", "GRU", lambda m: m(np.zeros((5, 2, 4), dtype=np.float32)), TypeError,
                lit("SpikingGRU: input must be a torch.Tensor, got ndarray"), compare=False),
    # --- packed sequences
    module_case("lstm-packed-h-wrong-batch", "LSTM", lambda m: m(packed(3, 2), (z(1, 3, 8), z(1, 3, 8))),
                RuntimeError, lit(HIDDEN_SHAPE.format("[0]", "1, 2, 8", "1, 3, 8"))),
    module_case("lstm-packed-c-wrong-batch", "LSTM", lambda m: m(packed(3, 2), (z(1, 2, 8), z(1, 3, 8))),
                RuntimeError, lit(HIDDEN_SHAPE.format("[1]", "1, 2, 8", "1, 3, 8"))),
    module_case("gru-packed-hx-wrong-batch", "GRU", lambda m: m(packed(3, 2), z(1, 3, 8)), RuntimeError,
                lit(HIDDEN_SHAPE.format("", "1, 2, 8", "1, 3, 8")), same_text=True),
    # torch silently drops the extra hx row here (it index_selects hx with sorted_indices before
    # checking its shape), so there is no torch error to compare with
    module_case("gru-unsorted-packed-hx-wrong-batch", "GRU",
                lambda m: m(packed(2, 3, enforce_sorted=False), z(1, 3, 8)), RuntimeError,
                lit(HIDDEN_SHAPE.format("", "1, 2, 8", "1, 3, 8")), compare=False),
    module_case("rnn-packed-hx-2d", "RNN", lambda m: m(packed(3, 2), z(1, 8)), RuntimeError,
                lit("For batched 3-D input, hx should also be 3-D but got 2-D tensor")),
    module_case("rnn-packed-wrong-input-size", "RNN", lambda m: m(packed(3, 2, features=3)), RuntimeError,
                lit("input.size(-1) must be equal to input_size. Expected 4, got 3"), same_text=True),
    # torch raises RuntimeError for packed data of the wrong dtype (its ValueError check only
    # covers padded input), so the spiking error must be a RuntimeError here
    module_case("lstm-packed-float64-data", "LSTM", lambda m: m(packed(3, 2, dtype=F64)), RuntimeError,
                lit("input dtype (torch.float64) does not match weight dtype (torch.float32)")),
]

CONSTRUCTOR_CASES = [
    ctor_case("lstm-num-layers-0", "LSTM", {"num_layers": 0}, ValueError,
              lit("num_layers must be greater than zero"), same_text=True),
    ctor_case("gru-hidden-size-0", "GRU", {}, ValueError, lit("hidden_size must be greater than zero"),
              args=(4, 0), same_text=True),
    ctor_case("rnn-input-size-0", "RNN", {}, ValueError, lit("input_size must be greater than zero"),
              args=(0, 8), same_text=True),
    ctor_case("lstm-float-input-size", "LSTM", {}, TypeError, lit("input_size should be of type int, got: float"),
              args=(4.0, 8), same_text=True),
    ctor_case("gru-float-hidden-size", "GRU", {}, TypeError, lit("hidden_size should be of type int, got: float"),
              args=(4, 8.0), same_text=True),
    ctor_case("rnn-float-num-layers", "RNN", {"num_layers": 2.0}, TypeError,
              lit("num_layers should be of type int, got: float")),
    ctor_case("lstm-dropout-above-one", "LSTM", {"dropout": 1.5}, ValueError,
              lit("dropout should be a number in range [0, 1]"), same_text=True),
    ctor_case("gru-dropout-negative", "GRU", {"dropout": -0.1}, ValueError,
              lit("dropout should be a number in range [0, 1]"), same_text=True),
    ctor_case("rnn-dropout-true", "RNN", {"dropout": True}, ValueError,
              lit("dropout should be a number in range [0, 1]"), same_text=True),
    ctor_case("lstm-proj-size-equals-hidden", "LSTM", {"proj_size": 8}, ValueError,
              lit("proj_size has to be smaller than hidden_size"), same_text=True),
    ctor_case("lstm-proj-size-above-hidden", "LSTM", {"proj_size": 9}, ValueError,
              lit("proj_size has to be smaller than hidden_size"), same_text=True),
    ctor_case("lstm-proj-size-negative", "LSTM", {"proj_size": -1}, ValueError,
              lit("proj_size should be a positive integer or zero to disable projections"), same_text=True),
    ctor_case("lstm-proj-size-float", "LSTM", {"proj_size": 2.0}, TypeError,
              lit("proj_size should be of type int, got: float")),
    ctor_case("gru-proj-size", "GRU", {"proj_size": 2}, ValueError,
              lit("proj_size argument is only supported for LSTM, not RNN or GRU"), same_text=True),
    ctor_case("rnn-proj-size", "RNN", {"proj_size": 2}, ValueError,
              lit("proj_size argument is only supported for LSTM, not RNN or GRU"), same_text=True),
    ctor_case("lstm-bias-int", "LSTM", {"bias": 1}, TypeError, lit("bias should be of type bool, got: int"),
              same_text=True),
    ctor_case("gru-batch-first-int", "GRU", {"batch_first": 0}, TypeError,
              lit("batch_first should be of type bool, got: int"), same_text=True),
    ctor_case("rnn-bidirectional-str", "RNN", {"bidirectional": "yes"}, TypeError,
              lit("bidirectional should be of type bool, got: str"), compare=False),
    ctor_case("lstm-invariant-mask-int", "LSTM", {"invariant_dropout_mask": 1}, TypeError,
              lit("invariant_dropout_mask should be of type bool, got: int"), compare=False),
    ctor_case("gru-unknown-keyword", "GRU", {"cell_state": "clamp"}, TypeError, "unexpected keyword argument"),
    ctor_case("lstm-bad-cell-state", "LSTM", {"cell_state": "leaky"}, ValueError,
              r"SpikingLSTM: cell_state must be one of .*clamp.*got 'leaky'", compare=False),
    ctor_case("lstm-cell-threshold-str", "LSTM", {"cell_threshold": "0.1"}, TypeError,
              lit("SpikingLSTM: cell_threshold must be a real number, got str"), compare=False),
    ctor_case("gru-bad-backend", "GRU", {"backend": "no-such-backend"}, ValueError,
              r"SpikingGRU: backend must be one of \(.*'auto'.*\), got 'no-such-backend'", compare=False),
    ctor_case("lstm-bad-surrogate-name", "LSTM", {"surrogate_function1": "nope"}, ValueError,
              lit("surrogate_function1: unknown surrogate 'nope'"), compare=False),
    ctor_case("gru-bad-surrogate2-name", "GRU", {"surrogate_function2": "nope"}, ValueError,
              lit("surrogate_function2: unknown surrogate 'nope'"), compare=False),
    ctor_case("rnn-surrogate-not-callable", "RNN", {"surrogate_function1": 3}, TypeError,
              lit("surrogate_function1 must be None, a surrogate name, a SurrogateFunction or a callable, got int"),
              compare=False),
    ctor_case("rnn-nonlinearity-tanh", "RNN", {"nonlinearity": "tanh"}, ValueError,
              lit("SpikingRNN: unknown nonlinearity 'tanh'"), compare=False),
    Case("rnn-nonlinearity-relu-positional", lambda: SPIKING["RNN"](4, 8, 1, "relu"), ValueError,
         lit("SpikingRNN: unknown nonlinearity 'relu'")),
]

CELL_CASES = [
    cell_case("lstmcell-wrong-input-size", "LSTM", lambda c: c(x(2, 3)), RuntimeError,
              lit("input has inconsistent input_size: got 3 expected 4"), same_text=True),
    cell_case("grucell-unbatched-wrong-input-size", "GRU", lambda c: c(x(5)), RuntimeError,
              lit("input has inconsistent input_size: got 5 expected 4"), same_text=True),
    cell_case("rnncell-3d-input", "RNN", lambda c: c(x(1, 2, 4)), ValueError,
              lit("RNNCell: Expected input to be 1D or 2D, got 3D instead"), same_text=True),
    cell_case("lstmcell-0d-input", "LSTM", lambda c: c(torch.tensor(1.0)), ValueError,
              lit("LSTMCell: Expected input to be 1D or 2D, got 0D instead"), same_text=True),
    cell_case("lstmcell-batch-mismatch", "LSTM", lambda c: c(x(2, 4), (z(3, 8), z(3, 8))), RuntimeError,
              lit("Input batch size 2 doesn't match hidden0 batch size 3"), same_text=True),
    cell_case("grucell-batch-mismatch", "GRU", lambda c: c(x(2, 4), z(3, 8)), RuntimeError,
              lit("Input batch size 2 doesn't match hidden0 batch size 3"), same_text=True),
    cell_case("lstmcell-h-hidden-size-mismatch", "LSTM", lambda c: c(x(2, 4), (z(2, 7), z(2, 8))), RuntimeError,
              lit("hidden0 has inconsistent hidden_size: got 7, expected 8"), same_text=True),
    cell_case("lstmcell-c-hidden-size-mismatch", "LSTM", lambda c: c(x(2, 4), (z(2, 8), z(2, 7))), RuntimeError,
              lit("hidden1 has inconsistent hidden_size: got 7, expected 8"), same_text=True),
    cell_case("rnncell-hidden-size-mismatch", "RNN", lambda c: c(x(2, 4), z(2, 9)), RuntimeError,
              lit("hidden0 has inconsistent hidden_size: got 9, expected 8"), same_text=True),
    cell_case("grucell-hx-rank-batched", "GRU", lambda c: c(x(2, 4), z(8)), RuntimeError,
              lit("SpikingGRUCell: for batched 2-D input, hidden0 should also be 2-D, got 1-D")),
    cell_case("lstmcell-hx-rank-unbatched", "LSTM", lambda c: c(x(4), (z(1, 8), z(1, 8))), RuntimeError,
              lit("SpikingLSTMCell: for unbatched 1-D input, hidden0 should also be 1-D, got 2-D")),
    cell_case("lstmcell-hx-not-a-tuple", "LSTM", lambda c: c(x(2, 4), z(2, 8)), TypeError,
              lit("SpikingLSTMCell: hx must be a tuple (h, c) of two tensors, got Tensor")),
    cell_case("grucell-hx-dtype-mismatch", "GRU", lambda c: c(x(2, 4), z(2, 8, dtype=F64)), RuntimeError,
              lit("hidden0 dtype (torch.float64) does not match input dtype (torch.float32)")),
    cell_case("grucell-list-input", "GRU", lambda c: c([0.0] * 4), TypeError,
              lit("SpikingGRUCell: input must be a torch.Tensor, got list"), compare=False),
    # torch's cells raise RuntimeError ("mat1 and mat2 must have the same dtype") for these two
    cell_case("grucell-float64-input", "GRU", lambda c: c(x(2, 4, dtype=F64)), RuntimeError,
              lit("input dtype (torch.float64) does not match weight dtype (torch.float32)")),
    cell_case("rnncell-int64-input", "RNN", lambda c: c(torch.ones(2, 4, dtype=torch.int64)), RuntimeError,
              lit("input dtype (torch.int64) does not match weight dtype (torch.float32)")),
    # constructor (torch's cells accept hidden_size=0 and any bias; the spiking cells refuse them)
    Case("grucell-hidden-size-0", lambda: cell("GRU", 4, 0), ValueError, lit("hidden_size must be greater than zero")),
    Case("lstmcell-float-input-size", lambda: cell("LSTM", 4.0, 8), TypeError,
         lit("input_size should be of type int, got: float"), lambda: tcell("LSTM", 4.0, 8)),
    Case("rnncell-bias-int", lambda: cell("RNN", 4, 8, bias=1), TypeError, lit("bias should be of type bool, got: int")),
    Case("rnncell-nonlinearity-relu", lambda: cell("RNN", 4, 8, nonlinearity="relu"), ValueError,
         lit("SpikingRNNCell: unknown nonlinearity 'relu'")),
    Case("lstmcell-bad-cell-state", lambda: cell("LSTM", cell_state="reset"), ValueError,
         r"SpikingLSTMCell: cell_state must be one of .*got 'reset'"),
]

CASES = FORWARD_CASES + CONSTRUCTOR_CASES + CELL_CASES


def test_case_ids_are_distinct():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_raises(case):
    with pytest.raises(case.exc, match=case.match) as ours:
        case.ours()
    if case.torch is None:
        return
    with pytest.raises(Exception) as theirs:
        case.torch()
    assert isinstance(ours.value, type(theirs.value)), (
        f"torch raises {type(theirs.value).__name__}({theirs.value}); ours raises "
        f"{type(ours.value).__name__}({ours.value})")
    if case.same_text:
        assert str(ours.value) == str(theirs.value)
