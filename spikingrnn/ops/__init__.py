"""Backends that run a whole spiking RNN stack over a sequence."""
from .dispatch import BACKEND_CHOICES, BACKENDS, resolve
from .reference import reference_rnn
from .spec import RNNSpec

__all__ = ["BACKEND_CHOICES", "BACKENDS", "RNNSpec", "reference_rnn", "resolve"]
