"""Architectures drawn from the distribution a search learned (``drnas sample``): the strategy of the run is
rebuilt with the architecture parameters of one epoch (kept in every ``metrics.jsonl`` line), asked for mixing
weights ``n`` times, and each draw is derived by the space's rule (DrNAS: per edge, the op with the largest
sampled Dirichlet weight). Methods whose mixing weights are not random (DARTS) give one architecture."""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

from drnas.config.search import SearchConfig, apply_overrides
from drnas.engine.runs import RunDir, RunError
from drnas.spaces import get_space
from drnas.method.strategies import Strategy, get_method


@dataclass(frozen=True)
class Draws:
    epoch: int
    counts: list[tuple[str, int]]  # distinct architectures (text), most frequent first
    total: int


def search_config(run: RunDir) -> SearchConfig:
    """The search config a run directory saved (fields this drnas does not know are left out)."""
    saved = {k: v for k, v in run.read_config().items() if k not in ("drnas_version", "kind", "changes")}
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    return apply_overrides(SearchConfig(), {k: v for k, v in saved.items() if k in known})


def load_parameters(strategy: Strategy, params: dict[str, Any]) -> None:
    """Put one epoch's ``architecture_parameters`` (``{eta, kept}`` of a metrics line) into a strategy rebuilt
    from the run's config, so that it gives that epoch's distribution."""
    with torch.no_grad():
        strategy.eta.copy_(torch.tensor(params["eta"], dtype=strategy.eta.dtype))
        strategy.mask.zero_()
        for edge, kept in enumerate(params["kept"]):
            strategy.mask[edge, kept] = True
        strategy._refresh_mask_cache()


def sample_run(path: Any, n: int = 100, epoch: int | None = None, seed: int = 0) -> list[Draws]:
    """``n`` architectures drawn from the distribution of epoch ``epoch`` (1-based; None: the last), or of every
    epoch when ``epoch`` is 0. Draws come from a generator seeded by ``seed``: the same call gives the same draws."""
    if n < 1:
        raise RunError(f"--n must be >= 1, got {n}")
    run = RunDir(path)
    run.require()
    if run.read_config().get("kind", "search") != "search":
        raise RunError(f"{run.path} is a training run: sample from a search run")
    config = search_config(run)
    records = [r for r in run.read_metrics() if "architecture_parameters" in r]
    if not records:
        raise RunError(f"{run.path} keeps no architecture parameters per epoch (searched by an older drnas, or "
                       "no epoch finished yet): nothing to sample from")
    if epoch is None:
        chosen = records[-1:]
    elif epoch == 0:
        chosen = records
    else:
        chosen = [r for r in records if r["epoch"] == epoch]
        if not chosen:
            raise RunError(f"epoch {epoch} is not in {run.metrics} (epochs 1..{records[-1]['epoch']})")
    space = get_space(config.space, config.ops)
    strategy = get_method(config.method)(space, config)
    out = []
    for record in chosen:
        load_parameters(strategy, record["architecture_parameters"])
        with torch.no_grad():
            state = torch.random.get_rng_state()
            torch.manual_seed(seed)  # the strategies draw from the global generator: set it, then put it back
            try:
                archs = [str(space.derive(strategy.sample().theta.float().cpu())) for _ in range(n)]
            finally:
                torch.random.set_rng_state(state)
        out.append(Draws(record["epoch"], Counter(archs).most_common(), n))
    return out
