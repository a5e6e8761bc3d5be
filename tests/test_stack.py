"""The backend-neutral stack driver (spikingrnn/ops/stack.py) and how the reference backend runs
packed sequences on it: a step updates only the rows still inside their sequence, and a padded step
never enters the autograd graph."""
import pytest
import torch

from builders import build_model
from spikingrnn.nn.surrogates import surrogate_pair
from spikingrnn.ops.reference import reference_rnn
from spikingrnn.ops.stack import needs_grad, packed_batch_sizes, reverse_each

LENGTHS = [5, 3, 3, 1]


def test_packed_batch_sizes_count_the_valid_leading_rows():
    assert packed_batch_sizes(None, 4) is None
    assert packed_batch_sizes(torch.tensor(LENGTHS), 6) == [4, 3, 3, 1, 1, 0]
    with pytest.raises(ValueError, match="decreasing order"):
        packed_batch_sizes(torch.tensor([2, 3]), 3)


def test_reverse_each_reverses_within_each_length_and_is_its_own_inverse():
    steps, lengths = 5, torch.tensor(LENGTHS)
    x = torch.arange(steps * len(LENGTHS) * 2, dtype=torch.float64).view(steps, len(LENGTHS), 2)
    y = reverse_each(x, lengths)
    for b, n in enumerate(LENGTHS):
        assert torch.equal(y[:n, b], x[:n, b].flip(0))
        assert torch.equal(y[n:, b], x[n:, b])  # the padding stays in place
    assert torch.equal(reverse_each(y, lengths), x)
    assert torch.equal(reverse_each(x, None), x.flip(0))


def test_needs_grad():
    x, w = torch.zeros(2, 1, 3), torch.zeros(4, 3, requires_grad=True)
    assert needs_grad(x, (torch.zeros(1, 1),), [(w, None)])
    assert not needs_grad(x, (torch.zeros(1, 1),), [(w.detach(), None)])
    with torch.no_grad():
        assert not needs_grad(x, (), [(w, None)])


def _run(model, x, states, lengths):
    """``reference_rnn`` with ``model``'s weights, spec and surrogates (eval: no dropout)."""
    pairs = [surrogate_pair(model)] * (model.num_layers * model.num_directions)
    return reference_rnn(x, states, model.layer_weights(), model.spec(), pairs, lengths=lengths)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_padded_steps_never_reach_the_gradients(mode):
    """An infinite input at padded positions only: the old masking (the step on every row, then
    ``torch.where``) multiplied it by zero gradients in backward (``0 * inf = NaN`` in every weight
    gradient). Now the padded steps are not computed: every gradient is finite and equals the sum of
    running each sequence alone, the padded outputs are zero and their input gradients too."""
    model = build_model(mode, inputs=3, hidden=6, layers=2, bidirectional=True, cell_state="accumulate",
                        surrogate="sigmoid", surrogate2="atan").eval()
    steps, batch = max(LENGTHS), len(LENGTHS)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(steps, batch, 3, generator=generator, dtype=torch.float64) * 2
    padded = torch.arange(steps).unsqueeze(1) >= torch.tensor(LENGTHS)
    x[padded] = float("inf")
    x.requires_grad_()
    rows = model.num_layers * model.num_directions
    sizes = [model.real_hidden_size] + ([model.hidden_size] if mode == "LSTM" else [])
    states = tuple(torch.rand(rows, batch, size, generator=generator, dtype=torch.float64).requires_grad_()
                   for size in sizes)
    out_weights = torch.randn(steps, batch, 2 * model.real_hidden_size, generator=generator, dtype=torch.float64)
    state_weights = [torch.randn(rows, batch, size, generator=generator, dtype=torch.float64) for size in sizes]
    params = list(model.parameters())

    out, final = _run(model, x, states, torch.tensor(LENGTHS))
    loss = (out * out_weights).sum() + sum((s * w).sum() for s, w in zip(final, state_weights))
    grads = torch.autograd.grad(loss, [x, *states, *params])
    for name, g in zip(["x", *(f"hx{k}" for k in range(len(sizes))), *(n for n, _ in model.named_parameters())],
                       grads):
        assert torch.isfinite(g).all(), f"non-finite gradient of {name}"
    assert not out[padded].any(), "outputs past a sequence's end must be zero"
    assert not grads[0][padded].any()

    param_sums = [torch.zeros_like(p) for p in params]
    for b, n in enumerate(LENGTHS):
        xb = x.detach()[:n, b:b + 1].clone().requires_grad_()
        sb = tuple(s.detach()[:, b:b + 1].clone().requires_grad_() for s in states)
        out_b, final_b = _run(model, xb, sb, None)
        loss_b = (out_b * out_weights[:n, b:b + 1]).sum() + sum(
            (s * w[:, b:b + 1]).sum() for s, w in zip(final_b, state_weights))
        grads_b = torch.autograd.grad(loss_b, [xb, *sb, *params])
        close = dict(rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out.detach()[:n, b:b + 1], out_b.detach(), **close)
        for s, s_b in zip(final, final_b):
            torch.testing.assert_close(s.detach()[:, b:b + 1], s_b.detach(), **close)
        torch.testing.assert_close(grads[0][:n, b:b + 1], grads_b[0], **close)
        for k in range(len(sizes)):
            torch.testing.assert_close(grads[1 + k][:, b:b + 1], grads_b[1 + k], **close)
        for total, g in zip(param_sums, grads_b[1 + len(sizes):]):
            total += g
    for name, g, total in zip([n for n, _ in model.named_parameters()], grads[1 + len(sizes):], param_sums):
        torch.testing.assert_close(g, total, rtol=1e-12, atol=1e-12, msg=name)
