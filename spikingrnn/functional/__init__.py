"""Pure functions of the spiking cells (no modules, no state)."""
from .cells import CELL_STATES, DEFAULT_CELL_THRESHOLD, clamp_max_straight_through, gru_step, lstm_cell_update, lstm_step, rnn_step

__all__ = ["CELL_STATES", "DEFAULT_CELL_THRESHOLD", "clamp_max_straight_through", "gru_step", "lstm_cell_update", "lstm_step", "rnn_step"]
