"""The one precedence of config values: preset < the method's own hyperparameters < config file < flags < ``--set``.

``drnas search``, each grid point of ``drnas sweep`` and ``drnas train`` resolve their config here from plain
values (no command-line parsing), so a run resolves the same whichever way it was asked for.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from drnas.config.presets import SEARCH_PRESETS
from drnas.config.search import SearchConfig, apply_overrides, load_config_file, set_total_epochs
from drnas.config.train import PROTOCOLS, TrainConfig
from drnas.errors import ConfigError

#: a method's own hyperparameters applied over a config (``drnas.method.strategies.with_method``); handed in,
#: as methods are a floor above the config
ApplyMethod = Callable[[SearchConfig, str], SearchConfig]


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """``["lr=0.05", "seed=1"]`` (``--set FIELD=VALUE``, repeatable) -> ``{"lr": "0.05", "seed": "1"}``; a later
    value of a field wins. The values stay text: :func:`~drnas.config.search.apply_overrides` coerces them."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like FIELD=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def resolve_search_config(*, apply_method: ApplyMethod, preset: str | None = None, method: str | None = None,
                          config_file: str | None = None, flags: Mapping[str, Any] | None = None,
                          sets: Mapping[str, Any] | None = None, epochs: int | None = None) -> SearchConfig:
    """A search config, each level over the one before: the preset (default ``nb201``) < the method's own
    hyperparameters < the fields of ``config_file`` < ``flags`` (field -> value) < the total ``epochs`` (stages
    rescaled) < ``sets`` (field -> value, ``--set``). The method whose hyperparameters apply is ``method``, else
    the one ``sets`` or the file names, else the preset's (a ``method`` field of the file or ``sets`` is still
    set at its own level). A ``space`` flag must agree with a named preset."""
    config = SEARCH_PRESETS.get(preset or "nb201")
    from_file = load_config_file(config_file) if config_file else {}
    sets = dict(sets or {})
    config = apply_method(config, str(method or sets.get("method") or from_file.get("method") or config.method))
    config = apply_overrides(config, from_file)
    flags = dict(flags or {})
    if "space" in flags and preset and flags["space"] != config.space:
        raise ConfigError(f"--space {flags['space']} contradicts preset {preset} (space {config.space})")
    config = apply_overrides(config, flags)
    if epochs is not None:
        config = set_total_epochs(config, epochs)
    return apply_overrides(config, sets).validate()


def resolve_train_config(*, protocol: str, config_file: str | None = None, flags: Mapping[str, Any] | None = None,
                         sets: Mapping[str, Any] | None = None) -> TrainConfig:
    """A training config, each level over the one before: the training ``protocol`` (its name) < the fields of
    ``config_file`` < ``flags`` (field -> value) < ``sets`` (field -> value, ``--set``)."""
    config = PROTOCOLS.get(protocol)
    if config_file:
        config = apply_overrides(config, load_config_file(config_file))
    config = apply_overrides(config, dict(flags or {}))
    return apply_overrides(config, dict(sets or {})).validate()


__all__ = ["ApplyMethod", "parse_sets", "resolve_search_config", "resolve_train_config"]
