"""Shared helpers of the test suite."""
import torch

import spikingrnn


def copy_layer(stack: spikingrnn.SpikingRNNBase, layer: int, **overrides) -> spikingrnn.SpikingRNNBase:
    """A one-layer module of the same kind holding ``layer``'s weights of ``stack``."""
    input_size = stack.input_size if layer == 0 else stack.real_hidden_size * stack.num_directions
    kwargs = dict(bidirectional=stack.bidirectional, bias=stack.bias)
    if stack.mode == "LSTM":
        kwargs.update(proj_size=stack.proj_size, cell_state=stack.cell_state)
    kwargs.update(overrides)
    single = type(stack)(input_size, stack.hidden_size, **kwargs).to(next(stack.parameters()).dtype)
    with torch.no_grad():
        for name, param in single.named_parameters():
            param.copy_(getattr(stack, name.replace("_l0", f"_l{layer}")))
    return single


def dyadic(shape, generator, scale, low=-8, high=9, dtype=torch.float32):
    """Integers in ``[low, high)`` times ``scale``: few significant bits, so float32 sums are exact."""
    return torch.randint(low, high, shape, generator=generator).to(dtype) * scale


def dyadic_model(mode="LSTM", layers=1, bidirectional=False, proj=0, cell_state="clamp", s1="erf", s2=None, hidden=8,
                 inputs=4, seed=0, bias=True, dropout=0.0, exact=True):
    """A float32 spiking stack on the reference backend. With ``exact``, every weight and bias is a
    multiple of 1/8 in [-1, 1] and the input biases are offset by 2^-10, so that every forward sum of
    dyadic inputs is exact in any order and no pre-activation is exactly 0; else the default init."""
    torch.manual_seed(seed)
    kwargs = dict(bias=bias, bidirectional=bidirectional, dtype=torch.float32, surrogate_function1=s1,
                  backend="reference", dropout=dropout)
    if mode == "LSTM":
        model = spikingrnn.SpikingLSTM(inputs, hidden, layers, proj_size=proj, cell_state=cell_state,
                                       surrogate_function2=s2, **kwargs)
    elif mode == "GRU":
        model = spikingrnn.SpikingGRU(inputs, hidden, layers, surrogate_function2=s2, **kwargs)
    else:
        model = spikingrnn.SpikingRNN(inputs, hidden, layers, **kwargs)
    if exact:
        generator = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith("bias_ih"):
                    p.copy_(dyadic(p.shape, generator, 1 / 8, -4, 5) + 2.0 ** -10)
                elif name.startswith("bias_hh"):
                    p.copy_(dyadic(p.shape, generator, 1 / 8, -4, 5))
                else:
                    p.copy_(dyadic(p.shape, generator, 1 / 8))
    return model
