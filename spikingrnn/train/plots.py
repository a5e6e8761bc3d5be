"""PNG plots of a run, drawn with matplotlib's Agg canvas (no display, no global backend change)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

PLOTS = ("curves.png", "raster.png", "firing_rates.png")  # what make_plots may write


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plots need matplotlib: pip install matplotlib (or set TrainConfig.plots=False)") from error
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_curves(path: str, history: list[dict[str, Any]]) -> str:
    """Loss (train, test) and accuracy (train, test) per epoch."""
    figure = _figure(10, 4)
    loss, accuracy = figure.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    loss.plot(epochs, [r["loss"] for r in history], marker="o", label="train")
    loss.plot(epochs, [r["test_loss"] for r in history], marker="o", label="test")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    accuracy.plot(epochs, [r["train_accuracy"] for r in history], marker="o", label="train")
    accuracy.plot(epochs, [r["test_accuracy"] for r in history], marker="o", label="test")
    accuracy.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for axes in (loss, accuracy):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_raster(path: str, spikes: torch.Tensor, label: int | None = None) -> str:
    """Spike raster of one sample: ``spikes [T, N]`` (0/1) of the last layer, neurons against time."""
    figure = _figure(8, 5)
    axes = figure.subplots()
    steps, neurons = spikes.shape
    t, n = spikes.nonzero(as_tuple=True)
    axes.scatter(t.tolist(), n.tolist(), marker="|", s=60, color="black")
    axes.set(xlabel="time step", ylabel="neuron", xlim=(-0.5, steps - 0.5), ylim=(-0.5, neurons - 0.5),
             title="last-layer spikes of one test sample" + (f" (label {label})" if label is not None else "")
             + f", rate {float(spikes.float().mean()):.3f}")
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_rates(path: str, rates: dict[str, dict[str, float]]) -> str:
    """Bars of the firing rate per gate, one group per layer (``rates`` as :func:`spikingrnn.monitor.measure`)."""
    figure = _figure(8, 4)
    axes = figure.subplots()
    layers = list(rates)
    gates = sorted({gate for values in rates.values() for gate in values},
                   key=lambda g: ("ifgorznch".find(g) if g in "ifgorznch" else 99, g))
    width = 0.8 / max(len(layers), 1)
    for index, layer in enumerate(layers):
        xs = [g + (index - (len(layers) - 1) / 2) * width for g in range(len(gates))]
        axes.bar(xs, [rates[layer].get(gate, 0.0) for gate in gates], width=width, label=layer)
    axes.set_xticks(range(len(gates)), gates)
    axes.set(xlabel="gate", ylabel="firing rate", title="firing rate per gate and layer (test samples)")
    axes.legend()
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path


def make_plots(out_dir: str, history: list[dict[str, Any]], spikes: torch.Tensor | None, label: int | None,
               rates: dict[str, dict[str, float]]) -> list[str]:
    """``curves.png``, ``raster.png`` and ``firing_rates.png`` in ``out_dir``; returns their paths.
    ``spikes=None`` (a non-spiking baseline) writes the curves only."""
    paths = [plot_curves(os.path.join(out_dir, "curves.png"), history)]
    if spikes is not None:
        paths += [plot_raster(os.path.join(out_dir, "raster.png"), spikes, label),
                  plot_rates(os.path.join(out_dir, "firing_rates.png"), rates)]
    return paths
