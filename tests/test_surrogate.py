"""Surrogate functions: Heaviside forward, derivative of the smooth primitive backward."""
import math

import pytest
import torch

import spikingrnn
from spikingrnn import surrogate as sg

BUILTINS = [sg.Erf, sg.Sigmoid, sg.ATan, sg.PiecewiseQuadratic, sg.PiecewiseExp, sg.SoftSign, sg.SuperSpike,
            sg.Rect]
SPIKINGJELLY_DEFAULT_ALPHA = {"Erf": 2.0, "Sigmoid": 4.0, "ATan": 2.0, "PiecewiseQuadratic": 1.0,
                              "PiecewiseExp": 1.0, "SoftSign": 2.0, "SuperSpike": 1.0, "Rect": 1.0}


def grid_without_kinks(cls, alpha):
    """Points in [-3, 3] away from the kinks of piecewise primitives (0, ±1/α, ±1/(2α))."""
    x = torch.linspace(-3, 3, 1201, dtype=torch.float64)
    kinks = torch.tensor([0.0, 1 / alpha, -1 / alpha, 0.5 / alpha, -0.5 / alpha], dtype=torch.float64)
    far = (x.unsqueeze(1) - kinks).abs().min(dim=1).values > 1e-3
    return x[far]


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_default_alpha_matches_spikingjelly(cls):
    assert cls().alpha == SPIKINGJELLY_DEFAULT_ALPHA[cls.__name__]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_forward_is_heaviside_in_input_dtype(cls, dtype):
    x = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0], dtype=dtype)
    y = cls()(x)
    assert y.dtype == dtype
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_surrogate_backward_equals_autograd_of_primitive(cls, alpha):
    x = grid_without_kinks(cls, alpha).requires_grad_()
    cls(alpha)(x).sum().backward()
    spiking_grad = x.grad.clone()
    x.grad = None
    cls(alpha, spiking=False)(x).sum().backward()
    torch.testing.assert_close(spiking_grad, x.grad, rtol=1e-10, atol=1e-12)
    assert spiking_grad.abs().max() > 0


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_primitive_gradcheck_float64(cls):
    x = grid_without_kinks(cls, 1.5)[::40].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: cls(1.5, spiking=False)(t), (x,))


@pytest.mark.parametrize("cls", BUILTINS, ids=lambda c: c.__name__)
def test_primitive_is_a_smooth_step(cls):
    primitive = cls(spiking=False)
    x = torch.linspace(-50, 50, 2001, dtype=torch.float64)
    y = primitive(x)
    assert torch.all(y[1:] >= y[:-1] - 1e-12), "primitive must be non-decreasing"
    assert primitive(torch.tensor(0.0, dtype=torch.float64)).item() == pytest.approx(0.5)
    if cls is not sg.SuperSpike:  # SuperSpike's antiderivative spans (1/2 - α, 1/2 + α)
        assert y[0].item() == pytest.approx(0.0, abs=0.02) and y[-1].item() == pytest.approx(1.0, abs=0.02)


def test_erf_derivative_formula():
    x = torch.tensor([-0.7, 0.0, 0.3], dtype=torch.float64, requires_grad=True)
    sg.Erf(alpha=2.0)(x).sum().backward()
    expected = 2.0 / math.sqrt(math.pi) * torch.exp(-(2.0 * x.detach()) ** 2)
    torch.testing.assert_close(x.grad, expected)


def test_set_spiking_mode_switches_between_spikes_and_primitive():
    f = sg.ATan()
    x = torch.tensor([-0.2, 0.2])
    assert f(x).tolist() == [0.0, 1.0]
    f.set_spiking_mode(False)
    torch.testing.assert_close(f(x), sg.ATan.primitive(x, 2.0))


def test_matches_spikingjelly_backward_values():
    sj = pytest.importorskip("spikingjelly.activation_based.surrogate")
    x = torch.linspace(-2, 2, 401, dtype=torch.float64)
    for cls in BUILTINS:
        for alpha in (0.5, 1.0, 2.5):
            ours = x.clone().requires_grad_()
            theirs = x.clone().requires_grad_()
            cls(alpha)(ours).sum().backward()
            getattr(sj, cls.__name__)(alpha=alpha)(theirs).sum().backward()
            torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-12, msg=cls.__name__)


def test_user_defined_surrogate_plugs_into_a_layer():
    class Triangle(sg.SurrogateFunction):
        default_alpha = 1.0

        @staticmethod
        def primitive(x, alpha):
            return torch.clamp(alpha * x + 0.5, 0.0, 1.0)

        @staticmethod
        def derivative(x, alpha):
            return torch.clamp(alpha - alpha * alpha * x.abs(), min=0.0)

    layer = spikingrnn.SpikingLSTM(3, 5, surrogate_function1=Triangle(alpha=0.7))
    x = torch.randn(4, 2, 3, requires_grad=True)
    out, _ = layer(x)
    out.sum().backward()
    assert isinstance(layer.surrogate_function1, Triangle)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_any_callable_module_is_accepted():
    class Shifted(torch.nn.Module):
        def forward(self, u):
            return sg.spike(u - 0.1, sg.Sigmoid.derivative, 4.0)

    layer = spikingrnn.SpikingGRU(3, 5, surrogate_function1=Shifted())
    out, _ = layer(torch.randn(4, 2, 3))
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_defaults_are_fresh_instances_per_module():
    a, b = spikingrnn.SpikingLSTM(3, 4), spikingrnn.SpikingLSTM(3, 4)
    assert isinstance(a.surrogate_function1, sg.Erf)
    assert a.surrogate_function1 is not b.surrogate_function1
    a.surrogate_function1.set_spiking_mode(False)
    assert b.surrogate_function1.spiking is True


def test_registry_names_and_errors():
    assert set(sg.SURROGATES) == {"erf", "sigmoid", "atan", "piecewise_quadratic", "piecewise_exp", "soft_sign",
                                  "super_spike", "rect"}
    assert isinstance(sg.get_surrogate("atan"), sg.ATan)
    assert isinstance(sg.get_surrogate(sg.Rect), sg.Rect)
    with pytest.raises(ValueError, match="surrogate_function1: unknown surrogate 'tanh'"):
        spikingrnn.SpikingLSTM(3, 4, surrogate_function1="tanh")
    with pytest.raises(TypeError, match="surrogate_function2 must be None, a surrogate name"):
        spikingrnn.SpikingLSTM(3, 4, surrogate_function2=3)


@pytest.mark.parametrize("alpha, error, message", [
    (0.0, ValueError, "alpha must be finite and > 0, got 0.0"),
    (-1.0, ValueError, "alpha must be finite and > 0"),
    (float("nan"), ValueError, "alpha must be finite"),
    ("2", TypeError, "alpha must be a real number, got str"),
    (True, TypeError, "alpha must be a real number, got bool"),
])
def test_bad_alpha(alpha, error, message):
    with pytest.raises(error, match=message):
        sg.Erf(alpha)


def test_mismatched_spiking_modes_rejected():
    with pytest.raises(ValueError, match="surrogate_function1.spiking .True. and surrogate_function2.spiking .False."):
        spikingrnn.SpikingLSTM(3, 4, surrogate_function2=sg.Erf(spiking=False))
