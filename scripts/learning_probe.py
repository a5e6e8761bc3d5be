"""Learning probe for binary-h spiking recurrent cells (issue 16).

Plain-PyTorch reference implementations of several spiking LSTM/GRU neuron
formulations whose emitted hidden state h is binary (0/1), trained on the
"swap test" of issue 16 next to ``nn.LSTM`` and ``nn.GRU``::

    Linear(28->128) -> rnn(128->128, batch_first=True) -> Linear(128->10)

reading the rnn output at the last step.  The library's own cells are NOT
imported: every candidate is written here with a plain Python time loop so
that the numbers measure the formulation, not an implementation.

Candidates (``--candidate``):

    A     analog gates (sigmoid i,f,o; tanh g), c = f*c + i*g,
          binary h = H(o*tanh(c) - theta), theta = 0.25
    B     A with a learnable per-unit threshold theta (init 0.25)
    C     A with forget-gate bias initialised to 1.0
    D     SpikingJelly 2.0 SpikingLSTMCell: all gates Heaviside spikes,
          c = clamp_max(f*c + i*g, 1) (straight-through, no grad through the
          clamp), h = c*o
    E     Heaviside gates, accumulating c (no clamp), h = o*H(c - 0.5),
          forget-gate bias 2
    F     GRU with analog gates and binary output: r,z sigmoid,
          n = tanh(W_in x + r*(W_hn h)), s = (1-z)*n + z*s,
          h = H(s - theta), theta = 0.25
    G     F with update-gate (z) bias initialised to 1.0 (GRU analogue of C)
    lstm  torch.nn.LSTM baseline (tanh outputs)
    gru   torch.nn.GRU baseline (tanh outputs)

H is the Heaviside step with an erf-shaped surrogate gradient
dH/du = exp(-(u/alpha)^2) / (alpha*sqrt(pi)) (``--alpha``, default 0.5; this
equals SpikingJelly's ``surrogate.Erf(alpha=2)`` since its derivative is
alpha_sj/sqrt(pi)*exp(-(alpha_sj*u)^2)).

Modes:

    train     train and evaluate; prints one JSON line per run with the test
              accuracy, the firing rate of h on the test set, the energy ratio
              vs dense and seconds per epoch.
    gradnorm  gradient norm at initialisation on one batch of 64 of
              mnist5k_pixels for several sequence lengths T.

Tasks (``--task``): mnist5k_rows (the swap test; first 2,000 training
samples), mnist5k_pixels, mnist1d (T=40, 1 feature; all 4,000 training samples)
or any other name of ``spikingrnn.data.load_dataset`` (the library is used for
the data only, loaded with seed=0 so the test split is the same for every
seed).

Variants: ``--readout mean`` (time-averaged h instead of the last step),
``--theta`` / ``--learn-theta`` (threshold of A/B/C/F/G), ``--rate-penalty L``
(adds L * mean(h) over batch, steps and units to the training loss),
``--refractory K`` (A/B/C/F/G: the threshold is raised by K for one step after a
spike, h = H(... - theta - K * h_{t-1})), ``--output-bias B`` (A/B/C: the output
gate's initial total bias),
``--alpha`` (surrogate width), ``--epochs``, ``--train-size``.

Comma-separated lists are accepted for --candidate, --lr and --seed; every
combination is run in turn in the same process (one JSON line each).

Examples::

    nice -n 15 .venv/bin/python scripts/learning_probe.py \
        --candidate A,C,F --lr 1e-2,3e-3 --seed 0,1,2
    nice -n 15 .venv/bin/python scripts/learning_probe.py --mode gradnorm \
        --candidate A,C,E,F,lstm --T 100,200,400,784

Tables::

    .venv/bin/python scripts/learning_probe.py --summarize results/*.jsonl

Energy model (project convention): 0.9 pJ per accumulate (binary operand,
counted as nnz(h) * fan_out) and 4.6 pJ per multiply-accumulate (real
operands).  Only the RNN layer's two products are counted: W_ih x (x is the
real output of the Linear encoder, so MACs) and W_hh h (binary h, so ACs).
Dense = both products as MACs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

E_AC_PJ = 0.9
E_MAC_PJ = 4.6


# --------------------------------------------------------------------------
# Spike function with surrogate gradient
# --------------------------------------------------------------------------
class HeavisideErf(torch.autograd.Function):
    """Heaviside step H(u) = 1[u >= 0] with an erf-shaped surrogate gradient.

    Backward uses dH/du = exp(-(u/alpha)^2) / (alpha*sqrt(pi)), the density
    whose integral is 0.5*(1 + erf(u/alpha)).
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        grad = torch.exp(-(u / a) ** 2) / (a * math.sqrt(math.pi))
        return grad_out * grad, None


def spike(u: torch.Tensor, alpha: float) -> torch.Tensor:
    """Binary spike H(u) with surrogate width ``alpha``."""
    return HeavisideErf.apply(u, alpha)


def straight_through(value: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    """Return ``replacement`` in the forward pass, identity gradient to ``value``."""
    return value + (replacement - value).detach()


# --------------------------------------------------------------------------
# Cells (one step) and a generic layer (Python time loop)
# --------------------------------------------------------------------------
class _GatedCellBase(nn.Module):
    """Shared parameters: W_ih x + b_ih and W_hh h + b_hh for ``n_gates`` gates.

    Initialised like torch.nn.LSTM/GRU: U(-1/sqrt(H), 1/sqrt(H)).
    """

    n_gates = 4
    # the threshold rises by this much for one step after a spike (h_{t-1} = 1): no extra state
    refractory = 0.0

    def set_threshold(self, theta: float, learn: bool) -> None:
        """A per-unit firing threshold ``theta [H]``: a parameter when ``learn``, else a buffer."""
        th = torch.full((self.hidden_size,), float(theta))
        if learn:
            self.theta = nn.Parameter(th)
        else:
            self.register_buffer("theta", th)

    def __init__(self, input_size: int, hidden_size: int, alpha: float):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.alpha = alpha
        g = self.n_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(g))
        self.bias_hh = nn.Parameter(torch.empty(g))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(p, -bound, bound)

    def set_forget_bias(self, value: float) -> None:
        """Set the total forget-gate bias (b_ih + b_hh) to ``value`` (LSTM order i,f,g,o)."""
        h = self.hidden_size
        with torch.no_grad():
            self.bias_ih[h : 2 * h].fill_(value)
            self.bias_hh[h : 2 * h].zero_()

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """W_ih x + b_ih for all time steps at once: [B,T,F] -> [B,T,G*H]."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def initial_state(self, batch: int, ref: torch.Tensor):
        z = ref.new_zeros(batch, self.hidden_size)
        return z, z  # (h, internal state)


class AnalogGateBinaryLSTMCell(_GatedCellBase):
    """Candidates A/B/C: sigmoid/tanh gates, analog c, binary h = H(o*tanh(c) - theta)."""

    def __init__(self, input_size, hidden_size, alpha, theta=0.25,
                 learn_theta=False, forget_bias=None):
        super().__init__(input_size, hidden_size, alpha)
        self.set_threshold(theta, learn_theta)
        if forget_bias is not None:
            self.set_forget_bias(forget_bias)

    def step(self, xw, h, c):
        gates = xw + F.linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = spike(torch.sigmoid(o) * torch.tanh(c) - self.theta - self.refractory * h, self.alpha)
        return h, c


class SpikingJellyLSTMCell(_GatedCellBase):
    """Candidate D: SpikingJelly 2.0 SpikingLSTMCell.

    All four gates are Heaviside spikes of their pre-activations,
    c = clamp_max(f*c + i*g, 1) with the clamp invisible to autograd (SJ clamps
    in place under no_grad), h = c*o.
    """

    def step(self, xw, h, c):
        gates = xw + F.linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = (spike(u, self.alpha) for u in gates.chunk(4, dim=-1))
        c_pre = f * c + i * g
        c = straight_through(c_pre, c_pre.clamp_max(1.0))
        h = c * o
        return h, c


class HeavisideAccumulateLSTMCell(_GatedCellBase):
    """Candidate E: Heaviside gates, accumulating c, binary h = o*H(c - 0.5), forget bias 2."""

    def __init__(self, input_size, hidden_size, alpha, forget_bias=2.0):
        super().__init__(input_size, hidden_size, alpha)
        self.set_forget_bias(forget_bias)

    def step(self, xw, h, c):
        gates = xw + F.linear(h, self.weight_hh, self.bias_hh)
        i, f, g, o = (spike(u, self.alpha) for u in gates.chunk(4, dim=-1))
        c = f * c + i * g
        h = o * spike(c - 0.5, self.alpha)
        return h, c


class AnalogGateBinaryGRUCell(_GatedCellBase):
    """Candidate F: GRU with analog gates, analog state s, binary h = H(s - theta).

    Gate order r, z, n as in torch.nn.GRU; the recurrent input is binary h.
    """

    n_gates = 3

    def __init__(self, input_size, hidden_size, alpha, theta=0.25, update_bias=None,
                 learn_theta=False):
        super().__init__(input_size, hidden_size, alpha)
        self.set_threshold(theta, learn_theta)
        if update_bias is not None:
            # total bias of the update gate z (order r, z, n): z near 1 keeps s
            h = hidden_size
            with torch.no_grad():
                self.bias_ih[h : 2 * h].fill_(update_bias)
                self.bias_hh[h : 2 * h].zero_()

    def step(self, xw, h, s):
        xr, xz, xn = xw.chunk(3, dim=-1)
        hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        s = (1 - z) * n + z * s
        h = spike(s - self.theta - self.refractory * h, self.alpha)
        return h, s


class SpikingLayer(nn.Module):
    """Runs a cell over time (batch_first) with a plain Python loop.

    Returns the sequence of binary h [B,T,H]; also records spike statistics
    for the energy estimate in ``self.last_stats`` when ``record`` is set.
    """

    def __init__(self, cell: _GatedCellBase):
        super().__init__()
        self.cell = cell
        self.record = False
        self.last_stats = None

    def forward(self, x: torch.Tensor):
        b, t, _ = x.shape
        xw = self.cell.input_projection(x)
        h, state = self.cell.initial_state(b, x)
        outs = []
        # unbind (not xw[:, k]): indexing would make every step's backward
        # materialise a full [B,T,G*H] gradient, i.e. O(T^2) work at T=784.
        for xw_t in xw.unbind(1):
            h, state = self.cell.step(xw_t, h, state)
            outs.append(h)
        y = torch.stack(outs, dim=1)
        if self.record:
            # h_t for t=0..T-1 is emitted; h_{t-1} (t=1..T-1) feeds W_hh.
            self.last_stats = {
                "h_sum": y.sum().item(),
                "h_count": y.numel(),
                "h_fed_nnz": y[:, :-1].sum().item(),
                "binary": bool(((y == 0) | (y == 1)).all().item()),
                "batch_steps": b * t,
            }
        return y, None


# ``kw`` carries the threshold options (--theta, --learn-theta) to the candidates
# with a threshold theta (A, B, C, F, G); empty for the published settings.
CANDIDATES = {
    "A": lambda i, h, a, **kw: SpikingLayer(AnalogGateBinaryLSTMCell(i, h, a, **kw)),
    "B": lambda i, h, a, **kw: SpikingLayer(AnalogGateBinaryLSTMCell(i, h, a, **{"learn_theta": True, **kw})),
    "C": lambda i, h, a, **kw: SpikingLayer(AnalogGateBinaryLSTMCell(i, h, a, forget_bias=1.0, **kw)),
    "D": lambda i, h, a, **kw: SpikingLayer(SpikingJellyLSTMCell(i, h, a)),
    "E": lambda i, h, a, **kw: SpikingLayer(HeavisideAccumulateLSTMCell(i, h, a)),
    "F": lambda i, h, a, **kw: SpikingLayer(AnalogGateBinaryGRUCell(i, h, a, **kw)),
    "G": lambda i, h, a, **kw: SpikingLayer(AnalogGateBinaryGRUCell(i, h, a, update_bias=1.0, **kw)),
    "lstm": lambda i, h, a, **kw: nn.LSTM(i, h, batch_first=True),
    "gru": lambda i, h, a, **kw: nn.GRU(i, h, batch_first=True),
}
THRESHOLD_CANDIDATES = ("A", "B", "C", "F", "G")


class SwapClassifier(nn.Module):
    """Linear(F->128) -> rnn(128->128, batch_first) -> Linear(128->10).

    ``readout="last"`` (the swap test) reads the rnn output at the last step;
    ``"mean"`` its average over time (the training CLI's default). The mean of
    h over the batch, steps and units of the last forward pass is kept in
    ``last_rate`` (a tensor with gradient, for the firing-rate penalty).
    """

    def __init__(self, candidate: str, in_features: int, alpha: float,
                 hidden: int = 128, n_classes: int = 10, readout: str = "last",
                 cell_kwargs: dict | None = None):
        super().__init__()
        self.encoder = nn.Linear(in_features, hidden)
        self.rnn = CANDIDATES[candidate](hidden, hidden, alpha, **(cell_kwargs or {}))
        self.readout = nn.Linear(hidden, n_classes)
        self.readout_mode = readout
        self.last_rate = None

    def forward(self, x):
        y, _ = self.rnn(self.encoder(x))
        if isinstance(self.rnn, SpikingLayer):
            self.last_rate = y.mean()
        features = y.mean(dim=1) if self.readout_mode == "mean" else y[:, -1]
        return self.readout(features)


# --------------------------------------------------------------------------
# Energy
# --------------------------------------------------------------------------
def energy_ratio(stats: dict, in_size: int, hidden: int, n_gates: int,
                 x_rate: float | None = None) -> float:
    """Energy of the RNN layer's two products relative to dense MACs.

    W_ih x: MACs (real x) unless ``x_rate`` is given (binary x at that rate,
    ACs). W_hh h: ACs on the nonzeros of the binary h fed back.
    """
    fan_out = n_gates * hidden
    steps = stats["batch_steps"]
    dense = steps * (in_size + hidden) * fan_out * E_MAC_PJ
    if x_rate is None:
        e_in = steps * in_size * fan_out * E_MAC_PJ
    else:
        e_in = steps * in_size * x_rate * fan_out * E_AC_PJ
    e_rec = stats["h_fed_nnz"] * fan_out * E_AC_PJ
    return (e_in + e_rec) / dense


# --------------------------------------------------------------------------
# Training / evaluation
# --------------------------------------------------------------------------
def load(task: str):
    from spikingrnn.data import load_dataset

    return load_dataset(task, seed=0)


@torch.no_grad()
def evaluate(model, x, y, batch=250):
    """Test accuracy and (for spiking layers) aggregated spike statistics."""
    model.eval()
    spiking = isinstance(model.rnn, SpikingLayer)
    if spiking:
        model.rnn.record = True
    correct = 0
    agg = {"h_sum": 0.0, "h_count": 0, "h_fed_nnz": 0.0, "binary": True, "batch_steps": 0}
    for k in range(0, len(x), batch):
        logits = model(x[k : k + batch])
        correct += (logits.argmax(-1) == y[k : k + batch]).sum().item()
        if spiking:
            s = model.rnn.last_stats
            for key in ("h_sum", "h_count", "h_fed_nnz", "batch_steps"):
                agg[key] += s[key]
            agg["binary"] = agg["binary"] and s["binary"]
    if spiking:
        model.rnn.record = False
    model.train()
    return correct / len(x), (agg if spiking else None)


def cell_kwargs(args, candidate: str) -> dict:
    """Threshold options for the candidates that have a threshold (else empty)."""
    kw = {}
    if candidate in THRESHOLD_CANDIDATES:
        if args.theta is not None:
            kw["theta"] = args.theta
        if args.learn_theta:
            kw["learn_theta"] = True
    return kw


def set_output_bias(model, value: float) -> None:
    """Initialise the LSTM candidates' total output-gate bias (order i, f, g, o) to ``value``: o = sigmoid(value)
    at the start, so ``o * tanh(c)`` starts below the threshold (fewer spikes) for ``value`` < 0."""
    cell = model.rnn.cell
    h = cell.hidden_size
    with torch.no_grad():
        cell.bias_ih[3 * h:].fill_(value)
        cell.bias_hh[3 * h:].zero_()


def set_refractory(model, value: float) -> None:
    """One-step refractory threshold of the threshold candidates: h = H(... - theta - value * h_{t-1})."""
    if value and isinstance(model.rnn, SpikingLayer):
        model.rnn.cell.refractory = value


def train_size(args) -> int:
    """--train-size, or the task's default: 2,000 for mnist5k_* (the swap test), all otherwise."""
    if args.train_size is not None:
        return args.train_size
    return 2000 if args.task.startswith("mnist5k") else 0


def train_run(args, data, candidate: str, lr: float, seed: int) -> dict:
    """Train one model with the swap-test recipe and return a result dict."""
    n = train_size(args) or len(data.y_train)
    x_tr = data.x_train[:n]
    y_tr = data.y_train[:n]
    x_te, y_te = data.x_test, data.y_test
    if args.T is not None and args.task.endswith("pixels"):
        t = int(args.T.split(",")[0])
        start = (x_tr.shape[1] - t) // 2
        x_tr, x_te = x_tr[:, start : start + t], x_te[:, start : start + t]

    torch.manual_seed(seed)
    model = SwapClassifier(candidate, x_tr.shape[-1], args.alpha, readout=args.readout,
                           cell_kwargs=cell_kwargs(args, candidate))
    if candidate in THRESHOLD_CANDIDATES:
        set_refractory(model, args.refractory)
    if args.output_bias is not None and candidate in ("A", "B", "C"):
        set_output_bias(model, args.output_bias)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n_batches = math.ceil(len(x_tr) / args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * n_batches)
    gen = torch.Generator().manual_seed(seed)

    epoch_secs, losses, nonfinite = [], [], False
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x_tr), generator=gen)
        tot, cnt = 0.0, 0
        for k in range(0, len(x_tr), args.batch):
            idx = perm[k : k + args.batch]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            if args.rate_penalty and model.last_rate is not None:
                # firing-rate penalty: lambda * mean(h) over batch, steps, units
                loss = loss + args.rate_penalty * model.last_rate
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if not torch.isfinite(loss):
                nonfinite = True
            tot += loss.item() * len(idx)
            cnt += len(idx)
        epoch_secs.append(time.perf_counter() - t0)
        losses.append(tot / cnt)
        if args.verbose:
            print(f"# {candidate} lr={lr} seed={seed} epoch {epoch+1} loss {losses[-1]:.4f} "
                  f"{epoch_secs[-1]:.1f}s", flush=True)

    acc, stats = evaluate(model, x_te, y_te)
    out = {
        "mode": "train", "task": args.task, "candidate": candidate, "lr": lr, "seed": seed,
        "alpha": args.alpha, "epochs": args.epochs, "train_size": len(x_tr),
        "readout": args.readout, "theta": args.theta, "learn_theta": args.learn_theta,
        "rate_penalty": args.rate_penalty, "refractory": args.refractory, "output_bias": args.output_bias,
        "seq_len": x_tr.shape[1], "test_acc": acc, "final_train_loss": losses[-1],
        "nonfinite_loss": nonfinite, "sec_per_epoch": sum(epoch_secs) / len(epoch_secs),
        "threads": torch.get_num_threads(),
    }
    if stats is not None:
        n_gates = model.rnn.cell.n_gates
        rate = stats["h_sum"] / stats["h_count"]
        out.update({
            "h_binary": stats["binary"],
            "firing_rate": rate,
            "energy_ratio": energy_ratio(stats, 128, 128, n_gates),
            "energy_ratio_if_x_binary_same_rate": energy_ratio(stats, 128, 128, n_gates, x_rate=rate),
        })
        if isinstance(getattr(model.rnn.cell, "theta", None), nn.Parameter):
            th = model.rnn.cell.theta.detach()
            out["theta_mean"], out["theta_sd"] = th.mean().item(), th.std().item()
    return out


def gradnorm_run(args, data, candidate: str, seed: int, t: int) -> dict:
    """Gradient norm at default initialisation on one batch of 64, centre window of length t."""
    x = data.x_train[: args.batch]
    y = data.y_train[: args.batch]
    start = (x.shape[1] - t) // 2
    x = x[:, start : start + t]
    torch.manual_seed(seed)
    model = SwapClassifier(candidate, x.shape[-1], args.alpha)
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    sec = time.perf_counter() - t0
    norms = {n: p.grad.norm().item() for n, p in model.named_parameters() if p.grad is not None}
    total = math.sqrt(sum(v * v for v in norms.values()))
    rnn_total = math.sqrt(sum(v * v for n, v in norms.items() if n.startswith("rnn.")))
    enc = norms.get("encoder.weight", float("nan"))
    return {
        "mode": "gradnorm", "task": args.task, "candidate": candidate, "seed": seed,
        "alpha": args.alpha, "T": t, "loss": loss.item(), "grad_norm_total": total,
        "grad_norm_rnn": rnn_total, "grad_norm_encoder_weight": enc,
        "finite": math.isfinite(total), "sec_fwd_bwd": sec,
    }


def variant(r: dict) -> str:
    """The settings of a run that differ from the swap test's (older result files lack the keys)."""
    parts = []
    default_epochs = 8
    if r.get("epochs", default_epochs) != default_epochs:
        parts.append(f"{r['epochs']} ep")
    if r["task"].startswith("mnist5k") and r.get("train_size", 2000) != 2000:
        parts.append(f"n={r['train_size']}")
    if r["task"] == "mnist1d" and r.get("train_size", 4000) != 4000:
        parts.append(f"n={r['train_size']}")
    if r.get("readout", "last") != "last":
        parts.append(f"readout {r['readout']}")
    if r.get("theta") is not None:
        parts.append(f"theta {r['theta']:g}")
    if r.get("learn_theta") and r["candidate"] != "B":
        parts.append("learnable theta")
    if r.get("output_bias") is not None:
        parts.append(f"output bias {r['output_bias']:g}")
    if r.get("refractory"):
        parts.append(f"refractory {r['refractory']:g}")
    if r.get("rate_penalty"):
        parts.append(f"rate penalty {r['rate_penalty']:g}")
    return ", ".join(parts) or "-"


def summarize(paths) -> None:
    """Print a markdown table (mean +- sd over seeds) from JSON-line result files."""
    import statistics as st
    from collections import defaultdict

    train, grad = defaultdict(list), defaultdict(dict)
    for path in paths:
        with open(path) as fh:
            for line in fh:
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if r["mode"] == "train":
                    train[(r["task"], r["candidate"], r["alpha"], r["lr"], variant(r))].append(r)
                else:
                    grad[(r["candidate"], r["alpha"])][r["T"]] = r

    def ms(vals, fmt="{:.3f}"):
        vals = [v for v in vals if v is not None]
        if not vals:
            return "-"
        sd = st.stdev(vals) if len(vals) > 1 else 0.0
        return (fmt + " ± " + fmt).format(st.mean(vals), sd)

    if train:
        print("| task | candidate | variant | alpha | lr | n | test acc | firing rate | energy vs dense "
              "| (if x binary) | s/epoch |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for (task, cand, alpha, lr, var), rs in sorted(
                train.items(), key=lambda kv: (kv[0][0], -kv[0][3], kv[0][1], kv[0][4], kv[0][2])):
            print(f"| {task} | {cand} | {var} | {alpha} | {lr:g} | {len(rs)} | "
                  f"{ms([r['test_acc'] for r in rs])} | "
                  f"{ms([r.get('firing_rate') for r in rs])} | "
                  f"{ms([r.get('energy_ratio') for r in rs])} | "
                  f"{ms([r.get('energy_ratio_if_x_binary_same_rate') for r in rs])} | "
                  f"{st.mean(r['sec_per_epoch'] for r in rs):.1f} |")
        thetas = {k: rs for k, rs in train.items() if any("theta_mean" in r for r in rs)}
        if thetas:
            print()
            print("| task | candidate | variant | lr | learned theta: mean of unit means | mean of unit sds |")
            print("|---|---|---|---|---|---|")
            for (task, cand, alpha, lr, var), rs in sorted(thetas.items()):
                print(f"| {task} | {cand} | {var} | {lr:g} | {ms([r.get('theta_mean') for r in rs])} | "
                      f"{ms([r.get('theta_sd') for r in rs])} |")
    if grad:
        lengths = sorted({t for d in grad.values() for t in d})
        print()
        print("| candidate | alpha | " + " | ".join(f"T={t}" for t in lengths) + " |")
        print("|---|---|" + "---|" * len(lengths))
        for (cand, alpha), d in sorted(grad.items()):
            cells = [f"{d[t]['grad_norm_total']:.3g}" if t in d else "-" for t in lengths]
            print(f"| {cand} | {alpha} | " + " | ".join(cells) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["train", "gradnorm"], default="train")
    p.add_argument("--candidate", default="A", help="comma list of " + ",".join(CANDIDATES))
    p.add_argument("--lr", default="1e-2", help="comma list of learning rates")
    p.add_argument("--seed", default="0", help="comma list of seeds")
    p.add_argument("--task", default=None,
                   help="mnist5k_rows (train default), mnist5k_pixels (gradnorm default), mnist1d, "
                        "or any name of spikingrnn.data.load_dataset (loaded with seed=0: fixed split)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train-size", type=int, default=None,
                   help="first N training samples (0 = all); default 2000 for mnist5k_*, all otherwise")
    p.add_argument("--readout", choices=["last", "mean"], default="last",
                   help="classifier reads the rnn output at the last step (swap test) or its time average")
    p.add_argument("--theta", type=float, default=None,
                   help="threshold of A/B/C/F/G (default: the candidate's, 0.25)")
    p.add_argument("--learn-theta", action="store_true",
                   help="learnable per-unit threshold (init --theta) for A/C/F/G")
    p.add_argument("--rate-penalty", type=float, default=0.0,
                   help="add lambda * mean firing rate of h (batch, steps, units) to the training loss")
    p.add_argument("--output-bias", type=float, default=None,
                   help="A/B/C: initialise the output gate's total bias to this value (e.g. -2: fewer spikes at first)")
    p.add_argument("--refractory", type=float, default=0.0,
                   help="A/B/C/F/G: raise the threshold by this much for one step after a spike")
    p.add_argument("--alpha", type=float, default=0.5, help="surrogate width")
    p.add_argument("--T", default=None,
                   help="gradnorm: comma list of lengths; train on pixels: centre window length")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--keep-denormals", action="store_true",
                   help="do not flush subnormal floats to zero (slow on long sequences)")
    p.add_argument("--summarize", nargs="+", metavar="JSONL",
                   help="print markdown tables from result files and exit")
    args = p.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    torch.set_num_threads(args.threads)
    # Gradients that vanish over hundreds of steps can reach the subnormal
    # range, where x86 float arithmetic is much slower; flushing subnormals to
    # zero changes no reported digit.
    torch.set_flush_denormal(not args.keep_denormals)
    if args.task is None:
        args.task = "mnist5k_rows" if args.mode == "train" else "mnist5k_pixels"
    data = load(args.task)
    cands = args.candidate.split(",")
    seeds = [int(s) for s in args.seed.split(",")]
    if args.mode == "train":
        lrs = [float(v) for v in args.lr.split(",")]
        for lr, cand, seed in itertools.product(lrs, cands, seeds):
            print(json.dumps(train_run(args, data, cand, lr, seed)), flush=True)
    else:
        lengths = [int(v) for v in (args.T or "100,200,400,784").split(",")]
        for cand, seed, t in itertools.product(cands, seeds, lengths):
            print(json.dumps(gradnorm_run(args, data, cand, seed, t)), flush=True)


if __name__ == "__main__":
    main()
