"""Modules: the spiking RNN stacks and cells with torch.nn's interfaces."""
from .base import SpikingRNNBase
from .cells import SpikingCellBase, SpikingGRUCell, SpikingLSTMCell, SpikingRNNCell
from .initialization import chrono_bias_
from .modules import SpikingGRU, SpikingLSTM, SpikingRNN

__all__ = ["SpikingRNNBase", "SpikingLSTM", "SpikingGRU", "SpikingRNN",
           "SpikingCellBase", "SpikingLSTMCell", "SpikingGRUCell", "SpikingRNNCell", "chrono_bias_"]
