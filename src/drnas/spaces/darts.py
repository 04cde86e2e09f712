"""The DARTS CNN cell space (Liu et al., ICLR 2019), as DrNAS searches it (paper §4.1-4.2).

A cell has two input nodes (the outputs of the two previous cells) and 4 intermediate nodes; intermediate
node ``i`` sums a mixed op applied to every earlier node (14 edges per cell), and the cell outputs the
concatenation of the intermediate nodes. Normal and reduction cells have their own architecture parameters:
rows ``0..13`` of ``eta`` are the normal cell's edges and rows ``14..27`` the reduction cell's. Reduction cells
sit at 1/3 and 2/3 of the depth and halve the resolution (stride 2 on the edges leaving the input nodes).

Derivation (DARTS' rule): every intermediate node keeps the two incoming edges whose strongest non-``none``
op has the largest expected weight, each with that op. Genotypes are plain data: JSON, or DARTS' own
``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])`` notation, parsed from its
syntax tree without evaluating anything.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from drnas.method.supernet import MixedOp, SearchCell, Supernet, cell_nodes
from drnas.spaces.base import (
    ArchitectureError,
    CellEdge,
    CellGraph,
    CellNode,
    NetworkSpec,
    SupernetSpec,
    register_space,
)
from drnas.spaces.ops import (
    FactorizedReduce,
    ReLUConvBN,
    build_op,
    check_ops,
    is_op,
    is_zero_op,
    unknown_op,
)

DARTS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")
STEPS = 4
#: (intermediate node i, source node j) for every edge of a cell, in eta row order; sources 0 and 1 are inputs.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(STEPS) for j in range(2 + i))
EDGES_PER_CELL = len(EDGES)
#: the same edges as (target node id, source node id), intermediate node i being node id i + 2
_NODE_EDGES = tuple((i + 2, j) for i, j in EDGES)
#: the longest genotype text parsed (a DARTS genotype is about 400 characters): refused before any work
_MAX_TEXT = 4_000
#: intermediate nodes a cell may have (DARTS' cells have 4): larger cells are refused before a network is built
MAX_NODES = 8

Pair = tuple[str, int]


def _check_cell(name: str, pairs: Sequence[Pair], concat: Sequence[int]) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
    if not isinstance(pairs, (list, tuple)) or not isinstance(concat, (list, tuple, range)):
        raise ArchitectureError(f"{name} must be a list of (op, input) pairs and {name}_concat a list of nodes")
    if len(pairs) > 2 * MAX_NODES or len(concat) > MAX_NODES:
        raise ArchitectureError(f"{name}: a cell has at most {MAX_NODES} intermediate nodes ({2 * MAX_NODES} pairs), "
                                f"got {len(pairs)} pairs and {len(concat)} concatenated nodes")
    if len(pairs) == 0 or len(pairs) % 2:
        raise ArchitectureError(f"{name}: a cell needs two (op, input) pairs per intermediate node, got {len(pairs)}")
    steps = len(pairs) // 2
    checked = []
    for k, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], int) and not isinstance(pair[1], bool)):
            raise ArchitectureError(f"{name}[{k}] must be an (op name, input index) pair, got {pair!r}")
        op, index = pair
        if not is_op(op):  # any registered op (DARTS' eight, NB201's, a plugin's)
            raise ArchitectureError(f"{name}[{k}]: {unknown_op(op)}")
        if is_zero_op(op):
            raise ArchitectureError(f"{name}[{k}]: op {op!r} passes nothing, so a node never takes it as an input; "
                                    "use another op")
        node = k // 2
        if not 0 <= index < node + 2:
            raise ArchitectureError(f"{name}[{k}]: node {node + 2} can only take inputs 0..{node + 1}, got {index}")
        checked.append((op, index))
    concat = tuple(concat)
    if not concat or any(not isinstance(c, int) or not 2 <= c < steps + 2 for c in concat) or len(set(concat)) != len(concat):
        raise ArchitectureError(f"{name}_concat must list distinct intermediate nodes in 2..{steps + 1}, got {list(concat)}")
    return tuple(checked), concat


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS-space architecture: normal and reduction cells as (op, input node) pairs, two per node."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]
    space: str = "darts"

    def __post_init__(self) -> None:
        normal, normal_concat = _check_cell("normal", self.normal, self.normal_concat)
        reduce, reduce_concat = _check_cell("reduce", self.reduce, self.reduce_concat)
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "normal_concat", normal_concat)
        object.__setattr__(self, "reduce", reduce)
        object.__setattr__(self, "reduce_concat", reduce_concat)

    def __str__(self) -> str:
        def cell(pairs: Sequence[Pair]) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in pairs) + "]"

        return (f"Genotype(normal={cell(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={cell(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "normal": [list(p) for p in self.normal], "normal_concat": list(self.normal_concat),
                "reduce": [list(p) for p in self.reduce], "reduce_concat": list(self.reduce_concat)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DartsGenotype":
        if not isinstance(data, dict):
            raise ArchitectureError("a DARTS genotype in JSON must be an object with normal/reduce fields")
        if data.get("space", "darts") != "darts":
            raise ArchitectureError(f"architecture is for space {data.get('space')!r}, not darts")
        missing = [k for k in ("normal", "reduce") if k not in data]
        if missing:
            raise ArchitectureError(f"a DARTS genotype needs the field(s) {missing}")

        def pairs(key: str) -> tuple[Pair, ...]:
            value = data[key]
            if not isinstance(value, list):
                raise ArchitectureError(f"{key} must be a list of [op, input] pairs")
            return tuple(tuple(p) if isinstance(p, list) else p for p in value)  # type: ignore[misc]

        def concat(key: str, cell: tuple[Pair, ...]) -> tuple[int, ...]:
            if f"{key}_concat" not in data:  # every node (the cell's size is checked with its pairs)
                return tuple(range(2, min(len(cell) // 2, MAX_NODES) + 2))
            value = data[f"{key}_concat"]
            if not isinstance(value, (list, range)) or len(value) > MAX_NODES:
                raise ArchitectureError(f"{key}_concat must be a list of at most {MAX_NODES} node indices")
            return tuple(value)

        normal, reduce = pairs("normal"), pairs("reduce")
        return cls(normal, concat("normal", normal), reduce, concat("reduce", reduce))

    @classmethod
    def parse(cls, text: str) -> "DartsGenotype":
        """Parse DARTS' ``Genotype(...)`` notation (or a JSON object) without evaluating code."""
        text = text.strip()
        if len(text) > _MAX_TEXT:
            raise ArchitectureError(f"genotype text is {len(text)} characters long; a genotype is far shorter")
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as err:
                raise ArchitectureError(f"genotype JSON could not be parsed ({type(err).__name__})") from None
            return cls.from_json(data)
        try:
            tree = ast.parse(text, mode="eval")
        except (ValueError, RecursionError, MemoryError) as err:  # e.g. nesting too deep, integers too long
            raise ArchitectureError(f"genotype text could not be parsed ({type(err).__name__})") from None
        except SyntaxError as err:
            raise ArchitectureError(f"genotype text is not valid notation ({err.msg}); expected "
                                    "Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], "
                                    "reduce_concat=[...])") from None
        call = tree.body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
            raise ArchitectureError("genotype text must be a single Genotype(...) expression")
        if call.args:
            raise ArchitectureError("Genotype(...) takes keyword arguments: normal=, normal_concat=, reduce=, reduce_concat=")
        fields: dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg not in ("normal", "normal_concat", "reduce", "reduce_concat"):
                raise ArchitectureError(f"unknown Genotype field {keyword.arg!r}")
            fields[keyword.arg] = _literal(keyword.value, keyword.arg)
        return cls.from_json({"space": "darts", **fields})


def _literal(node: ast.expr, name: str) -> Any:
    """A literal list/tuple, or ``range(a, b)`` (DARTS writes ``normal_concat=range(2, 6)``)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, int)]
        if len(args) != len(node.args) or not 1 <= len(args) <= 2 or node.keywords:
            raise ArchitectureError(f"{name}: only range(a, b) with integer literals is accepted")
        if any(abs(a) > 10 * MAX_NODES for a in args) or len(range(*args)) > MAX_NODES:
            raise ArchitectureError(f"{name}: a cell has at most {MAX_NODES} intermediate nodes, got "
                                    f"range({', '.join(map(str, args))})")
        return list(range(*args))
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        raise ArchitectureError(f"{name} must be a literal list, e.g. [('sep_conv_3x3', 0), ...]") from None
    if not isinstance(value, (list, tuple)):
        raise ArchitectureError(f"{name} must be a list, got {type(value).__name__}")
    return [list(v) if isinstance(v, tuple) else v for v in value]


# ------------------------------------------------------------------------------------------------ cell stacks
#: runs modules that read one tensor: ``together(modules, x) == [m(x) for m in modules]``
RunTogether = Callable[[Sequence[nn.Module], torch.Tensor], list[torch.Tensor]]


def run_cells(cells: Sequence[nn.Module], s0: torch.Tensor, s1: torch.Tensor,
              run_cell: Callable[[int, nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
              together: RunTogether | None = None) -> torch.Tensor:
    """A DARTS cell stack (search or evaluation); returns the last cell's output.

    Cell i reads states i and i+1 (the stem's two outputs, then the cells' outputs) through its
    ``preprocess0`` and ``preprocess1``, and ``run_cell(i, cell, preprocessed0, preprocessed1)`` runs the rest
    of it. Each state is preprocessed for all of its readers as soon as it exists, by ``together(modules,
    state)`` when given (the fast path, :func:`drnas.fast.fusion.preprocess_together`, runs readers with the same
    settings as one stack: one ReLU and one wider 1x1 conv on the state instead of two; on the CPU the 1x1
    convs over the widest states were about a quarter of a darts-s2 search step), module by module otherwise.
    """
    inputs: list[list[torch.Tensor | None]] = [[None, None] for _ in cells]

    def preprocess(state: torch.Tensor, indices: Sequence[int]) -> None:
        readers = [(i, 0) for i in indices if i < len(cells)] + [(i - 1, 1) for i in indices if 0 < i <= len(cells)]
        modules = [cells[i].preprocess0 if slot == 0 else cells[i].preprocess1 for i, slot in readers]
        outputs = together(modules, state) if together and len(modules) > 1 else [m(state) for m in modules]
        for (i, slot), out in zip(readers, outputs):
            inputs[i][slot] = out

    if s1 is s0:
        preprocess(s0, (0, 1))
    else:
        preprocess(s0, (0,))
        preprocess(s1, (1,))
    for i, cell in enumerate(cells):
        s1 = run_cell(i, cell, inputs[i][0], inputs[i][1])
        inputs[i] = [None, None]  # not needed past the cell (autograd keeps what the backward pass needs)
        preprocess(s1, (i + 2,))
    return s1


# ------------------------------------------------------------------------------------------------ search
def search_op(name: str, c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    """Search-time op: pooling is followed by a non-affine BN, as in DARTS' and DrNAS' mixed ops."""
    op = build_op(name, c_in, c_out, stride, affine, track)
    if "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(c_out, affine=False, track_running_stats=track))
    return op


class DartsSearchCell(SearchCell):
    def __init__(self, ops: Sequence[str], c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 partial_k: int) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(ops, c, 2 if reduction and j < 2 else 1, partial_k, affine=False, op_factory=search_op)
            for _, j in EDGES)

    def forward(self, state0: torch.Tensor, state1: torch.Tensor, theta: torch.Tensor,
                edge_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The cell on its inputs already preprocessed (``preprocess0(s0)``, ``preprocess1(s1)``; see
        :func:`run_cells`)."""
        nodes = cell_nodes([state0, state1], _NODE_EDGES, self.edges, theta, edge_scale, self.paths)
        return torch.cat(nodes[2:], dim=1)


def _stem(spec_in: int, c: int, imagenet: bool, multiplier: int = 3) -> tuple[nn.Module, nn.Module | None, int, int, bool]:
    """CIFAR stem (one 3x3 conv to 3C) or ImageNet stem (three stride-2 convs: 224 -> 28)."""
    if not imagenet:
        stem = nn.Sequential(nn.Conv2d(spec_in, multiplier * c, 3, padding=1, bias=False), nn.BatchNorm2d(multiplier * c))
        return stem, None, multiplier * c, multiplier * c, False
    stem0 = nn.Sequential(
        nn.Conv2d(spec_in, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(inplace=True),
        nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
    stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
    return stem0, stem1, c, c, True


def _reduction_layers(cells: int) -> tuple[int, int]:
    return cells // 3, 2 * cells // 3


class DartsSupernet(Supernet):
    """The DARTS search network: ``cells`` cells, reductions at 1/3 and 2/3, a mixed op on every edge."""

    #: how each state is preprocessed for its readers (:func:`run_cells`): module by module until
    #: :func:`drnas.fast.fusion.install` sets the fast path
    run_together: RunTogether | None = None

    def __init__(self, spec: SupernetSpec, ops: Sequence[str] = DARTS_OPS) -> None:
        super().__init__()
        c = spec.channels
        self.stem0, self.stem1, c_pp, c_p, reduction_prev = _stem(spec.in_channels, c, spec.imagenet_stem)
        cells: list[DartsSearchCell] = []
        c_curr = c
        for layer in range(spec.cells):
            reduction = layer in _reduction_layers(spec.cells)
            if reduction:
                c_curr *= 2
            cell = DartsSearchCell(ops, c_pp, c_p, c_curr, reduction, reduction_prev, spec.partial_k)
            cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, STEPS * c_curr
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, spec.num_classes)

    def mixed_ops(self) -> Iterator[tuple[int, MixedOp]]:
        for cell in self.cells:
            offset = EDGES_PER_CELL if cell.reduction else 0
            for e, op in enumerate(cell.edges):
                yield offset + e, op

    def forward(self, x: torch.Tensor, theta: torch.Tensor, edge_scale: torch.Tensor | None = None) -> torch.Tensor:
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        normal, reduce = theta[:EDGES_PER_CELL], theta[EDGES_PER_CELL:]
        if edge_scale is None:
            def run(_: int, cell: DartsSearchCell, p0: torch.Tensor, p1: torch.Tensor) -> torch.Tensor:
                return cell(p0, p1, reduce if cell.reduction else normal)
        else:
            scale_normal, scale_reduce = edge_scale[:EDGES_PER_CELL], edge_scale[EDGES_PER_CELL:]

            def run(_: int, cell: DartsSearchCell, p0: torch.Tensor, p1: torch.Tensor) -> torch.Tensor:
                return cell(p0, p1, *((reduce, scale_reduce) if cell.reduction else (normal, scale_normal)))
        last = run_cells(self.cells, s0, s1, run, together=self.run_together)
        return self.classifier(self.pool(last).flatten(1))


def derive_cell(weights: torch.Tensor, ops: Sequence[str]) -> tuple[Pair, ...]:
    """DARTS' rule on one cell's ``[14, ops]`` expected weights (pruned ops are exactly 0, never chosen)."""
    usable = torch.tensor([not is_zero_op(o) for o in ops])
    w = weights.masked_fill(~usable, -1.0).masked_fill(weights <= 0, -1.0)
    pairs: list[Pair] = []
    start = 0
    for i in range(STEPS):
        rows = w[start:start + 2 + i]
        strength, best = rows.max(-1)
        if int((strength > 0).sum()) < 2:
            raise ArchitectureError(f"node {i + 2} has fewer than two incoming edges with a kept non-none op")
        for j in sorted(range(2 + i), key=lambda j: -float(strength[j]))[:2]:
            pairs.append((ops[int(best[j])], j))
        start += 2 + i
    return tuple(pairs)


# ------------------------------------------------------------------------------------------------ evaluation
def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (FractalNet/DARTS drop-path)."""
    keep = 1.0 - drop_prob
    mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep)
    return x * mask / keep


class DartsEvalCell(nn.Module):
    def __init__(self, pairs: Sequence[Pair], concat: Sequence[int], c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.inputs = [index for _, index in pairs]
        self.concat = list(concat)
        self.ops = nn.ModuleList(build_op(op, c, c, 2 if reduction and index < 2 else 1) for op, index in pairs)
        self.is_identity = [isinstance(op, nn.Identity) for op in self.ops]
        self.multiplier = len(self.concat)

    def forward(self, state0: torch.Tensor, state1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        """The cell on its inputs already preprocessed (see :func:`run_cells`)."""
        states = [state0, state1]
        for node in range(len(self.ops) // 2):
            total = None
            for k in (2 * node, 2 * node + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and drop_prob > 0 and not self.is_identity[k]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier at 2/3 depth (8x8 input on CIFAR, 14x14 on ImageNet)."""

    def __init__(self, c: int, num_classes: int, imagenet: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(inplace=True), nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False)]
        if not imagenet:  # DARTS' ImageNet head has no BN here (kept for parity with the published numbers)
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    """Evaluation network of a genotype (DARTS' NetworkCIFAR / NetworkImageNet).

    ``forward`` returns the logits, or ``(logits, auxiliary logits)`` in training mode when the network has an
    auxiliary head. ``drop_path_prob`` is set by the training loop (it grows linearly over the epochs).
    """

    #: how each state is preprocessed for its readers (:func:`run_cells`): module by module until
    #: :func:`drnas.fast.fusion.install` sets the fast path
    run_together: RunTogether | None = None

    def __init__(self, genotype: DartsGenotype, spec: NetworkSpec) -> None:
        super().__init__()
        c = spec.channels
        self.stem0, self.stem1, c_pp, c_p, reduction_prev = _stem(spec.in_channels, c, spec.imagenet_stem)
        self.drop_path_prob = 0.0
        self.aux_position = 2 * spec.cells // 3
        self.auxiliary_head: nn.Module | None = None
        cells = []
        c_curr = c
        for layer in range(spec.cells):
            reduction = layer in _reduction_layers(spec.cells)
            if reduction:
                c_curr *= 2
            pairs, concat = (genotype.reduce, genotype.reduce_concat) if reduction else (genotype.normal, genotype.normal_concat)
            cell = DartsEvalCell(pairs, concat, c_pp, c_p, c_curr, reduction, reduction_prev)
            cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if layer == self.aux_position and spec.auxiliary:
                self.auxiliary_head = AuxiliaryHead(c_p, spec.num_classes, spec.imagenet_stem)
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, spec.num_classes)

    def forward(self, x: torch.Tensor):
        aux: list[torch.Tensor] = []
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)

        def run_cell(layer: int, cell: nn.Module, state0: torch.Tensor, state1: torch.Tensor) -> torch.Tensor:
            out = cell(state0, state1, self.drop_path_prob)
            if layer == self.aux_position and self.auxiliary_head is not None and self.training:
                aux.append(self.auxiliary_head(out))
            return out

        last = run_cells(self.cells, s0, s1, run_cell, together=self.run_together)
        logits = self.classifier(self.pool(last).flatten(1))
        return (logits, aux[0]) if aux else logits


# ------------------------------------------------------------------------------------------------ the space
def _cell_graph(name: str, title: str, pairs: Sequence[Pair], concat: Sequence[int]) -> CellGraph:
    """A genotype cell as a graph; node ids as in the genotype: 0 and 1 the inputs, 2.. the intermediate nodes
    (shown as 0..n-1, DARTS' own picture)."""
    names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(len(pairs) // 2)]
    nodes = tuple([CellNode(names[0], "input"), CellNode(names[1], "input")]
                  + [CellNode(n, "node") for n in names[2:]] + [CellNode("c_{k}", "output")])
    edges = [CellEdge(names[j], names[k // 2 + 2], op, is_zero_op(op)) for k, (op, j) in enumerate(pairs)]
    edges += [CellEdge(names[c], "c_{k}") for c in concat]
    return CellGraph(name, title, nodes, tuple(edges))


class DartsSpace:
    """The registered ``darts`` space: DARTS' eight ops by default, or any list of registered ops (``ops``: a
    subset, as the authors' code drops ``none``, or others, a plugin's included)."""

    name = "darts"
    excluded_from_derivation = ("none",)
    benchmark = None
    one_op_per_edge = False
    text_prefix, json_key = "Genotype", "normal"
    label, network_fields = "a DARTS", ("cells", "auxiliary_weight", "drop_path")
    depth_setting = "--set cells=N (cells in all)"
    #: DARTS' cells take about half an hour to compile on 2 cores and then run slower
    compiled_cells_pay_on_cpu = False
    depth_field, depth_format = "cells", "{} cells"

    def default_protocol(self, dataset: str) -> str:
        return "darts-imagenet" if dataset == "imagenet" else "darts-cifar"

    def config_text(self, arch: DartsGenotype) -> str:
        return json.dumps(arch.to_json())

    def __init__(self, ops: Sequence[str] | None = None) -> None:
        # DARTS' eight by default; any registered ops otherwise (each built at stride 2 on reduction edges)
        ops = check_ops(ops, "DARTS ops: ") if ops else DARTS_OPS
        if all(is_zero_op(o) for o in ops):
            raise ArchitectureError(f"DARTS ops: {list(ops)} has no op that passes anything, so no node could take "
                                    "an input; add one, e.g. sep_conv_3x3")
        self.ops = ops
        self.num_edges = 2 * EDGES_PER_CELL

    def build_supernet(self, spec: SupernetSpec) -> DartsSupernet:
        return DartsSupernet(spec, self.ops)

    def build_network(self, arch: DartsGenotype, spec: NetworkSpec) -> DartsNetwork:
        return DartsNetwork(arch, spec)

    def derive(self, weights: torch.Tensor) -> DartsGenotype:
        if tuple(weights.shape) != (self.num_edges, len(self.ops)):
            raise ValueError(f"expected weights of shape {(self.num_edges, len(self.ops))}, got {tuple(weights.shape)}")
        concat = tuple(range(2, STEPS + 2))
        return DartsGenotype(derive_cell(weights[:EDGES_PER_CELL], self.ops), concat,
                             derive_cell(weights[EDGES_PER_CELL:], self.ops), concat)

    def parse(self, text: str) -> DartsGenotype:
        return DartsGenotype.parse(text)

    def from_json(self, data: dict[str, Any]) -> DartsGenotype:
        return DartsGenotype.from_json(data)

    def edge_names(self) -> Sequence[str]:
        return [f"{cell} {i + 2}<-{j}" for cell in ("normal", "reduce") for i, j in EDGES]

    def graph(self, arch: DartsGenotype) -> list[CellGraph]:
        """The normal and the reduction cell: inputs c_{k-2} and c_{k-1}, intermediate nodes 0..n-1 with their
        two chosen inputs, and the output c_{k}, the concatenation of the ``concat`` nodes."""
        return [_cell_graph("normal", "normal cell", arch.normal, arch.normal_concat),
                _cell_graph("reduce", "reduction cell", arch.reduce, arch.reduce_concat)]

    def network_edges(self, network: nn.Module) -> Iterator[tuple[int, nn.Module]]:
        """The two ops of every node of every cell of a :class:`DartsNetwork`, each with the edge (its input
        node to its node) it implements: rows 0..13 in normal cells, 14..27 in reduction cells."""
        for cell in network.cells:
            offset = EDGES_PER_CELL if cell.reduction else 0
            for k, (op, source) in enumerate(zip(cell.ops, cell.inputs)):
                yield offset + EDGES.index((k // 2, source)), op

    def random_weights(self, allowed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A uniformly drawn pair of cells as 0/1 weights ``[edges, ops]``: every node of each cell takes two
        distinct inputs, each through one ``allowed`` op other than ``none``; the other edges are off (all 0)."""
        usable = allowed.cpu() & torch.tensor([not is_zero_op(o) for o in self.ops])
        weights = torch.zeros(allowed.shape)
        for group in self.edge_groups():
            for pick in torch.randperm(len(group), generator=generator)[:2].tolist():
                edge = group[pick]
                op = int(torch.multinomial(usable[edge].float(), 1, generator=generator))
                weights[edge, op] = 1.0
        return weights

    def edge_groups(self) -> list[list[int]]:
        """Indices of the edges entering each node of each cell type (PC-DARTS' edge normalisation groups)."""
        return [[offset + e for e, (i, _) in enumerate(EDGES) if i == node]
                for offset in (0, EDGES_PER_CELL) for node in range(STEPS)]


register_space("darts")(DartsSpace)
