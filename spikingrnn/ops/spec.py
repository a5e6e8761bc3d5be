"""The static description of a spiking RNN stack that every backend receives."""
from __future__ import annotations

from dataclasses import dataclass

from ..functional.cells import (DEFAULT_CELL_STATE, DEFAULT_CELL_THRESHOLD, DEFAULT_GATES, DEFAULT_LEAK,
                               DEFAULT_SPIKE_THRESHOLD)

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
        gates: form of the LSTM's and GRU's gates, ``"sigmoid"`` or ``"heaviside"``
            (:data:`spikingrnn.functional.GATE_FORMS`); the vanilla RNN has only ``"heaviside"``.
        spike_threshold: threshold θ of the emitted spikes of the sigmoid form and the leaky RNN.
        leak: the vanilla RNN's leak β (``None``: the seed's cell ``h = Θ(u)``).
        low_memory: keep only 0/1 bits (and non-binary states) for backward and recompute the
            pre-activations there, instead of keeping them (backends that support it).
        rate_penalty: λ of the firing-rate penalty: in training, backward adds the gradient of
            ``λ × (each layer's mean firing rate above free_rate)`` (``spikingrnn.ops.rate_penalty``;
            0: off).
        free_rate: the firing rate a layer (and direction) may reach before ``rate_penalty`` acts.
    """

    mode: str
    num_layers: int
    bidirectional: bool
    dropout: float = 0.0
    invariant_dropout_mask: bool = False
    cell_state: str = DEFAULT_CELL_STATE
    cell_threshold: float = DEFAULT_CELL_THRESHOLD
    low_memory: bool = False
    gates: str = DEFAULT_GATES
    spike_threshold: float = DEFAULT_SPIKE_THRESHOLD
    leak: float | None = DEFAULT_LEAK
    rate_penalty: float = 0.0
    free_rate: float = 0.0

    @property
    def sigmoid_gates(self) -> bool:
        """Whether the cells have sigmoid/tanh gates with an analog state (the vanilla RNN never does)."""
        return self.gates == "sigmoid" and self.mode != "RNN"

    @property
    def leaky(self) -> bool:
        """Whether the cells are the vanilla RNN's leaky membrane (``leak`` given)."""
        return self.mode == "RNN" and self.leak is not None

    @property
    def emits_state_spikes(self) -> bool:
        """Whether a cell's state is analog and its output the spikes of it (sigmoid GRU, leaky RNN), not
        the state itself."""
        return (self.mode == "GRU" and self.sigmoid_gates) or self.leaky

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def num_states(self) -> int:
        return STATES_PER_MODE[self.mode]
