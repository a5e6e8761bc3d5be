"""Where a run trains: ``TrainConfig.device`` resolved against the machine, with a clear error when it cannot be."""
from __future__ import annotations

import os

import torch

from .errors import TrainError


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` of ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    ``"auto"`` is CUDA when available, else the CPU. ``"cuda"`` without an index is the
    process's ``LOCAL_RANK`` device under torchrun, else the current CUDA device.

    Raises:
        TrainError: CUDA asked for where there is none, or ``cuda:N`` past the last device.
    """
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainError(f"--device {name}: no CUDA device is available here (torch {torch.__version__}, "
                         f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu")
    count = torch.cuda.device_count()
    if name in ("auto", "cuda"):
        local = os.environ.get("LOCAL_RANK")
        index = int(local) if local not in (None, "") and int(os.environ.get("WORLD_SIZE", "1") or "1") > 1 \
            else torch.cuda.current_device()
    else:
        index = int(name.split(":")[1])
    if index >= count:
        raise TrainError(f"--device {name}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                         f"(cuda:0 to cuda:{count - 1}), so cuda:{index} does not exist")
    return torch.device("cuda", index)
