"""Architectures drawn from the distribution a search learned (``drnas sample``, ``drnas show RUN --top K``): the
run's strategy, holding one epoch's architecture parameters (:class:`drnas.analysis.learned.LearnedDistribution`),
is asked for mixing weights ``n`` times, and each draw is derived by the space's rule (DrNAS: per edge, the op
with the largest sampled Dirichlet weight). Methods whose mixing weights are not random (DARTS) give one
architecture."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from drnas.analysis.learned import LearnedDistribution
from drnas.engine.runs import RunError


@dataclass(frozen=True)
class Draws:
    epoch: int
    counts: list[tuple[str, int]]  # distinct architectures (text), most frequent first
    total: int


def draw(learned: LearnedDistribution, n: int, seed: int = 0) -> Draws:
    """``n`` architectures drawn from ``learned``, from a generator seeded by ``seed``: the same call gives the
    same draws, and the caller's random stream is left as it was."""
    strategy, space = learned.strategy(), learned.space
    with torch.no_grad():
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # the strategies draw from the global generator: set it, then put it back
        try:
            archs = [str(space.derive(strategy.sample().theta.float().cpu())) for _ in range(n)]
        finally:
            torch.random.set_rng_state(state)
    return Draws(learned.epoch, Counter(archs).most_common(), n)


def sample_run(path: Any, n: int = 100, epoch: int | None = None, seed: int = 0) -> list[Draws]:
    """``n`` architectures drawn from the distribution of epoch ``epoch`` (1-based; None: the last), or of every
    epoch when ``epoch`` is 0, each as :func:`draw` makes them."""
    if n < 1:
        raise RunError(f"--n must be >= 1, got {n}")
    learned = (LearnedDistribution.every_epoch(path) if epoch == 0
               else [LearnedDistribution.from_run(path, epoch)])
    return [draw(one, n, seed) for one in learned]
