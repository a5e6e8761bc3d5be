"""The stacks' firing-rate penalty (``rate_penalty``, ``free_rate``): backward adds the gradient of
``λ · Σ_k (N_k / N) · max(0, r_k − free_rate)`` over the cells k (layer and direction) of the stack.

The reference for every check is the penalty written into the loss by hand: a stack with ``rate_penalty=λ``
must give the gradients (of weights, input and initial states) of the same stack with ``rate_penalty=0``
and that term added to the loss; with ``free_rate=0`` it is ``λ`` times the mean of all its spikes.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from spikingrnn import SpikingGRU, SpikingLSTM, SpikingRNN
from spikingrnn.ops.rate_penalty import DEFAULT_FREE_RATE, DEFAULT_RATE_PENALTY

F64 = torch.float64
CLASSES = (SpikingLSTM, SpikingGRU, SpikingRNN)
LAMBDA = 0.7  # large, so that a missing or doubled penalty is far above rounding


def _states(result) -> list[torch.Tensor]:
    return list(result) if isinstance(result, tuple) else [result]


def _layers(stack, backend: str) -> list:
    """One single-layer stack (``rate_penalty=0``) per layer of ``stack``, with its weights."""
    layers = []
    width = stack.hidden_size * stack.num_directions
    for layer in range(stack.num_layers):
        single = type(stack)(stack.input_size if layer == 0 else width, stack.hidden_size,
                             bidirectional=stack.bidirectional, backend=backend, rate_penalty=0.0, dtype=F64,
                             spike_threshold=stack.spike_threshold)
        single.load_state_dict({name.replace(f"_l{layer}", "_l0"): value for name, value in stack.state_dict().items()
                                if f"_l{layer}" in name})
        layers.append(single)
    return layers


def _run_in_layers(first, second, x) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(first layer's spikes, second layer's spikes, final states)`` of the two single-layer stacks
    chained: the final states of the stack they came from are those of both, stacked."""
    hidden, states1 = first(x)
    output, states2 = second(hidden)
    return hidden, output, tuple(torch.cat([a, b]) for a, b in zip(_states(states1), _states(states2)))


def _cells(hidden, output, width: int) -> list[torch.Tensor]:
    """The spikes of each (layer, direction), ``[T, B, width]`` each."""
    return [part for y in (hidden, output) for part in y.split(width, dim=2)]


def _grads(module, *tensors) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters()] + [t.grad for t in tensors]


def _loss(output, states) -> torch.Tensor:
    # a loss on the output and on the final states, of a scale comparable with the penalty's gradient
    return 0.05 * output.pow(2).sum() + 0.3 * sum(s.sum() for s in _states(states))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_gradient_is_the_penalty_in_the_loss(cls, bidirectional, backend):
    torch.manual_seed(3)
    stack = cls(5, 6, num_layers=2, bidirectional=bidirectional, backend=backend, rate_penalty=LAMBDA,
                free_rate=0.0, dtype=F64, spike_threshold=0.05)
    x = (3 * torch.randn(7, 3, 5, dtype=F64)).requires_grad_()
    output, states = stack(x)
    _loss(output, states).backward()
    assert 0 < float(output.detach().mean()) < 1  # the penalty has spikes to act on

    first, second = _layers(stack, backend)
    x2 = x.detach().clone().requires_grad_()
    hidden, output2, final = _run_in_layers(first, second, x2)
    spikes = torch.cat([hidden.flatten(), output2.flatten()])
    (_loss(output2, final) + LAMBDA * spikes.mean()).backward()
    assert torch.equal(output, output2)
    for got, want in zip(_grads(stack, x), _grads(first) + _grads(second) + [x2.grad]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_loss_on_the_final_states_alone_is_penalised_too(cls):
    torch.manual_seed(4)
    stack = cls(4, 5, rate_penalty=LAMBDA, free_rate=0.0, dtype=F64)
    plain = cls(4, 5, rate_penalty=0.0, dtype=F64)
    plain.load_state_dict(stack.state_dict())
    x = torch.randn(6, 2, 4, dtype=F64)
    _, states = stack(x)
    _states(states)[-1].sum().backward()
    output, states = plain(x)
    (_states(states)[-1].sum() + LAMBDA * output.mean()).backward()
    for got, want in zip(_grads(stack), _grads(plain)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_packed_padding_is_not_penalised(cls, backend):
    torch.manual_seed(5)
    stack = cls(3, 4, bidirectional=True, backend=backend, rate_penalty=LAMBDA, free_rate=0.0, dtype=F64)
    plain = cls(3, 4, bidirectional=True, backend=backend, rate_penalty=0.0, dtype=F64)
    plain.load_state_dict(stack.state_dict())
    sequences = [torch.randn(n, 3, dtype=F64) for n in (2, 6, 4)]
    packed = pack_sequence(sequences, enforce_sorted=False)
    output, _ = stack(packed)
    output.data.pow(2).sum().backward()
    output, _ = plain(packed)
    # the mean over the valid positions only: the packed data holds exactly those
    (output.data.pow(2).sum() + LAMBDA * output.data.mean()).backward()
    assert output.data.numel() == 12 * 8 < pad_packed_sequence(output)[0].numel()
    for got, want in zip(_grads(stack), _grads(plain)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_only_cells_above_the_free_rate_are_penalised(cls, backend):
    torch.manual_seed(9)
    kwargs = dict(bidirectional=True, backend=backend, dtype=F64, spike_threshold=0.05)
    x = (3 * torch.randn(7, 3, 5, dtype=F64)).requires_grad_()
    probe = cls(5, 6, num_layers=2, rate_penalty=0.0, **kwargs)
    first, second = _layers(probe, backend)
    hidden, output, _ = _run_in_layers(first, second, x)
    rates = sorted(float(c.detach().mean()) for c in _cells(hidden, output, 6))
    assert rates[1] < rates[2], rates  # a free rate between them: two cells above, two under
    free_rate = (rates[1] + rates[2]) / 2

    stack = cls(5, 6, num_layers=2, rate_penalty=LAMBDA, free_rate=free_rate, **kwargs)
    stack.load_state_dict(probe.state_dict())
    out, states = stack(x)
    _loss(out, states).backward()
    got = _grads(stack, x)

    x.grad = None
    first.zero_grad(), second.zero_grad()
    hidden, output, final = _run_in_layers(first, second, x)
    cells = _cells(hidden, output, 6)
    total = sum(c.numel() for c in cells)
    penalty = sum(c.numel() / total * torch.relu(c.mean() - free_rate) for c in cells)
    (_loss(output, final) + LAMBDA * penalty).backward()
    for a, b in zip(got, _grads(first) + _grads(second) + [x.grad]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_triton_backend_adds_the_same_gradient(cls):
    torch.manual_seed(6)
    stack = cls(3, 4, num_layers=2, backend="triton", rate_penalty=LAMBDA, free_rate=0.0)
    reference = cls(3, 4, num_layers=2, backend="reference", rate_penalty=LAMBDA, free_rate=0.0)
    reference.load_state_dict(stack.state_dict())
    x = torch.randn(5, 2, 3)
    for module in (stack, reference):
        output, states = module(x)
        _loss(output, states).backward()
    for got, want in zip(_grads(stack), _grads(reference)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_nothing_changes_in_values_in_evaluation_or_without_grad(cls):
    torch.manual_seed(7)
    stack = cls(4, 5, num_layers=2, rate_penalty=LAMBDA, dtype=F64)
    plain = cls(4, 5, num_layers=2, rate_penalty=0.0, dtype=F64)
    plain.load_state_dict(stack.state_dict())
    x = torch.randn(6, 2, 4, dtype=F64)
    penalised, plain_out = stack(x), plain(x)
    assert torch.equal(penalised[0], plain_out[0])
    assert all(torch.equal(a, b) for a, b in zip(_states(penalised[1]), _states(plain_out[1])))
    with torch.no_grad():
        assert torch.equal(stack(x)[0], plain(x)[0])
    stack.eval(), plain.eval()  # a saliency map of a trained model: the loss's gradient only
    for module in (stack, plain):
        module(x)[0].pow(2).sum().backward()
    for got, want in zip(_grads(stack), _grads(plain)):
        assert torch.equal(got, want)


def test_output_may_be_modified_in_place_as_torch_allows():
    torch.manual_seed(8)
    stack = SpikingLSTM(3, 4, rate_penalty=LAMBDA, free_rate=0.0, dtype=F64)
    plain = SpikingLSTM(3, 4, rate_penalty=0.0, dtype=F64)
    plain.load_state_dict(stack.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    output, (h, c) = stack(x)
    output.mul_(2.0)
    h.add_(1.0)
    (output.sum() + h.sum()).backward()
    output, (h, _) = plain(x)
    (2 * output.sum() + h.sum() + LAMBDA * output.mean()).backward()
    for got, want in zip(_grads(stack), _grads(plain)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_empty_batch_runs():
    stack = SpikingGRU(3, 4, rate_penalty=LAMBDA)
    output, h = stack(torch.randn(5, 0, 3, requires_grad=True))
    (output.sum() + h.sum()).backward()
    assert output.shape == (5, 0, 4)


def test_defaults_and_projection():
    for cls in CLASSES:
        assert (cls(3, 4).rate_penalty, cls(3, 4).free_rate) == (DEFAULT_RATE_PENALTY, DEFAULT_FREE_RATE) == (0.2, 0.25)
        assert (cls(3, 4).spec().rate_penalty, cls(3, 4).spec().free_rate) == (0.2, 0.25)
        assert "free_rate=0.5" in repr(cls(3, 4, free_rate=0.5))
        assert "rate_penalty" not in repr(cls(3, 4))
        assert "rate_penalty=0.0" in repr(cls(3, 4, rate_penalty=0.0))
    # a projected LSTM emits real values, not spikes: no penalty, and none may be asked for
    assert SpikingLSTM(3, 4, proj_size=2).rate_penalty == 0.0
    assert "rate_penalty" not in repr(SpikingLSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match=r"rate_penalty must be 0 with proj_size > 0 .* got rate_penalty=0.2 "
                                         r"with proj_size=2"):
        SpikingLSTM(3, 4, proj_size=2, rate_penalty=0.2)


@pytest.mark.parametrize("value, error, message", [
    (-0.1, ValueError, r"SpikingGRU: rate_penalty must be >= 0 \(0: off\), got -0.1"),
    (math.nan, ValueError, "SpikingGRU: rate_penalty must be finite, got nan"),
    (math.inf, ValueError, "SpikingGRU: rate_penalty must be finite, got inf"),
    (True, TypeError, "SpikingGRU: rate_penalty must be a real number, got bool"),
    ("0.1", TypeError, "SpikingGRU: rate_penalty must be a real number, got str"),
])
def test_bad_values_name_the_argument(value, error, message):
    with pytest.raises(error, match=message):
        SpikingGRU(3, 4, rate_penalty=value)


@pytest.mark.parametrize("value, error, message", [
    (-0.1, ValueError, r"SpikingLSTM: free_rate must be a firing rate in \[0, 1\], got -0.1"),
    (1.5, ValueError, r"SpikingLSTM: free_rate must be a firing rate in \[0, 1\], got 1.5"),
    (math.nan, ValueError, "SpikingLSTM: free_rate must be finite, got nan"),
    (None, TypeError, "SpikingLSTM: free_rate must be a real number, got NoneType"),
])
def test_bad_free_rates_name_the_argument(value, error, message):
    with pytest.raises(error, match=message):
        SpikingLSTM(3, 4, free_rate=value)


def test_checkpoints_keep_the_setting_and_old_ones_load_without_penalty(tmp_path):
    from spikingrnn.io import load_model, save_checkpoint
    from spikingrnn.io.model_configs import construct
    save_checkpoint(tmp_path / "m.safetensors", model=SpikingLSTM(3, 4, rate_penalty=0.25))
    assert load_model(tmp_path / "m.safetensors").rate_penalty == 0.25
    save_checkpoint(tmp_path / "d.safetensors", model=SpikingRNN(3, 4))
    assert (load_model(tmp_path / "d.safetensors").rate_penalty, load_model(tmp_path / "d.safetensors").free_rate) \
        == (0.2, 0.25)
    save_checkpoint(tmp_path / "f.safetensors", model=SpikingGRU(3, 4, free_rate=0.1))
    assert load_model(tmp_path / "f.safetensors").free_rate == 0.1
    # written before the option existed: those stacks trained without it
    old = {"input_size": 3, "hidden_size": 4, "gates": "sigmoid"}
    assert construct("SpikingGRU", old, {}, "old.safetensors", "cpu", None).rate_penalty == 0.0


def test_spikingjelly_drop_in_and_its_conversion_have_no_penalty():
    from spikingrnn.compat.checkpoints import from_spikingjelly
    from spikingrnn.compat.spikingjelly import SpikingGRU as SJGRU, SpikingLSTM as SJLSTM
    for module in (SJLSTM(3, 4, 2), SJGRU(3, 4, 1)):
        assert module._spec().rate_penalty == 0.0
        # converted to the native class with SpikingJelly 2.0's cell: its gradients too
        assert from_spikingjelly(module, layout="torch").rate_penalty == 0.0


def test_training_config_passes_it_to_the_spiking_stack():
    from spikingrnn.train import TrainConfig
    from spikingrnn.train.config import saved_config
    from spikingrnn.train.model import SpikingClassifier
    assert (TrainConfig().rate_penalty, TrainConfig().free_rate) == (0.2, 0.25)
    assert SpikingClassifier(2, 3, TrainConfig(model="gru", hidden=4)).rnn.rate_penalty == 0.2
    assert SpikingClassifier(2, 3, TrainConfig(model="lstm", hidden=4, free_rate=0.1)).rnn.free_rate == 0.1
    with pytest.raises(ValueError, match=r"TrainConfig.free_rate must be a firing rate in \[0, 1\], got 2.0"):
        TrainConfig(free_rate=2.0)
    assert SpikingClassifier(2, 3, TrainConfig(model="rnn", hidden=4, rate_penalty=0.0)).rnn.rate_penalty == 0.0
    assert not hasattr(SpikingClassifier(2, 3, TrainConfig(model="torch_lstm", hidden=4)).rnn, "rate_penalty")
    old = TrainConfig().to_dict()
    del old["rate_penalty"], old["free_rate"]  # saved before the fields existed: trained without a penalty
    assert TrainConfig.from_dict(saved_config(old)).rate_penalty == 0.0
    old = {**TrainConfig(rate_penalty=0.2).to_dict()}
    del old["free_rate"]  # saved with the earlier penalty, which acted on every spike
    assert (TrainConfig.from_dict(saved_config(old)).rate_penalty, TrainConfig.from_dict(saved_config(old)).free_rate) \
        == (0.2, 0.0)
