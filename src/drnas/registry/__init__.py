"""One generic registry for everything drnas looks up by name (search methods, spaces, presets, ops, datasets,
benchmarks, training protocols, named architectures), and the plugins that add to them (:mod:`drnas.registry.plugins`).

Modelled on timm's ``register_model`` / ``list_models`` and torchvision's ``get_model``: entries are added by a
decorator (or a direct call), a second entry under a taken name is refused, and an unknown name is a one-line
error that lists the known ones.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Callable, ClassVar, Generic, Iterator, TypeVar

from drnas.errors import DrnasError

T = TypeVar("T")


class RegistryError(DrnasError, ValueError):
    """An unknown or duplicate name; the message lists the known names. ``kind`` and ``name`` say which entry
    (set for a duplicate, so that a plugin loader can say who holds the name)."""

    def __init__(self, message: str, kind: str | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.name = kind, name


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` names it in messages: "method", "search space", ...), each with a
    one-line description, kept in registration order. An unknown name raises ``error`` (a
    :class:`RegistryError` unless the domain has its own error type, e.g. ``ConfigError`` for presets)."""

    #: every registry made, in creation order: what a plugin registered is told by comparing their names
    instances: ClassVar[list["Registry[Any]"]] = []

    def __init__(self, kind: str, error: Callable[[str], Exception] = RegistryError) -> None:
        self.kind, self.error = kind, error
        self._entries: dict[str, T] = {}
        self._docs: dict[str, str] = {}
        Registry.instances.append(self)

    def register(self, name: str, entry: T | None = None, *, doc: str = "") -> Callable[[T], T] | T:
        """``@registry.register("name", doc=...)`` above a class or function, or ``registry.register(name, obj)``."""
        def add(value: T) -> T:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is already registered", self.kind, name)
            self._entries[name] = value
            self._docs[name] = doc or (getattr(value, "__doc__", None) or "").strip().split("\n")[0]
            return value

        return add(entry) if entry is not None else add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            near = self.near(name)
            hint = f" (did you mean {' or '.join(near)}?)" if near else ""
            raise self.error(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}{hint}") from None

    def near(self, name: str) -> list[str]:
        """The known names a mistyped ``name`` may mean: close spellings (``sdarts_adv``, ``drnsa``) and the names
        it is one word of (``pt`` -> ``darts-pt``)."""
        text, lowered = str(name).strip().lower(), {known.lower(): known for known in self._entries}
        close = [lowered[k] for k in difflib.get_close_matches(text, list(lowered), n=3, cutoff=0.75)]
        word = [known for known in self._entries if text in re.split(r"[-_.]", known.lower())]
        return list(dict.fromkeys([*close, *word]))[:3]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def docs(self) -> dict[str, str]:
        """Name -> one-line description."""
        return dict(self._docs)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
