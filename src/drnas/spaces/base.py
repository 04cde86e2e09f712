"""What a search space is, and the registry of spaces.

A space is data plus a little code: its candidate ops, how many edges carry architecture parameters, how to
build the supernet for a dataset, how to turn expected mixing weights into a discrete architecture, and how
to parse an architecture from text or JSON. The search loop only talks to this interface.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch

from drnas.errors import DrnasError
from drnas.method.supernet import Supernet
from drnas.registry import Registry


class ArchitectureError(DrnasError, ValueError):
    """A malformed architecture string or file; the message says what is wrong and what is expected."""


class Architecture(Protocol):
    """A discrete architecture of some space: printable, and serialisable to plain JSON."""

    space: str

    def to_json(self) -> dict[str, Any]: ...

    def __str__(self) -> str: ...


@dataclass(frozen=True)
class CellNode:
    """A node of a cell picture: ``name`` is unique in its cell and shown; ``role`` is input, node or output."""

    name: str
    role: str = "node"


@dataclass(frozen=True)
class CellEdge:
    """An edge of a cell picture, from node ``source`` to node ``target``, labelled with its ``op`` ("" for a
    plain connection, like a DARTS cell's concatenation); ``zero`` marks an op that passes nothing (``none``)."""

    source: str
    target: str
    op: str = ""
    zero: bool = False


@dataclass(frozen=True)
class CellGraph:
    """One cell of an architecture as a labelled graph: what a diagram draws, so that drawing code never needs
    to know a space. ``name`` is a short key (``cell``, ``normal``, ``reduce``), ``title`` the caption."""

    name: str
    title: str
    nodes: tuple[CellNode, ...]
    edges: tuple[CellEdge, ...]

    def ops(self) -> list[str]:
        """The op labels of the cell's edges, in edge order."""
        return [edge.op for edge in self.edges if edge.op]


@dataclass(frozen=True)
class SupernetSpec:
    """Size of a search network; fields a space does not use are ignored.

    ``cells_per_stage``: NB201's N. ``cells``: the DARTS space's total number of cells. ``imagenet_stem``:
    the DARTS space's three stride-2 stem convolutions (224 -> 28) instead of the CIFAR stem.
    """

    channels: int = 16
    cells_per_stage: int = 5
    cells: int = 8
    partial_k: int = 1
    in_channels: int = 3
    num_classes: int = 10
    imagenet_stem: bool = False


@dataclass(frozen=True)
class NetworkSpec:
    """Size of an evaluation network built from a discrete architecture (for retraining)."""

    channels: int = 36
    cells: int = 20
    cells_per_stage: int = 5
    in_channels: int = 3
    num_classes: int = 10
    auxiliary: bool = False
    imagenet_stem: bool = False


class SearchSpace(Protocol):
    name: str
    ops: tuple[str, ...]
    num_edges: int
    #: op names that the derivation never picks (DARTS never picks ``none``); empty for NB201.
    excluded_from_derivation: tuple[str, ...]
    #: the results table that indexes this space's architectures (``--benchmark``), None if there is none
    benchmark: str | None
    #: an architecture is one op on every edge (NB201); False where it also picks edges (DARTS: two inputs per node)
    one_op_per_edge: bool
    #: how an architecture of this space starts as text (``parse`` reads it), and a key its JSON always has
    text_prefix: str
    json_key: str
    #: the space in a sentence ("a DARTS"), the config fields only its evaluation network uses (retraining refuses
    #: them for another space's network), and how its depth is set, for error messages
    label: str
    network_fields: tuple[str, ...]
    depth_setting: str
    #: compiled search cells were measured to pay on a CPU (``compile=auto``; docs/performance.md)
    compiled_cells_pay_on_cpu: bool
    #: the network-size field that sets its networks' depth (``cells``, ``cells_per_stage``), and how a summary
    #: line writes a depth (``depth_format.format(20)``: "20 cells", "N=5")
    depth_field: str
    depth_format: str

    def default_protocol(self, dataset: str) -> str:
        """The retraining protocol (``drnas train --protocol``) for this space's architectures on ``dataset``."""
        ...
    def config_text(self, arch: Any) -> str:
        """``arch`` as a training config's ``arch`` field holds it: text that ``drnas train --arch`` reads back,
        so that a run needs no other file."""
        ...
    def build_supernet(self, spec: SupernetSpec) -> Supernet: ...

    def build_network(self, arch: Any, spec: NetworkSpec) -> torch.nn.Module: ...

    def derive(self, weights: torch.Tensor) -> Architecture: ...

    def parse(self, text: str) -> Architecture: ...

    def from_json(self, data: dict[str, Any]) -> Architecture: ...

    def edge_names(self) -> Sequence[str]: ...

    def network_edges(self, network: torch.nn.Module) -> Iterator[tuple[int, torch.nn.Module]]:
        """Every op of an evaluation network's cells with the edge (row of the weights) it implements: what
        :mod:`drnas.analysis.budget` costs an (edge, op) choice by."""
        ...

    def graph(self, arch: Any) -> Sequence[CellGraph]:
        """The cells of ``arch`` as labelled graphs, in the order a picture shows them."""
        ...

    def random_weights(self, allowed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniformly drawn architecture as 0/1 weights ``[edges, ops]`` using only the ``allowed`` (bool
        ``[edges, ops]``) ops: what ``rsps`` samples, to train and to derive."""
        ...

    def edge_groups(self) -> list[list[int]]:
        """The edges (rows of the weights) that enter each node, one list per node: the groups PC-DARTS'
        edge normalisation weighs against each other, and, where an architecture picks edges
        (``one_op_per_edge`` False), the nodes whose two inputs ``drnas derive`` chooses."""
        ...


SpaceFactory = Callable[..., SearchSpace]
#: every search space: factories called with ``ops=None`` (the space's own ops) or a list of registered op names
SPACES: Registry[SpaceFactory] = Registry("search space", ArchitectureError)


class OneOpPerEdgeSpace:
    """What every space with one op per edge of a fixed cell shares (NB201's, the example plugin's): subclasses set
    ``edges`` (``(target, source)`` node pairs, in the order of the cell's edges), ``arch_type`` (an architecture
    with an ``ops`` tuple, ``parse`` and ``from_json``) and ``self.ops``, and get derivation by the strongest op,
    uniform random cells, the edge groups and names, parsing and the config text."""

    edges: tuple[tuple[int, int], ...] = ()
    arch_type: Any = None
    ops: tuple[str, ...]
    num_edges = 0
    one_op_per_edge = True
    excluded_from_derivation: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.num_edges = len(cls.edges)

    def derive(self, weights: torch.Tensor) -> Any:
        """Per edge, the op with the largest expected weight (eq. 6); pruned ops have weight 0."""
        if tuple(weights.shape) != (self.num_edges, len(self.ops)):
            raise ValueError(f"expected weights of shape {(self.num_edges, len(self.ops))}, got {tuple(weights.shape)}")
        return self.arch_type(tuple(self.ops[i] for i in weights.argmax(-1).tolist()))

    def random_weights(self, allowed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniformly drawn cell as 0/1 weights ``[edges, ops]``: one ``allowed`` op per edge."""
        choice = torch.multinomial(allowed.float().cpu(), 1, generator=generator).squeeze(-1)
        return torch.zeros(allowed.shape).scatter_(1, choice.unsqueeze(-1), 1.0)

    def edge_groups(self) -> list[list[int]]:
        """Indices of the edges entering each node (the groups of PC-DARTS' edge normalisation)."""
        return [[e for e, (t, _) in enumerate(self.edges) if t == node] for node in sorted({t for t, _ in self.edges})]

    def edge_names(self) -> Sequence[str]:
        return [f"{target}<-{source}" for target, source in self.edges]

    def parse(self, text: str) -> Any:
        return self.arch_type.parse(text)

    def from_json(self, data: dict[str, Any]) -> Any:
        return self.arch_type.from_json(data)

    def config_text(self, arch: Any) -> str:
        return str(arch)


def register_space(name: str) -> Callable[[SpaceFactory], SpaceFactory]:
    """Decorator registering a space factory (called with ``ops=None`` or a list of registered op names)."""
    return SPACES.register(name)  # type: ignore[return-value]


def get_space(name: str, ops: Sequence[str] | None = None) -> SearchSpace:
    """The registered space called ``name``, with the candidate ops ``ops`` (registered op names; None: the
    space's own)."""
    return SPACES.get(name)(ops)


def space_names() -> tuple[str, ...]:
    return tuple(sorted(SPACES.names()))
