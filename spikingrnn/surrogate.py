"""Surrogate spike functions: Heaviside forward, smooth derivative backward.

A spiking gate fires ``Θ(u) = 1[u >= 0]``. Its true derivative is zero almost everywhere,
so training replaces it in backward by the derivative ``σ'(u)`` of a smooth primitive ``σ``
(a "surrogate gradient"). Formulas and default ``alpha`` follow SpikingJelly 2.0.

Every surrogate is an :class:`torch.nn.Module` mapping a tensor ``u`` of any shape to a tensor of
the same shape and dtype: spikes (0/1) when ``spiking=True``, ``σ(u)`` when ``spiking=False``.

A user-defined surrogate is a subclass of :class:`SurrogateFunction` that implements the two
static methods ``primitive(x, alpha)`` and ``derivative(x, alpha)``. The built-in ones are also
compiled into the fast backends' kernels, which select a derivative formula by the surrogate's
kernel id (:data:`KERNEL_IDS`, :func:`kernel_id`). SpikingJelly's built-in
surrogates with an equivalent here are replaced by it (:func:`builtin_equivalent`), so that the fast
backends run them; any other callable module ``u -> spikes`` also plugs into the reference backend
(``backend="auto"`` warns once per module that it runs the reference backend for it).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

__all__ = [
    "heaviside", "spike", "SurrogateFunction",
    "Erf", "Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign", "SuperSpike", "Rect",
    "SURROGATES", "KERNEL_IDS", "kernel_id", "get_surrogate", "builtin_equivalent",
]

# A spike function: ``u -> spikes`` of the same shape (a surrogate module, or any callable the reference backend runs).
SpikeFn = Callable[[Tensor], Tensor]
# A surrogate derivative ``(x, alpha) -> σ'(x)`` (a SurrogateFunction's static ``derivative``).
DerivativeFn = Callable[[Tensor, float], Tensor]


def heaviside(x: Tensor) -> Tensor:
    """``Θ(x) = 1[x >= 0]`` in the dtype of ``x``; no gradient."""
    return (x >= 0).to(x.dtype)


class _HeavisideWithSurrogate(torch.autograd.Function):
    """Forward ``Θ(x)``; backward ``grad * derivative(x, alpha)``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, derivative: DerivativeFn, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad_output * ctx.derivative(x, ctx.alpha), None, None


def spike(x: Tensor, derivative: DerivativeFn, alpha: float) -> Tensor:
    """Heaviside spikes of ``x`` whose backward is ``derivative(x, alpha)``."""
    return _HeavisideWithSurrogate.apply(x, derivative, alpha)


class SurrogateFunction(nn.Module):
    """Base class of surrogate spike functions.

    Args:
        alpha: width/steepness of the surrogate; ``None`` takes the class default.
        spiking: ``True`` fires 0/1 spikes with the surrogate backward; ``False`` applies the
            smooth primitive ``σ(alpha * x)`` (useful for pre-training or debugging).

    Subclasses set ``default_alpha`` and implement ``primitive(x, alpha)`` and
    ``derivative(x, alpha)`` as static methods of tensors of any shape.
    """

    default_alpha: float = 1.0
    alpha: float
    spiking: bool

    def __init__(self, alpha: float | None = None, spiking: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        if alpha is None:
            alpha = self.default_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"{name}: alpha must be a real number, got {type(alpha).__name__}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"{name}: alpha must be finite and > 0, got {alpha}")
        if not isinstance(spiking, bool):
            raise TypeError(f"{name}: spiking must be a bool, got {type(spiking).__name__}")
        self.alpha = float(alpha)
        self.spiking = spiking

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        raise NotImplementedError

    def set_spiking_mode(self, spiking: bool) -> None:
        """Switch between 0/1 spikes (``True``) and the smooth primitive (``False``)."""
        self.spiking = spiking

    def forward(self, x: Tensor) -> Tensor:
        if self.spiking:
            return spike(x, self.derivative, self.alpha)
        return self.primitive(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, spiking={self.spiking}"


class Erf(SurrogateFunction):
    """``σ(x) = erfc(-αx)/2``, ``σ'(x) = α/√π · exp(-(αx)²)``. The default surrogate (α=2)."""

    default_alpha = 2.0

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        return torch.special.erfc(-alpha * x) / 2.0

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        # in place after the first op: one temporary instead of four on large tensors
        return (alpha * x).square_().neg_().exp_().mul_(alpha / math.sqrt(math.pi))


class Sigmoid(SurrogateFunction):
    """``σ(x) = sigmoid(αx)``, ``σ'(x) = α·s(1-s)`` (α=4)."""

    default_alpha = 4.0

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        return torch.sigmoid(alpha * x)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        s = torch.sigmoid(alpha * x)
        return s.mul_(1.0 - s).mul_(alpha)


class ATan(SurrogateFunction):
    """``σ(x) = atan(παx/2)/π + 1/2``, ``σ'(x) = (α/2) / (1 + (παx/2)²)`` (α=2)."""

    default_alpha = 2.0

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        return torch.atan(math.pi / 2 * alpha * x) / math.pi + 0.5

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return (math.pi / 2 * alpha * x).square_().add_(1.0).reciprocal_().mul_(alpha / 2)


class PiecewiseQuadratic(SurrogateFunction):
    """``σ'(x) = α - α²|x|`` for ``|x| <= 1/α``, else 0 (α=1)."""

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        inside = (x.abs() <= 1.0 / alpha).to(x.dtype)
        above = (x > 1.0 / alpha).to(x.dtype)
        return above + inside * (-(alpha ** 2) / 2 * x * x.abs() + alpha * x + 0.5)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return torch.clamp(alpha - alpha ** 2 * x.abs(), min=0.0)


class PiecewiseExp(SurrogateFunction):
    """``σ'(x) = (α/2) · exp(-α|x|)`` (α=1)."""

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        half_exp = torch.exp(-alpha * x.abs()) / 2.0
        return torch.where(x >= 0, 1.0 - half_exp, half_exp)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return (alpha / 2) * torch.exp(-alpha * x.abs())


class SoftSign(SurrogateFunction):
    """``σ(x) = (softsign(αx) + 1)/2``, ``σ'(x) = α / (2(1 + α|x|)²)`` (α=2)."""

    default_alpha = 2.0

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        return (torch.nn.functional.softsign(alpha * x) + 1.0) / 2.0

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return 1.0 / (2 * alpha * (1.0 / alpha + x.abs()) ** 2)


class SuperSpike(SurrogateFunction):
    """``σ'(x) = α / (1 + |x|)²`` (α=1; Zenke & Ganguli 2018).

    The primitive is the antiderivative with value 1/2 at 0, ``1/2 + αx/(1 + |x|)``; it spans
    ``(1/2 - α, 1/2 + α)``, so it is a [0, 1] step only for α = 1/2.
    """

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        return 0.5 + alpha * x / (1.0 + x.abs())

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return alpha / (1.0 + x.abs()) ** 2


class Rect(SurrogateFunction):
    """``σ(x) = clamp(αx + 1/2, 0, 1)``, ``σ'(x) = α · 1[|x| < 1/(2α)]`` (α=1)."""

    @staticmethod
    def primitive(x: Tensor, alpha: float) -> Tensor:
        return torch.clamp(alpha * x + 0.5, min=0.0, max=1.0)

    @staticmethod
    def derivative(x: Tensor, alpha: float) -> Tensor:
        return alpha * (x.abs() < 0.5 / alpha).to(x.dtype)


# The built-in surrogates, one entry each: (name, class, kernel id). The kernel id selects the class's
# derivative formula in the compiled kernels: the ``case`` of ``derivative_row`` in
# spikingrnn/ops/cpu/csrc/surrogates.h and the ``KIND`` branch of ``surrogate_derivative`` in
# spikingrnn/ops/triton/kernels.py (tests/test_surrogate_registry.py checks both against ``derivative``).
_BUILTINS: tuple[tuple[str, type[SurrogateFunction], int], ...] = (
    ("erf", Erf, 0),
    ("sigmoid", Sigmoid, 1),
    ("atan", ATan, 2),
    ("piecewise_quadratic", PiecewiseQuadratic, 3),
    ("piecewise_exp", PiecewiseExp, 4),
    ("soft_sign", SoftSign, 5),
    ("super_spike", SuperSpike, 6),
    ("rect", Rect, 7),
)
SURROGATES: dict[str, type[SurrogateFunction]] = {name: cls for name, cls, _ in _BUILTINS}
KERNEL_IDS: dict[type[SurrogateFunction], int] = {cls: kernel for _, cls, kernel in _BUILTINS}

# What the modules' ``surrogate_function1``/``surrogate_function2`` arguments accept (see :func:`get_surrogate`).
SurrogateSpec = Optional[Union[str, type[SurrogateFunction], SpikeFn]]


def kernel_id(surrogate: object) -> int | None:
    """The kernel id of ``surrogate`` (an instance): its :data:`KERNEL_IDS` entry when its class is
    exactly a built-in one, else ``None`` (a subclass may override ``derivative``)."""
    kind: type = type(surrogate)
    return KERNEL_IDS.get(kind)


def builtin_equivalent(surrogate: object) -> SurrogateFunction | None:
    """spikingrnn's built-in surrogate equivalent to a SpikingJelly built-in one, or ``None``.

    SpikingJelly's ``Erf``, ``Sigmoid``, ``ATan``, ``PiecewiseQuadratic``, ``PiecewiseExp``,
    ``SoftSign``, ``SuperSpike`` and ``Rect`` (``spikingjelly.activation_based.surrogate`` or the
    older ``clock_driven`` one) have the same formulas and defaults as the classes of the same name
    here: the same ``alpha`` and ``spiking`` flag give the same spikes and the same backward (bit for
    bit in float32 and float64; SuperSpike with ``alpha != 1`` within one rounding). Anything else
    (another library, a subclass, a surrogate with other parameters) gives ``None``: it has no
    equivalent here.
    """
    kind = type(surrogate)
    ours = next((cls for cls in SURROGATES.values() if cls.__name__ == kind.__name__), None)
    # exactly SpikingJelly's own classes (its surrogate modules): a user's subclass elsewhere may
    # override the backward
    module = kind.__module__
    if ours is None or module.split(".")[0] != "spikingjelly" or not module.endswith(".surrogate"):
        return None
    # SpikingJelly names the surrogate's parameters; ours have alpha only
    if tuple(getattr(surrogate, "_sg_param_names", None) or ("alpha",)) != ("alpha",):
        return None
    # a foreign object's attributes: ours checks them (TypeError/ValueError below)
    alpha: Any = getattr(surrogate, "alpha", None)
    spiking: Any = getattr(surrogate, "spiking", None)
    if isinstance(alpha, Tensor):  # a learnable alpha would lose its gradient here
        return None
    try:
        return ours(alpha=float(alpha), spiking=spiking)
    except (TypeError, ValueError):  # an alpha or spiking flag ours refuses
        return None


def get_surrogate(spec: SurrogateSpec, *, argument: str = "surrogate") -> SpikeFn:
    """Turn ``spec`` into a surrogate module.

    Args:
        spec: ``None`` (a fresh :class:`Erf`), a registered name (``"atan"``), a surrogate
            class, a SpikingJelly built-in surrogate (replaced by its :func:`builtin_equivalent`,
            so that the fast backends run it), or any other callable module/function mapping ``u``
            to spikes (used as given; such a surrogate runs on the reference backend only).
        argument: the argument name used in error messages.
    """
    if spec is None:
        return Erf()
    if isinstance(spec, str):
        if spec not in SURROGATES:
            raise ValueError(f"{argument}: unknown surrogate {spec!r}; expected one of {sorted(SURROGATES)}")
        return SURROGATES[spec]()
    if isinstance(spec, type):
        if issubclass(spec, SurrogateFunction):
            return spec()
        # any other class would be called on u as the spike function (constructing an instance of it)
        raise TypeError(f"{argument}: a surrogate class must subclass spikingrnn.surrogate.SurrogateFunction, "
                        f"got the class {spec.__module__}.{spec.__qualname__} (pass an instance of it)")
    if callable(spec):
        equivalent = builtin_equivalent(spec)
        return spec if equivalent is None else equivalent
    raise TypeError(
        f"{argument} must be None, a surrogate name, a SurrogateFunction or a callable, "
        f"got {type(spec).__name__}"
    )
