"""``python -m spikingrnn.bench.events``: event-driven products against MKL's GEMM, by density.

The cpu backend multiplies 0/1 operands (the hidden state, spiking inputs) by weight matrices as
sums of the weight rows their ones pick, below a density threshold
(``spikingrnn.ops.cpu.common.EVENT_DENSITY`` and ``WEIGHT_GRAD_EVENT_DENSITY``). This measures
where that pays: for each shape and density, the event-driven product and ``torch.mm`` on the
same random 0/1 operand, interleaved, medians in microseconds, and their ratio (below 1: the
event-driven sum is faster).
"""
from __future__ import annotations

import argparse
import time

import torch

from .stats import percentile

# (rows, K, N): per-step recurrent products (B, H, 4H) and a chunk of input projections
PRODUCT_SHAPES = [(32, 128, 512), (16, 256, 1024), (64, 256, 1024), (512, 256, 1024)]
# (rows M, F, G): weight gradients dW [G, F] += d [M, G]^T x [M, F] over one chunk
GRAD_SHAPES = [(512, 128, 512), (1024, 256, 1024)]
DENSITIES = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5]


def _median_us(samples: list[float]) -> float:
    return percentile(samples, 50) * 1e6


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(compiled, densities, repeats: int, product_shapes=PRODUCT_SHAPES, grad_shapes=GRAD_SHAPES) -> list[dict]:
    """Rows ``{"kind", "shape", "density", "event_us", "gemm_us", "ratio"}``; each repeat times the
    event-driven product then the GEMM on the same operand."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for kind, shapes in (("product", product_shapes), ("weight grad", grad_shapes)):
        for shape in shapes:
            m, k, n = shape
            other = torch.randn(k, n, generator=generator) if kind == "product" else torch.randn(m, n,
                                                                                                   generator=generator)
            for density in densities:
                x = (torch.rand(m, k, generator=generator) < density).float()
                if kind == "product":
                    out = torch.empty(m, n)
                    tiles = compiled.pack_column_tiles(other.t().contiguous())  # once per sequence in the loops
                    event = lambda: compiled.binary_matmul(x, tiles, n, None, out, 1.0)  # noqa: E731
                    gemm = lambda: torch.mm(x, other, out=out)  # noqa: E731
                else:
                    grad, grad_t = torch.zeros(n, k), torch.zeros(k, n)
                    event = lambda: compiled.binary_weight_grad(other, x, grad_t, 1.0)  # noqa: E731
                    gemm = lambda: grad.addmm_(other.t(), x)  # noqa: E731
                event(), gemm()  # warm-up
                times: dict[str, list[float]] = {"event": [], "gemm": []}
                for _ in range(repeats):
                    times["event"].append(_timed(event))
                    times["gemm"].append(_timed(gemm))
                event_us, gemm_us = _median_us(times["event"]), _median_us(times["gemm"])
                rows.append(dict(kind=kind, shape="x".join(map(str, shape)), density=density, event_us=event_us,
                                 gemm_us=gemm_us, ratio=event_us / gemm_us))
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| product | shape | density | event-driven µs | GEMM µs | event / GEMM |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['shape']} | {r['density']:g} | {r['event_us']:.1f} | {r['gemm_us']:.1f} "
                     f"| {r['ratio']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from ..ops.cpu.extension import loops

    parser = argparse.ArgumentParser(prog="python -m spikingrnn.bench.events", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=21, help="timed repeats per cell (default 21)")
    parser.add_argument("--densities", type=float, nargs="+", default=DENSITIES)
    args = parser.parse_args(argv)
    compiled = loops()
    if compiled is None:
        parser.error("the C++ loops of the cpu backend are unavailable (no compiler or ninja)")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} repeats, medians")
    print(markdown(measure(compiled, args.densities, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
