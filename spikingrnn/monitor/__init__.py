"""Firing rates, synaptic operations and an energy estimate of spiking RNNs.

Nothing in the library's modules changes: the monitor re-runs the layers of a
:class:`~spikingrnn.nn.base.SpikingRNNBase` (``SpikingLSTM``, ``SpikingGRU``, ``SpikingRNN``) step by
step with the module's own weights and surrogates and the reference backend's formulas
(:mod:`spikingrnn.functional`), recording every gate. The recomputed last-layer output is the
module's output (tested), so the numbers describe exactly what the module computed.

>>> from spikingrnn.monitor import measure, FiringRateMonitor
>>> stats = measure(model, x)              # any module; every spiking RNN inside it is measured
>>> stats["rnn"]["rates"]["layer0"]["h"]   # firing rate of layer 0's emitted spikes
>>> # gates="heaviside" also reports its spiking gates ("i", "f", "g", "o" for the LSTM)
>>> with FiringRateMonitor(model) as monitor:   # or accumulate over many forward calls
...     for x, y in loader: model(x)
>>> monitor.summary()

Counting rules (per sample and time step, summed over steps, samples, layers and directions):

* Only products with a weight matrix (synapses) count: the input projection ``W_ih x``, the
  recurrent projection ``W_hh h`` and the LSTM projection ``W_hr h``. Biases, the elementwise gate
  arithmetic (``f*c + i*g``, ``o*c``, GRU ``r*(W_hn h + b_hn)`` and ``(1-z)*n + z*h``) and the
  Heaviside comparisons are not synaptic operations and are not counted.
* An operand that is binary (every value 0 or 1; e.g. the spikes of the previous layer, or ``h``
  with ``cell_state="clamp"``/``"spike"``) is event driven: each nonzero element is one spike that
  adds one weight column to every target, i.e. ``fan_out`` **accumulates (AC)**. For ``W_ih x``
  the fan-out is ``G*H`` (``G`` = 4 LSTM, 3 GRU, 1 RNN gates), for ``W_hh h`` also ``G*H``, for
  ``W_hr h`` it is ``proj_size``.
* An operand that is not binary (the real-valued input of the first layer, e.g. an encoder's
  output, or ``h`` of ``gates="heaviside"`` with ``cell_state="accumulate"``) is a dense product: ``fan_in * fan_out``
  **multiply-accumulates (MAC)** per sample and step, zeros included. Binarity is decided per
  operand tensor (all steps and samples of one layer and direction) from its values.
* The equivalent ``torch.nn.LSTM/GRU/RNN`` at the same shape computes every product densely:
  ``G*H*(I_l + H_out)`` (``+ H*proj_size`` with a projection) MACs per sample, step, layer and
  direction, where ``I_l`` is the layer's input size.
* Energy (Horowitz 2014, 45 nm, 32-bit float): ``0.9 pJ`` per AC and ``4.6 pJ`` per MAC, so
  ``energy_pj = 0.9 * ac + 4.6 * mac`` and ``dense_energy_pj = 4.6 * dense_mac``
  (:func:`energy_pj`). Memory access is not modelled.

Firing rates are ``spikes / (elements)`` per gate (LSTM ``i f g o``, GRU ``r z n``), for the cell
state with ``cell_state="spike"`` (``c``), and for the layer's output ``h`` (``o*c`` before ``W_hr`` with a projection), per layer (both directions
together). Padded (PackedSequence) input is not supported; use a plain tensor.
"""
from .counting import (AC_PJ, MAC_PJ, FiringRateMonitor, energy_pj, measure, measure_rnn,
                       spiking_modules)

__all__ = ["AC_PJ", "MAC_PJ", "FiringRateMonitor", "energy_pj", "measure", "measure_rnn", "spiking_modules"]
