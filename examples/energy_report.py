"""Firing rates, synaptic operations and an energy estimate of a trained spiking LSTM (spikingrnn.monitor).

A two-layer ``SpikingLSTM`` reads scikit-learn's digits row by row as spikes (a pixel fires when it is
brighter than half), and a Linear readout classifies the time-averaged spikes of the last layer. After
a short training the script measures the test digits with ``spikingrnn.monitor``:

* firing rates per layer (the fraction of 1s in each layer's output ``h``);
* synaptic operations: a product with a 0/1 operand is event-driven, one accumulate (AC) per spike
  and target; a product with a real-valued operand is a dense multiply-accumulate (MAC) per weight;
* the energy estimate (0.9 pJ per AC, 4.6 pJ per MAC, 45 nm) against the dense ``torch.nn.LSTM`` of
  the same shape, whose every product is a MAC.

Then it feeds the same layer the analog pixels (values in [0, 1], not spikes): the first layer's input
product becomes dense MACs and the energy ratio rises. Every number is checked: rates in [0, 1], the
last layer's rate equal to the spikes the model itself returned, ``synops = ac + mac``, the energy
formula, the dense count equal to the multiply-accumulates of the equivalent ``torch.nn.LSTM``
(``spikingrnn.compat.torch_nn.to_torch``), an energy ratio below 1 for binary inputs, and per-batch
totals of ``FiringRateMonitor`` adding up to the whole-set measurement.

Run::

    python examples/energy_report.py           # ~30 s on 2 cores
    python examples/energy_report.py --fast    # a few seconds, 1 thread (what CI runs)

Needs scikit-learn (the digits ship with it).
"""
from __future__ import annotations

import argparse
import math

import torch
from torch import nn

import spikingrnn
from spikingrnn.compat.torch_nn import to_torch
from spikingrnn.data import batches, load_digits_rows
from spikingrnn.monitor import AC_PJ, MAC_PJ, FiringRateMonitor, energy_pj, measure


class SpikeClassifier(nn.Module):
    """``x [T, B, 8] -> logits [B, 10]``: a spiking LSTM stack and a Linear readout of its time-mean spikes."""

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.rnn = spikingrnn.SpikingLSTM(8, hidden, num_layers=layers)
        self.readout = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.rnn(x)
        return self.readout(spikes.mean(0))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="hidden 32, 2 epochs, 1 thread (CI)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden units (default 128; 32 with --fast)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 10; 2 with --fast)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.hidden = args.hidden or (32 if args.fast else 128)
    args.epochs = args.epochs if args.epochs is not None else (2 if args.fast else 10)
    return args


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def report(title: str, stats: dict) -> None:
    """Print one monitor summary."""
    print(f"{title}:")
    for layer, rates in stats["rates"].items():
        print(f"  {layer}: firing rate of h {rates['h']:.3f}")
    for layer in stats["layers"]:
        print(f"  layer{layer['layer']}: input {'spikes (AC)' if layer['input_binary'] else 'real (MAC)'}, "
              f"{layer['ac']:,} AC, {layer['mac']:,} MAC, dense nn.LSTM {layer['dense_mac']:,} MAC")
    n = stats["samples"]
    print(f"  per sample: {stats['synops'] / n:,.0f} synaptic operations ({stats['ac'] / n:,.0f} AC + "
          f"{stats['mac'] / n:,.0f} MAC) against {stats['dense_mac'] / n:,.0f} MAC for nn.LSTM")
    per_sample = stats["per_sample"]
    print(f"  energy per sample {per_sample['energy_pj'] / 1e3:.1f} nJ vs dense "
          f"{per_sample['dense_energy_pj'] / 1e3:.1f} nJ: ratio {stats['energy_ratio']:.3f}")


def check_summary(stats: dict, rnn: spikingrnn.SpikingLSTM, steps: int, samples: int) -> None:
    """The consistency checks every summary must pass."""
    for layer, rates in stats["rates"].items():
        for gate, rate in rates.items():
            check(0.0 <= rate <= 1.0, f"{layer} rate of {gate} = {rate} is outside [0, 1]")
    check(stats["samples"] == samples and stats["sample_steps"] == samples * steps,
          f"counted {stats['samples']} samples / {stats['sample_steps']} sample-steps, expected {samples} / "
          f"{samples * steps}")
    check(stats["synops"] == stats["ac"] + stats["mac"], "synops != ac + mac")
    check(stats["ac"] == sum(layer["ac"] for layer in stats["layers"]), "the layers' ACs do not add up")
    check(math.isclose(stats["energy_pj"], AC_PJ * stats["ac"] + MAC_PJ * stats["mac"]), "energy formula")
    check(math.isclose(stats["energy_pj"], energy_pj(stats["ac"], stats["mac"])), "energy_pj() disagrees")
    check(math.isclose(stats["energy_ratio"], stats["energy_pj"] / stats["dense_energy_pj"]), "energy ratio")
    # the dense count is what torch.nn.LSTM computes: one MAC per weight (W_ih and W_hh) per sample and step
    dense = to_torch(rnn)
    weights = sum(p.numel() for name, p in dense.named_parameters() if name.startswith("weight_"))
    check(stats["dense_mac"] == weights * samples * steps,
          f"dense MACs {stats['dense_mac']} != {weights} weights x {samples} samples x {steps} steps")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.fast:
        torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    data = load_digits_rows()
    spikes_train = (data.x_train > 0.5).float()       # 0/1 input spikes [N, T=8, F=8]
    spikes_test = (data.x_test > 0.5).float()

    model = SpikeClassifier(args.hidden, args.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        for x, y in batches(spikes_train, data.y_train, 64, shuffle=True, generator=generator):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        check(math.isfinite(loss.item()), f"non-finite loss {loss.item()}")

    x_test = spikes_test.transpose(0, 1).contiguous()   # [T, N, 8]
    steps, samples = x_test.shape[:2]
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == data.y_test).float().mean().item()
        output, _ = model.rnn(x_test)
    print(f"SpikingLSTM {args.layers} x {args.hidden} on spiking digits: test accuracy {accuracy:.3f} "
          f"after {args.epochs} epochs")

    # the whole test set at once; measure() runs the model and returns {name: summary} per spiking stack
    binary = measure(model, x_test)["rnn"]
    report("binary input spikes", binary)
    check_summary(binary, model.rnn, steps, samples)
    last = f"layer{args.layers - 1}"
    check(math.isclose(binary["rates"][last]["h"], output.mean().item(), rel_tol=1e-6),
          f"{last} rate {binary['rates'][last]['h']} != the model's own output rate {output.mean().item()}")
    check(all(layer["input_binary"] for layer in binary["layers"]) and binary["mac"] == 0,
          "with spikes in and spikes between layers every product should be event-driven (no MACs)")
    check(binary["energy_ratio"] < 1.0, f"energy ratio {binary['energy_ratio']:.3f} >= 1 for binary inputs")

    # accumulated over batches with the monitor attached: the same totals
    with FiringRateMonitor(model) as monitor, torch.no_grad():
        for x, _ in batches(spikes_test, data.y_test, 100):
            model(x)
    batched = monitor.summary()["rnn"]
    check(batched["calls"] == math.ceil(samples / 100), f"the monitor saw {batched['calls']} calls")
    for key in ("ac", "mac", "dense_mac"):
        check(batched[key] == binary[key], f"per-batch {key} {batched[key]} != whole-set {binary[key]}")
    print(f"FiringRateMonitor over {batched['calls']} batches: the same {batched['ac']:,} AC")

    # the same layer fed analog pixels: the first layer's input product is dense
    analog = measure(model.rnn, data.x_test.transpose(0, 1).contiguous())
    report("analog input pixels", analog)
    check_summary(analog, model.rnn, steps, samples)
    check(not analog["layers"][0]["input_binary"] and analog["layers"][0]["mac"] > 0,
          "real-valued input should cost MACs in layer 0")
    check(analog["energy_ratio"] > binary["energy_ratio"], "analog input should cost more than spikes")
    print(f"OK: energy vs dense nn.LSTM {binary['energy_ratio']:.3f} with input spikes, "
          f"{analog['energy_ratio']:.3f} with analog pixels")
    return {"test_accuracy": accuracy, "binary": binary, "analog": analog}


if __name__ == "__main__":
    main()
