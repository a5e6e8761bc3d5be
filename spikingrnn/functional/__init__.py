"""Pure functions of the spiking cells (no modules, no state)."""
from .cells import (CELL_STATE_CODES, CELL_STATES, DEFAULT_CELL_STATE, DEFAULT_CELL_THRESHOLD, DEFAULT_FORGET_BIAS,
                    DEFAULT_GATES, DEFAULT_LEAK, DEFAULT_SPIKE_THRESHOLD, GATE_FORMS, GRUGates, LSTMGates, RNNGates,
                    clamp_max_straight_through, gru_step, gru_step_gates, lstm_cell_update, lstm_step,
                    lstm_step_gates, rnn_step, rnn_step_gates, state_spikes)

__all__ = ["CELL_STATE_CODES", "CELL_STATES", "DEFAULT_CELL_STATE", "DEFAULT_CELL_THRESHOLD", "DEFAULT_FORGET_BIAS",
           "DEFAULT_GATES", "DEFAULT_LEAK", "DEFAULT_SPIKE_THRESHOLD", "GATE_FORMS", "GRUGates", "LSTMGates", "RNNGates",
           "clamp_max_straight_through", "gru_step", "gru_step_gates", "lstm_cell_update", "lstm_step",
           "lstm_step_gates", "rnn_step", "rnn_step_gates", "state_spikes"]
