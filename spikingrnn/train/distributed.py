"""Small helpers for multi-process data-parallel training (``torch.nn.parallel.DistributedDataParallel``).

Typical use under ``torchrun --nproc_per_node=N script.py``::

    from spikingrnn.train import distributed
    rank, world_size = distributed.init_from_env()
    model = distributed.wrap(build_model(config, features, classes))
    for xb, yb in batches(...):                       # the same global batch on every rank
        index = distributed.shard(torch.arange(len(yb)), rank, world_size)
        loss = cross_entropy(model(xb[:, index]), yb[index])   # mean over the local shard
        loss.backward()                                # DDP averages gradients over the ranks
    if distributed.is_main(rank): save(...)
    distributed.cleanup()

With equal shards (global batch divisible by ``world_size``) the averaged gradients equal those
of a single process on the whole global batch with a mean loss.

:func:`spikingrnn.train.train` (and so ``spikingrnn train``) does all of this by itself when
launched under torchrun: ``torchrun --nproc_per_node=2 -m spikingrnn train --task digits_rows ...``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence, overload

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["init_from_env", "wrap", "shard", "is_main", "cleanup"]


def init_from_env(backend: str | None = None, timeout_s: float = 1800.0,
                  device: str | torch.device | None = None) -> tuple[int, int]:
    """Initialise the default process group from torchrun's environment; return ``(rank, world_size)``.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. The
    backend is ``backend`` if given, else the one for the tensors that will be all-reduced:
    ``"nccl"`` when ``device`` (the training device) is a CUDA device, ``"gloo"`` otherwise (also
    for ``device=None``: a CPU-training process on a CUDA machine must not get nccl, which cannot
    reduce CPU tensors). With nccl, ``torch.cuda.set_device(device)`` (``LOCAL_RANK`` when
    ``device`` has no index). A no-op returning ``(0, 1)`` when ``WORLD_SIZE`` is unset or 1; when a
    process group already exists its rank and size are returned.

    ``timeout_s`` bounds every collective (default 30 minutes, torch's own for gloo): one rank may
    build the cpu backend's C++ loops (a minute or more) in its first forward while the others
    already wait in the first gradient all-reduce, and a short timeout would kill that run.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1") or "1")
    if world_size <= 1:
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(f"init_from_env: WORLD_SIZE={world_size} but {name} is not set (use torchrun)")
    device = torch.device(device) if device is not None else None
    if backend is None:
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device.index if device is not None and device.index is not None else local_rank)
    from datetime import timedelta
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    return rank, world_size


def wrap(model: nn.Module, **kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` when a process group is initialised (``model`` otherwise).

    The model's parameters must be on the CPU (gloo) or on the current CUDA device (nccl); for
    CUDA models ``device_ids`` defaults to the model's device. Extra ``kwargs`` go to DDP.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return model
    first = next(model.parameters(), None)
    if first is not None and first.is_cuda and "device_ids" not in kwargs:
        kwargs["device_ids"] = [first.device.index]
    return nn.parallel.DistributedDataParallel(model, **kwargs)


@overload
def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor: ...
@overload
def shard(indices: Sequence[int], rank: int, world_size: int) -> Sequence[int]: ...


def shard(indices: Sequence[int] | torch.Tensor, rank: int, world_size: int) -> Sequence[int] | torch.Tensor:
    """This rank's contiguous part of a global batch's ``indices``.

    Parts differ in length by at most one (the first ``len % world_size`` ranks get one more);
    for gradients equal to single-process training, use a global batch divisible by ``world_size``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    n = len(indices)
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return indices[start:stop]


def is_main(rank: int | None = None) -> bool:
    """Whether this is rank 0 (``rank`` given, else the process group's rank; True without one)."""
    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return rank == 0


def cleanup() -> None:
    """Destroy the default process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
