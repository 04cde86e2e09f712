"""The distribution a search run learned, read back from its directory: the one reader behind ``drnas show``
(the per-edge table and ``--top K``), ``drnas sample`` and ``drnas derive`` (and ``drnas train --arch RUN
--max-params ...``).

A search keeps its architecture parameters whole in every ``metrics.jsonl`` line (``architecture_parameters``:
η and the ops each edge kept). The run's strategy is rebuilt from its ``config.json`` and given one epoch's
parameters, which makes it that epoch's distribution: its expected mixing weights (the Dirichlet mean for
DrNAS, the softmax of α for DARTS) and its draws. Runs that keep none (the benchmark-query methods, runs of an
older drnas) give the per-edge means of their ``architecture.json`` instead. For the last epoch,
``architecture.json`` also holds the means the search itself wrote, exact for every method (also those whose
distribution is not all in η, like ENAS' controller), and the architecture the run derived.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from drnas.config.limits import read_bounded
from drnas.config.search import MOVED_TO_METHOD, ConfigError, SearchConfig, apply_overrides
from drnas.engine.runs import RunDir, RunError
from drnas.method.strategies import Strategy, get_method
from drnas.spaces import SearchSpace, get_space

#: why a run's distribution cannot be rebuilt epoch by epoch
_NO_PARAMETERS = "keeps no architecture parameters per epoch (searched by an older drnas, or no epoch finished yet)"


def saved_config(run: RunDir, config_class: type = SearchConfig) -> Any:
    """The config (a ``config_class``: search or training) a run directory saved, validated like a new one: a field
    edited to a value of the wrong type or range is one :class:`RunError` naming it (fields this drnas does not
    know are left out)."""
    saved = run.read_fields()
    known = {f.name for f in dataclasses.fields(config_class)} | set(MOVED_TO_METHOD)  # old runs: method settings
    try:
        return apply_overrides(config_class(), {k: v for k, v in saved.items() if k in known}).validate()
    except ConfigError as err:
        raise RunError(f"{run.config}: {err}: restore the file") from None


def search_config(run: RunDir) -> SearchConfig:
    """The search config a run directory saved (:func:`saved_config`)."""
    return saved_config(run, SearchConfig)


def read_architecture(run: RunDir) -> dict[str, Any] | None:
    """A run's ``architecture.json`` (None when it has none yet); a file that cannot be read is a one-line
    :class:`RunError`."""
    if not run.architecture.exists():  # (a directory or FIFO in its place is read, and refused, below)
        return None
    try:
        data = json.loads(read_bounded(run.architecture, what="a run's architecture.json"))
    except (OSError, ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise RunError(f"{run.architecture} could not be read ({type(err).__name__}): resume the run to "
                       "rewrite it") from None
    if not isinstance(data, dict):
        raise RunError(f"{run.architecture} is not a drnas architecture file (a JSON object)")
    return data


def load_parameters(strategy: Strategy, params: dict[str, Any]) -> None:
    """Put one epoch's ``architecture_parameters`` (``{eta, kept}`` of a metrics line) into a strategy rebuilt
    from the run's config, so that it gives that epoch's distribution."""
    with torch.no_grad():
        strategy.eta.copy_(torch.tensor(params["eta"], dtype=strategy.eta.dtype))
        strategy.mask.zero_()
        for edge, kept in enumerate(params["kept"]):
            strategy.mask[edge, kept] = True
        strategy._refresh_mask_cache()


@dataclass(frozen=True)
class _Files:
    """What one reading of a search run directory found."""

    run: RunDir
    config: SearchConfig
    space: SearchSpace
    metrics: list[dict[str, Any]]
    records: list[dict[str, Any]]  # the metrics lines that keep their architecture parameters
    architecture: dict[str, Any] | None

    @classmethod
    def read(cls, path: str | Path) -> _Files:
        run = RunDir(path)
        run.require()
        if run.read_config().get("kind", "search") != "search":
            raise RunError(f"{run.path} is a training run: give a search run directory")
        config = search_config(run)
        metrics = run.read_metrics()
        return cls(run, config, get_space(config.space, config.ops), metrics,
                   [r for r in metrics if "architecture_parameters" in r], read_architecture(run))

    def strategy(self) -> Strategy:
        return get_method(self.config.method)(self.space, self.config)


@dataclass(frozen=True, eq=False)
class LearnedDistribution:
    """One epoch of the distribution a search run learned.

    ``weights`` ``[edges, ops]``: the strategy's expected mixing weights; ``kept``: the ops each edge still
    searched; ``allowed``: those the derivation may pick (kept, not ``excluded_from_derivation``, weight above
    0). ``recorded``: the means the search itself wrote to ``architecture.json`` for this epoch (None for an
    earlier one); ``derived``: the architecture the run derived then, as text (None for an earlier epoch).
    ``parameters``: the epoch's ``{eta, kept}`` (None for a run that keeps none: its draws cannot be made).
    """

    run: Path
    config: SearchConfig
    space: SearchSpace
    epoch: int
    weights: torch.Tensor
    kept: torch.Tensor
    allowed: torch.Tensor
    recorded: torch.Tensor | None
    derived: str | None
    parameters: dict[str, Any] | None = field(default=None, repr=False)
    _strategy: Strategy | None = field(default=None, repr=False)  # shared by the epochs of one reading

    @classmethod
    def from_run(cls, path: str | Path, epoch: int | None = None) -> LearnedDistribution:
        """The distribution of epoch ``epoch`` (1-based; None: the last one written) of the search run at
        ``path``, finished or not. A run that keeps no parameters per epoch gives its ``architecture.json``'s
        means (its last epoch only)."""
        files = _Files.read(path)
        records = files.records
        if epoch is not None:
            records = [r for r in records if r["epoch"] == epoch]
            if not records:
                have = (f"epochs 1..{files.records[-1]['epoch']}" if files.records
                        else "no epoch keeps its architecture parameters")
                raise RunError(f"epoch {epoch} is not in {files.run.metrics} ({have})")
        if records:
            return cls._of_record(files, records[-1], files.strategy())
        saved = files.architecture
        if not (saved and saved.get("edges") and all("mean" in e and "kept" in e for e in saved["edges"])):
            raise RunError(f"{files.run.path} {_NO_PARAMETERS} and no means in architecture.json: it holds no "
                           "learned distribution")
        means = torch.tensor([e["mean"] for e in saved["edges"]], dtype=torch.float32)
        kept = torch.tensor([[op in e["kept"] for op in files.space.ops] for e in saved["edges"]])
        return cls._of(files, int(saved.get("epochs_done", 0)), means, kept, None, None)

    @classmethod
    def every_epoch(cls, path: str | Path) -> list[LearnedDistribution]:
        """The distribution of every epoch of the run at ``path`` (all sharing one rebuilt strategy)."""
        files = _Files.read(path)
        if not files.records:
            raise RunError(f"{files.run.path} {_NO_PARAMETERS}: its distribution cannot be rebuilt epoch by epoch")
        strategy = files.strategy()
        return [cls._of_record(files, record, strategy) for record in files.records]

    @classmethod
    def _of_record(cls, files: _Files, record: dict[str, Any], strategy: Strategy) -> LearnedDistribution:
        params = _checked_parameters(files, record)
        load_parameters(strategy, params)
        with torch.no_grad():
            weights = strategy.expected_weights().detach().float().cpu()
        return cls._of(files, int(record["epoch"]), weights, strategy.mask.cpu().clone(), params, strategy)

    @classmethod
    def _of(cls, files: _Files, epoch: int, weights: torch.Tensor, kept: torch.Tensor,
            params: dict[str, Any] | None, strategy: Strategy | None) -> LearnedDistribution:
        space, saved = files.space, files.architecture
        _check_shape(files, tuple(weights.shape))
        excluded = torch.tensor([op in space.excluded_from_derivation for op in space.ops])
        recorded = derived = None
        if saved is not None and (not files.metrics or files.metrics[-1].get("epoch") == epoch):  # its epoch
            arch = saved.get("architecture", {})
            derived = str(space.from_json(arch)) if isinstance(arch, dict) else None
            edges = saved.get("edges") or []
            if len(edges) == space.num_edges and all(len(e.get("mean", ())) == len(space.ops) for e in edges):
                recorded = torch.tensor([e["mean"] for e in edges], dtype=torch.float32)
        return cls(files.run.path, files.config, space, epoch, weights, kept, kept & ~excluded & (weights > 0),
                   recorded, derived, params, strategy)

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def dataset(self) -> str:
        return self.config.dataset

    @property
    def epochs(self) -> int:
        """The epochs the search was set to run (this one is ``epoch`` of them)."""
        return self.config.epochs

    @property
    def label(self) -> str:
        """What the weights are called where people read them (``Dirichlet mean``, ``expected weight``)."""
        return get_method(self.method).mean_label

    def strategy(self) -> Strategy:
        """The run's strategy holding this epoch's parameters (given them again on every call: the epochs of
        one reading share it), for draws."""
        if self._strategy is None or self.parameters is None:
            raise RunError(f"{self.run} {_NO_PARAMETERS}: there is no distribution to draw from")
        load_parameters(self._strategy, self.parameters)
        return self._strategy


def _checked_parameters(files: _Files, record: dict[str, Any]) -> dict[str, Any]:
    """One metrics line's ``architecture_parameters``, checked as user input: η a finite ``[edges, ops]`` array,
    ``kept`` the indices of the ops each edge kept."""
    where = f"{files.run.metrics}, epoch {record['epoch']}"
    params = record.get("architecture_parameters")
    if not isinstance(params, dict):
        raise RunError(f"{where}: architecture_parameters must be an object of eta and kept")
    try:
        eta = torch.tensor(params.get("eta"), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise RunError(f"{where}: eta is not an array of numbers: restore the file, or resume the run") from None
    edges, ops = files.space.num_edges, len(files.space.ops)
    if tuple(eta.shape) != (edges, ops):
        raise RunError(f"{where}: eta has shape {tuple(eta.shape)}, the space {files.space.name} expects "
                       f"{(edges, ops)}: restore the file, or resume the run")
    if not bool(torch.isfinite(eta).all()):
        raise RunError(f"{where}: eta holds NaN or infinite values (the search diverged there): use an earlier "
                       "epoch (--epoch N)")
    kept = params.get("kept")
    if not (isinstance(kept, list) and len(kept) == edges and all(
            isinstance(k, list) and k and all(type(i) is int and 0 <= i < ops for i in k) for k in kept)):
        raise RunError(f"{where}: kept must list, for each of the {edges} edges, the indices (0 to {ops - 1}) of the "
                       "ops it kept: restore the file, or resume the run")
    return params


def _check_shape(files: _Files, shape: tuple[int, ...]) -> None:
    expected = (files.space.num_edges, len(files.space.ops))
    if shape != expected:
        raise RunError(f"{files.run.path}: the kept architecture parameters have shape {shape}, the space "
                       f"{files.space.name} expects {expected}")
