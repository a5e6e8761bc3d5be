"""One list of constructor arguments: spikingrnn.nn.base.CONSTRUCTOR_ARGUMENTS agrees with every class's signature,
and checkpoints, from_torch/to_torch and extra_repr read it."""
import inspect

import pytest
import torch

from spikingrnn import SpikingGRU, SpikingGRUCell, SpikingLSTM, SpikingLSTMCell, SpikingRNN, SpikingRNNCell
from spikingrnn.compat.torch_nn import from_torch, to_torch
from spikingrnn.io import model_config
from spikingrnn.nn.base import (CONSTRUCTOR_ARGUMENTS, REQUIRED, ROLES, SpikingRNNBase, constructor_arguments,
                                constructor_parameters)

CLASSES = (SpikingLSTM, SpikingGRU, SpikingRNN, SpikingLSTMCell, SpikingGRUCell, SpikingRNNCell)
KEYWORD_ONLY_ROLES = ("spiking", "surrogate")


def signature_mismatches(cls) -> list[str]:
    """How ``cls.__init__``'s signature disagrees with the list (names, defaults, keyword-only or not)."""
    parameters = {name: p for name, p in inspect.signature(cls).parameters.items()
                  if p.kind is not inspect.Parameter.VAR_KEYWORD}
    listed = {a.name: a for a in constructor_parameters(cls)}
    problems = [f"{cls.__name__}.__init__ takes {name!r}, not in CONSTRUCTOR_ARGUMENTS for this class"
                for name in parameters if name not in listed]
    problems += [f"CONSTRUCTOR_ARGUMENTS lists {name!r} for {cls.__name__}, whose __init__ does not take it"
                 for name in listed if name not in parameters]
    for name in set(parameters) & set(listed):
        parameter, argument = parameters[name], listed[name]
        if parameter.default is not argument.default and parameter.default != argument.default:
            problems.append(f"{cls.__name__}: default of {name!r} is {parameter.default!r}, "
                            f"listed {argument.default!r}")
        keyword_only = parameter.kind is inspect.Parameter.KEYWORD_ONLY
        if keyword_only != (argument.role in KEYWORD_ONLY_ROLES):
            problems.append(f"{cls.__name__}: {name!r} is {parameter.kind.description}, role {argument.role!r}")
    return problems


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_signature_matches_the_list(cls):
    assert signature_mismatches(cls) == []


def test_base_signature_is_the_lstm_one():
    # the base takes the LSTM's arguments, in the LSTM's order, plus the RNN's keyword-only ``leak`` last
    base = list(inspect.signature(SpikingRNNBase).parameters.values())
    assert inspect.Signature(base[:-1], return_annotation=inspect.signature(SpikingRNNBase).return_annotation) == \
        inspect.signature(SpikingLSTM)
    leak = base[-1]
    assert (leak.name, leak.kind) == ("leak", inspect.Parameter.KEYWORD_ONLY)
    assert leak.default == next(a.default for a in CONSTRUCTOR_ARGUMENTS if a.name == "leak")


def test_every_listed_argument_is_taken_by_some_class():
    taken = {a.name for cls in CLASSES for a in constructor_parameters(cls)}
    assert taken == {a.name for a in CONSTRUCTOR_ARGUMENTS}
    assert len({a.name for a in CONSTRUCTOR_ARGUMENTS}) == len(CONSTRUCTOR_ARGUMENTS)
    assert {a.role for a in CONSTRUCTOR_ARGUMENTS} <= set(ROLES)


def test_a_keyword_added_to_a_class_only_is_caught():
    class WithNewKeyword(SpikingLSTM):
        def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                     bidirectional=False, proj_size=0, device=None, dtype=None, *, surrogate_function1=None,
                     surrogate_function2=None, invariant_dropout_mask=False, gates="sigmoid", spike_threshold=0.25,
                     forget_bias=1.0, chrono_steps=None, cell_state="accumulate", cell_threshold=0.1,
                     rate_penalty=None, free_rate=0.25, backend="auto", low_memory=False, leak=0.5):
            super().__init__(input_size, hidden_size)

    class WithChangedDefault(SpikingGRU):
        def __init__(self, input_size, hidden_size, num_layers=2, bias=True, batch_first=False, dropout=0.0,
                     bidirectional=False, device=None, dtype=None, *, surrogate_function1=None,
                     surrogate_function2=None, invariant_dropout_mask=False, gates="sigmoid",
                     spike_threshold=0.25, forget_bias=1.0, chrono_steps=None, rate_penalty=None, free_rate=0.25,
                     backend="auto", low_memory=False):
            super().__init__(input_size, hidden_size)

    assert [p for p in signature_mismatches(WithNewKeyword) if "'leak'" in p] == \
        signature_mismatches(WithNewKeyword) != []
    assert [p for p in signature_mismatches(WithChangedDefault) if "'num_layers'" in p] == \
        signature_mismatches(WithChangedDefault) != []


NON_DEFAULT = {"proj_size": 2, "num_layers": 2, "bias": False, "batch_first": True, "dropout": 0.25,
               "bidirectional": True, "invariant_dropout_mask": True, "low_memory": True, "gates": "heaviside",
               "leak": 0.5, "spike_threshold": 0.4, "forget_bias": "chrono", "chrono_steps": 7, "cell_state": "spike",
               "cell_threshold": 0.3, "rate_penalty": 0.0, "free_rate": 0.5,
               "backend": "reference", "surrogate_function1": "atan", "surrogate_function2": "sigmoid"}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_constructor_arguments_read_back(cls):
    names = {a.name for a in constructor_parameters(cls)}
    assert set(NON_DEFAULT) | {"input_size", "hidden_size", "nonlinearity", "device", "dtype"} >= names
    given = {k: v for k, v in NON_DEFAULT.items() if k in names}
    if given.get("gates") == "heaviside":  # spike_threshold belongs to the sigmoid form (read back below)
        del given["spike_threshold"]
    module = cls(3, 4, **given)
    arguments = constructor_arguments(module)
    assert set(arguments) == {a.name for a in constructor_parameters(cls) if a.role != "factory"}
    for name, value in given.items():
        if name in arguments and not name.startswith("surrogate"):
            assert arguments[name] == value, name
    rebuilt = cls(**arguments)
    assert constructor_arguments(rebuilt) == arguments
    assert repr(rebuilt) == repr(module)
    # a checkpoint records the configuration, the spiking settings and the surrogates, nothing else
    recorded = model_config(module)["config"]
    assert set(recorded) == {a.name for a in constructor_parameters(cls, ("config", "spiking", "surrogate"))}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_from_torch_takes_the_keyword_only_arguments(cls):
    keyword_only = sorted(name for name, p in inspect.signature(cls).parameters.items()
                          if p.kind is inspect.Parameter.KEYWORD_ONLY)
    torch_cls = {SpikingLSTM: torch.nn.LSTM, SpikingGRU: torch.nn.GRU, SpikingRNN: torch.nn.RNN,
                 SpikingLSTMCell: torch.nn.LSTMCell, SpikingGRUCell: torch.nn.GRUCell,
                 SpikingRNNCell: torch.nn.RNNCell}[cls]
    with pytest.raises(TypeError, match=r"its spiking arguments are (.*)") as error:
        from_torch(torch_cls(3, 4), not_an_argument=1)
    assert str(error.value).endswith(f"its spiking arguments are {keyword_only}")
    # the configuration round trip copies every argument of role "config"
    source = torch_cls(3, 4)
    back = to_torch(from_torch(source))
    config = constructor_arguments(source, ("config",), cls)
    assert constructor_arguments(back, ("config",), cls) == config


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_spike_threshold_reads_back_and_is_refused_where_unused(cls):
    names = {a.name for a in constructor_parameters(cls)}
    if "spike_threshold" not in names:
        pytest.skip(f"{cls.__name__} has no spike_threshold")
    module = cls(3, 4, spike_threshold=0.4)  # the default forms: sigmoid gates, a leaky RNN
    assert constructor_arguments(module)["spike_threshold"] == 0.4
    assert constructor_arguments(cls(**constructor_arguments(module))) == constructor_arguments(module)
    # the seed's forms spike at 0: a threshold there would be silently ignored, so it is an error
    unused = {"gates": "heaviside"} if "gates" in names else {"leak": None}
    with pytest.raises(ValueError, match=r"spike_threshold applies to .* got spike_threshold=0.4"):
        cls(3, 4, spike_threshold=0.4, **unused)
    assert cls(3, 4, spike_threshold=0.25, **unused).spike_threshold == 0.25  # the default passes through


def test_extra_repr_lists_non_defaults_in_order():
    lstm = SpikingLSTM(3, 4, 2, bias=False, batch_first=True, dropout=0.5, bidirectional=True, proj_size=2,
                       invariant_dropout_mask=True, gates="heaviside", forget_bias=None,
                       cell_state="spike", cell_threshold=0.2, backend="reference", low_memory=True)
    assert lstm.extra_repr() == ("3, 4, proj_size=2, num_layers=2, bias=False, batch_first=True, dropout=0.5, "
                                 "bidirectional=True, invariant_dropout_mask=True, low_memory=True, "
                                 "gates='heaviside', forget_bias=None, "
                                 "cell_state='spike', backend='reference'")
    # the defaults (gates="sigmoid", spike_threshold=0.25, forget_bias=1.0, cell_state="accumulate") are not shown
    assert SpikingLSTM(3, 4, gates="sigmoid", spike_threshold=0.25, forget_bias=1.0,
                       cell_state="accumulate").extra_repr() == "3, 4"
    assert SpikingGRU(3, 4).extra_repr() == "3, 4"
    assert SpikingGRU(3, 4, gates="heaviside", forget_bias=None).extra_repr() == \
        "3, 4, gates='heaviside', forget_bias=None"
    assert SpikingGRU(3, 4, spike_threshold=0.1, forget_bias=2.0).extra_repr() == \
        "3, 4, spike_threshold=0.1, forget_bias=2.0"
    # the RNN's defaults (leak=0.9, spike_threshold=0.25) are not shown; leak=None (the seed's cell) is
    assert SpikingRNN(3, 4, leak=0.9, spike_threshold=0.25).extra_repr() == "3, 4"
    assert SpikingRNN(3, 4, leak=None).extra_repr() == "3, 4, leak=None"
    assert SpikingRNN(3, 4, leak=0.5, spike_threshold=0.1).extra_repr() == "3, 4, leak=0.5, spike_threshold=0.1"


def test_cell_extra_repr_lists_non_defaults_too():
    assert SpikingLSTMCell(3, 4).extra_repr() == "3, 4"
    assert SpikingLSTMCell(3, 4, bias=False, gates="heaviside", forget_bias=None, cell_state="clamp").extra_repr() == \
        "3, 4, bias=False, gates='heaviside', forget_bias=None, cell_state='clamp'"
    assert SpikingGRUCell(3, 4, spike_threshold=0.5).extra_repr() == "3, 4, spike_threshold=0.5"
    assert SpikingRNNCell(3, 4, leak=None).extra_repr() == "3, 4, leak=None"
    assert SpikingRNNCell(3, 4, leak=0.5, spike_threshold=0.1).extra_repr() == "3, 4, leak=0.5, spike_threshold=0.1"


def test_default_surrogate_width_follows_the_neuron_form():
    """The LSTM's sigmoid form defaults to Erf(alpha=1); every other form keeps SpikingJelly's Erf(alpha=2)."""
    from spikingrnn.surrogate import Erf
    for module in (SpikingLSTM(3, 4), SpikingLSTMCell(3, 4)):
        assert type(module.surrogate_function1) is Erf and module.surrogate_function1.alpha == 1.0
    for module in (SpikingLSTM(3, 4, gates="heaviside", cell_state="clamp", forget_bias=None),
                   SpikingLSTMCell(3, 4, gates="heaviside", cell_state="clamp", forget_bias=None),
                   SpikingGRU(3, 4), SpikingGRUCell(3, 4), SpikingRNN(3, 4), SpikingRNNCell(3, 4)):
        assert type(module.surrogate_function1) is Erf and module.surrogate_function1.alpha == 2.0
    assert SpikingLSTM(3, 4, surrogate_function1=Erf(alpha=2.0)).surrogate_function1.alpha == 2.0
    first, second = SpikingLSTM(3, 4), SpikingLSTM(3, 4)
    assert first.surrogate_function1 is not second.surrogate_function1  # a fresh one per module
