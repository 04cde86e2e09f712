"""The one precedence of config values: preset < the method's own hyperparameters < config file < flags < ``--set``.

``drnas search``, each grid point of ``drnas sweep`` and ``drnas train`` resolve their config here from plain
values (no command-line parsing), so a run resolves the same whichever way it was asked for.

A search settles its method (and its space) before anything else, gathers the method's own settings from every
level (a file's ``[method]`` table or ``method_settings``, ``--set method.NAME=VALUE``), builds them, and only then
applies the method's defaults over the preset: the method is known when its defaults apply, and no later level
switches it behind their back.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Sequence

from drnas.config.presets import SEARCH_PRESETS
from drnas.config.search import (
    MOVED_TO_METHOD,
    SearchConfig,
    apply_overrides,
    load_config_file,
    moved_settings,
    set_total_epochs,
)
from drnas.config.train import PROTOCOLS, TrainConfig
from drnas.errors import ConfigError, shown

#: the method applied over a config: ``(config, name, settings) -> config`` switched to method ``name``, its
#: settings built from the raw ``settings`` (name -> value) and its defaults applied
#: (``drnas.method.strategies.with_method``); handed in, as methods are a floor above the config
ApplyMethod = Callable[[SearchConfig, str, Mapping[str, Any]], SearchConfig]
#: the parts added over a config: ``(config, names, settings) -> config`` with the parts ``names`` added and their
#: raw settings (part -> field -> value) built (``drnas.method.parts.with_parts``); handed in likewise
ApplyParts = Callable[[SearchConfig, Sequence[str], Mapping[str, Mapping[str, Any]]], SearchConfig]
#: the prefix of a method setting's name in ``--set`` and ``--grid``: ``method.tau_min=0.5``
SETTING_PREFIX = "method."
#: the prefix of a part's setting in ``--set``: ``part.sdarts-adv.epsilon=0.05``
PART_PREFIX = "part."
_MOVED = frozenset(MOVED_TO_METHOD)


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


def split_method(values: Mapping[str, Any], where: str) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """One level's values (a config file's, ``--set``'s) as (config fields, the method's name or None, the method's
    raw settings). The method and its settings come as ``method = "NAME"``; a ``[method]`` table / JSON object
    (its ``name`` the method, its other keys settings: in TOML a ``[method]`` table and a ``method = ...`` key
    cannot both be written); ``method_settings`` (what config.json holds); ``method.NAME`` keys (``--set``); and the
    fields that moved into the methods' settings (``tau_max``, ``candidates``...: :func:`moved_settings`), under
    the settings given explicitly at the same level."""
    fields, name, settings = {}, None, {}
    for key, value in values.items():
        key = str(key).strip()
        if key == "method" and isinstance(value, Mapping):
            table = dict(value)
            name = table.pop("name", None)
            settings.update(table)
        elif key == "method":
            name = value
        elif key == "method_settings":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: method_settings must be an object of setting: value pairs, got "
                                  f"{shown(value)}")
            settings.update(value)
        elif key.startswith(SETTING_PREFIX):
            settings[key[len(SETTING_PREFIX):].strip()] = value
        else:
            fields[key] = value
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"{where}: the method must be a name, e.g. method = \"gdas\", got {shown(name)}")
    moved = moved_settings(fields)
    fields = {k: v for k, v in fields.items() if k.replace("-", "_") not in _MOVED}
    return fields, name.strip() if name else None, {**moved, **settings}


def split_parts(fields: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str], dict[str, dict[str, Any]]]:
    """One level's config fields as (the other fields, the part names it adds, their raw settings): ``parts`` (a
    list or a comma-separated text), ``part_settings`` (what config.json holds), a ``[part.NAME]`` table of a file
    (``part = {NAME: {...}}``) and ``part.NAME.FIELD`` keys (``--set``)."""
    rest: dict[str, Any] = {}
    names: list[str] = []
    settings: dict[str, dict[str, Any]] = {}

    def add_settings(table: Any, key: str) -> None:
        if not isinstance(table, Mapping) or not all(isinstance(v, Mapping) for v in table.values()):
            raise ConfigError(f"{where}: {key} must map each part to its settings, e.g. {{\"sdarts-adv\": "
                              f"{{\"epsilon\": 0.03}}}}, got {shown(table)}")
        for name, values in table.items():
            settings.setdefault(str(name), {}).update(values)

    for key, value in fields.items():
        if key == "parts":
            listed = value.split(",") if isinstance(value, str) else value
            if not isinstance(listed, (list, tuple)) or not all(isinstance(v, str) for v in listed):
                raise ConfigError(f"{where}: parts must be a list of part names, got {shown(value)}")
            names.extend(v.strip() for v in listed if v.strip())
        elif key in ("part_settings", "part"):
            add_settings(value, key)
        elif key.startswith(PART_PREFIX):
            name, dot, field_name = key[len(PART_PREFIX):].rpartition(".")
            if not dot or not name or not field_name:
                raise ConfigError(f"{where}: {shown(key)} must look like part.NAME.FIELD (e.g. part.sdarts-adv.epsilon)")
            settings.setdefault(name.strip(), {})[field_name.strip()] = value
        else:
            rest[key] = value
    return rest, names, settings


def resolve_search_config(*, apply_method: ApplyMethod, preset: str | None = None, method: str | None = None,
                          config_file: str | None = None, flags: Mapping[str, Any] | None = None,
                          sets: Mapping[str, Any] | None = None, epochs: int | None = None,
                          apply_parts: ApplyParts | None = None, parts: Sequence[str] = ()) -> SearchConfig:
    """A search config, each level over the one before: the preset (default ``nb201``) < the method's own
    hyperparameters < the fields of ``config_file`` < ``flags`` (field -> value) < the total ``epochs`` (stages
    rescaled) < ``sets`` (field -> value, ``--set``; ``method.NAME`` keys are the method's settings).

    The method is settled first: ``sets``' > ``method`` (the flag) > the file's > the preset's; its settings are
    gathered from the preset (if it is the preset's method), the file and ``sets``, in that order, and built with
    it by ``apply_method``, which then applies the method's defaults. A space other than the preset's (from any
    level) also leaves out the preset's ``ops``, which name ops of the preset's space.

    Parts add up over the levels rather than replace each other: those the method brings (a recipe's), the file's
    ``parts``, ``parts`` (``--with``) and ``sets``' ``part.NAME.FIELD`` settings, applied last by ``apply_parts``."""
    config = SEARCH_PRESETS.get(preset or "nb201")
    file_fields, file_method, file_settings = (split_method(load_config_file(config_file), f"config file "
                                                                                           f"{config_file}")
                                               if config_file else ({}, None, {}))
    set_fields, set_method, set_settings = split_method(dict(sets or {}), "--set")
    file_fields, file_parts, file_part_settings = split_parts(file_fields, f"config file {config_file}")
    set_fields, set_parts, set_part_settings = split_parts(set_fields, "--set")
    flags = dict(flags or {})
    names = [*file_parts, *parts, *set_parts]
    part_settings: dict[str, dict[str, Any]] = {}
    for level in (file_part_settings, set_part_settings):
        for name, values in level.items():
            part_settings.setdefault(name, {}).update(values)
    space = set_fields.get("space") or flags.get("space") or file_fields.get("space")
    if space and str(space) != config.space:
        config = dataclasses.replace(config, space=str(space), ops=None)
    name = set_method or method or file_method or config.method
    config = apply_method(config, str(name), {**file_settings, **set_settings})
    config = apply_overrides(config, file_fields)
    config = apply_overrides(config, flags)
    if epochs is not None:
        config = set_total_epochs(config, epochs)
    config = apply_overrides(config, set_fields)
    if apply_parts is not None:
        config = apply_parts(config, names, part_settings)
    elif names or part_settings:
        raise ConfigError("parts were given where a config is resolved without them")
    return config.validate()


def resolve_train_config(*, protocol: str, config_file: str | None = None, flags: Mapping[str, Any] | None = None,
                         sets: Mapping[str, Any] | None = None) -> TrainConfig:
    """A training config, each level over the one before: the training ``protocol`` (its name) < the fields of
    ``config_file`` < ``flags`` (field -> value) < ``sets`` (field -> value, ``--set``)."""
    config = PROTOCOLS.get(protocol)
    if config_file:
        config = apply_overrides(config, load_config_file(config_file))
    config = apply_overrides(config, dict(flags or {}))
    return apply_overrides(config, dict(sets or {})).validate()


__all__ = ["PART_PREFIX", "SETTING_PREFIX", "ApplyMethod", "ApplyParts", "parse_sets", "split_parts", "resolve_search_config", "resolve_train_config",
           "split_method"]
