"""SpikingLSTM, SpikingGRU, SpikingRNN: drop-in spiking versions of torch.nn.LSTM/GRU/RNN."""
from __future__ import annotations

from ..functional.cells import DEFAULT_CELL_THRESHOLD
from .base import SpikingRNNBase


class SpikingLSTM(SpikingRNNBase):
    """Multi-layer spiking LSTM with torch.nn.LSTM's interface.

    Per layer and step (gates fire 0/1 spikes ``Θ(u) = 1[u >= 0]``, surrogate gradients)::

        u_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh                  # [B, 4H], rows i|f|g|o
        i, f, o = Θ(u_i), Θ(u_f), Θ(u_o)   (surrogate_function1)
        g = Θ(u_g)                           (surrogate_function2, default surrogate_function1)
        c_t = f * c_{t-1} + i * g, then by cell_state:
            "clamp" (default): min(c_t, 1), straight-through gradient (SpikingJelly 2.0)
            "accumulate": unchanged (c counts up)
            "spike": Θ(c_t - cell_threshold) (Lotfi Rezaabad & Vishwanath 2020)
        h_t = o * c_t, then W_hr h_t when proj_size > 0

    Input ``[T, B, I]`` (``[B, T, I]`` with ``batch_first``, ``[T, I]`` unbatched, or a
    PackedSequence); ``hx = (h_0 [L*D, B, H_out], c_0 [L*D, B, H])``. Returns
    ``output [T, B, D*H_out], (h_n, c_n)``. See :class:`SpikingRNNBase` for the arguments.
    """

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, surrogate_function1=None,
                 surrogate_function2=None, invariant_dropout_mask: bool = False,
                 cell_state: str = "clamp", cell_threshold: float = DEFAULT_CELL_THRESHOLD,
                 backend: str = "auto", low_memory: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, surrogate_function1=surrogate_function1,
                         surrogate_function2=surrogate_function2, invariant_dropout_mask=invariant_dropout_mask,
                         cell_state=cell_state, cell_threshold=cell_threshold, backend=backend,
                         low_memory=low_memory)


class SpikingGRU(SpikingRNNBase):
    """Multi-layer spiking GRU with torch.nn.GRU's interface.

    ``r = Θ(u_r)``, ``z = Θ(u_z)``, ``n = Θ(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h_t = (1 - z) * n + z * h_{t-1}``; gate rows ``r|z|n`` as in torch. ``surrogate_function2``
    is the surrogate of ``n``. Returns ``output [T, B, D*H], h_n [L*D, B, H]``.
    """

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, surrogate_function1=None, surrogate_function2=None,
                 invariant_dropout_mask: bool = False, backend: str = "auto", low_memory: bool = False,
                 **kwargs) -> None:
        _reject_proj_size(kwargs, type(self).__name__)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, surrogate_function1=surrogate_function1,
                         surrogate_function2=surrogate_function2,
                         invariant_dropout_mask=invariant_dropout_mask, backend=backend, low_memory=low_memory)


class SpikingRNN(SpikingRNNBase):
    """Multi-layer spiking vanilla RNN with torch.nn.RNN's interface: ``h_t = Θ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    ``nonlinearity`` keeps torch's position; the only value is ``"heaviside"`` (the spike); its
    backward is ``surrogate_function1``. Returns ``output [T, B, D*H], h_n [L*D, B, H]``.
    """

    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "heaviside", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None, *,
                 surrogate_function1=None, invariant_dropout_mask: bool = False,
                 backend: str = "auto", low_memory: bool = False, **kwargs) -> None:
        _reject_proj_size(kwargs, type(self).__name__)
        check_nonlinearity(nonlinearity, type(self).__name__)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, device, dtype, surrogate_function1=surrogate_function1,
                         invariant_dropout_mask=invariant_dropout_mask, backend=backend, low_memory=low_memory)
        self.nonlinearity = nonlinearity


def check_nonlinearity(nonlinearity, owner: str) -> None:
    if nonlinearity != "heaviside":
        raise ValueError(
            f"{owner}: unknown nonlinearity {nonlinearity!r}; a spiking RNN fires 'heaviside' spikes. "
            "For a smooth activation pass surrogate_function1=<surrogate>(spiking=False)."
        )


def _reject_proj_size(kwargs: dict, owner: str) -> None:
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if kwargs:
        raise TypeError(f"{owner}.__init__() got unexpected keyword argument(s) {sorted(kwargs)}")
