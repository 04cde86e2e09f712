"""Search methods ("strategies"), one file each, registered by name: ``get_method("gdas")``.

See :mod:`drnas.method.strategies.base` for the contract. ``with_method(config, name)`` applies a method's own
hyperparameters (its paper's) to a config, as ``drnas search --method NAME`` does.
"""
from __future__ import annotations

import dataclasses

from drnas.config.search import SearchConfig, apply_overrides
from drnas.method.strategies.base import METHODS, Engine, Mixing, Strategy, get_method, method_names, register_method
from drnas.method.strategies import _all  # noqa: F401,E402  (registers the built-in methods)


def with_method(config: SearchConfig, name: str) -> SearchConfig:
    """``config`` switched to method ``name`` with that method's defaults applied over it."""
    method = get_method(name)
    return apply_overrides(dataclasses.replace(config, method=name), method.defaults(config))


__all__ = ["METHODS", "Engine", "Mixing", "Strategy", "get_method", "method_names", "register_method", "with_method"]
