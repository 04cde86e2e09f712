"""Settings of their own for the things drnas looks up by name (a search method's hyperparameters first): a
dataclass whose fields are declared with :func:`setting`, each with a default, a one-line doc and a range.

A method declares them as its ``Settings`` class (:class:`drnas.method.strategies.Strategy`)::

    @dataclass
    class TemperatureSettings:
        temperature: float = setting(1.0, "divides alpha before the softmax", gt=0)

Values arrive as text (``--set method.temperature=0.5``) or as numbers (a config file's ``[method]`` table, a
run's ``config.json``): :func:`make_settings` coerces each by the rules of the config fields and checks its range,
and :func:`describe_settings` gives the rows ``drnas methods NAME`` prints.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from drnas.config.search import annotation_text, coerce_field
from drnas.errors import ConfigError, shown


def _number(bound: float) -> str:
    """A bound as written: whole numbers in full (1000000), others shortest (0.001)."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


@dataclass(frozen=True)
class Bounds:
    """The range of one setting: strict (``gt``, ``lt``) or inclusive (``ge``, ``le``) bounds, or ``choices``."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None

    def text(self) -> str:
        """The range in words, e.g. ``> 0``, ``in [0, 1)``, ``one of l2, kl`` ("" when any value goes)."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        low = f"> {_number(self.gt)}" if self.gt is not None else f">= {_number(self.ge)}" if self.ge is not None else ""
        high = f"< {_number(self.lt)}" if self.lt is not None else f"<= {_number(self.le)}" if self.le is not None else ""
        if low and high:
            return (f"in {'(' if self.gt is not None else '['}{low.split()[1]}, {high.split()[1]}"
                    f"{')' if self.lt is not None else ']'}")
        return low or high

    def holds(self, value: Any) -> bool:
        if value is None:  # an optional setting left unset
            return True
        if self.choices is not None:
            return value in self.choices
        checks = ((self.gt, lambda b: value > b), (self.ge, lambda b: value >= b),
                  (self.lt, lambda b: value < b), (self.le, lambda b: value <= b))
        return all(check(bound) for bound, check in checks if bound is not None)


def setting(default: Any, doc: str, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A field of a settings dataclass: its ``default``, a one-line ``doc`` (``drnas methods NAME`` shows it) and
    its range: bounds ``gt`` / ``ge`` / ``lt`` / ``le`` on a number, or the allowed ``choices``."""
    bounds = Bounds(gt, ge, lt, le, tuple(choices) if choices is not None else None)
    if not bounds.holds(default):
        raise ValueError(f"setting default {default!r} is outside its own range ({bounds.text()})")
    metadata = {"doc": doc, "bounds": bounds}
    if isinstance(default, (list, dict, set)):  # a mutable default: a fresh copy for every instance
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"settings must be declared as a dataclass, got {cls!r}")
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def make_settings(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """An instance of the settings dataclass ``cls`` from raw ``values`` (name -> text or number; the rest keep
    their defaults), each coerced to its declared type and checked against its range. ``where`` names the owner
    in messages ("method gdas"). An unknown name or a bad value is one :class:`ConfigError` line."""
    fields = _fields(cls)
    changes = {}
    for name, value in values.items():
        key = str(name).replace("-", "_")
        if key not in fields:
            known = ", ".join(fields) if fields else "none"
            raise ConfigError(f"{where} has no setting {shown(name)}; its settings: {known}")
        try:
            changes[key] = coerce_field(cls, key, value)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
    try:
        instance = cls(**changes)
    except (TypeError, ValueError) as err:  # a settings class's own __post_init__ check
        raise ConfigError(f"{where}: {err}") from None
    for name, field in fields.items():
        bounds = field.metadata.get("bounds")
        value = getattr(instance, name)
        if bounds is not None and not bounds.holds(value):
            raise ConfigError(f"{where}: {name} must be {bounds.text()}, got {shown(value)}")
    return instance


def settings_json(settings: Any) -> dict[str, Any]:
    """Every field of a settings instance as JSON keeps it (tuples as lists), for ``config.json``."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}


def describe_settings(cls: type) -> list[tuple[str, str, Any, str, str]]:
    """One row per setting of the dataclass ``cls``: (name, type, default, range text, doc)."""
    rows = []
    for name, field in _fields(cls).items():
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        bounds = field.metadata.get("bounds")
        rows.append((name, annotation_text(field.type), default, bounds.text() if bounds else "",
                     field.metadata.get("doc", "")))
    return rows


__all__ = ["Bounds", "describe_settings", "make_settings", "setting", "settings_json"]
