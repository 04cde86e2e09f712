"""A search space: ``tiny-cell``, a 3-node cell whose 3 edges choose among ``none``, ``skip_connect`` and ``conv_5x5``.

Node 0 is the cell's input; node 1 = op(0); node 2 = op(0) + op(1) is its output. The edges, in the order of the
architecture's text ``tiny:OP,OP,OP`` and of the rows of the weights: 1<-0, 2<-0, 2<-1. The macro network: a 3x3
stem, ``cells_per_stage`` cells at C channels, NB201's stride-2 residual block, ``cells_per_stage`` cells at 2C,
then pooling and a linear classifier.

To add a space, copy this file. It implements :class:`drnas.spaces.base.SearchSpace`: an architecture type with a
text form and JSON, the search network (a :class:`~drnas.method.supernet.Supernet` of cells whose edges are
:class:`~drnas.method.supernet.MixedOp`), the fixed network that retraining builds, the derivation rule, random
sampling, the edge groups and a few facts for messages; ``register_space`` makes it ``--space tiny-cell``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from drnas.config.train import PROTOCOLS
from drnas.method.supernet import MixedOp, SearchCell, Supernet, cell_nodes
from drnas.spaces.base import (
    ArchitectureError,
    CellEdge,
    CellGraph,
    CellNode,
    NetworkSpec,
    OneOpPerEdgeSpace,
    SupernetSpec,
    register_space,
)
from drnas.spaces.nb201 import ResNetBasicBlock
from drnas.spaces.ops import build_op, check_ops, is_op, is_zero_op, unknown_op

TINY_OPS = ("none", "skip_connect", "conv_5x5")
#: (target node, source node) of each edge, in the architecture's order
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1))
PREFIX = "tiny:"
EXAMPLE = "tiny:conv_5x5,skip_connect,conv_5x5"


@dataclass(frozen=True)
class TinyArch:
    """A tiny cell: the op of each edge (1<-0, 2<-0, 2<-1). ``str()`` gives ``tiny:OP,OP,OP``."""

    ops: tuple[str, ...]
    space: str = "tiny-cell"

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise ArchitectureError(f"a tiny cell has {len(EDGES)} edges, got {len(self.ops)} ops; e.g. {EXAMPLE}")
        unknown = [op for op in self.ops if not is_op(op)]
        if unknown:
            raise ArchitectureError(f"a tiny cell: {unknown_op(unknown[0])}")

    def __str__(self) -> str:
        return PREFIX + ",".join(self.ops)

    @classmethod
    def parse(cls, text: str) -> TinyArch:
        text = text.strip()
        if not text.startswith(PREFIX):
            raise ArchitectureError(f"a tiny-cell architecture starts with {PREFIX!r}, like {EXAMPLE}")
        return cls(tuple(op.strip() for op in text[len(PREFIX):].split(",")))

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "tiny_cell": str(self), "ops": list(self.ops)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TinyArch:
        if not isinstance(data, dict) or "tiny_cell" not in data:
            raise ArchitectureError(f"a tiny-cell architecture in JSON needs a 'tiny_cell' field like {EXAMPLE!r}")
        return cls.parse(str(data["tiny_cell"]))


class TinySearchCell(SearchCell):
    """The search cell: a mixed op on every edge, evaluated by drnas' shared cell code (and its fast paths)."""

    def __init__(self, channels: int, partial_k: int, ops: Sequence[str]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(ops, channels, 1, partial_k, affine=False, op_factory=build_op)
                                   for _ in EDGES)

    def forward(self, x: torch.Tensor, theta: torch.Tensor, edge_scale: torch.Tensor | None = None) -> torch.Tensor:
        return cell_nodes([x], EDGES, self.edges, theta, edge_scale, self.paths)[-1]


class TinyCell(nn.Module):
    """A fixed cell for retraining: one op per edge; a ``none`` edge is left out of its node's sum."""

    def __init__(self, arch: TinyArch, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(build_op(op, channels, channels, 1, affine=True) for op in arch.ops)
        self.zero = [is_zero_op(op) for op in arch.ops]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2):
            terms = [self.edges[e](nodes[source]) for e, (t, source) in enumerate(EDGES)
                     if t == target and not self.zero[e]]
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[-1]


def macro(spec: SupernetSpec | NetworkSpec, make_cell: Callable[[int], nn.Module]) -> tuple[nn.Module, nn.ModuleList,
                                                                                           nn.Module]:
    """Stem, two stages of cells (C then 2C channels) joined by a stride-2 residual block, and the classifier."""
    c, n = spec.channels, spec.cells_per_stage
    stem = nn.Sequential(nn.Conv2d(spec.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    layers = nn.ModuleList([*(make_cell(c) for _ in range(n)), ResNetBasicBlock(c, 2 * c),
                            *(make_cell(2 * c) for _ in range(n))])
    head = nn.Sequential(nn.BatchNorm2d(2 * c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2 * c, spec.num_classes))
    return stem, layers, head


class TinySupernet(Supernet):
    """The search network; every cell shares the architecture's weights ``theta`` ``[3 edges, ops]``."""

    def __init__(self, spec: SupernetSpec, ops: Sequence[str]) -> None:
        super().__init__()
        self.stem, self.layers, self.head = macro(spec, lambda width: TinySearchCell(width, spec.partial_k, ops))

    def mixed_ops(self) -> Iterator[tuple[int, MixedOp]]:
        for layer in self.layers:
            if isinstance(layer, TinySearchCell):
                yield from enumerate(layer.edges)

    def forward(self, x: torch.Tensor, theta: torch.Tensor, edge_scale: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, theta, edge_scale) if isinstance(layer, TinySearchCell) else layer(x)
        return self.head(x)


class TinyNetwork(nn.Module):
    """The network ``drnas train`` builds for a tiny-cell architecture."""

    def __init__(self, arch: TinyArch, spec: NetworkSpec) -> None:
        super().__init__()
        self.stem, self.layers, self.head = macro(spec, lambda width: TinyCell(arch, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


@PROTOCOLS.register("tiny-cell", "the example plugin's retraining recipe for a tiny cell: C=16, 2 cells per stage, "
                                 "30 epochs, SGD 0.05 cosine")
def _tiny_protocol() -> dict[str, Any]:
    return {"epochs": 30, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4, "cutout": 0, "drop_path": 0.0,
            "auxiliary_weight": 0.0, "channels": 16, "cells_per_stage": 2}


@register_space("tiny-cell")
class TinyCellSpace(OneOpPerEdgeSpace):
    """The ``tiny-cell`` space; ``ops`` may name any registered ops (``--set ops=[...]``), TINY_OPS by default.
    :class:`~drnas.spaces.base.OneOpPerEdgeSpace` gives it derivation by the strongest op per edge, uniform random
    cells (rsps), the edge groups (pc-darts), parsing and the edge names, from ``edges`` and ``arch_type``."""

    name = "tiny-cell"
    edges, arch_type = EDGES, TinyArch
    benchmark = None                      # no results table indexes these cells
    text_prefix, json_key = PREFIX, "tiny_cell"
    label, network_fields = "a tiny-cell", ("cells_per_stage",)
    depth_setting = "--set cells_per_stage=N (cells per stage)"
    depth_field, depth_format = "cells_per_stage", "N={}"
    compiled_cells_pay_on_cpu = False     # not measured: leave torch.compile to an explicit compile=cells

    def __init__(self, ops: Sequence[str] | None = None) -> None:
        self.ops = check_ops(ops or TINY_OPS, "tiny-cell ops: ")

    def default_protocol(self, dataset: str) -> str:
        return "tiny-cell"

    def build_supernet(self, spec: SupernetSpec) -> TinySupernet:
        return TinySupernet(spec, self.ops)

    def build_network(self, arch: TinyArch, spec: NetworkSpec) -> TinyNetwork:
        return TinyNetwork(arch, spec)

    def graph(self, arch: TinyArch) -> list[CellGraph]:
        nodes = (CellNode("0", "input"), CellNode("1"), CellNode("2", "output"))
        edges = tuple(CellEdge(str(s), str(t), op, is_zero_op(op)) for (t, s), op in zip(EDGES, arch.ops))
        return [CellGraph("cell", "tiny cell", nodes, edges)]

    def network_edges(self, network: nn.Module) -> Iterator[tuple[int, nn.Module]]:
        for layer in network.layers:
            if isinstance(layer, TinyCell):
                yield from enumerate(layer.edges)
