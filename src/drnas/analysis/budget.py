"""Budget-constrained derivation (``drnas derive``; ``drnas train --arch RUN --max-params ...``): the most
probable architecture of a search run whose evaluation network fits a budget of parameters, multiply-
accumulates and, optionally, latency measured on this device.

**Probability.** A run leaves, per edge, the expected mixing weights of its strategy over the ops it kept (the
Dirichlet mean for DrNAS, the softmax of α for DARTS), read back by :class:`drnas.analysis.learned.LearnedDistribution`.
Spaces with one op per edge (NB201): an op's probability on an edge is its weight renormalised over the ops the
derivation may pick (kept, not ``excluded_from_derivation``), and an architecture's is the product over its edges.
Spaces whose nodes pick two inputs (DARTS): a node's choice of two incoming edges, one non-``none`` op each,
scores the product of the two weights, normalised over every such choice of that node; an architecture's
probability is the product over its nodes. The most probable node is then the space's own rule (its two edges
with the strongest non-``none`` weight), so without a budget the result is ``space.derive`` of the same weights.

**Cost.** The parameters (without the auxiliary head) and MACs of the evaluation network, and optionally its
latency, are estimated by the additive per-op model of :class:`drnas.analysis.cost.CostModel`. The search runs
on these sums; the architecture it returns is built and counted exactly (and its latency measured), and a
candidate whose exact numbers break the budget gives way to the next.

**Search.** When the distribution spans at most :data:`EXACT_LIMIT` architectures (NB201: 5^6 = 15,625) every
one is scored: the answer is exact, with its rank among all of them. Otherwise (DARTS: normal and reduction
cells, eight nodes) a beam search over the nodes keeps the ``beam`` most probable partial architectures whose
cheapest completion still fits.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from drnas.analysis.cost import REPEATS, WARMUP, CostModel, exact_cost, measure_latency_ms, network_spec
from drnas.analysis.cost_table import OpCosts
from drnas.analysis.learned import LearnedDistribution
from drnas.config.search import ConfigError
from drnas.config.train import TrainConfig
from drnas.data.formats import dataset_shape, shaped_datasets, streams_folders
from drnas.data.info import DatasetInfo
from drnas.engine.distributed import resolve_device
from drnas.errors import shown
from drnas.spaces import ArchitectureError, NetworkSpec, SearchSpace

#: the most architectures scored one by one (exact search); larger distributions are beam-searched
EXACT_LIMIT = 200_000
#: default beam width of the search over a DARTS-like space's nodes
DEFAULT_BEAM = 64
#: most candidates built and counted exactly (and timed, under a latency budget) before giving up
MAX_CHECKS = 20

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?"
_SIZE = re.compile(rf"({_NUMBER})\s*([kKmMgG]?)")
_MILLISECONDS = re.compile(rf"({_NUMBER})\s*(?:ms)?")
_MULTIPLIER = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
MAX_SIZE = 10**15


# ------------------------------------------------------------------------------------------------ the budget
def parse_size(text: str, flag: str = "--max-params") -> int:
    """A count written as ``3.5M``, ``600M``, ``2e6``, ``1.2G``, ``500k`` or ``1500000`` (suffixes k, M, G in
    either case: thousands, millions, billions). Parsed by a regular expression, never evaluated."""
    match = _SIZE.fullmatch(text.strip()) if isinstance(text, str) and len(text) <= 40 else None
    if match is None:
        raise ConfigError(f"{flag} {shown(text)} is not a count: write a number with an optional k, M or G suffix, "
                          "e.g. 3.5M, 600M, 2e6, 1.2G or 500k")
    value = float(match.group(1)) * _MULTIPLIER[match.group(2).lower()]
    if not 1 <= value <= MAX_SIZE:
        raise ConfigError(f"{flag} {shown(text)} is out of range: give a count from 1 to 1e15, e.g. 3.5M")
    return int(round(value))


def parse_milliseconds(text: str, flag: str = "--max-latency-ms") -> float:
    """A positive duration in milliseconds (``5``, ``2.5``, ``0.8ms``)."""
    match = _MILLISECONDS.fullmatch(text.strip()) if isinstance(text, str) and len(text) <= 40 else None
    value = float(match.group(1)) if match else math.nan
    if not 0 < value <= 1e7:
        raise ConfigError(f"{flag} {shown(text)} is not a latency: give milliseconds above 0, e.g. 5 or 2.5")
    return value


def parse_cost(text: str, flag: str = "--max-cost") -> float:
    """A positive bound in a cost table column's own unit (``12.5``, ``3e2``)."""
    match = re.fullmatch(_NUMBER, text.strip()) if isinstance(text, str) and len(text) <= 40 else None
    value = float(match.group(0)) if match else math.nan
    if not 0 < value < math.inf:
        raise ConfigError(f"{flag} {shown(text)} is not a cost bound: give a number above 0 in the column's unit, "
                          "e.g. 12.5")
    return value


def format_size(value: float) -> str:
    """``3500000`` -> ``3.5M`` (the inverse of :func:`parse_size`, for messages)."""
    for suffix, unit in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= unit:
            return f"{value / unit:.4g}{suffix}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Budget:
    """Upper bounds on the evaluation network (None: no bound). ``latency_ms`` is measured at
    ``latency_batch`` images per pass on the device the derivation is given."""

    params: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    latency_batch: int = 1
    cost: float | None = None  # a bound on a cost table's column (--max-cost), in its unit
    table: str | None = None  # the cost table pricing latency_ms or cost (OpCosts.describe); None: latency measured

    @classmethod
    def parse(cls, max_params: str | None = None, max_macs: str | None = None, max_latency_ms: str | None = None,
              latency_batch: str | None = None, max_cost: str | None = None) -> Budget:
        """A budget from the command line's strings (one-line :class:`ConfigError` on a bad one)."""
        batch = 1
        if latency_batch is not None:
            if max_latency_ms is None:
                raise ConfigError("--latency-batch sets the batch of the --max-latency-ms budget: give "
                                  "--max-latency-ms too")
            if not re.fullmatch(r"\d{1,6}", latency_batch.strip()) or not 1 <= int(latency_batch) <= 65536:
                raise ConfigError(f"--latency-batch {shown(latency_batch)} must be a whole number of images from "
                                  "1 to 65536, e.g. 1 or 64")
            batch = int(latency_batch)
        return cls(parse_size(max_params, "--max-params") if max_params is not None else None,
                   parse_size(max_macs, "--max-macs") if max_macs is not None else None,
                   parse_milliseconds(max_latency_ms) if max_latency_ms is not None else None, batch,
                   parse_cost(max_cost) if max_cost is not None else None)

    @property
    def empty(self) -> bool:
        return self.params is None and self.macs is None and self.latency_ms is None and self.cost is None

    def limits(self, dims: Sequence[str]) -> np.ndarray:
        """The bound of each cost dimension (inf where there is none)."""
        bound = {"params": self.params, "macs": self.macs, "latency_ms": self.latency_ms, "cost": self.cost}
        return np.array([math.inf if bound[d] is None else float(bound[d]) for d in dims])  # type: ignore[arg-type]

    def describe(self) -> str:
        parts = [f"{format_size(self.params)} parameters" if self.params is not None else "",
                 f"{format_size(self.macs)} MACs" if self.macs is not None else "",
                 "" if self.latency_ms is None else f"{self.latency_ms:g} ms " + (
                     f"by {self.table}" if self.table else f"at batch {self.latency_batch}"),
                 f"{self.cost:g} by {self.table}" if self.cost is not None else ""]
        return ", ".join(p for p in parts if p) or "none"

    def to_json(self) -> dict[str, Any]:
        return {"max_params": self.params, "max_macs": self.macs, "max_latency_ms": self.latency_ms,
                "latency_batch": self.latency_batch if self.latency_ms is not None and not self.table else None,
                "max_cost": self.cost, "cost_table": self.table}


# ------------------------------------------------------------------------------------------------ choices
@dataclass(frozen=True)
class Choice:
    """One independent decision of the derivation: an edge's op (NB201) or a node's two inputs with their ops
    (DARTS). Option ``i`` sets the (edge, op) pairs ``picks[i]``; ``logp[i]`` is its log-probability."""

    picks: tuple[tuple[tuple[int, int], ...], ...]
    logp: np.ndarray


def choices(space: SearchSpace, weights: torch.Tensor, allowed: torch.Tensor) -> list[Choice]:
    """The decisions an architecture of ``space`` is made of, scored by ``weights`` (see the module docstring).
    Options are listed edge-major, then by op index: among options of equal probability the first is the one
    ``space.derive`` picks."""
    w = weights.double().numpy()
    ok = allowed.numpy()
    out: list[Choice] = []
    if space.one_op_per_edge:
        for edge in range(space.num_edges):
            ops = np.flatnonzero(ok[edge])
            if len(ops) == 0:
                raise ArchitectureError(f"edge {space.edge_names()[edge]} keeps no op the derivation may pick")
            logp = np.log(w[edge, ops]) - math.log(w[edge, ops].sum())
            out.append(Choice(tuple(((edge, int(o)),) for o in ops), logp))
        return out
    for group in space.edge_groups():
        strength = {e: float(w[e, ok[e]].sum()) for e in group}
        usable = [e for e in group if strength[e] > 0]
        if len(usable) < 2:
            names = [space.edge_names()[e] for e in group]
            raise ArchitectureError(f"the node of edges {', '.join(names)} has fewer than two incoming edges with a "
                                    "kept op the derivation may pick")
        log_z = math.log(sum(strength[a] * strength[b] for a, b in combinations(usable, 2)))
        picks, logp = [], []
        for a, b in combinations(usable, 2):
            for oa in np.flatnonzero(ok[a]):
                for ob in np.flatnonzero(ok[b]):
                    picks.append(((a, int(oa)), (b, int(ob))))
                    logp.append(math.log(w[a, oa]) + math.log(w[b, ob]) - log_z)
        out.append(Choice(tuple(picks), np.array(logp)))
    return out


def architecture_of(space: SearchSpace, weights: torch.Tensor, picks: Sequence[tuple[int, int]]) -> Any:
    """The architecture that makes the (edge, op) choices ``picks``, built by the space's own rule: ``derive``
    of weights that keep only the chosen entries (at their learned values, so a DARTS node lists its stronger
    input first, as the space does)."""
    chosen = torch.zeros_like(weights)
    for edge, op in picks:
        chosen[edge, op] = weights[edge, op]
    return space.derive(chosen)


# ------------------------------------------------------------------------------------------------ the network
def evaluation_network(config: TrainConfig, info: DatasetInfo) -> tuple[NetworkSpec, tuple[int, ...]]:
    """The evaluation network's size under a training config (without the auxiliary head, which counts in
    neither the parameters a budget bounds nor the MACs) and its one-image input shape."""
    spec = network_spec(dataclasses.replace(config, auxiliary_weight=0.0), info)
    return spec, (1, info.channels, info.image_size, info.image_size)


# ------------------------------------------------------------------------------------------------ search
@dataclass
class _Ranked:
    """Candidates (one option index per choice), most probable first, with their estimated costs."""

    rows: np.ndarray  # [n, choices]
    logp: np.ndarray  # [n]
    cost: np.ndarray  # [n, dims]
    rank: np.ndarray | None  # [n] 1-based rank among every architecture without the budget (exact search)
    total: int | None  # architectures the distribution spans (exact search)


def _exact(options: list[np.ndarray], costs: list[np.ndarray], base: np.ndarray, limit: np.ndarray) -> _Ranked:
    """Score every combination of options; keep those whose estimated cost fits ``limit``."""
    rows = np.zeros((1, 0), dtype=np.int64)
    logp = np.zeros(1)
    cost = base[None, :].copy()
    for lp, c in zip(options, costs):
        n, k = len(logp), len(lp)
        rows = np.concatenate([np.repeat(rows, k, axis=0), np.tile(np.arange(k), n)[:, None]], axis=1)
        logp = (logp[:, None] + lp[None, :]).reshape(-1)
        cost = (cost[:, None, :] + c[None, :, :]).reshape(n * k, -1)
    order = np.lexsort(tuple(rows[:, j] for j in reversed(range(rows.shape[1]))) + (-logp,))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    fits = np.all(cost <= limit, axis=1)
    keep = order[fits[order]]
    return _Ranked(rows[keep], logp[keep], cost[keep], rank[keep], len(order))


def _beam(options: list[np.ndarray], costs: list[np.ndarray], base: np.ndarray, limit: np.ndarray,
          width: int) -> _Ranked:
    """Beam search over the choices: after each one keep the ``width`` most probable partial architectures
    whose cheapest completion (per cost dimension) still fits ``limit``."""
    cheapest = [c.min(axis=0) for c in costs]
    rest = [np.sum(cheapest[i:], axis=0) if i < len(cheapest) else np.zeros_like(base) for i in range(len(costs) + 1)]
    rows = np.zeros((1, 0), dtype=np.int64)
    logp = np.zeros(1)
    cost = base[None, :].copy()
    for i, (lp, c) in enumerate(zip(options, costs)):
        total = logp[:, None] + lp[None, :]
        spent = cost[:, None, :] + c[None, :, :]
        state, option = np.nonzero(np.all(spent + rest[i + 1] <= limit, axis=-1))
        keep = np.lexsort((option, state, -total[state, option]))[:width]  # none left: nothing fits
        state, option = state[keep], option[keep]
        rows = np.concatenate([rows[state], option[:, None]], axis=1)
        logp, cost = total[state, option], spent[state, option]
    return _Ranked(rows, logp, cost, None, None)


# ------------------------------------------------------------------------------------------------ derivation
@dataclass(frozen=True)
class BudgetedArchitecture:
    """The answer of :func:`derive_within_budget`."""

    arch: Any
    log_probability: float
    params: int  # exact, without the auxiliary head
    macs: int  # exact, one image
    latency_ms: float | None  # measured on ``device`` at the budget's batch (None without a latency budget)
    estimate: dict[str, float] | None  # the additive model's numbers (None without a budget: not needed)
    rank: int | None  # among every architecture of the distribution without the budget (exact search only)
    architectures: int | None  # how many architectures the distribution spans (exact search only)
    checked: int  # candidates built and counted before one fitted
    search: str  # "exact" or "beam"
    beam_width: int | None
    learned: LearnedDistribution
    budget: Budget
    spec: NetworkSpec
    input_shape: tuple[int, ...]
    device: str | None
    seconds: float
    cost: float | None = None  # the cost table's value for --max-cost (exact: the table is additive)
    cost_table: OpCosts | None = None  # the table pricing latency_ms or cost, if any

    @property
    def probability(self) -> float:
        return math.exp(self.log_probability)

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "run": str(self.learned.run), "epoch": self.learned.epoch, "method": self.learned.method,
            "space": self.arch.space, "text": str(self.arch), "architecture": self.arch.to_json(),
            "probability": self.probability, "log_probability": self.log_probability,
            "params": self.params, "macs": self.macs, "latency_ms": self.latency_ms,
            "latency": (None if self.latency_ms is None else {"cost_table": self.cost_table.source,
                                                                "column": self.cost_table.column}
                        if self.cost_table is not None else {"batch": self.budget.latency_batch, "device": self.device,
                                                             "warmup": WARMUP, "repeats": REPEATS,
                                                             "statistic": "median"}),
            "cost": self.cost,
            "cost_table": ({"source": self.cost_table.source, "column": self.cost_table.column,
                            "fit": self.cost_table.fit.to_json() if self.cost_table.fit else None}
                           if self.cost_table is not None else None),
            "estimate": self.estimate, "budget": self.budget.to_json(), "rank": self.rank,
            "architectures": self.architectures, "search": self.search, "beam_width": self.beam_width,
            "checked": self.checked, "run_architecture": self.learned.derived,
            "network": {"channels": spec.channels, "cells": spec.cells, "cells_per_stage": spec.cells_per_stage,
                        "in_channels": spec.in_channels, "num_classes": spec.num_classes,
                        "input_size": self.input_shape[-1]},
            "seconds": round(self.seconds, 3),
        }


def derive_within_budget(learned: LearnedDistribution, budget: Budget, spec: NetworkSpec, input_shape: Sequence[int], *,
                         beam: int = DEFAULT_BEAM, device: torch.device | None = None,
                         costs: CostModel | None = None, max_checks: int = MAX_CHECKS,
                         table: OpCosts | None = None) -> BudgetedArchitecture:
    """The most probable architecture of ``learned`` whose evaluation network (``spec``, one image of
    ``input_shape``) fits ``budget`` by exact count (and, for latency, by measurement on ``device``, default the
    CPU). Raises :class:`ConfigError` when no architecture fits, giving the smallest achievable numbers.

    ``table`` (a cost table of the run's space, :mod:`drnas.analysis.cost_table`) prices the budget's latency
    instead of measuring it, or its ``cost`` bound (``--max-cost``): its per-op sum is the architecture's value."""
    started = time.perf_counter()
    if beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {beam}")
    if budget.cost is not None and table is None:
        raise ConfigError("--max-cost bounds a column of a cost table: give --cost-table FILE:COLUMN too")
    if table is not None:
        if (budget.latency_ms is None) == (budget.cost is None):
            raise ConfigError("a cost table prices one bound: give either --max-latency-ms (a *_ms column) or "
                              "--max-cost (any column) with --cost-table")
        budget = dataclasses.replace(budget, table=table.describe())
    space, input_shape = learned.space, tuple(input_shape)
    device = device if device is not None else torch.device("cpu")
    found = choices(space, learned.weights, learned.allowed)
    options = [c.logp for c in found]
    if budget.empty:
        model = None
        dims: tuple[str, ...] = ()
        costs_per = [np.zeros((len(c.picks), 0)) for c in found]
        base = np.zeros(0)
    else:
        latency = (device, budget.latency_batch) if budget.latency_ms is not None and table is None else None
        model = costs if costs is not None else CostModel.measure(space, learned.allowed, spec, input_shape, latency)
        if table is not None:  # the table's column as one more dimension of the additive model
            model = dataclasses.replace(
                model, dims=model.dims + ("latency_ms" if budget.latency_ms is not None else "cost",),
                base=np.append(model.base, table.constant),
                table=np.concatenate([model.table, table.matrix.numpy()[:, :, None]], axis=-1))
        dims, base = model.dims, model.base
        costs_per = [model.option_costs(c.picks) for c in found]
    limit = budget.limits(dims)
    size = math.prod(len(o) for o in options)
    ranked = (_exact(options, costs_per, base, limit) if size <= EXACT_LIMIT
              else _beam(options, costs_per, base, limit, beam))
    if len(ranked.logp) == 0:
        raise ConfigError(_unsatisfiable(learned, budget, found, costs_per, base, dims, spec, input_shape, table))
    rejected: list[str] = []
    for i in range(min(len(ranked.logp), max_checks)):
        picks = [p for c, j in zip(found, ranked.rows[i]) for p in c.picks[j]]
        arch = architecture_of(space, learned.weights, picks)
        params, macs = exact_cost(space, arch, spec, input_shape)
        latency_ms = None
        priced = None
        if table is not None:  # the table's own value of the architecture, else its per-op sum (exact when additive)
            priced = float(ranked.cost[i][-1])
            priced = table.lookup.get(str(arch), priced) if table.lookup else priced
            latency_ms = priced if budget.latency_ms is not None else None
        fits = (budget.params is None or params <= budget.params) and (budget.macs is None or macs <= budget.macs)
        if table is not None:
            fits = fits and priced <= (budget.latency_ms if budget.latency_ms is not None else budget.cost)
        if fits and budget.latency_ms is not None and table is None:
            net = space.build_network(arch, spec)
            latency_ms = measure_latency_ms(net, (budget.latency_batch,) + input_shape[1:], device)
            fits = latency_ms <= budget.latency_ms
        if fits:
            estimate = dict(zip(dims, map(float, ranked.cost[i]))) if dims else None
            return BudgetedArchitecture(
                arch, float(ranked.logp[i]), params, macs, latency_ms, estimate,
                int(ranked.rank[i]) if ranked.rank is not None else None, ranked.total, i + 1,
                "exact" if ranked.rank is not None else "beam", None if ranked.rank is not None else beam,
                learned, budget, spec, input_shape,
                str(device) if budget.latency_ms is not None and table is None else None,
                time.perf_counter() - started, priced if budget.cost is not None else None, table)
        rejected.append(f"{format_size(params)} parameters, {format_size(macs)} MACs"
                        + (f", {latency_ms:.3g} ms" if latency_ms is not None else "")
                        + (f", {priced:.4g} {table.column}" if table is not None and budget.cost is not None else ""))
    tried = min(len(ranked.logp), max_checks)
    raise ConfigError(f"none of the {tried} most probable architectures that fit the budget ({budget.describe()}) "
                      f"by the per-op estimate fits it when built and "
                      f"{'measured' if budget.latency_ms is not None and table is None else 'counted'} (the most "
                      f"probable: {rejected[0]}): loosen the budget"
                      + (" or measure on a quieter device" if budget.latency_ms is not None and table is None else ""))


def _unsatisfiable(learned: LearnedDistribution, budget: Budget, found: list[Choice], costs_per: list[np.ndarray],
                   base: np.ndarray, dims: tuple[str, ...], spec: NetworkSpec, input_shape: tuple[int, ...],
                   table: OpCosts | None = None) -> str:
    """The message for a budget no architecture meets: the smallest network in each dimension, counted exactly
    for parameters and MACs."""
    smallest = []
    for d, name in enumerate(dims):
        picks = [p for c, cost in zip(found, costs_per) for p in c.picks[int(np.argmin(cost[:, d]))]]
        if name in ("latency_ms", "cost"):
            least = base[d] + sum(cost[:, d].min() for cost in costs_per)
            smallest.append(f"{least:.4g} {table.column} by the cost table" if table is not None else
                            f"about {least:.3g} ms (per-op estimate at batch {budget.latency_batch})")
            continue
        arch = architecture_of(learned.space, learned.weights, picks)
        exact = exact_cost(learned.space, arch, spec, input_shape)[d]
        smallest.append(f"{format_size(exact)} {'parameters' if name == 'params' else 'MACs'}")
    return (f"no architecture of {learned.run} fits the budget ({budget.describe()}): the smallest achievable "
            f"network has {' and '.join(smallest)} (each on its own): raise the budget or give a smaller network "
            "(--channels, --cells)")


def derive_for_training(run: str | Path, config: TrainConfig, budget: Budget) -> BudgetedArchitecture:
    """The most probable architecture of the search run ``run`` that fits ``budget`` at the network size the
    training ``config`` trains (``drnas train --arch RUN --max-params ...``); a latency budget is measured on the
    config's device."""
    if budget.latency_ms is not None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise ConfigError("--max-latency-ms measures on each process's device, which could pick different "
                          "architectures: run `drnas derive RUN --max-latency-ms ...` first and train what it prints")
    if config.dataset not in shaped_datasets():
        raise ConfigError(f"a budget counts the network of a dataset of known shape ({', '.join(shaped_datasets())}); "
                          f"{config.dataset} is not one: derive with `drnas derive RUN --dataset D` and train that")
    info = dataset_shape(config.dataset)
    if streams_folders(config.dataset) and config.image_size is not None:  # decoded at the config's size
        info = dataclasses.replace(info, image_size=config.image_size)
    spec, shape = evaluation_network(config, info)
    device = resolve_device(config.device) if budget.latency_ms is not None else None
    return derive_within_budget(LearnedDistribution.from_run(run), budget, spec, shape, device=device)
