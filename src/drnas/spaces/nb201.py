"""The NAS-Bench-201 space (Dong & Yang, ICLR 2020).

A cell has 4 nodes; node ``i`` sums one op applied to every earlier node, giving 6 edges in the order of
NB201's architecture strings ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2).
The macro network: a 3x3 stem, three stages of ``N`` cells at C, 2C and 4C channels separated by stride-2
ResNet basic blocks, then BN-ReLU, global pooling and a linear classifier. All cells share one set of
architecture parameters. Search cells use BatchNorm without affine parameters, as NB201 and DrNAS do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from drnas.errors import shown
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
from drnas.spaces.ops import (
    ReLUConvBN,
    build_op,
    check_ops,
    is_op,
    is_zero_op,
    unknown_op,
)

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
#: (target node, source node) of each edge, in architecture-string order.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(1, NUM_NODES) for j in range(i))
#: ``op~input``: an op name is any registered name without the string's own separators (``~``, ``|``, ``+``)
_TOKEN = re.compile(r"^([^~|+\s]+)~(\d+)$")


@dataclass(frozen=True)
class NB201Arch:
    """An NB201 cell: the op of each of the 6 edges, in string order."""

    ops: tuple[str, ...]
    space: str = "nb201"

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise ArchitectureError(f"an NB201 cell has {len(EDGES)} edges, got {len(self.ops)} ops")
        # any registered op (NB201's five, another space's, a plugin's); a benchmark table says which it covers
        for op in self.ops:
            if not is_op(op):
                raise ArchitectureError(unknown_op(op))

    def __str__(self) -> str:
        nodes = []
        for node in range(1, NUM_NODES):
            tokens = [f"{self.ops[e]}~{j}" for e, (i, j) in enumerate(EDGES) if i == node]
            nodes.append("|" + "|".join(tokens) + "|")
        return "+".join(nodes)

    @classmethod
    def parse(cls, text: str) -> "NB201Arch":
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (surrounding whitespace ignored)."""
        example = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
        text = text.strip()
        groups = text.split("+")
        if len(groups) != NUM_NODES - 1:
            raise ArchitectureError(f"NB201 string {shown(text)} has {len(groups)} node groups, expected "
                                    f"{NUM_NODES - 1} separated by '+', like {example}")
        ops: list[str] = []
        for node, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
                raise ArchitectureError(f"node group {shown(group)} of {shown(text)} must look like |op~0|op~1|")
            tokens = group[1:-1].split("|")
            if len(tokens) != node:
                raise ArchitectureError(f"node {node} of {shown(text)} must have {node} inputs, got {len(tokens)}")
            for source, token in enumerate(tokens):
                match = _TOKEN.match(token)
                if not match:
                    raise ArchitectureError(f"token {shown(token)} of {shown(text)} must look like op~{source}")
                # the index compared as text: a number of any length is refused without converting it
                op, index = match.group(1), match.group(2).lstrip("0") or "0"
                if index != str(source):
                    raise ArchitectureError(f"token {shown(token)} of node {node} in {shown(text)}: input index "
                                            f"must be {source}")
                ops.append(op)
        return cls(tuple(ops))

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "arch": str(self), "ops": list(self.ops)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NB201Arch":
        if not isinstance(data, dict) or "arch" not in data:
            raise ArchitectureError("an NB201 architecture in JSON needs an 'arch' string field")
        if data.get("space", "nb201") != "nb201":
            raise ArchitectureError(f"architecture is for space {data.get('space')!r}, not nb201")
        return cls.parse(str(data["arch"]))


class NB201Cell(SearchCell):
    """Search cell: node i = sum over j < i of mixed_op(i<-j)(node j); output = last node."""

    def __init__(self, channels: int, partial_k: int, ops: Sequence[str] = NB201_OPS) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            MixedOp(ops, channels, 1, partial_k, affine=False, track_running_stats=True, op_factory=build_op)
            for _ in EDGES)

    def forward(self, x: torch.Tensor, theta: torch.Tensor, edge_scale: torch.Tensor | None = None) -> torch.Tensor:
        return cell_nodes([x], EDGES, self.edges, theta, edge_scale, self.paths)[-1]


class ResNetBasicBlock(nn.Module):
    """NB201's stride-2 residual block between stages."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


def _macro(spec: SupernetSpec | NetworkSpec, make_cell: Callable[[int], nn.Module]
           ) -> tuple[nn.Module, list[nn.Module], nn.Module]:
    """NB201's macro structure around any cell: stem, 3 stages of N cells with ResNet blocks between, head."""
    c, n = spec.channels, spec.cells_per_stage
    stem = nn.Sequential(nn.Conv2d(spec.in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
    layers: list[nn.Module] = []
    widths = [c, 2 * c, 4 * c]
    for stage, width in enumerate(widths):
        if stage > 0:
            layers.append(ResNetBasicBlock(widths[stage - 1], width))
        layers.extend(make_cell(width) for _ in range(n))
    head = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(widths[-1], spec.num_classes))
    return stem, layers, head


class NB201Supernet(Supernet):
    """The NB201 macro network with a mixed op on every cell edge."""

    def __init__(self, spec: SupernetSpec, ops: Sequence[str] = NB201_OPS) -> None:
        super().__init__()
        self.stem, layers, self.head = _macro(spec, lambda width: NB201Cell(width, spec.partial_k, ops))
        self.layers = nn.ModuleList(layers)

    def mixed_ops(self) -> Iterator[tuple[int, MixedOp]]:
        for layer in self.layers:
            if isinstance(layer, NB201Cell):
                yield from enumerate(layer.edges)

    def forward(self, x: torch.Tensor, theta: torch.Tensor, edge_scale: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, theta, edge_scale) if isinstance(layer, NB201Cell) else layer(x)
        return self.head(x)


class NB201InferCell(nn.Module):
    """A fixed NB201 cell for training from scratch (affine BN, as the benchmark trained it)."""

    def __init__(self, arch: NB201Arch, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(build_op(op, channels, channels, 1, affine=True) for op in arch.ops)
        self.zero = [is_zero_op(op) for op in arch.ops]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        e = 0
        for i in range(1, NUM_NODES):
            total = None
            for j in range(i):
                if not self.zero[e]:
                    y = self.edges[e](nodes[j])
                    total = y if total is None else total + y
                e += 1
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[-1]


class NB201Network(nn.Module):
    """The NB201 evaluation network (the benchmark's own macro structure, C=16 and N=5 by default)."""

    def __init__(self, arch: NB201Arch, spec: NetworkSpec) -> None:
        super().__init__()
        self.stem, layers, self.head = _macro(spec, lambda width: NB201InferCell(arch, width))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


class NB201Space(OneOpPerEdgeSpace):
    """The registered ``nb201`` space: NB201's topology over NB201's five ops by default, or over any list of
    registered ops (``ops``: a subset of the five, or others, a plugin's included)."""

    name = "nb201"
    edges, arch_type = EDGES, NB201Arch
    benchmark = "NAS-Bench-201"
    text_prefix, json_key = "|", "arch"
    label, network_fields, depth_setting = "an NB201", ("cells_per_stage",), "--set cells_per_stage=N (cells per stage)"
    compiled_cells_pay_on_cpu = True
    depth_field, depth_format = "cells_per_stage", "N={}"

    def default_protocol(self, dataset: str) -> str:
        return "nb201"  # NAS-Bench-201's one recipe, on every dataset

    def __init__(self, ops: Sequence[str] | None = None) -> None:
        # NB201's five by default (the benchmark's cells); any registered ops otherwise, each once
        self.ops = check_ops(ops, "NB201 ops: ") if ops else NB201_OPS

    def build_supernet(self, spec: SupernetSpec) -> NB201Supernet:
        return NB201Supernet(spec, self.ops)

    def build_network(self, arch: NB201Arch, spec: NetworkSpec) -> "NB201Network":
        return NB201Network(arch, spec)

    def graph(self, arch: NB201Arch) -> list[CellGraph]:
        """The one cell: node 0 is its input, node 3 its output, every edge j -> i labelled with its op (``none``
        marked as passing nothing)."""
        roles = {0: "input", NUM_NODES - 1: "output"}
        nodes = tuple(CellNode(str(n), roles.get(n, "node")) for n in range(NUM_NODES))
        edges = tuple(CellEdge(str(j), str(i), op, is_zero_op(op)) for (i, j), op in zip(EDGES, arch.ops))
        return [CellGraph("cell", "NB201 cell", nodes, edges)]

    def network_edges(self, network: nn.Module) -> Iterator[tuple[int, nn.Module]]:
        """The op of every edge of every cell of an :class:`NB201Network` (a ``none`` edge's op never runs)."""
        for layer in network.layers:
            if isinstance(layer, NB201InferCell):
                yield from enumerate(layer.edges)


register_space("nb201")(NB201Space)
