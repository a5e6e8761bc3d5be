"""Safe checkpoints: safetensors tensors plus a JSON header, one digest over both, written atomically.

::

    from spikingrnn.io import save_checkpoint, load_checkpoint, load_model

    save_checkpoint("lstm.safetensors", model, metadata={"epoch": 12, "val_loss": 0.31})
    model = load_model("lstm.safetensors")                 # a SpikingLSTM again, no code needed
    model = load_model("runs/x/best.safetensors")          # what `spikingrnn train` saved
    state_dict, metadata = load_checkpoint("lstm.safetensors")

The file format is described in ``spikingrnn/io/checkpoints.py``; what is recorded to rebuild a
module in ``spikingrnn/io/model_configs.py``.

Safety: nothing here unpickles code. :func:`load_checkpoint` also reads torch ``.pt`` files (zip or
legacy) through ``torch.load(weights_only=True)``, only on torch >= 2.6 (before it that mode can be
bypassed, CVE-2025-32434), and refuses, with :class:`UnsafeCheckpointError`, one that carries
pickled code. Every load error is a :class:`CheckpointError` (a ``ValueError``) naming the path:
a flipped bit in a tensor or in the configuration fails the digest, and a configuration that does
not fit the tensors is refused before anything is allocated. :func:`load_model` returns a module
only once every tensor loaded strictly; :func:`load_into` checks every key and shape before it
touches the target module.

Writes go to a temporary file in the destination directory, are flushed to disk, and replace the
destination with ``os.replace``: a failure leaves the previous file (or none) and no temporary
file behind.

Requires the ``safetensors`` package (the ``io`` extra).
"""
from .checkpoints import FORMAT, FORMAT_VERSION, load_checkpoint, save_checkpoint
from .errors import CheckpointError, UnsafeCheckpointError
from .files import atomic_write
from .loading import load_into, load_model
from .model_configs import MODEL_CLASSES, model_config

__all__ = ["atomic_write", "save_checkpoint", "load_checkpoint", "load_model", "load_into", "model_config",
           "CheckpointError", "UnsafeCheckpointError", "MODEL_CLASSES", "FORMAT", "FORMAT_VERSION"]
