"""Checks of constructor arguments and inputs shared by the modules.

Messages follow torch.nn.LSTM's word for word where torch has one, so that code written against
torch's errors keeps working; where torch has none (or a misleading one), they name the argument,
the expected and the actual value.
"""
from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import Tensor

from ..functional.cells import CELL_STATES, DEFAULT_SPIKE_THRESHOLD, GATE_FORMS
from ..ops.rate_penalty import DEFAULT_RATE_PENALTY


def check_sizes(input_size: int, hidden_size: int, num_layers: int, proj_size: int) -> None:
    """torch.nn.RNNBase's checks of the size arguments (plus int checks torch leaves out)."""
    if not isinstance(input_size, int) or isinstance(input_size, bool):
        raise TypeError(f"input_size should be of type int, got: {type(input_size).__name__}")
    if input_size <= 0:
        raise ValueError("input_size must be greater than zero")
    if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
        raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
    if hidden_size <= 0:
        raise ValueError("hidden_size must be greater than zero")
    if not isinstance(num_layers, int) or isinstance(num_layers, bool):
        raise TypeError(f"num_layers should be of type int, got: {type(num_layers).__name__}")
    if num_layers <= 0:
        raise ValueError("num_layers must be greater than zero")
    if not isinstance(proj_size, int) or isinstance(proj_size, bool):
        raise TypeError(f"proj_size should be of type int, got: {type(proj_size).__name__}")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")


def check_flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")


def check_dropout(dropout: float, num_layers: int) -> float:
    """torch's dropout check and its warning for ``dropout > 0`` with one layer."""
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
        )
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
            f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
            stacklevel=4,
        )
    return float(dropout)


def check_cell_state(cell_state: str, threshold: float, owner: str, gates: str = "heaviside") -> None:
    if cell_state not in CELL_STATES:
        raise ValueError(f"{owner}: cell_state must be one of {CELL_STATES}, got {cell_state!r}")
    if gates == "sigmoid" and cell_state != "accumulate":
        raise ValueError(f"{owner}: gates='sigmoid' keeps an analog cell state, so cell_state must be 'accumulate', "
                         f"got {cell_state!r}; the other rules belong to gates='heaviside'")
    check_real(threshold, "cell_threshold", owner)


def check_real(value: float, name: str, owner: str) -> None:
    """A finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value}")


def check_leak(leak: float | None, owner: str) -> None:
    """The vanilla RNN's ``leak``: ``None`` or a real number in ``[0, 1)``."""
    if leak is None:
        return
    check_real(leak, "leak", owner)
    if not 0 <= leak < 1:
        raise ValueError(f"{owner}: leak must be None or in [0, 1), got {leak}")


def check_rate_penalty(rate_penalty: float | None, proj_size: int, owner: str) -> float:
    """The stack's ``rate_penalty`` resolved: ``None`` is :data:`~spikingrnn.ops.rate_penalty.DEFAULT_RATE_PENALTY`,
    or 0 for an LSTM with ``proj_size > 0`` (its layers emit projections, not spikes, so there is no
    rate to penalise); otherwise a finite real number >= 0, and 0 with a projection."""
    if rate_penalty is None:
        return 0.0 if proj_size > 0 else DEFAULT_RATE_PENALTY
    check_real(rate_penalty, "rate_penalty", owner)
    if rate_penalty < 0:
        raise ValueError(f"{owner}: rate_penalty must be >= 0 (0: off), got {rate_penalty}")
    if rate_penalty > 0 and proj_size > 0:
        raise ValueError(f"{owner}: rate_penalty must be 0 with proj_size > 0 (the layers emit projections of "
                         f"the spikes, not spikes), got rate_penalty={rate_penalty} with proj_size={proj_size}")
    return float(rate_penalty)


def check_free_rate(free_rate: float, owner: str) -> float:
    """The stack's ``free_rate``: a firing rate, a real number in ``[0, 1]``."""
    check_real(free_rate, "free_rate", owner)
    if not 0 <= free_rate <= 1:
        raise ValueError(f"{owner}: free_rate must be a firing rate in [0, 1], got {free_rate}")
    return float(free_rate)


CHRONO = "chrono"  # the value of forget_bias that asks for the chrono initialisation
MIN_CHRONO_STEPS = 2


def check_neuron(gates: str, spike_threshold: float, forget_bias: float | str | None, owner: str,
                 chrono_steps: int | None = None) -> None:
    """The LSTM's and GRU's neuron options: ``gates`` one of :data:`GATE_FORMS`, ``spike_threshold`` a real
    number (other than the default only where a threshold is used: the sigmoid form), ``forget_bias`` a
    real number, ``"chrono"`` or ``None``, ``chrono_steps`` an int >= 2 with ``"chrono"`` and ``None``
    otherwise."""
    if gates not in GATE_FORMS:
        raise ValueError(f"{owner}: gates must be one of {GATE_FORMS}, got {gates!r}")
    check_real(spike_threshold, "spike_threshold", owner)
    if gates == "heaviside" and spike_threshold != DEFAULT_SPIKE_THRESHOLD:
        raise ValueError(f"{owner}: spike_threshold applies to gates='sigmoid' only (with gates='heaviside' the "
                         f"gates themselves spike at 0), got spike_threshold={spike_threshold} with gates='heaviside'")
    if forget_bias == CHRONO:
        if chrono_steps is None:
            raise ValueError(f"{owner}: forget_bias='chrono' needs chrono_steps, the longest dependency in steps "
                             f"that the memory gate starts out holding (e.g. the sequence length), got None")
        check_chrono_steps(chrono_steps, owner)
        return
    if isinstance(forget_bias, str):
        raise ValueError(f"{owner}: forget_bias must be a real number, {CHRONO!r} or None, got {forget_bias!r}")
    if forget_bias is not None:
        check_real(forget_bias, "forget_bias", owner)
    if chrono_steps is not None:
        raise ValueError(f"{owner}: chrono_steps applies to forget_bias='chrono' only, got chrono_steps="
                         f"{chrono_steps!r} with forget_bias={forget_bias!r}")


def check_chrono_steps(value: object, owner: str, name: str = "chrono_steps") -> None:
    """An int of at least :data:`MIN_CHRONO_STEPS` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an int >= {MIN_CHRONO_STEPS}, got {type(value).__name__}")
    if value < MIN_CHRONO_STEPS:
        raise ValueError(f"{owner}: {name} must be an int >= {MIN_CHRONO_STEPS}, got {value}")


def check_rnn_neuron(leak: float | None, spike_threshold: float, owner: str) -> None:
    """The vanilla RNN's neuron options: ``leak`` (see :func:`check_leak`) and ``spike_threshold``, a real
    number (other than the default only with a leak: the seed's cell ``h = Θ(u)`` has no threshold)."""
    check_leak(leak, owner)
    check_real(spike_threshold, "spike_threshold", owner)
    if leak is None and spike_threshold != DEFAULT_SPIKE_THRESHOLD:
        raise ValueError(f"{owner}: spike_threshold applies to a leaky RNN only (leak=None is the cell h = Θ(u), "
                         f"which spikes at 0), got spike_threshold={spike_threshold} with leak=None")


def check_tensor(value: object, name: str, owner: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_input_dtype(input: Tensor, weight: Tensor, error: type[Exception] = ValueError) -> None:
    """torch's dtype check between input and weights (skipped under autocast, as torch does).

    torch raises ``ValueError`` for a plain tensor input and ``RuntimeError`` for a packed
    sequence or a cell; ``error`` picks which.
    """
    if input.dtype != weight.dtype and not torch.is_autocast_enabled(input.device.type):
        raise error(
            f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}). "
            f"Convert input: input.to({weight.dtype}), or convert model: model.to({input.dtype})"
        )
    if input.device != weight.device:
        # torch's own error text; without this a bias-free stack ran a "meta" input against CPU
        # weights silently (meta matmul accepts any device) and returned a meta output
        raise RuntimeError(
            "Input and parameter tensors are not at the same device, found input tensor at "
            f"{input.device} and parameter tensor at {weight.device}"
        )


def check_state_like_input(state: Tensor, input: Tensor, name: str) -> None:
    """A state tensor must share the input's device, and its dtype except under autocast (as torch)."""
    if state.device != input.device:
        raise RuntimeError(f"{name} is on {state.device} but input is on {input.device}; move both to one device")
    if state.dtype != input.dtype and not torch.is_autocast_enabled(input.device.type):
        raise RuntimeError(f"{name} dtype ({state.dtype}) does not match input dtype ({input.dtype})")
