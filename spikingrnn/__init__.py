"""spikingrnn: spiking LSTM, GRU and vanilla RNN layers with torch.nn.LSTM's interface."""
from . import functional, ops, surrogate
from .nn import (SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN, SpikingRNNBase,
                 SpikingRNNCell)

__version__ = "0.1.0"

__all__ = ["SpikingLSTM", "SpikingGRU", "SpikingRNN", "SpikingLSTMCell", "SpikingGRUCell", "SpikingRNNCell",
           "SpikingRNNBase", "functional", "ops", "surrogate", "__version__"]
