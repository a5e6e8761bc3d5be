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
