"""DARTS-PT's perturbation-based selection (Wang et al., ICLR 2021; :mod:`drnas.method.parts.selection`) on a
trained supernet: edge by edge, the op whose removal costs the supernet the most validation accuracy; then, in a
space whose nodes choose their inputs (DARTS'), node by node the two input edges whose removal costs the most.

It works on a search job as :meth:`drnas.search.Search.resume` rebuilds it (or at the end of a search): the
strategy's expected weights are the starting point, every decided edge is fixed to its op (one-hot) in the
validation passes and, through a temporary part, in the fine-tuning weight steps.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Callable

import torch

from drnas.spaces.ops import is_zero_op


@dataclass
class EdgeChoice:
    """One decided edge: the accuracy (%) of the supernet without each op it had, and the op kept."""

    edge: str
    op: str
    without: dict[str, float]


@dataclass
class NodeChoice:
    """One decided node: the accuracy (%) of the supernet without each of its input edges, and the edges kept."""

    node: str
    inputs: list[str]
    without: dict[str, float]


@dataclass
class Selection:
    architecture: Any
    choices: list[EdgeChoice]
    nodes: list[NodeChoice] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"architecture": self.architecture.to_json(), "selection": "pt",
                "choices": [dataclasses.asdict(c) for c in self.choices],
                "nodes": [dataclasses.asdict(n) for n in self.nodes]}


class _FixedEdges:
    """A part-like hook the weight steps call (``Strategy.mix``): decided edges run their op alone, and the
    input edges a decided node dropped run nothing."""

    name = "darts-pt (fixing decided edges)"
    selects = False

    def __init__(self) -> None:
        self.fixed: dict[int, int] = {}
        self.removed: set[int] = set()

    def apply(self, theta: torch.Tensor) -> torch.Tensor:
        theta = theta.clone()
        for edge, op in self.fixed.items():
            theta[edge] = 0.0
            theta[edge, op] = 1.0
        for edge in self.removed:
            theta[edge] = 0.0
        return theta

    def mix(self, mixing: Any, phase: str, strategy: Any, engine: Any = None, batch: Any = None) -> Any:
        active = mixing.active
        if active is not None:
            active = [[self.fixed[e]] if e in self.fixed else ops for e, ops in enumerate(active)]
        return dataclasses.replace(mixing, theta=self.apply(mixing.theta), active=active)

    def record(self) -> dict[str, Any]:
        return {}


def perturbation_select(search: Any, settings: Any, log: Callable[[str], None] = lambda m: None) -> Selection:
    """The architecture DARTS-PT selects from ``search``'s trained supernet (``settings``: the part's). The
    supernet's weights are fine-tuned on the way (``settings.tune_steps`` weight steps after each edge, at the
    schedule's last learning rate); the architecture parameters do not move."""
    strategy, space = search.strategy, search.space
    mixing_of: Callable[[torch.Tensor], Any] = lambda w: dataclasses.replace(strategy.eval_mixing(), theta=w)  # noqa: E731
    with torch.no_grad():
        start = strategy.expected_weights().detach().clone()
    kept = strategy.mask.detach().cpu()
    valid = list(itertools.islice(search.valid_loader.epoch(0), settings.batches))
    order = torch.randperm(start.shape[0], generator=torch.Generator().manual_seed(settings.seed)).tolist()
    fixing = _FixedEdges()
    strategy.parts.append(fixing)
    for group in search.weight_optimizer.param_groups:
        group["lr"] = search.config.lr_min
    names, choices = space.edge_names(), []
    try:
        for edge in order:
            ops = [op for op in kept[edge].nonzero().flatten().tolist()  # a cell choosing inputs derives no `none`
                   if space.one_op_per_edge or not is_zero_op(space.ops[op])]
            without = {}
            for op in ops:
                weights = fixing.apply(start)
                weights[edge, op] = 0.0
                without[space.ops[op]] = _accuracy(search, mixing_of(weights.to(start.device)), valid)
            chosen = min(ops, key=lambda op: without[space.ops[op]])
            fixing.fixed[edge] = chosen
            choices.append(EdgeChoice(names[edge], space.ops[chosen], without))
            log(f"darts-pt: edge {names[edge]} keeps {space.ops[chosen]} (accuracy without each op: "
                + ", ".join(f"{k} {v:.2f}%" for k, v in without.items()) + ")")
            _tune(search, settings.tune_steps)
        nodes = [] if space.one_op_per_edge else _select_inputs(search, settings, fixing, start, valid, log)
    finally:
        strategy.parts.remove(fixing)
    final = torch.zeros_like(start.cpu())
    for edge, op in fixing.fixed.items():  # the chosen op at its learned weight (a dropped edge stays at 0)
        if edge not in fixing.removed:
            final[edge, op] = max(float(start[edge, op]), 1e-6)
    return Selection(space.derive(final), choices, nodes)


def _select_inputs(search: Any, settings: Any, fixing: _FixedEdges, start: torch.Tensor, valid: list[Any],
                   log: Callable[[str], None]) -> list[NodeChoice]:
    """DARTS-PT's topology selection, after every edge has its op: node by node (in a random order from the
    part's seed), each input edge is removed in turn and the node keeps the two whose removal costs the supernet
    the most accuracy; the others are dropped for good and the supernet is fine-tuned before the next node."""
    space, names, nodes = search.space, search.space.edge_names(), []
    mixing = search.strategy.eval_mixing()
    groups = space.edge_groups()
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(settings.seed + 1)).tolist()
    for node in order:
        group = groups[node]
        without = {}
        for edge in group:
            weights = fixing.apply(start)
            weights[edge] = 0.0
            without[names[edge]] = _accuracy(search, dataclasses.replace(mixing, theta=weights.to(start.device)),
                                             valid)
        kept = sorted(group, key=lambda e: without[names[e]])[:2]
        fixing.removed.update(e for e in group if e not in kept)
        name = names[group[0]].split("<-")[0] if "<-" in names[group[0]] else f"node {node}"  # "normal 3"
        nodes.append(NodeChoice(name, [names[e] for e in sorted(kept)], without))
        log(f"darts-pt: {name} keeps inputs {', '.join(names[e] for e in sorted(kept))} (accuracy without "
            "each input: " + ", ".join(f"{k} {v:.2f}%" for k, v in without.items()) + ")")
        _tune(search, settings.tune_steps)
    return nodes


@torch.no_grad()
def _accuracy(search: Any, mixing: Any, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The supernet's accuracy (%) with ``mixing`` on ``batches`` (eval mode)."""
    correct = seen = 0
    for x, y in batches:
        correct += search.evaluate_batch(mixing, x, y)[1]
        seen += len(y)
    return 100.0 * correct / max(1, seen)


def _tune(search: Any, steps: int) -> None:
    """``steps`` weight steps of the search (0: one pass over the weight half), the decided edges fixed. The
    batches are those of the data epochs after the search's last (``config.epochs`` on), whether the search calls
    this at the end of its last epoch or ``drnas derive`` on the finished run: both tune on the same batches."""
    steps = steps or len(search.weight_loader)
    search.net.train()
    done = 0
    for epoch in itertools.count(search.config.epochs):
        for x, y in search.weight_loader.epoch(epoch):
            if done == steps:
                return
            search.weight_step(x, y)
            done += 1
