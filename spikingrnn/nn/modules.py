"""SpikingLSTM, SpikingGRU, SpikingRNN: drop-in spiking versions of torch.nn.LSTM/GRU/RNN."""
from __future__ import annotations

from typing import Any

import torch
from torch.types import Device

from ..functional.cells import (DEFAULT_CELL_STATE, DEFAULT_CELL_THRESHOLD, DEFAULT_FORGET_BIAS, DEFAULT_GATES,
                               DEFAULT_LEAK, DEFAULT_SPIKE_THRESHOLD)
from ..ops.rate_penalty import DEFAULT_FREE_RATE
from ..surrogate import SurrogateSpec
from .base import SpikingRNNBase


class SpikingLSTM(SpikingRNNBase):
    """Multi-layer spiking LSTM with torch.nn.LSTM's interface.

    Per layer and step, with the spike ``Θ(u) = 1[u >= 0]`` (surrogate gradient) and
    ``u_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh`` (``[B, 4H]``, rows ``i|f|g|o``)::

        gates="sigmoid" (default): torch's gates, an analog cell state, binary spikes out
            i, f, o = sigmoid(u_i), sigmoid(u_f), sigmoid(u_o);  g = tanh(u_g)
            c_t = f * c_{t-1} + i * g                        (cell_state "accumulate")
            h_t = Θ(o * tanh(c_t) - spike_threshold)         (surrogate_function1; 0/1)
        gates="heaviside": the seed's cell, every gate a spike
            i, f, o = Θ(u_i), Θ(u_f), Θ(u_o)   (surrogate_function1)
            g = Θ(u_g)                           (surrogate_function2, default surrogate_function1)
            c_t = f * c_{t-1} + i * g, then by cell_state:
                "clamp": min(c_t, 1), straight-through gradient (SpikingJelly 2.0)
                "accumulate": unchanged (c counts up)
                "spike": Θ(c_t - cell_threshold) (Lotfi Rezaabad & Vishwanath 2020)
            h_t = o * c_t
        then W_hr h_t when proj_size > 0

    The default learns like ``nn.LSTM`` where the heaviside form does not (docs/LEARNING.md) while
    every value a layer sends (``h``, so the recurrent product and the next layer's input) stays
    0/1. SpikingJelly 2.0's cell: ``gates="heaviside", cell_state="clamp", forget_bias=None`` (and
    ``rate_penalty=0.0`` for its gradients: SpikingJelly has no firing-rate regulariser).

    Input ``[T, B, I]`` (``[B, T, I]`` with ``batch_first``, ``[T, I]`` unbatched, or a
    PackedSequence); ``hx = (h_0 [L*D, B, H_out], c_0 [L*D, B, H])``. Returns
    ``output [T, B, D*H_out], (h_n, c_n)``. See :class:`SpikingRNNBase` for the arguments.
    """

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Device = None, dtype: torch.dtype | None = None, *,
                 surrogate_function1: SurrogateSpec = None,
                 surrogate_function2: SurrogateSpec = None, invariant_dropout_mask: bool = False,
                 gates: str = DEFAULT_GATES, spike_threshold: float = DEFAULT_SPIKE_THRESHOLD,
                 forget_bias: float | str | None = DEFAULT_FORGET_BIAS, chrono_steps: int | None = None,
                 cell_state: str = DEFAULT_CELL_STATE, cell_threshold: float = DEFAULT_CELL_THRESHOLD,
                 rate_penalty: float | None = None, free_rate: float = DEFAULT_FREE_RATE,
                 backend: str = "auto", low_memory: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, surrogate_function1=surrogate_function1,
                         surrogate_function2=surrogate_function2, invariant_dropout_mask=invariant_dropout_mask,
                         gates=gates, spike_threshold=spike_threshold, forget_bias=forget_bias,
                         chrono_steps=chrono_steps, cell_state=cell_state, cell_threshold=cell_threshold,
                         rate_penalty=rate_penalty, free_rate=free_rate, backend=backend, low_memory=low_memory)


class SpikingGRU(SpikingRNNBase):
    """Multi-layer spiking GRU with torch.nn.GRU's interface; gate rows ``r|z|n`` as in torch.

    ``gates="sigmoid"`` (default): the state is an analog ``s``, the layer sends the spikes
    ``h = Θ(s - spike_threshold)`` (``surrogate_function1``), which are also its recurrent input::

        r = sigmoid(u_r), z = sigmoid(u_z), n = tanh(W_in x + b_in + r * (W_hn h_{t-1} + b_hn))
        s_t = (1 - z) * n + z * s_{t-1};  h_t = Θ(s_t - spike_threshold)

    ``output`` holds the spikes ``h_t``; ``h_n`` (and ``hx``) is the state ``s``, so that a sequence
    resumes exactly where it stopped (``output[-1] = Θ(h_n - spike_threshold)``).

    ``gates="heaviside"`` (SpikingJelly 2.0's cell with ``forget_bias=None``): ``r = Θ(u_r)``,
    ``z = Θ(u_z)``, ``n = Θ(W_in x + b_in + r * (W_hn h + b_hn))`` (``surrogate_function2``),
    ``h_t = (1 - z) * n + z * h_{t-1}`` is state and output. Returns ``output [T, B, D*H], h_n [L*D, B, H]``.
    """

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Device = None, dtype: torch.dtype | None = None, *,
                 surrogate_function1: SurrogateSpec = None, surrogate_function2: SurrogateSpec = None,
                 invariant_dropout_mask: bool = False, gates: str = DEFAULT_GATES,
                 spike_threshold: float = DEFAULT_SPIKE_THRESHOLD,
                 forget_bias: float | str | None = DEFAULT_FORGET_BIAS, chrono_steps: int | None = None,
                 rate_penalty: float | None = None, free_rate: float = DEFAULT_FREE_RATE,
                 backend: str = "auto", low_memory: bool = False,
                 **kwargs: Any) -> None:
        _reject_proj_size(kwargs, type(self).__name__)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, surrogate_function1=surrogate_function1,
                         surrogate_function2=surrogate_function2, invariant_dropout_mask=invariant_dropout_mask,
                         gates=gates, spike_threshold=spike_threshold, forget_bias=forget_bias,
                         chrono_steps=chrono_steps, rate_penalty=rate_penalty, free_rate=free_rate, backend=backend,
                         low_memory=low_memory)


class SpikingRNN(SpikingRNNBase):
    """Multi-layer spiking vanilla RNN with torch.nn.RNN's interface.

    With ``u_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh`` and the spike Θ (``surrogate_function1``)::

        leak=β (default 0.9): a leaky membrane v, binary spikes out
            v_t = β v_{t-1} + (1 - β) u_t;  h_t = Θ(v_t - spike_threshold)
        leak=None: the seed's cell (SpikingJelly 2.0's), h_t = Θ(u_t)

    With a leak, ``output`` holds the spikes ``h_t`` and ``h_n`` (and ``hx``) the membrane ``v``, so
    that a sequence resumes exactly (``output[-1] = Θ(h_n - spike_threshold)``). ``nonlinearity``
    keeps torch's position; the only value is ``"heaviside"`` (the spike). Returns
    ``output [T, B, D*H], h_n [L*D, B, H]``.
    """

    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "heaviside", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Device = None,
                 dtype: torch.dtype | None = None, *, surrogate_function1: SurrogateSpec = None, invariant_dropout_mask: bool = False, leak: float | None = DEFAULT_LEAK,
                 spike_threshold: float = DEFAULT_SPIKE_THRESHOLD, rate_penalty: float | None = None,
                 free_rate: float = DEFAULT_FREE_RATE, backend: str = "auto", low_memory: bool = False,
                 **kwargs: Any) -> None:
        _reject_proj_size(kwargs, type(self).__name__)
        check_nonlinearity(nonlinearity, type(self).__name__)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, surrogate_function1=surrogate_function1,
                         invariant_dropout_mask=invariant_dropout_mask, spike_threshold=spike_threshold,
                         rate_penalty=rate_penalty, free_rate=free_rate, backend=backend, low_memory=low_memory,
                         leak=leak)
        self.nonlinearity = nonlinearity


def check_nonlinearity(nonlinearity: object, owner: str) -> None:
    if nonlinearity != "heaviside":
        raise ValueError(
            f"{owner}: unknown nonlinearity {nonlinearity!r}; a spiking RNN fires 'heaviside' spikes. "
            "For a smooth activation pass surrogate_function1=<surrogate>(spiking=False)."
        )


def _reject_proj_size(kwargs: dict[str, Any], owner: str) -> None:
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if kwargs:
        raise TypeError(f"{owner}.__init__() got unexpected keyword argument(s) {sorted(kwargs)}")
