"""A search whose evaluator is a benchmark table (``--method random`` / ``reinforce``): no data, no network.

Each epoch makes its share of the run's ``queries``: the strategy proposes an architecture, the table gives its
validation accuracy on the search dataset, the strategy is told it, and the best architecture so far (by that
accuracy) is the run's answer. Runs checkpoint, log and resume like any other search.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch

from drnas.bench import BENCHMARKS
from drnas.config.options import settings_json
from drnas.config.search import ConfigError, SearchConfig, with_absolute_paths
from drnas.engine.job import Job
from drnas.engine.runs import RunError, atomic_write_json
from drnas.method.strategies import check_method, get_method
from drnas.method.strategies.table import TableStrategy
from drnas.result import SearchResult
from drnas.spaces import get_space

CHECKPOINT_FORMAT = 1


class TableSearch(Job):
    """A benchmark-query search (built by :class:`drnas.search.Search` for such methods)."""

    kind = "search"
    config_class = SearchConfig

    def __init__(self, config: SearchConfig, out: str | Path | None = None, *, data: Any = None,
                 progress: bool = True, log: Callable[[str], None] | None = None, _resuming: bool = False) -> None:
        if not _resuming:
            config = with_absolute_paths(config)
        self.config = config.validate()
        self.method = get_method(config.method)
        self.space = get_space(config.space, config.ops)
        check_method(config, self.space)
        # the lookups are the method: a table that cannot answer (another op set, no columns of the dataset) is an
        # error here, not a skipped lookup
        benchmark = BENCHMARKS.get(str(self.space.benchmark))
        reason = benchmark.uncovered(self.space, config.dataset)
        if reason is not None:
            raise ConfigError(f"method {config.method} ranks architectures by the table's validation accuracy, but "
                              f"{reason}: search the table's own ops (leave ops unset) on --dataset "
                              f"{' or '.join(benchmark.prefixes)}")
        self._init_job(config, out, progress, log, _resuming)
        self.table = benchmark.load(str(config.benchmark))
        self.column = str(benchmark.column(config.dataset, "valid"))
        torch.manual_seed(config.seed)
        self.strategy: TableStrategy = self.method(self.space, config)  # type: ignore[assignment]
        self.arch_optimizer = self.strategy.make_arch_optimizer()
        self.strategy.optimizer = self.arch_optimizer  # type: ignore[attr-defined]
        self.queried = 0
        self.best: tuple[float, list[int]] | None = None
        self.simulated_seconds = 0.0
        if not _resuming:  # every setting of the method as it runs, also for a config made without with_method
            self.config = config = dataclasses.replace(config, method_settings=settings_json(self.strategy.settings))
            self._start_run_dir(config.to_json())

    def _queries_by(self, epoch: int) -> int:
        """Queries made once ``epoch`` epochs are done (spread evenly over the epochs)."""
        return (self.strategy.settings.queries * epoch) // self.config.epochs

    def _architecture(self, choice: list[int]) -> Any:
        weights = torch.zeros(self.space.num_edges, len(self.space.ops))
        weights[torch.arange(self.space.num_edges), torch.tensor(choice)] = 1.0
        return self.space.derive(weights)

    def _run_epoch(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.strategy.start_epoch(self.epoch, self.config.epochs)
        rewards = []
        for _ in range(self._queries_by(self.epoch + 1) - self.queried):
            choice = self.strategy.propose()
            row = self.table.query(self._architecture(choice))
            accuracy = row[self.column]
            self.simulated_seconds += row.get(f"{self.config.dataset}_train_time", 0.0)
            self.strategy.observe(choice, accuracy / 100.0)
            rewards.append(accuracy)
            self.queried += 1
            if self.best is None or accuracy > self.best[0]:
                self.best = (accuracy, choice)
        arch = self.derive()
        record: dict[str, Any] = {
            "epoch": self.epoch + 1, "stage": 0, "queries": self.queried,
            "mean_query_valid_acc": sum(rewards) / len(rewards) if rewards else None,
            "best_valid_acc": self.best[0] if self.best else None, "arch": str(arch),
            "nb201": self.table.accuracies(arch),
            "simulated_seconds": round(self.simulated_seconds, 3) if self.simulated_seconds else None,
            "seconds": round(time.perf_counter() - started, 3),
        }
        return record

    def epoch_line(self, record: dict[str, Any]) -> str:
        if record["best_valid_acc"] is None:
            return f"epoch {record['epoch']}/{self.config.epochs}: no query yet"
        return (f"epoch {record['epoch']}/{self.config.epochs} queries {record['queries']} best {self.column} "
                f"{record['best_valid_acc']:.2f}  {record['arch']}")

    def derive(self) -> Any:
        if self.best is None:
            return self._architecture(self.strategy.expected_weights().argmax(-1).tolist())
        return self._architecture(self.best[1])

    def state_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "epoch": self.epoch, "strategy": self.strategy.state_dict(),
                "arch_optimizer": self.arch_optimizer.state_dict() if self.arch_optimizer is not None else None,
                "queried": self.queried, "best": list(self.best) if self.best else None,
                "simulated_seconds": self.simulated_seconds, **self._rng_checkpoint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT or "strategy" not in state:
            raise RunError(f"checkpoint format {state.get('format')} is not a table search's")
        self.strategy.load_state_dict(state["strategy"])
        if self.arch_optimizer is not None:
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.epoch, self.queried = int(state["epoch"]), int(state["queried"])
        self.best = (float(state["best"][0]), [int(c) for c in state["best"][1]]) if state["best"] else None
        self.simulated_seconds = float(state["simulated_seconds"])
        self._restore_rng(state)

    def _write_outputs(self) -> None:
        assert self.run_dir is not None
        atomic_write_json(self.run_dir.architecture, self.architecture_json())

    def final_images(self) -> list[tuple[str, bytes]]:
        """The heatmap of the learned policy and the best cell (TensorBoard, at the end)."""
        from drnas.analysis.diagrams import search_images

        return search_images(self.architecture_json())

    def architecture_json(self) -> dict[str, Any]:
        arch = self.derive()
        mean = self.strategy.expected_weights().detach().cpu()
        kept = self.strategy.kept_ops()
        edges = [{"edge": name, "op": arch.ops[e], "kept": [self.space.ops[i] for i in kept[e]],
                  "mean": mean[e].tolist()} for e, name in enumerate(self.space.edge_names())]
        return {"method": self.config.method, "space": self.space.name, "ops": list(self.space.ops),
                "architecture": arch.to_json(), "epochs_done": self.epoch, "epochs": self.config.epochs,
                "final": self.epoch >= self.config.epochs, "queries": self.queried, "edges": edges}

    def result(self) -> Any:
        mean = self.strategy.expected_weights().detach().cpu()
        return SearchResult(self.derive(), self.strategy.eta.detach().cpu().clone(), mean, mean, self.epoch,
                            list(self.metrics), self.run_dir.path if self.run_dir is not None else None)
