"""The static description of a spiking RNN stack that every backend receives."""
from __future__ import annotations

from dataclasses import dataclass

from ..functional.cells import DEFAULT_CELL_THRESHOLD

MODES = ("LSTM", "GRU", "RNN")
GATES_PER_MODE = {"LSTM": 4, "GRU": 3, "RNN": 1}
STATES_PER_MODE = {"LSTM": 2, "GRU": 1, "RNN": 1}


@dataclass(frozen=True)
class RNNSpec:
    """What a backend needs to know besides tensors.

    Attributes:
        mode: ``"LSTM"``, ``"GRU"`` or ``"RNN"``.
        num_layers: stacked layers ``L``.
        bidirectional: two directions ``D = 2`` when ``True``.
        dropout: probability of zeroing a layer's output (all layers but the last, training only).
        invariant_dropout_mask: one dropout mask ``[B, D*H_out]`` per layer shared by all steps.
        cell_state: LSTM cell-state rule, ``"clamp"``, ``"accumulate"`` or ``"spike"``.
        cell_threshold: threshold of ``cell_state="spike"``.
        low_memory: keep only 0/1 bits (and non-binary states) for backward and recompute the
            pre-activations there, instead of keeping them (backends that support it).
    """

    mode: str
    num_layers: int
    bidirectional: bool
    dropout: float = 0.0
    invariant_dropout_mask: bool = False
    cell_state: str = "clamp"
    cell_threshold: float = DEFAULT_CELL_THRESHOLD
    low_memory: bool = False

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def num_states(self) -> int:
        return STATES_PER_MODE[self.mode]
