"""Finding the flat state dict inside what training scripts save (wrappers, ``module.`` prefixes)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from torch import Tensor, nn

__all__ = ["unwrap_state_dict", "preview_keys"]

_WRAPPER_KEYS = ("state_dict", "model")
_DATA_PARALLEL = "module."


def unwrap_state_dict(obj: object, prefix: str | None = None) -> "OrderedDict[str, object]":
    """The flat state dict inside ``obj``.

    Descends into ``obj["state_dict"]`` / ``obj["model"]`` when ``obj`` is such a wrapper (a
    mapping whose own keys are not parameter names), strips ``module.`` prefixes left by
    DataParallel, then keeps the keys under ``prefix`` (stripped), when given.
    """
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for _ in range(4):  # {"model": {"state_dict": ...}} at most a few levels deep
        if not isinstance(obj, Mapping):
            raise TypeError(f"expected a state dict (a mapping of names to tensors) or a module, "
                            f"got {type(obj).__name__}")
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None or any(isinstance(v, Tensor) for v in obj.values()):
            break
        obj = inner
    assert isinstance(obj, Mapping)  # each pass above checked it (for the type checker, which cannot count passes)
    flat: OrderedDict[str, object] = OrderedDict()
    origin: dict[str, str] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"state dict keys must be strings, got {key!r} ({type(key).__name__})")
        name = key
        while name.startswith(_DATA_PARALLEL):
            name = name[len(_DATA_PARALLEL):]
        if prefix:
            if not name.startswith(prefix):
                continue
            name = name[len(prefix):]
        if name in flat:
            raise ValueError(f"keys {origin[name]!r} and {key!r} both name {name!r} once the "
                             f"'module.' prefix{' and ' + repr(prefix) if prefix else ''} is removed")
        flat[name] = value
        origin[name] = key
    if prefix and not flat:
        raise ValueError(f"no key of the state dict starts with prefix {prefix!r} "
                         f"(keys: {preview_keys(list(obj))})")
    return flat


def preview_keys(keys: list, count: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:count])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > count else "")
