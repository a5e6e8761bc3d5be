"""``build_model``: encoder Linear -> spiking RNN stack -> readout Linear."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..nn.initialization import chrono_bias_
from ..nn.modules import SpikingGRU, SpikingLSTM, SpikingRNN
from ..nn.validation import CHRONO
from ..surrogate import SURROGATES
from .config import TrainConfig, saved_config

RNN_CLASSES = {"lstm": SpikingLSTM, "gru": SpikingGRU, "rnn": SpikingRNN,
               "torch_lstm": nn.LSTM, "torch_gru": nn.GRU, "torch_rnn": nn.RNN}


class SpikingClassifier(nn.Module):
    """``x [T, B, F] -> logits [B, classes]`` (time-major, as :func:`spikingrnn.data.batches` yields).

    ``encoder`` (Linear ``F -> hidden``, real-valued) feeds ``rnn`` (a spiking stack of ``layers``
    layers, or the torch.nn baseline for ``model="torch_*"``, whose outputs are read the same way); ``readout`` (Linear ``D*hidden -> classes``) reads the time-averaged spikes of the last
    layer (``readout="mean"``) or its last step (``"last"``; bidirectional: the forward direction
    at ``T-1`` beside the reverse direction at ``0``, each having seen the whole sequence).
    """

    def __init__(self, input_size: int, num_classes: int, config: TrainConfig):
        super().__init__()
        self.config, self.input_size, self.num_classes = config, input_size, num_classes
        self.spiking = not config.model.startswith("torch_")
        kwargs = {}
        if self.spiking:
            surrogate = SURROGATES[config.surrogate](alpha=config.surrogate_alpha)  # resolved by TrainConfig
            kwargs = dict(surrogate_function1=surrogate, backend=config.backend, low_memory=config.low_memory,
                          rate_penalty=config.rate_penalty, free_rate=config.free_rate)
        if config.model in ("lstm", "gru"):
            kwargs.update(gates=config.gates, spike_threshold=config.spike_threshold, forget_bias=config.forget_bias,
                          chrono_steps=config.chrono_steps or None)
        if config.model == "rnn":
            kwargs.update(leak=config.leak, spike_threshold=config.spike_threshold)
        if config.model == "lstm":
            kwargs["cell_state"] = config.cell_state
        self.readout_mode = config.readout
        self.encoder = nn.Linear(input_size, config.hidden)
        self.rnn = RNN_CLASSES[config.model](config.hidden, config.hidden, num_layers=config.layers,
                                             bidirectional=config.bidirectional, **kwargs)
        if config.model in ("torch_lstm", "torch_gru") and config.forget_bias == CHRONO:
            chrono_bias_(self.rnn, config.chrono_steps)  # the baseline under the same init (numbers: torch's)
        self.readout = nn.Linear(config.hidden * (2 if config.bidirectional else 1), num_classes)

    def checkpoint_config(self) -> dict:
        """What :func:`spikingrnn.io.save_checkpoint` records to rebuild this classifier (JSON)."""
        return {"input_size": self.input_size, "num_classes": self.num_classes, "train": self.config.to_dict()}

    @classmethod
    def from_checkpoint_config(cls, saved: Mapping[str, Any], **overrides: Any) -> "SpikingClassifier":
        """The classifier of :meth:`checkpoint_config`'s ``saved``, with ``overrides`` (fields of
        :class:`TrainConfig`, e.g. ``backend="cpu"``) replacing the saved training settings."""
        unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
        if unknown:
            raise TypeError(f"SpikingClassifier: overrides must be TrainConfig fields, got {unknown}")
        for key in ("input_size", "num_classes"):
            value = saved.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpikingClassifier: {key} must be an integer >= 1, got {value!r}")
        return cls(saved["input_size"], saved["num_classes"], TrainConfig.from_dict({**saved_config(saved["train"]), **overrides}))

    def spikes(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes of the last layer, ``[T, B, D*hidden]`` (the baselines' real-valued outputs)."""
        return self.rnn(self.encoder(x))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.spikes(x)
        if self.readout_mode == "mean":
            features = spikes.mean(dim=0)
        elif self.rnn.bidirectional:
            hidden = self.rnn.hidden_size
            features = torch.cat([spikes[-1, :, :hidden], spikes[0, :, hidden:]], dim=1)
        else:
            features = spikes[-1]
        return self.readout(features)


def build_model(config: TrainConfig, input_size: int, num_classes: int) -> SpikingClassifier:
    """The classifier of ``config`` for ``input_size`` features and ``num_classes`` classes."""
    return SpikingClassifier(input_size, num_classes, config)
