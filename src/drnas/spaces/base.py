"""What a search space is, and the registry of spaces.

A space is data plus a little code: its candidate ops, how many edges carry architecture parameters, how to
build the supernet for a dataset, how to turn expected mixing weights into a discrete architecture, and how
to parse an architecture from text or JSON. The search loop only talks to this interface.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch

from ..errors import DrnasError
from ..supernet import Supernet


class ArchitectureError(DrnasError, ValueError):
    """A malformed architecture string or file; the message says what is wrong and what is expected."""


class Architecture(Protocol):
    """A discrete architecture of some space: printable, and serialisable to plain JSON."""

    space: str

    def to_json(self) -> dict[str, Any]: ...

    def __str__(self) -> str: ...


@dataclass(frozen=True)
class SupernetSpec:
    """Size of a supernet; fields a space does not use are ignored."""

    channels: int = 16
    cells_per_stage: int = 5
    partial_k: int = 1
    in_channels: int = 3
    num_classes: int = 10


class SearchSpace(Protocol):
    name: str
    ops: tuple[str, ...]
    num_edges: int
    #: op names that the derivation never picks (DARTS never picks ``none``); empty for NB201.
    excluded_from_derivation: tuple[str, ...]

    def build_supernet(self, spec: SupernetSpec) -> Supernet: ...

    def derive(self, weights: torch.Tensor) -> Architecture: ...

    def parse(self, text: str) -> Architecture: ...

    def from_json(self, data: dict[str, Any]) -> Architecture: ...

    def edge_names(self) -> Sequence[str]: ...


_SPACES: dict[str, Callable[[], SearchSpace]] = {}


def register_space(name: str) -> Callable[[Callable[[], SearchSpace]], Callable[[], SearchSpace]]:
    """Decorator registering a space factory under a unique name."""

    def add(factory: Callable[[], SearchSpace]) -> Callable[[], SearchSpace]:
        if name in _SPACES:
            raise ValueError(f"search space {name!r} is already registered")
        _SPACES[name] = factory
        return factory

    return add


def get_space(name: str) -> SearchSpace:
    """The registered space called ``name``."""
    try:
        return _SPACES[name]()
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; known spaces: {', '.join(sorted(_SPACES))}") from None


def space_names() -> tuple[str, ...]:
    return tuple(sorted(_SPACES))
