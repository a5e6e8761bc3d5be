"""spikingrnn: spiking LSTM, GRU and vanilla RNN layers with torch.nn.LSTM's interface."""
from . import functional, ops, surrogate
from .export import export_onnx
from .nn import (SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN, SpikingRNNBase,
                 SpikingRNNCell)

__version__ = "0.1.0"

__all__ = ["SpikingLSTM", "SpikingGRU", "SpikingRNN", "SpikingLSTMCell", "SpikingGRUCell", "SpikingRNNCell",
           "SpikingRNNBase", "export_onnx", "functional", "ops", "surrogate", "__version__"]
