"""Parameter initialisation of the spiking modules: torch's uniform init, then the memory-gate bias
(a constant ``forget_bias``, or the chrono initialisation for dependencies up to ``chrono_steps``)."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .validation import CHRONO, check_chrono_steps

# The row block of the gate that keeps memory, in torch's gate order: LSTM i|f|g|o -> f, GRU r|z|n -> z.
MEMORY_GATE_INDEX = {"LSTM": 1, "GRU": 1}
# The LSTM's input gate (block i), which the chrono initialisation sets to the negative of f's bias.
LSTM_INPUT_GATE_INDEX = 0


def reset_uniform(parameters: Iterable[Tensor], hidden_size: int) -> None:
    """``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`` for every parameter, as torch.nn.LSTM/GRU/RNN."""
    bound = 1.0 / math.sqrt(hidden_size)
    for weight in parameters:
        nn.init.uniform_(weight, -bound, bound)


def _rows(hidden_size: int, index: int) -> slice:
    """The rows of gate block ``index`` in a ``[gates * hidden_size]`` bias."""
    return slice(index * hidden_size, (index + 1) * hidden_size)


def set_forget_bias(bias_ih: Tensor | None, bias_hh: Tensor | None, mode: str, hidden_size: int,
                    value: float | None) -> None:
    """Give the memory gate (LSTM ``f``, GRU ``z``) the total bias ``value``: ``bias_ih``'s rows of that
    gate set to ``value``, ``bias_hh``'s to 0. A sigmoid gate then starts near ``sigmoid(value)``
    (0.73 for 1.0): the cell keeps most of its state from the first step, which is what lets a
    recurrent network carry information over long sequences early in training (Gers et al. 2000;
    Jozefowicz et al. 2015). Nothing happens for ``value=None``, a vanilla RNN or a module without bias."""
    if value is None or mode not in MEMORY_GATE_INDEX or bias_ih is None or bias_hh is None:
        return
    rows = _rows(hidden_size, MEMORY_GATE_INDEX[mode])
    with torch.no_grad():
        bias_ih[rows].fill_(value)
        bias_hh[rows].zero_()


def set_chrono_bias(bias_ih: Tensor, bias_hh: Tensor, mode: str, hidden_size: int, max_steps: int,
                    generator: torch.Generator | None = None) -> None:
    """The chrono initialisation (Tallec & Ollivier 2018) of an LSTM's or GRU's gate biases.

    Each unit draws ``b = log(u)``, ``u ~ U(1, max_steps - 1)``: the memory gate (LSTM ``f``, GRU ``z``)
    gets the total bias ``b`` (in ``bias_ih``; ``bias_hh``'s rows 0), and the LSTM's input gate ``i``
    gets ``-b``. A sigmoid memory gate then starts at ``u / (1 + u)``, so unit by unit the cell forgets
    over about ``u`` steps: time scales spread from 1 to ``max_steps`` steps, which lets gradients
    reach back that far from the first update (on ``temporal_recall`` at T = 200, docs/LEARNING.md, it
    turns chance into 100 %). Draws from ``generator`` (default: torch's global one) on the CPU.
    """
    if mode not in MEMORY_GATE_INDEX:
        raise ValueError(f"the chrono initialisation needs an LSTM or GRU, got mode {mode!r}")
    draws = torch.empty(hidden_size, dtype=torch.float64).uniform_(1.0, float(max_steps - 1), generator=generator)
    timescale_bias = draws.log()
    with torch.no_grad():
        memory = _rows(hidden_size, MEMORY_GATE_INDEX[mode])
        bias_ih[memory].copy_(timescale_bias)
        bias_hh[memory].zero_()
        if mode == "LSTM":
            inputs = _rows(hidden_size, LSTM_INPUT_GATE_INDEX)
            bias_ih[inputs].copy_(-timescale_bias)
            bias_hh[inputs].zero_()


def init_memory_gate(bias_ih: Tensor | None, bias_hh: Tensor | None, mode: str, hidden_size: int,
                     forget_bias: float | str | None, chrono_steps: int | None) -> None:
    """A spiking module's memory-gate init after torch's uniform one: ``forget_bias`` a number (a
    constant bias, :func:`set_forget_bias`), ``"chrono"`` (:func:`set_chrono_bias` with
    ``chrono_steps``) or ``None`` (torch's init kept). Nothing for a vanilla RNN or without bias."""
    if forget_bias == CHRONO:
        if mode in MEMORY_GATE_INDEX and bias_ih is not None and bias_hh is not None:
            set_chrono_bias(bias_ih, bias_hh, mode, hidden_size, int(chrono_steps))  # type: ignore[arg-type]
        return
    set_forget_bias(bias_ih, bias_hh, mode, hidden_size, forget_bias)  # type: ignore[arg-type]


def memory_gate_setting(mode: str, forget_bias: float | str | None, chrono_steps: int | None
                        ) -> tuple[float | str | None, int | None]:
    """The ``(forget_bias, chrono_steps)`` a module keeps of its checked arguments: a number as a float,
    ``"chrono"`` with its steps, and ``(None, None)`` for a vanilla RNN (no memory gate)."""
    if mode not in MEMORY_GATE_INDEX or forget_bias is None:
        return None, None
    if forget_bias == CHRONO:
        return CHRONO, chrono_steps
    return float(forget_bias), None


def _gate_mode(module: nn.Module) -> str:
    """``"LSTM"`` or ``"GRU"`` for torch's and spikingrnn's LSTM/GRU stacks and cells; ValueError else."""
    mode = getattr(module, "mode", None)  # torch.nn.LSTM/GRU and every spiking module have one
    if isinstance(module, nn.LSTMCell):
        mode = "LSTM"
    elif isinstance(module, nn.GRUCell):
        mode = "GRU"
    if mode not in MEMORY_GATE_INDEX:
        raise ValueError(f"chrono_bias_: module must be an LSTM or GRU (torch.nn's or spikingrnn's, stack or cell), "
                         f"got {type(module).__name__}")
    return mode


def chrono_bias_(module: nn.Module, max_steps: int, generator: torch.Generator | None = None) -> nn.Module:
    """Apply the chrono initialisation to every layer and direction of an LSTM or GRU, in place:
    ``torch.nn.LSTM``/``GRU``/``LSTMCell``/``GRUCell`` or the spiking ones.

    Each unit draws ``b = log(u)``, ``u ~ U(1, max_steps - 1)``: the memory gate (LSTM ``f``, GRU ``z``)
    gets the total bias ``b`` and the LSTM's input gate ``-b`` (Tallec & Ollivier 2018; see
    ``spikingrnn.nn.initialization.set_chrono_bias``), so units start out forgetting over 1 to
    ``max_steps`` steps. Draws from ``generator`` (default: torch's global one).

    Only the memory gate's (and the LSTM input gate's) biases change; the module's settings do not (a
    spiking module's ``reset_parameters`` still follows its ``forget_bias``; build it with
    ``forget_bias="chrono", chrono_steps=N`` to make chrono its own init). Returns ``module``.

    Raises:
        TypeError, ValueError: ``max_steps`` not an int >= 2; a module that is not an LSTM or GRU or has
            no biases (the message names it).
    """
    check_chrono_steps(max_steps, "chrono_bias_", "max_steps")
    mode = _gate_mode(module)
    names = sorted(name for name, _ in module.named_parameters() if name.startswith("bias_ih"))
    if not names:
        raise ValueError(f"chrono_bias_: {type(module).__name__} has no biases (bias=False); the chrono "
                         f"initialisation sets the gate biases")
    parameters = dict(module.named_parameters())
    hidden_size: int = getattr(module, "hidden_size")  # every LSTM/GRU stack and cell has one
    for name in names:
        set_chrono_bias(parameters[name], parameters[name.replace("bias_ih", "bias_hh")], mode, hidden_size,
                        max_steps, generator)
    return module

