"""``TrainConfig``: every setting of :func:`spikingrnn.train.train`, validated on construction."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields

from ..data.registry import DATASETS
from ..functional.cells import CELL_STATES, DEFAULT_FORGET_BIAS, DEFAULT_LEAK, DEFAULT_SPIKE_THRESHOLD, GATE_FORMS
from ..nn.surrogates import default_surrogate_alpha
from ..nn.validation import CHRONO, MIN_CHRONO_STEPS
from ..ops.rate_penalty import DEFAULT_FREE_RATE, DEFAULT_RATE_PENALTY
from ..surrogate import SURROGATES

MODELS = ("lstm", "gru", "rnn")
# the non-spiking torch.nn.LSTM/GRU/RNN (tanh) in the same classifier: baselines for the same command
BASELINES = ("torch_lstm", "torch_gru", "torch_rnn")
READOUTS = ("mean", "last")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
BACKENDS = ("auto", "reference", "cpu", "triton")
# "auto" (CUDA when available, else the CPU), "cpu", "cuda" or "cuda:N"
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:(0|[1-9][0-9]*))?)$")

# fields that may change when a run is resumed (everything else must match the checkpoint): where it
# runs and writes, and how far; the data files may have moved. A longer cosine schedule is re-laid
# over the new total from the resumed epoch on.
RESUMABLE_CHANGES = ("epochs", "out_dir", "threads", "plots", "device", "data_path", "test_data_path")


def choices() -> dict[str, tuple[str, ...]]:
    """``{field: allowed values}`` of the fields that take one of a fixed set of names."""
    return {"task": tuple(sorted(DATASETS)), "model": MODELS + BASELINES, "schedule": SCHEDULES,
            "gates": GATE_FORMS, "cell_state": tuple(CELL_STATES), "surrogate": tuple(SURROGATES), "readout": READOUTS,
            "optimizer": OPTIMIZERS, "backend": BACKENDS}


@dataclass
class TrainConfig:
    """Settings of a training run.

    Attributes:
        task: dataset name of :data:`spikingrnn.data.DATASETS` (e.g. ``"digits_rows"``).
        model: ``"lstm"``, ``"gru"`` or ``"rnn"`` (SpikingLSTM / SpikingGRU / SpikingRNN), or the
            non-spiking baseline ``"torch_lstm"``, ``"torch_gru"``, ``"torch_rnn"`` (torch.nn, tanh) in
            the same classifier (no firing rates or energy are recorded for these).
        layers: stacked recurrent layers.
        hidden: hidden size of the encoder and of every recurrent layer.
        bidirectional: two directions per layer.
        gates: the LSTM's and GRU's ``gates`` (``"sigmoid"``: analog gates and state, binary spikes
            out, the modules' default; ``"heaviside"``: the seed's 0/1 gates); ignored by ``"rnn"``.
        leak: the vanilla RNN's ``leak`` (its membrane's decay, default 0.9); ``None`` (``none`` on the
            command line): the seed's cell ``h = Θ(u)``. Ignored by ``"lstm"`` and ``"gru"``.
        spike_threshold: θ of the emitted spikes (the modules' ``spike_threshold``).
        forget_bias: the LSTM's and GRU's ``forget_bias`` (initial bias of the memory gate); ``None``
            (``none`` on the command line): torch's uniform init, as SpikingJelly; ``"chrono"``: the
            chrono initialisation for dependencies up to ``chrono_steps`` steps, which also applies to
            the ``torch_lstm``/``torch_gru`` baselines (a number does not: they keep torch's init).
        chrono_steps: with ``forget_bias="chrono"`` (and only then): the longest dependency in steps
            the memory gate starts out holding, e.g. the sequence length; 0: unset.
        cell_state: LSTM cell-state rule (``"clamp"``, ``"accumulate"``, ``"spike"``; the sigmoid form
            takes ``"accumulate"`` only); ignored otherwise.
        surrogate: surrogate name of :data:`spikingrnn.surrogate.SURROGATES` (e.g. ``"erf"``, ``"atan"``).
        surrogate_alpha: the surrogate's ``alpha``, its sharpness (the derivative is ~``1/alpha``
            wide around the threshold); 0 (the default) is replaced by the default width: for ``"erf"``
            the modules' own (1 for the LSTM's sigmoid form, 2 for every other form), for the others
            the surrogate class's ``default_alpha``.
        rate_penalty: the spiking stack's ``rate_penalty`` (default 0.2, the modules' own): training
            adds the gradient of ``rate_penalty * (mean firing rate above free_rate)`` of every spiking
            layer to the loss's gradient (the reported ``loss`` is the task loss alone), which keeps the
            LSTM and GRU at a firing rate <= 0.3 at their accuracy (docs/LEARNING.md); 0: off. The
            ``torch_*`` baselines ignore it.
        free_rate: the spiking stack's ``free_rate`` (default 0.25): the firing rate a layer may reach
            before ``rate_penalty`` acts on it.
        readout: ``"mean"`` (time-averaged spikes of the last layer) or ``"last"`` (its last step;
            bidirectional: forward direction at ``T-1`` and reverse direction at ``0``).
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        lr: learning rate.
        schedule: ``"constant"`` learning rate, or ``"cosine"``: annealed from ``lr`` to 0 over
            ``epochs`` (stepped once per epoch), which steadies the final epochs' accuracy.
        grad_clip: clip the gradients' global norm to this value before each step (0: no clipping).
        epochs: total number of epochs (a resumed run continues up to this number).
        batch_size: mini-batch size.
        seed: seeds the initial weights (``torch.manual_seed``) and the shuffling generator.
        split_seed: seeds the dataset's train/test split, kept apart from ``seed`` so that runs with
            different seeds are scored on the same test set. For ``mnist1d`` it is the generator's
            seed: the samples themselves depend on it, and the default 0 is not the package's own seed
            (42, ``load_mnist1d``'s default); ``split_seed=42`` (``--split-seed 42``) trains on the
            canonical MNIST-1D samples. ``temporal_xor``/``temporal_recall`` generate their training
            set from it and keep one test set.
        threads: ``torch.set_num_threads`` (0 leaves torch's setting alone).
        out_dir: directory of metrics, checkpoints and plots (created).
        low_memory: the RNN's ``low_memory`` (recompute pre-activations in backward).
        limit_train: use only the first ``limit_train`` training samples (0: all).
        limit_test: use only the first ``limit_test`` test samples (0: all).
        monitor_samples: test samples on which firing rates and energy are measured each epoch.
        backend: the RNN's ``backend`` (``"auto"``, ``"reference"``, ``"cpu"``, ``"triton"``).
        device: where to train: ``"auto"`` (the current CUDA device when there is one, else the
            CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (under torchrun ``"cuda"`` is each
            process's ``cuda:LOCAL_RANK``).
        plots: write the PNG plots at the end (needs matplotlib).
        data_path: the dataset file for ``shd``/``ssc``, the folder of torchvision's raw MNIST files for
            ``mnist_rows``/``mnist_pixels`` (passed as ``path=``); empty otherwise.
        test_data_path: the official test file for ``shd``/``ssc`` (passed as ``test_path=``):
            then ``data_path`` is the training file, used whole; empty: a split of ``data_path``.
    """

    task: str = "digits_rows"
    model: str = "lstm"
    layers: int = 1
    hidden: int = 64
    bidirectional: bool = False
    # the modules' defaults (docs/LEARNING.md): sigmoid gates, binary spikes out, erf surrogate
    gates: str = "sigmoid"
    leak: float | None = DEFAULT_LEAK
    spike_threshold: float = DEFAULT_SPIKE_THRESHOLD
    forget_bias: float | str | None = DEFAULT_FORGET_BIAS
    chrono_steps: int = 0
    cell_state: str = "accumulate"
    surrogate: str = "erf"
    surrogate_alpha: float = 0.0
    rate_penalty: float = DEFAULT_RATE_PENALTY
    free_rate: float = DEFAULT_FREE_RATE
    readout: str = "mean"
    optimizer: str = "adam"
    lr: float = 1e-2
    schedule: str = "cosine"
    grad_clip: float = 1.0
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    split_seed: int = 0
    threads: int = 2
    out_dir: str = "runs/default"
    low_memory: bool = False
    limit_train: int = 0
    limit_test: int = 0
    monitor_samples: int = 256
    backend: str = "auto"
    plots: bool = True
    data_path: str = ""
    device: str = "auto"
    test_data_path: str = ""

    def __post_init__(self) -> None:
        for name, allowed in choices().items():
            self._choice(name, allowed)
        if not isinstance(self.device, str) or not DEVICE_PATTERN.match(self.device):
            raise ValueError(f"TrainConfig.device must be auto, cpu, cuda or cuda:N; got {self.device!r}")
        for name, minimum in (("layers", 1), ("hidden", 1), ("epochs", 0), ("batch_size", 1), ("seed", 0),
                              ("split_seed", 0), ("chrono_steps", 0),
                              ("threads", 0), ("limit_train", 0), ("limit_test", 0), ("monitor_samples", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"TrainConfig.{name} must be an int >= {minimum}, got {value!r}")
        for name in ("bidirectional", "low_memory", "plots"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}")
        self.lr = float(self.lr)
        alpha = self.surrogate_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
            raise ValueError(f"TrainConfig.surrogate_alpha must be a number >= 0 (0: the default), got {alpha!r}")
        self.surrogate_alpha = float(alpha)
        for name in ("spike_threshold", "rate_penalty", "free_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"TrainConfig.{name} must be a finite number, got {value!r}")
            setattr(self, name, float(value))
        self._check_memory_gate()
        leak = self.leak
        if leak is not None and (isinstance(leak, bool) or not isinstance(leak, (int, float)) or not 0 <= leak < 1):
            raise ValueError(f"TrainConfig.leak must be None or a number in [0, 1), got {leak!r}")
        self.leak = None if leak is None else float(leak)
        if self.rate_penalty < 0:
            raise ValueError(f"TrainConfig.rate_penalty must be >= 0 (0: off), got {self.rate_penalty!r}")
        if not 0 <= self.free_rate <= 1:
            raise ValueError(f"TrainConfig.free_rate must be a firing rate in [0, 1], got {self.free_rate!r}")
        if self.gates == "sigmoid" and self.model in ("lstm",) and self.cell_state != "accumulate":
            raise ValueError(f"TrainConfig.cell_state must be 'accumulate' with gates='sigmoid' (its analog cell "
                             f"state), got {self.cell_state!r}; the other rules belong to gates='heaviside'")
        clip = self.grad_clip
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip >= 0:
            raise ValueError(f"TrainConfig.grad_clip must be a number >= 0 (0: off), got {clip!r}")
        self.grad_clip = float(clip)
        for name in ("data_path", "test_data_path"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"TrainConfig.{name} must be a path string, got {getattr(self, name)!r}")
        if not isinstance(self.out_dir, str) or not self.out_dir:
            raise ValueError(f"TrainConfig.out_dir must be a non-empty path string, got {self.out_dir!r}")
        if self.surrogate_alpha == 0:  # the default, written out: a saved run keeps its width if defaults change
            self.surrogate_alpha = self._default_surrogate_alpha()

    def _check_memory_gate(self) -> None:
        """``forget_bias``: a finite number, None or "chrono" (then ``chrono_steps`` >= 2, else 0)."""
        bias = self.forget_bias
        if bias == CHRONO:
            if self.chrono_steps < MIN_CHRONO_STEPS:
                raise ValueError(f"TrainConfig.chrono_steps must be an int >= {MIN_CHRONO_STEPS} with "
                                 f"forget_bias='chrono' (the longest dependency in steps), got {self.chrono_steps!r}")
            return
        if bias is not None and (isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias)):
            raise ValueError(f"TrainConfig.forget_bias must be a finite number, None or 'chrono', got {bias!r}")
        self.forget_bias = None if bias is None else float(bias)
        if self.chrono_steps != 0:
            raise ValueError(f"TrainConfig.chrono_steps applies to forget_bias='chrono' only, got chrono_steps="
                             f"{self.chrono_steps} with forget_bias={self.forget_bias!r}")

    def _default_surrogate_alpha(self) -> float:
        mode = self.model.removeprefix("torch_").upper()
        if self.surrogate == "erf":
            alpha = default_surrogate_alpha(mode, self.gates if mode != "RNN" else None)
            if alpha is not None:
                return alpha
        return float(SURROGATES[self.surrogate].default_alpha)

    def _choice(self, name: str, choices: tuple) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ValueError(f"TrainConfig.{name} must be one of {', '.join(choices)}; got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"TrainConfig has no field {', '.join(unknown)}")
        return cls(**values)


def saved_config(saved: dict) -> dict:
    """A saved configuration in today's fields, with what the version that wrote it ran with where a
    field is missing: runs saved before ``split_seed`` existed split their data with ``seed``; runs
    saved before ``gates`` existed had Heaviside gates, torch's init and the seed's vanilla RNN (today's
    defaults: the sigmoid form, ``forget_bias`` 1, ``leak`` 0.9); runs saved before ``rate_penalty``
    existed trained without it (today's default 0.1), and those saved before ``free_rate`` existed
    penalised every spike (``free_rate`` 0; today's 0.25); runs saved with ``surrogate_alpha``
    0 ran with the surrogate class's own alpha (today a new config writes the resolved default, which for
    the LSTM's sigmoid form is Erf's alpha 1, not 2)."""
    saved = dict(saved)
    if "split_seed" not in saved and "seed" in saved:
        saved["split_seed"] = saved["seed"]
    if "gates" not in saved:
        saved.update(gates="heaviside", forget_bias=None, leak=None)
    saved.setdefault("rate_penalty", 0.0)
    saved.setdefault("free_rate", 0.0)
    if saved.get("surrogate_alpha") == 0:  # written before the default was resolved: the class's own alpha
        saved["surrogate_alpha"] = float(SURROGATES[saved.get("surrogate", "erf")].default_alpha)
    return saved
