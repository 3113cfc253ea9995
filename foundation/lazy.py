"""Exporting a package's names lazily (PEP 562), so that importing the package loads little.

Every command loads the configuration, which imports the settings module of several packages and
so the packages themselves; what they export (engines, clients, templates) loads on first use::

    __getattr__ = lazy_exports(__name__, {"run": "reconcile.engine", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package`: each name of `where` imported from its module on first
    use, then kept in the package's namespace; any other name an AttributeError."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        namespace[name] = value
        return value

    return __getattr__
