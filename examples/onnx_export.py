"""Export spiking LSTMs to ONNX and run them with onnxruntime, checked against PyTorch.

Two routes, both with a free sequence length ``T`` and batch size ``B`` (each time loop is one ONNX ``Scan``):

1. ``spikingrnn.export_onnx(module, path)`` writes a bare stack of SpikingJelly-style cells
   (``gates="heaviside"``) node by node, with the initial states as graph inputs ``h0``/``c0``: feed
   zeros to start from rest, or the previous ``h_n``/``c_n`` to continue a stream chunk by chunk.
2. ``torch.onnx.export(model, (x,), path, dynamic_shapes=...)`` (PyTorch's dynamo exporter) writes a whole
   model -- here a Linear encoder, a ``SpikingLSTM`` in its default form (sigmoid gates, 0/1 output) and
   a Linear readout -- which ``export_onnx`` refuses (it names this route instead).

For both the script runs the ONNX model with onnxruntime on lengths and batch sizes not seen at export
and checks that the spikes equal PyTorch's exactly and the states and logits to float32 tolerance.

Run::

    python examples/onnx_export.py                   # both routes, ~30 s on 2 cores (most of it tracing for route 2)
    python examples/onnx_export.py --route stack      # route 1 only: seconds
    python examples/onnx_export.py --fast             # both routes, small layers and short sequences, 1 thread (CI)

Needs the ``onnx`` extra: ``pip install 'spikingrnn[onnx]'`` (onnx, onnxruntime, onnxscript).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

import spikingrnn


class Classifier(nn.Module):
    """``x [B, T, F] -> (logits [B, T, classes], spikes [B, T, H])``: Linear, SpikingLSTM (default form), Linear."""

    def __init__(self, features: int, hidden: int, classes: int):
        super().__init__()
        self.encoder = nn.Linear(features, hidden)
        self.rnn = spikingrnn.SpikingLSTM(hidden, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spikes, _ = self.rnn(self.encoder(x))
        return self.readout(spikes), spikes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="hidden 16, short sequences, 1 thread (CI)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden units (default 128; 16 with --fast)")
    parser.add_argument("--features", type=int, default=40, help="input features per step")
    parser.add_argument("--out-dir", type=Path, default=None, help="keep the .onnx files here (default: a temp dir)")
    parser.add_argument("--route", choices=("stack", "model", "both"), default="both",
                        help="stack: export_onnx; model: torch.onnx.export; both (default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.hidden = args.hidden or (16 if args.fast else 128)
    # (batch, steps) pairs to run, none of them the shape seen at export
    args.shapes = [(3, 11), (5, 23)] if args.fast else [(3, 50), (16, 200), (2, 1000)]
    return args


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {message}")


def compare(name: str, onnx_value: np.ndarray, torch_value: torch.Tensor, exact: bool) -> None:
    got, expected = torch.from_numpy(onnx_value), torch_value.detach()
    check(got.shape == expected.shape, f"{name}: onnxruntime shape {list(got.shape)} != PyTorch {list(expected.shape)}")
    if exact:
        differing = int((got != expected).sum())
        check(differing == 0, f"{name}: {differing} of {got.numel()} spikes differ from PyTorch's")
    else:
        error = (got - expected).abs().max().item()
        check(torch.allclose(got, expected, rtol=1e-5, atol=1e-5), f"{name}: largest difference {error:.3g}")


def export_stack(args: argparse.Namespace, folder: Path) -> None:
    """Route 1: spikingrnn.export_onnx on a bidirectional 2-layer stack of heaviside cells."""
    torch.manual_seed(args.seed)
    rnn = spikingrnn.SpikingLSTM(args.features, args.hidden, num_layers=2, bidirectional=True, batch_first=True,
                                 gates="heaviside", cell_state="clamp", forget_bias=None).eval()
    path = folder / "spiking_lstm.onnx"
    spikingrnn.export_onnx(rnn, path)                     # checked with onnx.checker before it is saved
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    print(f"export_onnx -> {path.name}: inputs {[i.name for i in session.get_inputs()]}, "
          f"outputs {[o.name for o in session.get_outputs()]}")
    rows = rnn.num_layers * 2                             # [L*D, B, H] states
    for batch, steps in args.shapes:
        x = torch.randn(batch, steps, args.features)
        with torch.no_grad():
            output, (h_n, c_n) = rnn(x)
        zeros = np.zeros((rows, batch, args.hidden), np.float32)
        got_output, got_h, got_c = session.run(None, {"input": x.numpy(), "h0": zeros, "c0": zeros})
        check(output.sum() > 0, "the stack did not fire: nothing to compare")
        compare("output spikes", got_output, output, exact=True)
        compare("h_n", got_h, h_n, exact=False)
        compare("c_n", got_c, c_n, exact=False)
        print(f"  B={batch}, T={steps}: spikes identical ({output.mean().item():.3f} of them 1), states within 1e-5")

    # a stream in two chunks: the second starts from the first one's final states (forward direction only:
    # a bidirectional layer's reverse pass needs the whole sequence, so use a unidirectional stack for streams)
    torch.manual_seed(args.seed + 1)
    stream = spikingrnn.SpikingLSTM(args.features, args.hidden, gates="heaviside", cell_state="clamp",
                                    forget_bias=None).eval()        # time-major [T, B, F]
    stream_path = folder / "streaming_lstm.onnx"
    spikingrnn.export_onnx(stream, stream_path)
    session = onnxruntime.InferenceSession(str(stream_path), providers=["CPUExecutionProvider"])
    x = torch.randn(30, 2, args.features)
    with torch.no_grad():
        whole, (h_n, c_n) = stream(x)
    zeros = np.zeros((1, 2, args.hidden), np.float32)
    first, h, c = session.run(None, {"input": x[:12].numpy(), "h0": zeros, "c0": zeros})
    second, h, c = session.run(None, {"input": x[12:].numpy(), "h0": h, "c0": c})
    compare("streamed spikes", np.concatenate([first, second]), whole, exact=True)
    compare("streamed h_n", h, h_n, exact=False)
    compare("streamed c_n", c, c_n, exact=False)
    print("  a 30-step stream fed in chunks of 12 + 18 steps: the spikes of one 30-step call")


def export_model(args: argparse.Namespace, folder: Path) -> None:
    """Route 2: torch.onnx.export (dynamo) of a whole model with the default SpikingLSTM."""
    torch.manual_seed(args.seed)
    model = Classifier(args.features, args.hidden, 10).eval()
    try:
        spikingrnn.export_onnx(model.rnn, None)
    except NotImplementedError as error:
        print(f"export_onnx refuses the default form: {str(error)[:100]}...")
    path = folder / "classifier.onnx"
    dims = {0: torch.export.Dim("B", min=2, max=1024), 1: torch.export.Dim("T", min=2, max=100_000)}
    torch.onnx.export(model, (torch.randn(4, 6, args.features),), str(path), dynamo=True, dynamic_shapes=(dims,),
                      input_names=["x"], output_names=["logits", "spikes"], verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    print(f"torch.onnx.export -> {path.name} (exported at B=4, T=6)")
    for batch, steps in args.shapes:
        # inputs strong enough that the untrained layer fires often (~15 %): many spikes to compare
        x = 4 * torch.randn(batch, steps, args.features)
        with torch.no_grad():
            logits, spikes = model(x)
        got_logits, got_spikes = session.run(None, {"x": x.numpy()})
        check(spikes.sum() > 0, "the model did not fire: nothing to compare")
        compare("spikes", got_spikes, spikes, exact=True)
        compare("logits", got_logits, logits, exact=False)
        print(f"  B={batch}, T={steps}: spikes identical ({spikes.mean().item():.3f} of them 1), logits within 1e-5")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.fast:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.out_dir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        if args.route in ("stack", "both"):
            export_stack(args, folder)
        if args.route in ("model", "both"):
            export_model(args, folder)
    print("OK: onnxruntime reproduces PyTorch's spikes exactly and its states and logits to 1e-5")


if __name__ == "__main__":
    main()
