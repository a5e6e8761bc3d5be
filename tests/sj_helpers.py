"""Shared helpers of the SpikingJelly comparison tests.

Nothing here imports SpikingJelly: the test modules import it with ``pytest.importorskip`` and
pass the models in. The helpers convert between SpikingJelly's naming/state layout and torch's,
build reproducible inputs, and run two models side by side comparing outputs, final states and
every gradient.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

MODES = ("LSTM", "GRU", "RNN")
STATES_NUM = {"LSTM": 2, "GRU": 1, "RNN": 1}
SJ_CLASS_NAMES = {"LSTM": "SpikingLSTM", "GRU": "SpikingGRU", "RNN": "SpikingVanillaRNN"}
# the constructor arguments that make spikingrnn's SpikingLSTM / SpikingGRU SpikingJelly 2.0's cell (0/1 gates,
# the clamped cell state, torch's uniform init, no firing-rate penalty in the gradient); the modules' defaults
# are the sigmoid form with the penalty
SJ_NEURON = {"LSTM": dict(gates="heaviside", cell_state="clamp", forget_bias=None, rate_penalty=0.0),
             "GRU": dict(gates="heaviside", forget_bias=None, rate_penalty=0.0),
             "RNN": dict(leak=None, rate_penalty=0.0)}

_SJ_PARAM = re.compile(r"^(cells|cells_reverse)\.(\d+)\.linear_(ih|hh)\.(weight|bias)$")


@dataclass(frozen=True)
class Config:
    """One stack configuration and the shapes of its inputs."""

    mode: str
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    T: int = 6
    B: int = 3
    I: int = 5
    H: int = 7
    dtype: torch.dtype = torch.float32
    num_states: int = 0  # states per cell; 0 takes the mode's (a custom cell sets its own)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def rows(self) -> int:
        return self.num_layers * self.num_directions

    @property
    def states_num(self) -> int:
        return self.num_states or STATES_NUM[self.mode]


def sj_name_to_torch(name: str) -> str:
    """``cells_reverse.1.linear_hh.bias`` -> ``bias_hh_l1_reverse``."""
    match = _SJ_PARAM.match(name)
    if match is None:
        raise KeyError(f"not a SpikingJelly rnn parameter name: {name!r}")
    stack, layer, kind, what = match.groups()
    suffix = "_reverse" if stack == "cells_reverse" else ""
    return f"{what}_{kind}_l{layer}{suffix}"


def sj_state_dict_to_torch(state_dict: dict) -> dict:
    return {sj_name_to_torch(name): value for name, value in state_dict.items()}


def _layer_major_order(num_layers: int, num_dirs: int) -> list[int]:
    """Row ``layer * D + d`` of torch's layout is row ``d * L + layer`` of SpikingJelly's."""
    return [d * num_layers + layer for layer in range(num_layers) for d in range(num_dirs)]


def sj_to_torch_layout(t: torch.Tensor, num_layers: int, num_dirs: int) -> torch.Tensor:
    """Direction-major ``[L*D, ...]`` -> layer-major ``[L*D, ...]``."""
    return t[_layer_major_order(num_layers, num_dirs)]


def make_inputs(cfg: Config, seed: int = 0):
    """Input ``x [T, B, I]``, random nonzero initial states (SpikingJelly layout, a tuple of
    ``states_num`` tensors ``[L*D, B, H]``) and random loss weights for the output and states."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(cfg.dtype)

    x = randn(cfg.T, cfg.B, cfg.I)
    states = tuple(randn(cfg.rows, cfg.B, cfg.H) * 0.5 for _ in range(cfg.states_num))
    y_weight = randn(cfg.T, cfg.B, cfg.num_directions * cfg.H)
    state_weights = tuple(randn(cfg.rows, cfg.B, cfg.H) for _ in range(cfg.states_num))
    return x, states, y_weight, state_weights


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _as_tuple(states) -> tuple:
    return tuple(states) if isinstance(states, (tuple, list)) else (states,)


def assert_grad_close(actual, expected, name: str, rtol: float) -> None:
    """``actual`` within ``rtol`` of ``expected``, relative to ``expected``'s largest entry."""
    assert expected is not None, f"{name}: reference gradient is missing"
    assert actual is not None, f"{name}: gradient is missing"
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale,
                               msg=lambda m: f"gradient of {name} differs:\n{m}")


def _run(model, x, states, y_weight, state_weights):
    y, final = model(x, states)
    final = _as_tuple(final)
    loss = (y * y_weight).sum() + sum((f * w).sum() for f, w in zip(final, state_weights))
    loss.backward()
    return y.detach(), tuple(f.detach() for f in final)


def pack_states(states: tuple, form: str = "natural"):
    """States as a model's ``forward`` takes them: ``"natural"`` is a tuple for LSTM and one
    tensor otherwise (what both libraries return); ``"tuple"`` is always a tuple."""
    if form == "tuple" or len(states) > 1:
        return tuple(states)
    return states[0]


def compare_with_sj(sj_model, model, cfg: Config, *, with_states: bool, layout: str,
                    exact: bool = True, rtol: float | None = None, state_form: str = "natural",
                    seed: int = 0) -> None:
    """Run ``sj_model`` and ``model`` on the same data and compare everything.

    ``layout`` is ``model``'s naming and state layout: ``"sj"`` (compat classes, identical names)
    or ``"torch"`` (``spikingrnn``'s main classes: torch names, layer-major states); both models
    get the initial states in ``state_form`` (see :func:`pack_states`). Outputs and
    final states must be bitwise equal when ``exact`` (spikes), else close; the gradients of the
    input, the initial states and every parameter within ``rtol`` (1e-5 in float32).
    """
    if rtol is None:
        rtol = 1e-5 if cfg.dtype == torch.float32 else 1e-10
    to_ours = (lambda t: sj_to_torch_layout(t, cfg.num_layers, cfg.num_directions)) if layout == "torch" \
        else (lambda t: t)
    rename = sj_name_to_torch if layout == "torch" else (lambda name: name)

    sj_model.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=True)
    x, states, y_weight, state_weights = make_inputs(cfg, seed)
    x_sj, x_ours = _leaf(x), _leaf(x)
    states_sj = tuple(_leaf(s) for s in states) if with_states else None
    states_ours = tuple(_leaf(to_ours(s)) for s in states) if with_states else None

    y_sj, final_sj = _run(sj_model, x_sj, None if states_sj is None else pack_states(states_sj, state_form),
                          y_weight, state_weights)
    y, final = _run(model, x_ours, None if states_ours is None else pack_states(states_ours, state_form),
                    y_weight, tuple(to_ours(w) for w in state_weights))

    # the comparison must be able to fail: the reference produces spikes and gradients
    assert y_sj.abs().sum() > 0, "reference output is all zero; the comparison would be vacuous"
    assert x_sj.grad.abs().sum() > 0, "reference input gradient is all zero"

    check = torch.equal if exact else (lambda a, b: torch.allclose(a, b, rtol=1e-6, atol=1e-6))
    assert y.dtype == y_sj.dtype == cfg.dtype
    assert y.shape == y_sj.shape
    assert check(y, y_sj), f"outputs differ; max |diff| = {(y - y_sj).abs().max().item()}"
    assert len(final) == len(final_sj) == cfg.states_num
    for k, (ours_state, sj_state) in enumerate(zip(final, final_sj)):
        expected = to_ours(sj_state)
        assert ours_state.shape == expected.shape, f"final state {k}: shape {ours_state.shape} != {expected.shape}"
        assert check(ours_state, expected), f"final state {k} differs"

    assert_grad_close(x_ours.grad, x_sj.grad, "input", rtol)
    if with_states:
        for k, (ours_state, sj_state) in enumerate(zip(states_ours, states_sj)):
            assert_grad_close(ours_state.grad, to_ours(sj_state.grad), f"initial state {k}", rtol)
    sj_params = dict(sj_model.named_parameters())
    our_params = dict(model.named_parameters())
    assert {rename(name) for name in sj_params} == set(our_params)
    for name, param in sj_params.items():
        assert_grad_close(our_params[rename(name)].grad, param.grad, name, rtol)
