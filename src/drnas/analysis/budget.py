"""Budget-constrained derivation (``drnas derive``; ``drnas train --arch RUN --max-params ...``): the most
probable architecture of a search run whose evaluation network fits a budget of parameters, multiply-
accumulates and, optionally, latency measured on this device.

**Probability.** A run leaves, per edge, the expected mixing weights of its strategy over the ops it kept (the
Dirichlet mean for DrNAS, the softmax of α for DARTS), in every ``metrics.jsonl`` line. Spaces with one op per
edge (NB201): an op's probability on an edge is its weight renormalised over the ops the derivation may pick
(kept, not ``excluded_from_derivation``), and an architecture's is the product over its edges. Spaces whose
nodes pick two inputs (DARTS): a node's choice of two incoming edges, one non-``none`` op each, scores the
product of the two weights, normalised over every such choice of that node; an architecture's probability is
the product over its nodes. The most probable node is then the space's own rule (its two edges with the
strongest non-``none`` weight), so without a budget the result is ``space.derive`` of the same weights.

**Cost.** The parameters (without the auxiliary head) and MACs of the evaluation network are a skeleton plus
one term per chosen (edge, op). The terms are measured on a few probe networks, each built by the space with
one op on many edges: every cell op is counted on its own at the input shape it sees in the network, and the
skeleton is the probe's exact count minus its ops. A latency budget adds a per-op latency table timed the same
way (an estimate only). The search runs on these sums; the architecture it returns is built and counted
exactly (and its latency measured), and a candidate whose exact numbers break the budget gives way to the next.

**Search.** When the distribution spans at most :data:`EXACT_LIMIT` architectures (NB201: 5^6 = 15,625) every
one is scored: the answer is exact, with its rank among all of them. Otherwise (DARTS: normal and reduction
cells, eight nodes) a beam search over the nodes keeps the ``beam`` most probable partial architectures whose
cheapest completion still fits.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import statistics
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from drnas.config.search import ConfigError
from drnas.data.formats import DatasetInfo
from drnas.errors import shown
from drnas.analysis.cost import count_macs, count_parameters
from drnas.engine.runs import RunDir, RunError
from drnas.analysis.sampling import load_parameters, search_config
from drnas.spaces import ArchitectureError, NetworkSpec, SearchSpace, get_space
from drnas.method.strategies import get_method
from drnas.train import TrainConfig, network_spec

#: the most architectures scored one by one (exact search); larger distributions are beam-searched
EXACT_LIMIT = 200_000
#: default beam width of the search over a DARTS-like space's nodes
DEFAULT_BEAM = 64
#: most candidates built and counted exactly (and timed, under a latency budget) before giving up
MAX_CHECKS = 20
#: latency measurement: untimed warm-up passes, then timed passes whose median is reported
WARMUP, REPEATS = 3, 10

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

    @classmethod
    def parse(cls, max_params: str | None = None, max_macs: str | None = None, max_latency_ms: str | None = None,
              latency_batch: str | None = None) -> "Budget":
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
                   parse_milliseconds(max_latency_ms) if max_latency_ms is not None else None, batch)

    @property
    def empty(self) -> bool:
        return self.params is None and self.macs is None and self.latency_ms is None

    def limits(self, dims: Sequence[str]) -> np.ndarray:
        """The bound of each cost dimension (inf where there is none)."""
        bound = {"params": self.params, "macs": self.macs, "latency_ms": self.latency_ms}
        return np.array([math.inf if bound[d] is None else float(bound[d]) for d in dims])  # type: ignore[arg-type]

    def describe(self) -> str:
        parts = [f"{format_size(self.params)} parameters" if self.params is not None else "",
                 f"{format_size(self.macs)} MACs" if self.macs is not None else "",
                 f"{self.latency_ms:g} ms at batch {self.latency_batch}" if self.latency_ms is not None else ""]
        return ", ".join(p for p in parts if p) or "none"

    def to_json(self) -> dict[str, Any]:
        return {"max_params": self.params, "max_macs": self.macs, "max_latency_ms": self.latency_ms,
                "latency_batch": self.latency_batch if self.latency_ms is not None else None}


# ------------------------------------------------------------------------------------------------ the run
@dataclass(frozen=True)
class LearnedWeights:
    """The distribution of one epoch of a search run: the strategy's expected mixing weights ``[edges, ops]``
    and which ops the derivation may pick on each edge."""

    run: Path
    space: SearchSpace
    method: str
    dataset: str
    epoch: int
    epochs: int
    weights: torch.Tensor
    allowed: torch.Tensor
    derived: str | None  # the run's own architecture (architecture.json), for the last epoch


def learned_weights(path: str | Path, epoch: int | None = None) -> LearnedWeights:
    """The distribution of epoch ``epoch`` (1-based; None: the last one written) of the search run at ``path``,
    finished or not. The strategy is rebuilt from the run's config and the architecture parameters kept in
    ``metrics.jsonl`` (as ``drnas sample`` does); runs that keep none give their ``architecture.json``'s means."""
    run = RunDir(path)
    run.require()
    saved = run.read_config()
    if saved.get("kind", "search") != "search":
        raise RunError(f"{run.path} is a training run: derive from a search run directory")
    config = search_config(run)
    space = get_space(config.space, config.ops)
    metrics = run.read_metrics()
    records = [r for r in metrics if "architecture_parameters" in r]
    arch_file = _architecture_file(run)
    if epoch is not None:
        chosen = [r for r in records if r["epoch"] == epoch]
        if not chosen:
            have = f"epochs 1..{records[-1]['epoch']}" if records else "no epoch keeps its architecture parameters"
            raise RunError(f"epoch {epoch} is not in {run.metrics} ({have})")
        records = chosen
    if records:
        record = records[-1]
        strategy = get_method(config.method)(space, config)
        load_parameters(strategy, record["architecture_parameters"])
        with torch.no_grad():
            weights = strategy.expected_weights().detach().float().cpu()
        kept = strategy.mask.cpu().clone()
        at = int(record["epoch"])
    elif arch_file is not None and arch_file.get("edges") and all("mean" in e for e in arch_file["edges"]):
        weights = torch.tensor([e["mean"] for e in arch_file["edges"]], dtype=torch.float32)
        kept = torch.tensor([[op in e["kept"] for op in space.ops] for e in arch_file["edges"]])
        at = int(arch_file.get("epochs_done", 0))
    else:
        raise RunError(f"{run.path} has no learned distribution yet (no epoch finished, or searched by an older "
                       "drnas): nothing to derive from")
    if tuple(weights.shape) != (space.num_edges, len(space.ops)):
        raise RunError(f"{run.path}: the kept architecture parameters have shape {tuple(weights.shape)}, the space "
                       f"{space.name} expects {(space.num_edges, len(space.ops))}")
    excluded = torch.tensor([op in space.excluded_from_derivation for op in space.ops])
    allowed = kept & ~excluded & (weights > 0)
    derived = None
    if arch_file is not None and (not metrics or metrics[-1].get("epoch") == at):  # it is of the last epoch
        arch = arch_file.get("architecture", {})
        derived = str(space.from_json(arch)) if isinstance(arch, dict) else None
    return LearnedWeights(run.path, space, config.method, config.dataset, at, config.epochs, weights, allowed,
                          derived)


def _architecture_file(run: RunDir) -> dict[str, Any] | None:
    """A run's ``architecture.json`` (None when it has none yet)."""
    if not run.architecture.exists():
        return None
    try:
        data = json.loads(run.architecture.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{run.architecture} could not be read ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise RunError(f"{run.architecture} is not a drnas architecture file (a JSON object)")
    return data


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


# ------------------------------------------------------------------------------------------------ costs
def evaluation_network(config: TrainConfig, info: DatasetInfo) -> tuple[NetworkSpec, tuple[int, ...]]:
    """The evaluation network's size under a training config (without the auxiliary head, which counts in
    neither the parameters a budget bounds nor the MACs) and its one-image input shape."""
    spec = network_spec(dataclasses.replace(config, auxiliary_weight=0.0), info)
    return spec, (1, info.channels, info.image_size, info.image_size)


def _sync(device: torch.device) -> None:
    backend = getattr(torch, device.type, None)
    if device.type != "cpu" and backend is not None and hasattr(backend, "synchronize"):
        backend.synchronize()


@torch.no_grad()
def measure_latency_ms(module: nn.Module, shape: Sequence[int], device: torch.device, warmup: int = WARMUP,
                       repeats: int = REPEATS) -> float:
    """Median wall time (ms) of an eval-mode forward pass of ``module`` on a random input of ``shape`` on
    ``device``, after ``warmup`` untimed passes. The module is moved to ``device``."""
    module.eval().to(device)
    x = torch.randn(tuple(shape), device=device)
    for _ in range(warmup):
        module(x)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        module(x)
        _sync(device)
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times)


def exact_cost(space: SearchSpace, arch: Any, spec: NetworkSpec, input_shape: Sequence[int]) -> tuple[int, int]:
    """Parameters (without the auxiliary head) and MACs of one image of ``arch``'s evaluation network."""
    net = space.build_network(arch, spec)
    return count_parameters(net, ("auxiliary",)), count_macs(net, tuple(input_shape))


@dataclass
class CostModel:
    """Additive cost of an evaluation network: ``base`` plus ``table[edge, op]`` for every chosen (edge, op),
    in the dimensions ``dims`` (``params``, ``macs`` and, when timed, ``latency_ms``)."""

    dims: tuple[str, ...]
    base: np.ndarray  # [dims]
    table: np.ndarray  # [edges, ops, dims]; nan for (edge, op) pairs not measured
    spec: NetworkSpec
    input_shape: tuple[int, ...]
    device: torch.device | None = None
    latency_batch: int = 1
    seconds: float = 0.0

    @classmethod
    def measure(cls, space: SearchSpace, allowed: torch.Tensor, spec: NetworkSpec, input_shape: Sequence[int],
                latency: tuple[torch.device, int] | None = None) -> "CostModel":
        """Measure the cost of every allowed (edge, op) on probe networks (see the module docstring);
        ``latency`` = (device, batch) adds a latency table timed there."""
        started = time.perf_counter()
        dims = ("params", "macs") + (("latency_ms",) if latency else ())
        table = np.full((space.num_edges, len(space.ops), len(dims)), np.nan)
        base = None
        cache: dict[tuple[Any, ...], tuple[int, float]] = {}  # (op, input shape, output shape) -> (MACs, ms)
        for op, probe in _probes(space, allowed):
            net = space.build_network(architecture_of(space, probe, probe.nonzero().tolist()), spec).eval()
            sites = list(space.network_edges(net))
            shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

            def record(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
                shapes.setdefault(id(module), (tuple(args[0].shape), tuple(out.shape)))

            hooks = [m.register_forward_hook(record) for _, m in sites]
            try:
                if base is None:
                    total = [count_parameters(net, ("auxiliary",)), count_macs(net, tuple(input_shape))]
                else:
                    with torch.no_grad():
                        net(torch.zeros(tuple(input_shape)))
            finally:
                for hook in hooks:
                    hook.remove()
            sums: dict[int, np.ndarray] = {}
            for edge, module in sites:
                cost = np.zeros(len(dims))
                cost[0] = count_parameters(module)
                if id(module) in shapes:  # a `none` op never runs
                    key = (space.ops[op],) + shapes[id(module)]
                    if key not in cache:
                        macs = count_macs(module, key[1]) if any(True for _ in module.parameters()) else 0
                        ms = (measure_latency_ms(module, (latency[1],) + key[1][1:], latency[0]) if latency else 0.0)
                        cache[key] = (macs, ms)
                    cost[1] = cache[key][0]
                    if latency:
                        cost[2] = cache[key][1]
                sums[edge] = sums.get(edge, 0) + cost
            for edge, cost in sums.items():
                table[edge, op] = cost
            if base is None:
                site_total = sum(sums.values())
                base = np.zeros(len(dims))
                base[:2] = np.array(total, dtype=float) - site_total[:2]
                if latency:
                    whole = measure_latency_ms(net, (latency[1],) + tuple(input_shape[1:]), latency[0])
                    base[2] = max(0.0, whole - site_total[2])
        if base is None:
            raise ArchitectureError("no op is left to derive from: every edge's kept ops are excluded")
        return cls(dims, base, table, spec, tuple(input_shape), latency[0] if latency else None,
                   latency[1] if latency else 1, time.perf_counter() - started)

    def option_costs(self, choice: Choice) -> np.ndarray:
        """``[options, dims]``: the cost each option of ``choice`` adds."""
        return np.array([sum((self.table[e, o] for e, o in picks), np.zeros(len(self.dims)))
                         for picks in choice.picks])


def _probes(space: SearchSpace, allowed: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """(op, weights) of probe architectures that together put every allowed (edge, op) into a network: one op on
    every edge (NB201), or on two edges of every node, taking the node's edges in turn (DARTS)."""
    out = []
    for op in sorted({o for _, o in allowed.nonzero().tolist()}):
        if space.one_op_per_edge:
            probe = torch.zeros(allowed.shape)
            probe[:, op] = 1.0
            out.append((op, probe))
            continue
        groups = space.edge_groups()
        for turn in range(max((len(g) + 1) // 2 for g in groups)):
            probe = torch.zeros(allowed.shape)
            for group in groups:
                for k in (2 * turn, 2 * turn + 1):
                    probe[group[k % len(group)], op] = 1.0
            out.append((op, probe))
    return out


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
    learned: LearnedWeights
    budget: Budget
    spec: NetworkSpec
    input_shape: tuple[int, ...]
    device: str | None
    seconds: float

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
            "latency": ({"batch": self.budget.latency_batch, "device": self.device, "warmup": WARMUP,
                         "repeats": REPEATS, "statistic": "median"} if self.latency_ms is not None else None),
            "estimate": self.estimate, "budget": self.budget.to_json(), "rank": self.rank,
            "architectures": self.architectures, "search": self.search, "beam_width": self.beam_width,
            "checked": self.checked, "run_architecture": self.learned.derived,
            "network": {"channels": spec.channels, "cells": spec.cells, "cells_per_stage": spec.cells_per_stage,
                        "in_channels": spec.in_channels, "num_classes": spec.num_classes,
                        "input_size": self.input_shape[-1]},
            "seconds": round(self.seconds, 3),
        }


def derive_within_budget(learned: LearnedWeights, budget: Budget, spec: NetworkSpec, input_shape: Sequence[int], *,
                         beam: int = DEFAULT_BEAM, device: torch.device | None = None,
                         costs: CostModel | None = None, max_checks: int = MAX_CHECKS) -> BudgetedArchitecture:
    """The most probable architecture of ``learned`` whose evaluation network (``spec``, one image of
    ``input_shape``) fits ``budget`` by exact count (and, for latency, by measurement on ``device``, default the
    CPU). Raises :class:`ConfigError` when no architecture fits, giving the smallest achievable numbers."""
    started = time.perf_counter()
    if beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {beam}")
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
        latency = (device, budget.latency_batch) if budget.latency_ms is not None else None
        model = costs if costs is not None else CostModel.measure(space, learned.allowed, spec, input_shape, latency)
        dims, base = model.dims, model.base
        costs_per = [model.option_costs(c) for c in found]
    limit = budget.limits(dims)
    size = math.prod(len(o) for o in options)
    ranked = (_exact(options, costs_per, base, limit) if size <= EXACT_LIMIT
              else _beam(options, costs_per, base, limit, beam))
    if len(ranked.logp) == 0:
        raise ConfigError(_unsatisfiable(learned, budget, found, costs_per, base, dims, spec, input_shape))
    rejected: list[str] = []
    for i in range(min(len(ranked.logp), max_checks)):
        picks = [p for c, j in zip(found, ranked.rows[i]) for p in c.picks[j]]
        arch = architecture_of(space, learned.weights, picks)
        params, macs = exact_cost(space, arch, spec, input_shape)
        latency_ms = None
        fits = (budget.params is None or params <= budget.params) and (budget.macs is None or macs <= budget.macs)
        if fits and budget.latency_ms is not None:
            net = space.build_network(arch, spec)
            latency_ms = measure_latency_ms(net, (budget.latency_batch,) + input_shape[1:], device)
            fits = latency_ms <= budget.latency_ms
        if fits:
            estimate = dict(zip(dims, map(float, ranked.cost[i]))) if dims else None
            return BudgetedArchitecture(
                arch, float(ranked.logp[i]), params, macs, latency_ms, estimate,
                int(ranked.rank[i]) if ranked.rank is not None else None, ranked.total, i + 1,
                "exact" if ranked.rank is not None else "beam", None if ranked.rank is not None else beam,
                learned, budget, spec, input_shape, str(device) if budget.latency_ms is not None else None,
                time.perf_counter() - started)
        rejected.append(f"{format_size(params)} parameters, {format_size(macs)} MACs"
                        + (f", {latency_ms:.3g} ms" if latency_ms is not None else ""))
    tried = min(len(ranked.logp), max_checks)
    raise ConfigError(f"none of the {tried} most probable architectures that fit the budget ({budget.describe()}) "
                      f"by the per-op estimate fits it when built and "
                      f"{'measured' if budget.latency_ms is not None else 'counted'} (the most probable: "
                      f"{rejected[0]}): loosen the budget"
                      + (" or measure on a quieter device" if budget.latency_ms is not None else ""))


def _unsatisfiable(learned: LearnedWeights, budget: Budget, found: list[Choice], costs_per: list[np.ndarray],
                   base: np.ndarray, dims: tuple[str, ...], spec: NetworkSpec, input_shape: tuple[int, ...]) -> str:
    """The message for a budget no architecture meets: the smallest network in each dimension, counted exactly
    for parameters and MACs."""
    smallest = []
    for d, name in enumerate(dims):
        picks = [p for c, cost in zip(found, costs_per) for p in c.picks[int(np.argmin(cost[:, d]))]]
        if name == "latency_ms":
            smallest.append(f"about {base[d] + sum(cost[:, d].min() for cost in costs_per):.3g} ms "
                            f"(per-op estimate at batch {budget.latency_batch})")
            continue
        arch = architecture_of(learned.space, learned.weights, picks)
        exact = exact_cost(learned.space, arch, spec, input_shape)[d]
        smallest.append(f"{format_size(exact)} {'parameters' if name == 'params' else 'MACs'}")
    return (f"no architecture of {learned.run} fits the budget ({budget.describe()}): the smallest achievable "
            f"network has {' and '.join(smallest)} (each on its own): raise the budget or give a smaller network "
            "(--channels, --cells)")
