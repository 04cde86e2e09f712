"""DARTS-PT's perturbation-based selection (Wang et al., ICLR 2021; :mod:`drnas.method.parts.selection`) on a
trained supernet: edge by edge, the op whose removal costs the supernet the most validation accuracy.

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


@dataclass
class EdgeChoice:
    """One decided edge: the accuracy (%) of the supernet without each op it had, and the op kept."""

    edge: str
    op: str
    without: dict[str, float]


@dataclass
class Selection:
    architecture: Any
    choices: list[EdgeChoice]

    def to_json(self) -> dict[str, Any]:
        return {"architecture": self.architecture.to_json(), "selection": "pt",
                "choices": [dataclasses.asdict(c) for c in self.choices]}


class _FixedEdges:
    """A part-like hook the weight steps call (``Strategy.mix``): decided edges run their op alone."""

    name = "darts-pt (fixing decided edges)"
    selects = False

    def __init__(self) -> None:
        self.fixed: dict[int, int] = {}

    def apply(self, theta: torch.Tensor) -> torch.Tensor:
        theta = theta.clone()
        for edge, op in self.fixed.items():
            theta[edge] = 0.0
            theta[edge, op] = 1.0
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
            ops = kept[edge].nonzero().flatten().tolist()
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
    finally:
        strategy.parts.remove(fixing)
    final = torch.zeros_like(start.cpu())
    for edge, op in fixing.fixed.items():  # the chosen op at its learned weight: DARTS' inputs rank by it
        final[edge, op] = max(float(start[edge, op]), 1e-6)
    return Selection(space.derive(final), choices)


@torch.no_grad()
def _accuracy(search: Any, mixing: Any, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The supernet's accuracy (%) with ``mixing`` on ``batches`` (eval mode)."""
    correct = seen = 0
    for x, y in batches:
        correct += search.evaluate_batch(mixing, x, y)[1]
        seen += len(y)
    return 100.0 * correct / max(1, seen)


def _tune(search: Any, steps: int) -> None:
    """``steps`` weight steps of the search (0: one pass over the weight half), the decided edges fixed."""
    steps = steps or len(search.weight_loader)
    search.net.train()
    done = 0
    for epoch in itertools.count(search.epoch):
        for x, y in search.weight_loader.epoch(epoch):
            if done == steps:
                return
            search.weight_step(x, y)
            done += 1
