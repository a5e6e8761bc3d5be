"""Why a training run stopped early: each carries a message a user can act on, in one line."""
from __future__ import annotations


class TrainError(Exception):
    """A run that cannot start or go on: a user mistake or an environment problem (what and why in the message)."""


class NonFiniteLossError(TrainError):
    """The loss or the gradients became NaN or infinite: the run stopped before the weights took that step.

    ``checkpoint`` is the last checkpoint written (all of its values finite), or ``None``.
    """

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint


class TrainingInterrupted(TrainError):
    """Ctrl-C (SIGINT): the run stopped after its current batch and saved a checkpoint to resume from."""

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint
