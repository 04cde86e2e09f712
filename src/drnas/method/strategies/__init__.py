"""Search methods ("strategies"), one file each, registered by name: ``get_method("gdas")``.

See :mod:`drnas.method.strategies.base` for the contract. ``with_method(config, name)`` switches a config to a
method: its own settings (``Strategy.Settings``) and its paper's hyperparameters, as ``drnas search --method
NAME`` does; :func:`check_method` refuses what the method cannot run, before anything starts.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

from drnas.config.options import settings_json
from drnas.config.search import ConfigError, SearchConfig, apply_overrides
from drnas.method.parts import RECIPES, with_parts
from drnas.method.strategies.base import (METHODS, Engine, Mixing, Strategy, get_method, method_names, register_method,
                                          stages_text)
from drnas.method.strategies import _all  # noqa: F401,E402  (registers the built-in methods)

if TYPE_CHECKING:  # annotations only: the spaces are a floor above the methods
    from drnas.spaces.base import SearchSpace


def base_method(name: str) -> str:
    """The method a name runs: itself, or a recipe's method (``sdarts-adv`` -> ``darts``)."""
    return RECIPES.get(name).method if name in RECIPES and name not in METHODS else name


def with_method(config: SearchConfig, name: str, settings: Mapping[str, Any] | None = None) -> SearchConfig:
    """``config`` switched to method ``name``: its settings built from ``settings`` (name -> value, over those the
    config already holds for the same method; the rest at the method's defaults) and recorded whole in
    ``method_settings``, then the method's :meth:`~drnas.method.strategies.base.Strategy.defaults` applied over
    the config. A method that is not ``prunable`` runs the config's stages without pruning (their ``ops_kept``
    left out), unless its defaults set stages of their own. A recipe's name (``sdarts-adv``) switches to its
    method and adds its parts (and the config fields it needs)."""
    if name in RECIPES and name not in METHODS:
        recipe = RECIPES.get(name)
        config = apply_overrides(with_method(config, recipe.method, settings), dict(recipe.fields))
        return with_parts(config, recipe.parts)
    method = get_method(name)
    kept = config.method_settings if config.method == name else {}
    built = method.settings_from({**kept, **(settings or {})})
    config = dataclasses.replace(config, method=name, method_settings=settings_json(built))
    changes = dict(method.defaults(config))
    if not method.prunable and "stages" not in changes and any(s.ops_kept is not None for s in config.stages):
        changes["stages"] = [dataclasses.replace(s, ops_kept=None) for s in config.stages]
    return apply_overrides(config, changes)


def check_method(config: SearchConfig, space: SearchSpace) -> None:
    """Refuse, with one line naming a fix the user can type, a config its method cannot run in ``space`` (the
    space built from it, ``get_space(config.space, config.ops)``): the method's settings, its
    :meth:`~drnas.method.strategies.base.Strategy.check_config`, and stages keeping more ops than the space has.
    ``drnas search`` and ``drnas sweep`` call it when the command is parsed, before anything is written."""
    method = get_method(config.method)
    method.settings_of(config)
    method.check_config(config, space)
    allowed = getattr(space, "allowed_ops", None)  # the ops each edge searches, where that is fewer than all
    ops = int(allowed().sum(-1).max()) if allowed is not None else len(space.ops)
    too_many = [s.ops_kept for s in config.stages if s.ops_kept is not None and s.ops_kept > ops]
    if too_many:
        fixed = stages_text(config.stages, lambda s: None if s.ops_kept is None else min(s.ops_kept, ops))
        raise ConfigError(f"a stage keeps {too_many[0]} ops per edge but space {config.space} has only {ops} per "
                          f"edge: give "
                          f"stages with ops_kept <= {ops}, --set 'stages={fixed}'")


__all__ = ["METHODS", "Engine", "Mixing", "Strategy", "base_method", "check_method", "get_method", "method_names",
           "register_method", "with_method"]
