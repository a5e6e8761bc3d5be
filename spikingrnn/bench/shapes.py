"""Benchmark shapes: ``(T, B, I, H, L)`` = steps, batch, input size, hidden size, layers."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Shape:
    """One benchmarked problem size (time-major input ``[T, B, I]``, ``L`` stacked layers of ``H`` units)."""

    T: int
    B: int
    I: int  # noqa: E741 - the usual name of the input size
    H: int
    L: int

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"shape field {name} must be a positive int, got {value!r}")

    @property
    def label(self) -> str:
        """Compact label ``T×B×I×H×L`` used in tables."""
        return "×".join(str(v) for v in (self.T, self.B, self.I, self.H, self.L))

    def units(self, directions: int = 1) -> int:
        """``T * B * H * L * D``: the number of (step, batch row, hidden unit, layer) positions."""
        return self.T * self.B * self.H * self.L * directions

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


DEFAULT_SHAPES: tuple[Shape, ...] = (
    Shape(100, 32, 64, 128, 2),
    Shape(50, 16, 128, 256, 1),
    Shape(784, 32, 1, 128, 1),
    Shape(100, 64, 700, 256, 2),
)

# The --scaling study: a small layer run for growing sequence lengths.
SCALING_STEPS: tuple[int, ...] = (100, 1000, 10000)
SCALING_SHAPE = dict(B=8, I=16, H=64, L=1)


def parse_shapes(text: str) -> list[Shape]:
    """Parse ``"T,B,I,H,L;T,B,I,H,L;..."`` (empty items ignored) into shapes."""
    shapes = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        parts = [p.strip() for p in item.split(",")]
        if len(parts) != 5:
            raise ValueError(f"shape {item!r} must have 5 comma-separated integers T,B,I,H,L")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"shape {item!r} must have 5 comma-separated integers T,B,I,H,L") from None
        shapes.append(Shape(*values))
    if not shapes:
        raise ValueError(f"no shape in {text!r}")
    return shapes
