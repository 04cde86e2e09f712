"""An op-level latency table measured on the device at hand (``drnas latency``), and how well its sums predict
the measured latency of whole networks.

:func:`measure_op_costs` times every op of the space at the input shape each edge gives it in the evaluation
network, by :meth:`drnas.analysis.cost.CostModel.measure` (eval-mode forward passes, warm-up, median of repeats):
``matrix[edge, op]`` sums that op's time over the cells sharing the edge, and the constant is the rest of a whole
network (stem, reductions, head) timed the same way. Ops timed alone miss what a cell adds around them (the sums
of a node's inputs, the dispatch of each module): in a space with one op per edge the network with one op on
every edge is timed too, and the difference to the table's sum is shared out over that op's edges, so that the
table is exact (up to timing noise) on these probe networks (on this CPU it took the mean error on 50 random
NB201 networks from 18% to 4%). :func:`check_op_costs` draws random architectures,
builds and times each network, and compares with the table's prediction.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from drnas.analysis.cost import REPEATS, WARMUP, CostModel, measure_latency_ms
from drnas.analysis.cost_table import OpCosts
from drnas.analysis.ranks import kendall, spearman
from drnas.spaces import NetworkSpec, SearchSpace
from drnas.spaces.ops import is_zero_op


def latency_column(device: torch.device, batch: int) -> str:
    """The column name of a table timed on ``device`` at ``batch`` images per pass: ``cpu_1_ms``, ``cuda_64_ms``
    (as the NB201 latency file names its devices: ``1080ti_1_ms``)."""
    return f"{device.type}_{batch}_ms"


def measure_op_costs(space: SearchSpace, spec: NetworkSpec, input_shape: Sequence[int], device: torch.device,
                     batch: int = 1, repeats: int = REPEATS, source: str = "",
                     progress: Callable[[str, np.ndarray], None] | None = None) -> OpCosts:
    """The latency (ms per forward pass of ``batch`` images on ``device``) of every (edge, op) of ``space`` in the
    evaluation network ``spec`` with one-image input ``input_shape``, and the network's fixed parts as the
    constant. ``progress(op, ms per edge)`` is called after each op is timed."""
    allowed = torch.ones(space.num_edges, len(space.ops), dtype=torch.bool)
    hook = None if progress is None else (lambda op, costs: progress(op, costs[:, -1]))
    model = CostModel.measure(space, allowed, spec, input_shape, (device, batch), repeats=repeats, progress=hook)
    matrix = np.nan_to_num(model.table[:, :, -1], nan=0.0)  # every op measured; a `none` edge never runs
    constant = float(model.base[-1])
    if space.one_op_per_edge:  # each op's share of the cell's own overhead, from the network of that op everywhere
        shape = (batch,) + tuple(input_shape[1:])
        for op in range(len(space.ops)):
            if is_zero_op(space.ops[op]):  # never runs: the constant was timed on its network
                continue
            probe = torch.zeros(space.num_edges, len(space.ops))
            probe[:, op] = 1.0
            whole = measure_latency_ms(space.build_network(space.derive(probe), spec), shape, device, repeats=repeats)
            share = (whole - constant - matrix[:, op].sum()) / space.num_edges
            matrix[:, op] += max(share, 0.0)  # a cell adds time around its ops; less than none is timing noise
    return OpCosts(latency_column(device, batch), torch.from_numpy(matrix), constant, source)


@dataclass(frozen=True)
class LatencyCheck:
    """Predicted against measured end-to-end latency of random architectures."""

    archs: list[str]
    predicted_ms: list[float]
    measured_ms: list[float]
    spearman: float
    kendall: float
    mean_relative_error: float  # mean |predicted - measured| / measured
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"architectures": len(self.archs), "spearman": self.spearman, "kendall": self.kendall,
                "mean_relative_error": self.mean_relative_error, "seconds": round(self.seconds, 3),
                "warmup": WARMUP, "statistic": "median",
                "rows": [{"arch": a, "predicted_ms": p, "measured_ms": m}
                         for a, p, m in zip(self.archs, self.predicted_ms, self.measured_ms)]}


def check_op_costs(costs: OpCosts, space: SearchSpace, spec: NetworkSpec, input_shape: Sequence[int],
                   device: torch.device, batch: int = 1, n: int = 50, seed: int = 0, repeats: int = REPEATS,
                   progress: Callable[[int, str, float, float], None] | None = None) -> LatencyCheck:
    """Draw ``n`` uniformly random architectures of ``space`` (seeded), predict each one's latency from ``costs``
    and measure its evaluation network on ``device`` at ``batch``; ``progress(i, arch, predicted, measured)``
    after each."""
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    allowed = torch.ones(space.num_edges, len(space.ops), dtype=torch.bool)
    shape = (batch,) + tuple(input_shape[1:])
    archs, predicted, measured = [], [], []
    for i in range(n):
        weights = space.random_weights(allowed, generator)
        arch = space.derive(weights)
        net = space.build_network(arch, spec)
        predicted.append(float(costs.predict(weights.double())))
        measured.append(measure_latency_ms(net, shape, device, repeats=repeats))
        archs.append(str(arch))
        if progress is not None:
            progress(i, archs[-1], predicted[-1], measured[-1])
    p, m = np.array(predicted), np.array(measured)
    relative = float(np.mean(np.abs(p - m) / m)) if n and np.all(m > 0) else math.nan
    return LatencyCheck(archs, predicted, measured, spearman(p, m), kendall(p, m), relative,
                        time.perf_counter() - started)


__all__ = ["LatencyCheck", "check_op_costs", "latency_column", "measure_op_costs"]
