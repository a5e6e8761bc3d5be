"""Training tools: a typed config, a model builder and a resumable, deterministic training loop.

>>> from spikingrnn.train import TrainConfig, train
>>> result = train(TrainConfig(task="digits_rows", model="lstm", hidden=64, epochs=10, out_dir="runs/x"))
>>> result.final_test_accuracy, result.metrics_path, result.plots

``out_dir`` receives ``metrics.jsonl`` (one JSON object per epoch), ``checkpoint.pt`` (model,
optimizer, RNG states, epoch; written atomically every epoch), ``best.safetensors`` (the model of
the best test accuracy), ``config.json`` and, at the end, ``curves.png``, ``raster.png`` and
``firing_rates.png``. ``train(config, resume=True)`` continues from ``checkpoint.pt`` and reaches
the same weights, bit for bit on CPU, as a run that was never interrupted.
"""
from .checkpoint import load_training_checkpoint, save_training_checkpoint
from .config import MODELS, OPTIMIZERS, READOUTS, TrainConfig
from .errors import NonFiniteLossError, TrainError, TrainingInterrupted
from .loop import TrainResult, train
from .model import SpikingClassifier, build_model

__all__ = ["TrainConfig", "MODELS", "OPTIMIZERS", "READOUTS", "SpikingClassifier", "build_model", "train",
           "TrainResult", "save_training_checkpoint", "load_training_checkpoint",
           "TrainError", "NonFiniteLossError", "TrainingInterrupted"]
