"""The event-driven products of the cpu backend's C++ loops against torch.mm.

``binary_matmul`` (``(bias) + x @ w^T`` for 0/1 ``x``, ``w [N, K]`` given as its column tiles from
``pack_column_tiles``) and ``binary_weight_grad`` (``grad_t += x^T @ d``) sum the rows picked by the
ones of ``x``; they must refuse (return False, output untouched) any
``x`` that is not 0/1 or is denser than the cap, so that the caller runs the GEMM instead.
"""
import pytest
import torch

from spikingrnn.ops.cpu.extension import loops

compiled = loops()
pytestmark = pytest.mark.skipif(compiled is None, reason="C++ loops unavailable (no compiler)")


def matmul(x, w_t, bias, out, max_density):
    """``binary_matmul`` with the weights ``w_t [K, N]`` packed the way the loops pass them."""
    return compiled.binary_matmul(x, compiled.pack_column_tiles(w_t.t().contiguous()), w_t.shape[1], bias, out,
                                  max_density)


def spikes(rows, cols, density, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(rows, cols, generator=generator, dtype=torch.float64) < density).to(dtype)


# rows, K, N: N below, at and past one column tile (32 float32 / 16 float64 values) and several tiles
SHAPES = [(1, 1, 1), (3, 5, 7), (32, 128, 512), (17, 65, 130), (8, 700, 96), (40, 64, 17), (5, 9, 32), (6, 3, 33)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("with_bias", [False, True])
def test_binary_matmul_matches_mm(dtype, shape, density, with_bias):
    rows, k, n = shape
    x = spikes(rows, k, density, dtype, seed=rows * 31 + k)
    w_t = torch.randn(k, n, dtype=dtype)
    bias = torch.randn(n, dtype=dtype) if with_bias else None
    out = torch.full((rows, n), float("nan"), dtype=dtype)
    assert matmul(x, w_t, bias, out, 1.0)
    expected = x @ w_t + (bias if with_bias else 0)
    tol = 1e-6 * (k + 1) if dtype == torch.float32 else 1e-12  # float32 sums of k terms, another order
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
# M, F, G: column blocks of 1 to 8 vectors (F up to 700), a last partial block, G narrower than a vector
@pytest.mark.parametrize("shape", [(1, 1, 1), (50, 7, 9), (600, 128, 512), (33, 65, 130), (200, 3, 1000),
                                   (40, 700, 70), (64, 256, 1024), (9, 40, 160)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_binary_weight_grad_matches_mm(dtype, shape, density):
    m, f, g = shape
    x = spikes(m, f, density, dtype, seed=m + f)
    d = torch.randn(m, g, dtype=dtype)
    start = torch.randn(f, g, dtype=dtype)
    grad_t = start.clone()
    assert compiled.binary_weight_grad(d, x, grad_t, 1.0)
    tol = 1e-6 * (m + 1) if dtype == torch.float32 else 1e-11  # float32 sums of m terms, another order
    torch.testing.assert_close(grad_t, start + x.t() @ d, rtol=tol, atol=tol)


@pytest.mark.parametrize("bad", [0.5, 2.0, -1.0, float("nan"), float("inf")])
@pytest.mark.parametrize("position", [0, 63, 64, 199])
def test_refuses_values_other_than_0_and_1(bad, position):
    x = spikes(2, 100, 0.1, torch.float32, seed=3)
    x.view(-1)[position] = bad
    w_t = torch.randn(100, 8)
    out = torch.zeros(2, 8)
    assert not matmul(x, w_t, None, out, 1.0)
    assert torch.equal(out, torch.zeros(2, 8))
    grad_t = torch.zeros(100, 8)
    assert not compiled.binary_weight_grad(torch.randn(2, 8), x, grad_t, 1.0)
    assert torch.equal(grad_t, torch.zeros(100, 8))


def test_refuses_inputs_denser_than_the_cap():
    x = spikes(16, 64, 0.5, torch.float32, seed=5)
    density = x.mean().item()
    w_t = torch.randn(64, 32)
    out = torch.zeros(16, 32)
    assert not matmul(x, w_t, None, out, density - 0.05)
    assert torch.equal(out, torch.zeros(16, 32))
    assert matmul(x, w_t, None, out, density + 0.05)
    torch.testing.assert_close(out, x @ w_t, rtol=1e-5, atol=1e-5)
    grad_t = torch.zeros(64, 32)
    assert not compiled.binary_weight_grad(torch.randn(16, 32), x, grad_t, density - 0.05)
    assert torch.equal(grad_t, torch.zeros(64, 32))


def test_column_tiles_hold_the_transposed_weights_zero_padded():
    for dtype, width in ((torch.float32, 32), (torch.float64, 16)):
        w = torch.randn(70, 9, dtype=dtype)  # N = 70 outputs of K = 9 inputs; the last tile partly padding
        count = -(-70 // width)
        tiles = compiled.pack_column_tiles(w)
        assert tiles.shape == (count, 9, width) and tiles.dtype == dtype
        padded = torch.cat([w.t(), torch.zeros(9, count * width - 70, dtype=dtype)], dim=1)
        assert torch.equal(tiles.permute(1, 0, 2).reshape(9, count * width), padded)


def test_two_threads_give_the_one_thread_result():
    x = spikes(2000, 128, 0.2, torch.float64, seed=9)
    d = torch.randn(2000, 512, dtype=torch.float64)
    w_t = torch.randn(128, 512, dtype=torch.float64)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = torch.empty(2000, 512, dtype=torch.float64)
            grad_t = torch.zeros(128, 512, dtype=torch.float64)
            assert matmul(x, w_t, None, out, 1.0)
            assert compiled.binary_weight_grad(d, x, grad_t, 1.0)
            results.append((out, grad_t))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_events_benchmark_reports_every_shape_and_density():
    from spikingrnn.bench import events

    rows = events.measure(compiled, [0.1, 0.5], repeats=2, product_shapes=[(4, 9, 5)], grad_shapes=[(6, 3, 7)])
    assert [(r["kind"], r["shape"], r["density"]) for r in rows] == [
        ("product", "4x9x5", 0.1), ("product", "4x9x5", 0.5), ("weight grad", "6x3x7", 0.1),
        ("weight grad", "6x3x7", 0.5)]
    assert all(r["event_us"] > 0 and r["gemm_us"] > 0 and r["ratio"] == r["event_us"] / r["gemm_us"] for r in rows)
    table = events.markdown(rows)
    assert table.count("\n") == 1 + len(rows) and "| weight grad | 6x3x7 | 0.5 |" in table


# --------------------------------------------- surrogate derivatives evaluated in the C++ LSTM backward

def test_fused_surrogate_derivatives_match_the_python_formulas():
    """The C++ backward evaluates the built-in surrogates itself (csrc/surrogates.h): run one LSTM
    backward chunk both ways (derivatives from PyTorch, then fused) and compare the results, for
    every surrogate, both dtypes, and pre-activations from -60 to 60 (exp underflow included)."""
    from spikingrnn import surrogate as sg
    from spikingrnn.ops.cpu.common import SURROGATE_KINDS

    classes = [sg.Erf, sg.Sigmoid, sg.ATan, sg.PiecewiseQuadratic, sg.PiecewiseExp, sg.SoftSign, sg.SuperSpike,
               sg.Rect]
    assert sorted(SURROGATE_KINDS.values()) == list(range(len(classes)))
    for dtype, tol in ((torch.float32, 2e-6), (torch.float64, 1e-13)):
        for cls in classes:
            for alpha in (cls.default_alpha, 0.5, 3.0):
                kind = SURROGATE_KINDS[cls.derivative]
                steps, batch, hidden = 2, 3, 37
                u = torch.linspace(-60, 60, steps * batch * 4 * hidden, dtype=dtype).view(steps, batch, 4 * hidden)
                u = u[..., torch.randperm(4 * hidden, generator=torch.Generator().manual_seed(kind))].contiguous()
                u[0, 0, :5] = torch.tensor([0.0, 1e-3, -1e-3, 0.1, -0.25], dtype=dtype)
                deriv = cls.derivative(u, alpha)
                results = []
                for given in (deriv, None):
                    c = (torch.rand(steps, batch, hidden, generator=torch.Generator().manual_seed(1)) < 0.5).to(dtype)
                    args = dict(dh=torch.ones(batch, hidden, dtype=dtype), dc=torch.full((batch, hidden), 0.5, dtype=dtype),
                                d_pre=torch.empty(steps, batch, 4 * hidden, dtype=dtype))
                    compiled.lstm_backward_steps(u, given, None, None, c, c, torch.ones(steps, batch, hidden, dtype=dtype),
                                                 0, [], torch.zeros(4 * hidden, hidden, dtype=dtype), None, args["dh"],
                                                 args["dc"], args["d_pre"], None, None, kind, alpha, kind, alpha)
                    results.append(args["d_pre"])
                scale = results[0].abs().max().clamp(min=1e-30)
                assert ((results[0] - results[1]).abs() / scale).max() <= tol, (cls.__name__, alpha, dtype)
                assert results[0].abs().sum() > 0


# --------------------------------------------- bit rows restored by the C++ table lookup

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 8), (5, 3, 7), (2, 1000), (70, 4, 33)])
def test_unpack_bit_rows_inverts_pack_rows(dtype, shape, monkeypatch):
    from spikingrnn.ops import storage

    values = (torch.rand(*shape, generator=torch.Generator().manual_seed(len(shape))) < 0.4).to(dtype)
    bits = storage.pack_rows(values)
    assert torch.equal(storage.unpack_rows(bits, shape[1:], dtype), values)  # C++
    monkeypatch.setattr(storage, "_fast_unpack", None)
    assert torch.equal(storage.unpack_rows(bits, shape[1:], dtype), values)  # PyTorch
    with pytest.raises(RuntimeError, match="cannot hold"):
        compiled.unpack_bit_rows(bits, torch.empty(shape[0], 8 * bits.shape[1] + 8, dtype=dtype))
