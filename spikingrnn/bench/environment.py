"""Where and how a benchmark ran: command line, versions, CPU model, date."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from importlib import metadata

import torch


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def command_line(argv: list[str] | None) -> str:
    """The command that reproduces this run: ``python -m spikingrnn.bench ARGS``."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", "spikingrnn.bench", *args])


def _version(distribution: str) -> str | None:
    """Installed version of a distribution, ``None`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (other processes competing for the CPUs), where available."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_extension_status() -> str:
    """Whether the cpu backend's compiled C++ loops are in use (they are built on first use)."""
    try:
        from ..ops.cpu import extension

        if extension.disabled():
            return "disabled (SPIKINGRNN_NO_EXTENSION set): pure-PyTorch loops"
        state = getattr(extension, "_state", {})
    except Exception:  # the backend is being reworked: never fail the report for this line
        return "unknown"
    if "module" not in state:
        return "not loaded"
    return "compiled C++ loops" if state["module"] is not None else "unavailable: pure-PyTorch loops"


def neuron_forms() -> dict[str, str]:
    """``{class name: its spiking arguments' defaults}``: the neuron form the benchmark times."""
    import spikingrnn
    from ..nn.base import constructor_arguments

    forms = {}
    for name in ("SpikingLSTM", "SpikingGRU", "SpikingRNN"):
        module = getattr(spikingrnn, name)(1, 1)
        arguments = constructor_arguments(module, ("spiking",))
        arguments.pop("backend", None)  # each implementation names its own
        arguments.pop("low_memory", None)
        arguments.pop("invariant_dropout_mask", None)
        surrogate = module.surrogate_function1
        forms[name] = ", ".join(f"{key}={value!r}" for key, value in arguments.items()) + f", surrogate {surrogate!r}"
    return forms


def environment(argv: list[str] | None = None, device: str = "cpu") -> dict:
    """Metadata recorded with every result file."""
    info = {
        "command": command_line(argv),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "spikingrnn": _version("spikingrnn"),
        "spikingjelly": _version("spikingjelly"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_default_threads": torch.get_num_threads(),
        "device": device,
        "cpu_backend_loops": cpu_extension_status(),
        "neuron_forms": neuron_forms(),
        "load_average_end": load_average(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
