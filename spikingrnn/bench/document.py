"""The full markdown document (BENCHMARKS.md): method, environment, tables, generated observations."""
from __future__ import annotations

from .report import main_table, observations, scaling_table, skipped_lines

INTRO = """\
What is measured, and how:

- **Implementations.** `torch` is the non-spiking `torch.nn.LSTM`/`GRU`/`RNN` with the same sizes,
  the baseline of every ratio. `spikingrnn-<backend>` is `spikingrnn.SpikingLSTM`/`GRU`/`RNN`
  with `backend=<backend>`, for every backend of `spikingrnn.ops.dispatch.BACKENDS` that can run on
  the device (discovered, not hard-coded). `spikingjelly` is SpikingJelly 2.0's
  `activation_based.rnn.SpikingLSTM`/`SpikingGRU`/`SpikingVanillaRNN`, when importable.
  Each module keeps its own default initialisation; all get the same input tensor: standard
  normal floats, or with `--spike-rate P` 0/1 spikes that fire with probability P.
- **Train step**: gradients zeroed (untimed), then forward + `(y.float() * w).sum().backward()`
  with one fixed random `w`. **Inference**: forward under `torch.no_grad()`.
- **Timing.** One process. For each shape and thread count (`torch.set_num_threads`) every
  implementation first runs warm-up train and inference steps (this is also where the cpu
  backend builds its C++ extension), then the steps are timed **interleaved**: each repeat runs
  one train step of every implementation in turn (the starting implementation rotates), then one
  inference step of every implementation, so drift of the machine hits all of them alike.
  Reported: median over the repeats, interquartile range in parentheses, and the ratio of
  medians to torch's (`×torch`; above 1 = slower than torch). An implementation whose warm-up
  step times the repeat count exceeds the time budget gets fewer repeats (at least 3): the
  `reps` column says how many it had. On CUDA, timings are bracketed by `torch.cuda.synchronize()`.
- **Memory saved for backward.** During one forward with grad enabled,
  `torch.autograd.graph.saved_tensors_hooks` sees every tensor packed for backward; the bytes are
  the sum of `untyped_storage().nbytes()`, each storage counted once (deduplicated by `data_ptr`),
  the module's parameters excluded (by identity or storage pointer); the input `x` is counted, and
  so is any workspace a fused kernel saves (e.g. the oneDNN RNN workspace of torch.nn.LSTM on CPU).
  `saved B/unit` = bytes / (T·B·H·L·D) (D = 1 direction here); `saved ×SJ` = bytes / SpikingJelly's
  bytes at the same shape. This is the memory the autograd graph keeps alive between forward and
  backward, not the peak: temporaries freed during forward, and tensors a custom autograd
  Function keeps as plain `ctx` attributes instead of `save_for_backward`, are not seen.
- The table's shape column is `T×B×I×H×L` (steps, batch, input size, hidden size, layers).
"""


def _load(values) -> str:
    return "n/a" if not values else " / ".join(f"{v:.2f}" for v in values)


def _environment_lines(meta: dict, threads: list[int] | None) -> list[str]:
    lines = [f"- Command: `{meta['command']}`", f"- Date (UTC): {meta['date']}",
             f"- CPU: {meta['cpu_model']} ({meta['cpu_count']} logical CPUs visible); "
             f"torch threads benchmarked: {', '.join(map(str, threads)) if threads else 'n/a'}",
             f"- torch {meta['torch']}, spikingrnn {meta['spikingrnn']}, spikingjelly {meta['spikingjelly']}, "
             f"Python {meta['python']} on {meta['platform']}",
             f"- Device: {meta['device']}" + (f" ({meta['gpu']})" if meta.get("gpu") else ""),
             f"- spikingrnn cpu backend time loops: {meta['cpu_backend_loops']}",
             *(f"- {name} (module defaults): {form}" for name, form in meta.get("neuron_forms", {}).items()),
             f"- Wall time of the whole run: {meta.get('elapsed_s', 'n/a')} s",
             f"- Load average (1/5/15 min) at start: {_load(meta.get('load_average_start'))}, "
             f"at end: {_load(meta.get('load_average_end'))} (other processes sharing the CPUs add noise)"]
    return lines


def _input_text(spike_rate) -> str:
    return "standard normal floats" if spike_rate is None else f"0/1 spikes firing with probability {spike_rate:g}"


def render_document(meta: dict, main: dict | None, scaling: dict | None) -> str:
    """The whole markdown report; ``main`` / ``scaling`` are the dicts of the two runners (or ``None``)."""
    threads = main["config"]["threads"] if main else None
    parts = ["# spikingrnn benchmarks", "",
             "A snapshot, not a guarantee: the cpu backend is still being optimised. Regenerate this file with",
             "", "```", meta["command"], "```", "",
             "(the JSON with every raw number, including each timing sample, is written with `--json PATH`).", "",
             INTRO, "## Environment", "", *_environment_lines(meta, threads), ""]
    if main:
        cfg = main["config"]
        budget = f"{cfg['budget_s']:.0f} s" if cfg["budget_s"] else "none"
        parts += ["## Train and inference time, memory saved for backward", "",
                  f"{cfg['repeats']} timed repeats after {cfg['warmup']} warm-ups, "
                  f"time budget per implementation, shape and thread count: {budget}; dtype {cfg['dtype']}; "
                  f"input: {_input_text(cfg.get('spike_rate'))}.", "",
                  main_table(main["results"]), ""]
        notes = skipped_lines(main["skipped"]) + observations(main["results"])
        if notes:
            parts += ["### Observations (generated from the numbers above)", "", *notes, ""]
    if scaling:
        cfg = scaling["config"]
        parts += ["## Scaling with sequence length", "",
                  f"Train step (forward + backward) of one layer at B={cfg['B']}, I={cfg['I']}, H={cfg['H']}, "
                  f"L={cfg['L']}, {cfg['threads']} thread(s), for T in {', '.join(map(str, cfg['steps']))}; "
                  f"{cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up. Linear growth shows as a "
                  f"flat `µs/step` and `saved B/step`. An implementation is not run at a T where its "
                  f"estimated time (linear extrapolation from the previous T, warm-up included) exceeds "
                  f"{cfg['budget_s']:.0f} s; the note column says so.", "",
                  scaling_table(scaling["results"]), ""]
    return "\n".join(parts)
