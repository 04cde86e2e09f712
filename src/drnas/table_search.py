"""A search that queries an evaluator instead of training a supernet: a benchmark table (``--method random`` /
``reinforce``: no data, no network) or a zero-cost proxy (``--method naswot`` / ``zc-random``: each architecture's
network built at initialisation and scored on one batch of ``--data``).

Each epoch makes its share of the run's ``queries``: the strategy proposes an architecture, the evaluator gives its
value (the table's validation accuracy on the search dataset, or the proxy's score), the strategy is told it, and
the best architecture so far by that value is the run's answer. Runs checkpoint, log and resume like any other
search; a proxy's score is a function of the architecture, the batch and the seed alone (its network's weights come
from a generator of their own), so a resumed run scores exactly as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from drnas.analysis.cost_table import OpCosts, check_costs, load_costs
from drnas.analysis.proxies import ProxyScorer, get_proxy, proxy_batch
from drnas.bench import BENCHMARKS, BenchmarkError, open_table
from drnas.config.options import settings_json
from drnas.config.search import ConfigError, SearchConfig, with_absolute_paths
from drnas.engine.job import Job
from drnas.engine.runs import RunError, atomic_write_json
from drnas.method.strategies import check_method, get_method
from drnas.method.strategies.table import TableStrategy
from drnas.method.strategies.zero_cost import ProxySearch
from drnas.result import SearchResult
from drnas.spaces import NetworkSpec, get_space

CHECKPOINT_FORMAT = 1
#: architectures drawn in a row that may all miss a cost bound before the run gives up (a bound that fewer than one
#: random architecture in this many meets is refused rather than searched for ever)
MAX_MISSES = 100_000


class TableSearch(Job):
    """A query search, by a benchmark table or a zero-cost proxy (built by :class:`drnas.search.Search` for the
    methods without a supernet)."""

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
        self.scorer: ProxyScorer | None = None
        self.costs: OpCosts | None = None  # a proxy search's cost bound (cost_table, cost_target)
        if issubclass(self.method, ProxySearch):
            self._init_proxy_search(config, out, data, progress, log, _resuming)
        else:
            self._init_table_search(config, out, progress, log, _resuming)
        self.arch_optimizer = self.strategy.make_arch_optimizer()
        self.strategy.optimizer = self.arch_optimizer  # type: ignore[attr-defined]
        self.queried = 0
        self.dropped = 0  # proposals over the cost bound, dropped unscored
        self.best: tuple[float, list[Any]] | None = None
        self.simulated_seconds = 0.0
        if not _resuming:  # every setting of the method as it runs, also for a config made without with_method
            self.config = config = dataclasses.replace(config, method_settings=settings_json(self.strategy.settings))
            self._start_run_dir(config.to_json())

    def _init_table_search(self, config: SearchConfig, out: Any, progress: bool, log: Any, resuming: bool) -> None:
        """The evaluator is the benchmark table's validation accuracy on the search dataset."""
        # the lookups are the method: a table that cannot answer (another op set, no columns of the dataset) is an
        # error here, not a skipped lookup
        benchmark = BENCHMARKS.get(str(self.space.benchmark))
        reason = benchmark.uncovered(self.space, config.dataset)
        if reason is not None:
            raise ConfigError(f"method {config.method} ranks architectures by the table's validation accuracy, but "
                              f"{reason}: search the table's own ops (leave ops unset) on --dataset "
                              f"{' or '.join(benchmark.prefixes)}")
        self._init_job(config, out, progress, log, resuming)
        self.table = benchmark.load(str(config.benchmark))
        self.column = str(benchmark.column(config.dataset, "valid"))
        torch.manual_seed(config.seed)
        self.strategy: TableStrategy | ProxySearch = self.method(self.space, config)  # type: ignore[assignment]

    def _init_proxy_search(self, config: SearchConfig, out: Any, data: Any, progress: bool, log: Any,
                           resuming: bool) -> None:
        """The evaluator is a zero-cost proxy on one batch of the data; a table, when given, only reports the
        pick's accuracies (skipped with a note when it cannot answer)."""
        settings = self.method.settings_of(config)
        proxy = str(getattr(settings, "proxy", "nwot"))
        try:
            get_proxy(proxy)
        except ConfigError as err:
            raise ConfigError(f"method {config.method}: {err} (--set method.proxy=NAME)") from None
        self._init_job(config, out, progress, log, resuming)
        self.table = open_table(self.space, config.benchmark, self.log)
        self.column = proxy
        torch.manual_seed(config.seed)
        self._load_data(config, data)  # sets self.info and the batch (_build_loaders)
        self.strategy = self.method(self.space, config)  # type: ignore[assignment]
        self.costs = self._cost_bound(config)
        spec = NetworkSpec(channels=config.channels, cells=config.cells, cells_per_stage=config.cells_per_stage,
                           in_channels=self.info.channels, num_classes=self.info.num_classes, auxiliary=False,
                           imagenet_stem=self.info.image_size > 64)
        x, y = self._batch
        self.scorer = ProxyScorer(self.space, spec, x, y, [self.strategy.proxy], config.seed)

    def _cost_bound(self, config: SearchConfig) -> OpCosts | None:
        """The cost table a bounded search keeps its queries within ``cost_target`` by (None without one), held by
        the strategy so that its checkpoint keeps it; a bound no architecture of the space meets is refused."""
        if not config.cost_table:
            return None
        costs = load_costs(config.cost_table, self.space)
        self.strategy.set_costs(costs.matrix, costs.constant)
        if self.space.one_op_per_edge:  # the cheapest architecture: each edge's cheapest op it may take
            allowed = costs.matrix.masked_fill(~self.strategy.mask.cpu().bool(), float("inf"))
            cheapest = costs.constant + float(allowed.min(-1).values.sum())
            if costs.lookup:
                cheapest = min(cheapest, min(costs.lookup.values()))
            if cheapest > float(config.cost_target):  # type: ignore[arg-type]
                raise ConfigError(f"no architecture of {self.space.name} meets cost_target={config.cost_target:g}: the "
                                  f"cheapest costs {cheapest:.4g}{costs.unit} by {costs.describe()}; raise cost_target")
        return costs

    def _cost(self, choice: list[Any]) -> float:
        """A proposal's cost by the bound's table: the table's own value where it lists the architecture, else the
        sum of its ops' costs (a DARTS cell: of the edges it keeps)."""
        assert self.costs is not None
        arch = self._architecture(choice)
        if self.costs.lookup is not None and str(arch) in self.costs.lookup:
            return self.costs.lookup[str(arch)]
        return float(self.costs.predict(self._weights(choice).double()))

    def _propose(self) -> list[Any]:
        """The strategy's next proposal; under a cost bound the next one that meets it (the others are dropped
        unscored and counted in :attr:`dropped`)."""
        for _ in range(MAX_MISSES):
            choice = self.strategy.propose()
            if self.costs is None or self._cost(choice) <= float(self.config.cost_target):  # type: ignore[arg-type]
                return choice
            self.dropped += 1
        raise ConfigError(f"{MAX_MISSES:,} architectures drawn in a row all cost more than cost_target="
                          f"{self.config.cost_target:g} by {self.costs.describe()}: fewer than one in {MAX_MISSES:,} "
                          f"meets it; raise cost_target")

    def _build_loaders(self, arrays: Any) -> None:
        """The one batch every architecture is scored on (a proxy search's data), from the run's seed."""
        self._batch = proxy_batch(arrays, int(self.method.settings_of(self.config).batch), self.config.seed,
                                  self.device)

    def _build_folder_loaders(self) -> None:
        raise ConfigError(f"method {self.config.method} scores one batch of an in-memory dataset, and "
                          f"{self.config.dataset} is streamed from image folders: give --dataset npz --data FILE.npz "
                          "(or a CIFAR)")

    def _queries_by(self, epoch: int) -> int:
        """Queries made once ``epoch`` epochs are done (spread evenly over the epochs)."""
        return (self.strategy.settings.queries * epoch) // self.config.epochs

    def _weights(self, choice: list[Any]) -> torch.Tensor:
        """A proposal as 0/1 weights ``[edges, ops]``: one op index per edge (the table methods), or the weights
        themselves as nested lists (the proxy methods, whose spaces may leave edges out)."""
        if choice and isinstance(choice[0], list):
            return torch.tensor(choice, dtype=torch.float32)
        weights = torch.zeros(self.space.num_edges, len(self.space.ops))
        weights[torch.arange(self.space.num_edges), torch.tensor(choice)] = 1.0
        return weights

    def _architecture(self, choice: list[Any]) -> Any:
        return self.space.derive(self._weights(choice))

    def _evaluate(self, choice: list[Any]) -> tuple[float, float]:
        """(value the best is chosen by, reward the strategy is told) of one proposal."""
        if self.scorer is not None:
            score = self.scorer.score(self._architecture(choice)).scores[self.column]
            return score, score
        row = self.table.query(self._architecture(choice))
        self.simulated_seconds += row.get(f"{self.config.dataset}_train_time", 0.0)
        return row[self.column], row[self.column] / 100.0

    def _run_epoch(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.strategy.start_epoch(self.epoch, self.config.epochs)
        rewards = []
        for _ in range(self._queries_by(self.epoch + 1) - self.queried):
            choice = self._propose()
            value, reward = self._evaluate(choice)
            self.strategy.observe(choice, reward)
            rewards.append(value)
            self.queried += 1
            if self.best is None or value > self.best[0]:
                self.best = (value, choice)
        arch = self.derive()
        if self.scorer is not None:
            return self._proxy_record(arch, rewards, started)
        record: dict[str, Any] = {
            "epoch": self.epoch + 1, "stage": 0, "queries": self.queried,
            "mean_query_valid_acc": sum(rewards) / len(rewards) if rewards else None,
            "best_valid_acc": self.best[0] if self.best else None, "arch": str(arch),
            "nb201": self.table.accuracies(arch),
            "simulated_seconds": round(self.simulated_seconds, 3) if self.simulated_seconds else None,
            "seconds": round(time.perf_counter() - started, 3),
        }
        return record

    def _proxy_record(self, arch: Any, scores: list[float], started: float) -> dict[str, Any]:
        """A proxy search's epoch: the proxy, the mean score of the epoch's queries, the best score so far and
        its architecture, and (with a table) the pick's accuracies."""
        finite = [s for s in scores if math.isfinite(s)]
        return {"epoch": self.epoch + 1, "stage": 0, "queries": self.queried, "proxy": self.column,
                "mean_query_score": sum(finite) / len(finite) if finite else None,
                "best_score": self.best[0] if self.best else None, "arch": str(arch),
                "nb201": self._accuracies(arch), **self._bound_fields(),
                "seconds": round(time.perf_counter() - started, 3)}

    def _bound_fields(self) -> dict[str, Any]:
        """Under a cost bound: the best architecture's cost (``arch_cost``, in the table's unit) and the proposals
        dropped so far for missing the bound."""
        if self.costs is None:
            return {}
        return {"arch_cost": self._cost(self.best[1]) if self.best else None, "dropped": self.dropped}

    def _accuracies(self, arch: Any) -> dict[str, float] | None:
        if self.table is None:
            return None
        try:
            return self.table.accuracies(arch)
        except BenchmarkError:
            return None

    def epoch_line(self, record: dict[str, Any]) -> str:
        if self.scorer is not None:
            if record["best_score"] is None:
                return f"epoch {record['epoch']}/{self.config.epochs}: no query yet"
            line = (f"epoch {record['epoch']}/{self.config.epochs} queries {record['queries']} best {self.column} "
                    f"{record['best_score']:.4g}  {record['arch']}")
            if record.get("nb201"):
                line += "  nb201 " + " ".join(f"{k}={v:.2f}" for k, v in record["nb201"].items())
            return line
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
                "queried": self.queried, "dropped": self.dropped, "best": list(self.best) if self.best else None,
                "simulated_seconds": self.simulated_seconds, **self._rng_checkpoint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT or "strategy" not in state:
            raise RunError(f"checkpoint format {state.get('format')} is not a table search's")
        check_costs(self.costs, self.strategy, state["strategy"], self.run_dir)  # a bound resumes under its costs
        self.strategy.load_state_dict(state["strategy"])
        if self.arch_optimizer is not None:
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.epoch, self.queried = int(state["epoch"]), int(state["queried"])
        self.dropped = int(state.get("dropped", 0))
        self.best = (float(state["best"][0]), _choice(state["best"][1])) if state["best"] else None
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
        picked = self._weights(self.best[1]) if self.best is not None else None
        edges = [{"edge": name, "op": self._edge_op(arch, picked, e), "kept": [self.space.ops[i] for i in kept[e]],
                  "mean": mean[e].tolist()} for e, name in enumerate(self.space.edge_names())]
        return {"method": self.config.method, "space": self.space.name, "ops": list(self.space.ops),
                "architecture": arch.to_json(), "epochs_done": self.epoch, "epochs": self.config.epochs,
                "final": self.epoch >= self.config.epochs, "queries": self.queried, **self._bound_fields(),
                "edges": edges}

    def _edge_op(self, arch: Any, picked: torch.Tensor | None, edge: int) -> str | None:
        """The op the answer has on ``edge`` (None: an edge the architecture leaves out, as DARTS' cells do)."""
        if self.space.one_op_per_edge:
            return arch.ops[edge]
        if picked is None or picked[edge].sum() == 0:
            return None
        return self.space.ops[int(picked[edge].argmax())]

    def result(self) -> Any:
        mean = self.strategy.expected_weights().detach().cpu()
        return SearchResult(self.derive(), self.strategy.eta.detach().cpu().clone(), mean, mean, self.epoch,
                            list(self.metrics), self.run_dir.path if self.run_dir is not None else None)


def _choice(saved: list[Any]) -> list[Any]:
    """A checkpoint's best choice: op indices, or 0/1 weights as nested lists."""
    return [[int(v) for v in row] for row in saved] if saved and isinstance(saved[0], list) else [int(c) for c in saved]
