"""How modules hold their surrogate functions."""
from __future__ import annotations

from typing import Protocol

from ..surrogate import Erf, SpikeFn, SurrogateSpec, get_surrogate

# Erf's alpha when a SpikingLSTM (or cell) of the sigmoid form gets no surrogate_function1: twice as wide
# as SpikingJelly's Erf(alpha=2), which learned 4 points worse at T = 784 and no better on the short tasks
# (docs/LEARNING.md). Every other form keeps Erf(alpha=2).
SIGMOID_LSTM_SURROGATE_ALPHA = 1.0


class HasSurrogates(Protocol):
    """A module that holds its surrogates (the classes declare these two attributes)."""
    surrogate_function1: SpikeFn
    surrogate_function2: SpikeFn | None


def default_surrogate_alpha(mode: str, gates: str | None) -> float | None:
    """Erf's ``alpha`` for a native module built without ``surrogate_function1`` (``None``: Erf's own, 2)."""
    return SIGMOID_LSTM_SURROGATE_ALPHA if mode == "LSTM" and gates == "sigmoid" else None


def attach_surrogates(module: HasSurrogates, surrogate_function1: SurrogateSpec,
                      surrogate_function2: SurrogateSpec, default_alpha: float | None = None) -> None:
    """Set ``module.surrogate_function1`` and ``surrogate_function2``.

    ``surrogate_function1=None`` gives a fresh ``Erf(alpha=default_alpha)`` (``Erf()``, alpha 2 as in
    SpikingJelly, when ``default_alpha`` is ``None``).

    Each goes through :func:`~spikingrnn.surrogate.get_surrogate`: a SpikingJelly built-in surrogate
    is replaced by spikingrnn's class of the same name, alpha and spiking flag (same forward and
    backward), which the fast backends run; any other callable is kept as given and runs on the
    reference backend only (``backend="auto"`` warns once per module when it falls back for it).
    ``surrogate_function2`` (the g gate of LSTM, n of GRU) stays ``None`` when not given, meaning
    "same as surrogate_function1". Surrogate modules hold no parameters, so the state_dict is
    unchanged.
    """
    if surrogate_function1 is None and default_alpha is not None:
        surrogate_function1 = Erf(alpha=default_alpha)
    module.surrogate_function1 = get_surrogate(surrogate_function1, argument="surrogate_function1")
    module.surrogate_function2 = (
        None if surrogate_function2 is None
        else get_surrogate(surrogate_function2, argument="surrogate_function2")
    )
    spiking = [getattr(s, "spiking", None) for s in (module.surrogate_function1, module.surrogate_function2)]
    if None not in spiking and spiking[0] != spiking[1]:
        raise ValueError(
            f"{type(module).__name__}: surrogate_function1.spiking ({spiking[0]}) and "
            f"surrogate_function2.spiking ({spiking[1]}) must be equal"
        )


def surrogate_pair(module: HasSurrogates) -> tuple[SpikeFn, SpikeFn]:
    """``(spike, spike_g)`` of a module: the second falls back to the first."""
    first = module.surrogate_function1
    second = module.surrogate_function2
    return first, first if second is None else second
