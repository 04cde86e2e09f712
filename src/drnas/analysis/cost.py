"""What an evaluation network costs: its parameters and multiply-accumulates, the way NAS papers report them,
its latency on a device, and the additive per-op model a budgeted derivation searches on (:mod:`drnas.analysis.budget`).

**The additive model** (:class:`CostModel`). The parameters (without the auxiliary head) and MACs of an evaluation
network are a skeleton plus one term per chosen (edge, op). The terms are measured on a few probe networks, each
built by the space with one op on many edges: every cell op is counted on its own at the input shape it sees in
the network, and the skeleton is the probe's exact count minus its ops. A latency budget adds a per-op latency
table timed the same way (an estimate only: a derivation measures the architecture it returns).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from drnas.config.train import TrainConfig
from drnas.data.info import DatasetInfo
from drnas.errors import ConfigError
from drnas.fast.settings import PLAIN, using
from drnas.spaces import ArchitectureError, NetworkSpec, SearchSpace, get_space

#: latency measurement: untimed warm-up passes, then timed passes whose median is reported
WARMUP, REPEATS = 3, 10


# ------------------------------------------------------------------------------------------------ counts
def count_parameters(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    """Number of parameters, leaving out those whose name contains any of ``exclude``."""
    return sum(p.numel() for name, p in model.named_parameters() if not any(e in name for e in exclude))


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one eval-mode forward pass (convolutions and linear layers).

    Pooling is not counted. Uses ``torch.utils.flop_counter`` (which counts 2 FLOPs per MAC) on a zero input on the model's device.
    """
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with using(PLAIN), FlopCounterMode(display=False) as counter:  # fast paths can count differently
            model(torch.zeros(input_shape, device=parameter.device, dtype=parameter.dtype))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


# ------------------------------------------------------------------------------------------------ latency, per-op model
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
                latency: tuple[torch.device, int] | None = None, repeats: int = REPEATS,
                progress: Callable[[str, np.ndarray], None] | None = None) -> CostModel:
        """Measure the cost of every allowed (edge, op) on probe networks (see the module docstring);
        ``latency`` = (device, batch) adds a latency table timed there (median of ``repeats`` passes).
        ``progress(op, costs)`` is called after each probe with the op's summed costs ``[edges, dims]``."""
        started = time.perf_counter()
        dims = ("params", "macs") + (("latency_ms",) if latency else ())
        table = np.full((space.num_edges, len(space.ops), len(dims)), np.nan)
        base = None
        cache: dict[tuple[Any, ...], tuple[int, float]] = {}  # (op, input shape, output shape) -> (MACs, ms)
        for op, probe in _probes(space, allowed):
            net = space.build_network(space.derive(probe), spec).eval()
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
                        ms = (measure_latency_ms(module, (latency[1],) + key[1][1:], latency[0], repeats=repeats)
                              if latency else 0.0)
                        cache[key] = (macs, ms)
                    cost[1] = cache[key][0]
                    if latency:
                        cost[2] = cache[key][1]
                sums[edge] = sums.get(edge, 0) + cost
            for edge, cost in sums.items():
                table[edge, op] = cost
            if progress is not None:
                progress(space.ops[op], np.array([sums.get(e, np.zeros(len(dims))) for e in range(space.num_edges)]))
            if base is None:
                site_total = sum(sums.values())
                base = np.zeros(len(dims))
                base[:2] = np.array(total, dtype=float) - site_total[:2]
                if latency:
                    whole = measure_latency_ms(net, (latency[1],) + tuple(input_shape[1:]), latency[0], repeats=repeats)
                    base[2] = max(0.0, whole - site_total[2])
        if base is None:
            raise ArchitectureError("no op is left to derive from: every edge's kept ops are excluded")
        return cls(dims, base, table, spec, tuple(input_shape), latency[0] if latency else None,
                   latency[1] if latency else 1, time.perf_counter() - started)

    def option_costs(self, options: Sequence[Sequence[tuple[int, int]]]) -> np.ndarray:
        """``[options, dims]``: the cost each option adds, an option being the (edge, op) pairs it sets."""
        return np.array([sum((self.table[e, o] for e, o in picks), np.zeros(len(self.dims))) for picks in options])


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


def network_spec(config: TrainConfig, info: DatasetInfo, space: str | None = None) -> NetworkSpec:
    """The evaluation network's size; with ``space``, an auxiliary head only where that space has one."""
    auxiliary = config.auxiliary_weight > 0 and (space is None or "auxiliary_weight" in get_space(space).network_fields)
    aux_size = info.image_size // (32 if info.image_size > 64 else 4)  # resolution after the second reduction
    if auxiliary and aux_size < 5:
        raise ConfigError(f"the auxiliary head needs at least 5x5 features at 2/3 depth, but {info.image_size}px "
                          f"images give {aux_size}x{aux_size}: use --set auxiliary_weight=0")
    return NetworkSpec(channels=config.channels, cells=config.cells, cells_per_stage=config.cells_per_stage,
                       in_channels=info.channels, num_classes=info.num_classes,
                       auxiliary=auxiliary, imagenet_stem=info.image_size > 64)


def model_report(model: torch.nn.Module, info: DatasetInfo) -> dict[str, Any]:
    """Parameters with and without the auxiliary head, and MACs of one image (auxiliary head excluded)."""
    return {"params": count_parameters(model), "params_without_aux": count_parameters(model, ("auxiliary",)),
            "macs": count_macs(model, (1, info.channels, info.image_size, info.image_size))}
