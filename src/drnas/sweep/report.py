"""What a sweep found, summarised the way the paper reports it (``drnas sweep`` writes it; ``--summary`` again).

One row per run (``runs.csv``) from the run's own files: its last metrics line (final accuracies, the NB201
accuracies of the derived cell when the search had a benchmark table), its summed epoch seconds and its peak
memory (from the sweep's outcomes). Runs are grouped by every axis that varies except the seed; a group reports
mean ± std over its finished runs (std with ddof=0, as numpy's default and the NB201 reports), the count, and its
failed runs by name with their error lines (``summary.csv``, ``summary.md``). Where the grid matches a paper
table (methods on NB201: Table 4; ``partial_k``: Table 1) the markdown puts the paper's numbers beside ours.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from drnas.bench import BENCHMARKS
from drnas.bench.nb201 import ACCURACY_COLUMNS
from drnas.bench.paper import TABLE1, TABLE4, TABLE4_OPTIMAL
from drnas.config.limits import read_bounded
from drnas.config.search import SearchConfig
from drnas.engine.runs import RunDir, atomic_write_bytes, finished
from drnas.errors import DrnasError
from drnas.spaces import get_space
from drnas.sweep.driver import Outcome, SweepDir
from drnas.sweep.plan import Plan

#: per-run numbers a summary aggregates, in report order (those no run has are left out)
METRICS = (*ACCURACY_COLUMNS, "valid_acc", "train_acc", "best_valid_acc", "skip_edges", "skip_none_edges", "collapsed",
           "eigenvalue", "stopped_epoch", "search_seconds", "peak_memory_mb")
#: a derived cell with this many skip_connect or none edges (of NB201's 6, of a DARTS normal cell's 8) counts as
#: collapsed: DARTS' failure, the parameter-free cell (``collapsed`` is 1 or 0, its mean the share of such cells)
COLLAPSED_EDGES = 4
#: the benchmark of the paper's tables; the test column of the dataset a search ran on is the plot's main number
_BENCHMARK = BENCHMARKS.get("NAS-Bench-201")


@dataclass
class RunRow:
    name: str
    values: dict[str, Any]
    state: str
    error: str | None
    epochs_done: int
    epochs: int
    numbers: dict[str, float]
    arch: str | None
    entropy: list[float]  # mean entropy of the mixing weights per epoch (the distribution's trajectory)


def collect(sweep: SweepDir, plan: Plan | None = None) -> list[RunRow]:
    """One row per planned run, read from its run directory and the sweep's outcomes."""
    plan = plan or sweep.read_plan()
    outcomes = sweep.read_outcomes()
    rows = []
    for run in plan.runs:
        outcome = outcomes.get(run.name, Outcome())
        rundir = RunDir(sweep.run_dir(run.name))
        metrics = rundir.read_metrics() if rundir.path.is_dir() else []
        numbers: dict[str, float] = {}
        if metrics:
            last = metrics[-1]
            numbers.update({k: float(last[k]) for k in ("valid_acc", "train_acc", "best_valid_acc")
                            if isinstance(last.get(k), (int, float))})
            numbers.update({k: float(v) for k, v in (last.get("nb201") or {}).items() if k in ACCURACY_COLUMNS})
            numbers["search_seconds"] = round(sum(float(m.get("seconds", 0.0)) for m in metrics), 3)
            numbers.update(cell_numbers(run.config, metrics))
        if outcome.peak_memory_mb is not None:
            numbers["peak_memory_mb"] = outcome.peak_memory_mb
        arch = None
        if rundir.architecture.is_file():
            try:
                data = json.loads(read_bounded(rundir.architecture, what="a run's architecture.json"))
                arch = str(data["architecture"].get("arch", data["architecture"]))
            except (OSError, ValueError, KeyError, AttributeError, RecursionError, DrnasError):
                arch = None
        done = finished(metrics, run.epochs)
        state = "done" if done else ("failed" if outcome.state == "failed" else
                                     "pending" if outcome.state == "pending" else "unfinished")
        entropy = [sum(m["entropy"]) / len(m["entropy"]) for m in metrics if m.get("entropy")]
        rows.append(RunRow(run.name, dict(run.values), state, outcome.error if state == "failed" else None,
                           len(metrics), run.epochs, numbers, arch, entropy))
    return rows


@dataclass
class Group:
    values: dict[str, Any]  # the group's value of each varying axis except the seed
    runs: list[RunRow]

    @property
    def done(self) -> list[RunRow]:
        return [r for r in self.runs if r.state == "done"]

    def stat(self, metric: str) -> tuple[float, float, int] | None:
        """(mean, std with ddof=0, n) of a metric over the group's finished runs; None when none has it."""
        values = [r.numbers[metric] for r in self.done if metric in r.numbers]
        if not values:
            return None
        mean = sum(values) / len(values)
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)), len(values)

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.values.items()) or "all runs"


def skip_none_edges(ops: Sequence[str]) -> int:
    """The edges of a cell (its ops' labels) that are skip_connect or none: what a collapse is counted in."""
    return sum(op in ("skip_connect", "none") for op in ops)


def cell_numbers(config: dict[str, Any], metrics: Sequence[dict[str, Any]]) -> dict[str, float]:
    """What says whether a search collapsed: the skip_connect and none edges of its last derived cell (the first
    cell: NB201's, a DARTS genotype's normal cell), ``collapsed`` (1 with :data:`COLLAPSED_EDGES` or more of them),
    the last measured dominant eigenvalue of the Hessian (``hessian_every``) and the epoch an early stop kept."""
    out: dict[str, float] = {}
    try:
        space = get_space(str(config.get("space")), config.get("ops"))
        ops = space.graph(space.parse(str(metrics[-1]["arch"])))[0].ops()
    except (DrnasError, KeyError, ValueError, TypeError):
        ops = None
    if ops is not None:
        free = skip_none_edges(ops)
        out.update(skip_edges=float(ops.count("skip_connect")), skip_none_edges=float(free),
                   collapsed=float(free >= COLLAPSED_EDGES))
    eigen = [m["hessian"].get("eigenvalue") for m in metrics if isinstance(m.get("hessian"), dict)]
    if eigen and isinstance(eigen[-1], (int, float)):
        out["eigenvalue"] = float(eigen[-1])
    stopped = metrics[-1].get("stopped")
    if isinstance(stopped, dict) and isinstance(stopped.get("kept_epoch"), int):
        out["stopped_epoch"] = float(stopped["kept_epoch"])
    return out


def group_fields(plan: Plan) -> list[str]:
    return [k for k in plan.varying if k != "seed"]


def groups(rows: Sequence[RunRow], fields: Sequence[str]) -> list[Group]:
    """Rows grouped by ``fields``, in the order the grid first meets each group."""
    out: dict[tuple, Group] = {}
    for row in rows:
        key = tuple(str(row.values.get(f)) for f in fields)
        out.setdefault(key, Group({f: row.values.get(f) for f in fields}, [])).runs.append(row)
    return list(out.values())


def _metrics_present(rows: Sequence[RunRow]) -> list[str]:
    return [m for m in METRICS if any(m in r.numbers for r in rows)]


def _csv(header: Sequence[str], records: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
    return buffer.getvalue().encode()


def runs_csv(rows: Sequence[RunRow], axes: Sequence[str]) -> bytes:
    metrics = _metrics_present(rows)
    return _csv(["run", *axes, "state", "epochs_done", "epochs", *metrics, "arch", "error"],
                [[r.name, *(r.values.get(a) for a in axes), r.state, r.epochs_done, r.epochs,
                  *(r.numbers.get(m, "") for m in metrics), r.arch or "", r.error or ""] for r in rows])


def summary_csv(grouped: Sequence[Group], fields: Sequence[str], metrics: Sequence[str]) -> bytes:
    header = [*fields, "runs", "done", "failed", *[f"{m}_{s}" for m in metrics for s in ("mean", "std")],
              "failed_runs"]
    records = []
    for g in grouped:
        stats = [g.stat(m) for m in metrics]
        records.append([*(g.values[f] for f in fields), len(g.runs), len(g.done),
                        sum(r.state == "failed" for r in g.runs),
                        *[x for s in stats for x in ((round(s[0], 4), round(s[1], 4)) if s else ("", ""))],
                        ";".join(r.name for r in g.runs if r.state == "failed")])
    return _csv(header, records)


def _pm(stat: tuple[float, float, int] | None, digits: int = 2) -> str:
    return "-" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def summary_markdown(plan: Plan, rows: Sequence[RunRow], grouped: Sequence[Group], fields: Sequence[str]) -> str:
    metrics = _metrics_present(rows)
    lines = ["# Sweep summary", "",
             f"{len(rows)} runs: {sum(r.state == 'done' for r in rows)} done, "
             f"{sum(r.state == 'failed' for r in rows)} failed, "
             f"{sum(r.state in ('pending', 'unfinished') for r in rows)} not finished. "
             "Mean ± std (ddof=0) over the finished runs of each group; n = finished runs.", ""]
    lines += ["| " + " | ".join([*(fields or ["group"]), "n", *metrics]) + " |",
              "|" + "---|" * (len(fields or ["group"]) + 1 + len(metrics))]
    for g in grouped:
        cells = [str(g.values[f]) for f in fields] or ["all runs"]
        digits = {"search_seconds": 0, "peak_memory_mb": 0, "skip_edges": 1, "skip_none_edges": 1, "stopped_epoch": 1}
        lines.append("| " + " | ".join([*cells, str(len(g.done)),
                                        *(_pm(g.stat(m), digits.get(m, 2)) for m in metrics)]) + " |")
    failed = [r for r in rows if r.state == "failed"]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- `{r.name}`: {r.error}" for r in failed]
    lines += _table4(plan, grouped, fields) + _table1(grouped, fields)
    return "\n".join(lines) + "\n"


def _table4(plan: Plan, grouped: Sequence[Group], fields: Sequence[str]) -> list[str]:
    """Table 4's layout (one block per search dataset) when the sweep compares NB201 methods."""
    benchmarks = {get_space(run.config.get("space", SearchConfig.space)).benchmark for run in plan.runs}
    if benchmarks != {"NAS-Bench-201"} or not any(g.stat("cifar10_test_acc") for g in grouped):
        return []
    methods = {run.config.get("method", "drnas") for run in plan.runs}
    if "method" not in fields and not methods & set(TABLE4):
        return []
    other = [f for f in fields if f not in ("method", "dataset")]
    lines = ["", "## Table 4 layout (NAS-Bench-201)", "",
             "Our rows: the NB201 accuracies of the derived cells (mean ± std over seeds, n runs). Paper rows: "
             "Table 4 of the DrNAS paper (4 seeds, full budget)."]
    datasets = sorted({str(run.config.get("dataset")) for run in plan.runs})
    for dataset in datasets:
        lines += ["", f"Searched on {dataset}" + (f" (grouped also by {', '.join(other)})" if other else "") + ":", "",
                  "| method | n | C10 valid | C10 test | C100 valid | C100 test | IN16 valid | IN16 test |",
                  "|---|---|---|---|---|---|---|---|"]
        for g in grouped:
            runs_here = [r for r in g.runs if str(r.values.get("dataset", dataset)) == dataset]
            if not runs_here:
                continue
            method = str(g.values.get("method") or next(iter(methods)))
            label = ", ".join([method] + [f"{k}={g.values[k]}" for k in other])
            sub = Group(g.values, runs_here)
            lines.append(f"| {label} (ours) | {len(sub.done)} | " + " | ".join(_pm(sub.stat(c)) for c in ACCURACY_COLUMNS)
                         + " |")
            if method in TABLE4:
                name, values = TABLE4[method]
                lines.append(f"| {name} (paper) | 4 | " + " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in values) + " |")
        lines.append("| optimal (paper) | | " + " | ".join(f"{v:.2f}" for v in TABLE4_OPTIMAL) + " |")
    return lines


def _table1(grouped: Sequence[Group], fields: Sequence[str]) -> list[str]:
    """Table 1's layout when the sweep varies ``partial_k``."""
    if "partial_k" not in fields or not any(g.stat("cifar10_test_acc") for g in grouped):
        return []
    lines = ["", "## Table 1 layout (partial channels, NB201 CIFAR-10)", "",
             "Ours: NB201 CIFAR-10 test accuracy of the derived cells and the peak resident memory of the whole "
             "search process (this machine). Paper: DrNAS without progressive learning, GPU memory.", "",
             "| K | n | test (ours) | peak memory MB (ours) | test (paper) | GPU memory MB (paper) |",
             "|---|---|---|---|---|---|"]
    for g in grouped:
        k = int(g.values["partial_k"])
        paper = TABLE1.get(k)
        paper_cells = [f"{paper[0][0]:.2f} ± {paper[0][1]:.2f}", str(paper[1])] if paper else ["-", "-"]
        extra = ", ".join(f"{f}={g.values[f]}" for f in fields if f != "partial_k")
        lines.append(f"| {k}{' (' + extra + ')' if extra else ''} | {len(g.done)} | {_pm(g.stat('cifar10_test_acc'))} | "
                     f"{_pm(g.stat('peak_memory_mb'), 0)} | " + " | ".join(paper_cells) + " |")
    return lines


def main_metric(rows: Sequence[RunRow], plan: Plan) -> str:
    """The number the plot shows: the searched dataset's NB201 test accuracy, else the final validation accuracy."""
    datasets = {str(run.config.get("dataset")) for run in plan.runs}
    for dataset in datasets:
        column = _BENCHMARK.column(dataset)
        if column and any(column in r.numbers for r in rows):
            return column
    if any("cifar10_test_acc" in r.numbers for r in rows):
        return "cifar10_test_acc"
    return "valid_acc" if any("valid_acc" in r.numbers for r in rows) else "best_valid_acc"


def plot_groups(grouped: Sequence[Group], metric: str, path: Path) -> None:
    """Each group's runs as points (one per seed) and their mean as a bar."""
    from drnas.analysis.plots import _figure, _save

    fig = _figure(max(4.0, 0.9 * len(grouped) + 2), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for i, g in enumerate(grouped):
        values = [r.numbers[metric] for r in g.done if metric in r.numbers]
        if values:
            ax.bar(i, sum(values) / len(values), color="#cfd8e3", width=0.6)
            offsets = [(j - (len(values) - 1) / 2) * 0.08 for j in range(len(values))]
            ax.scatter([i + o for o in offsets], values, color="#1f4e79", s=18, zorder=3)
    ax.set_xticks(range(len(grouped)))
    ax.set_xticklabels([g.label for g in grouped], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    values = [r.numbers[metric] for g in grouped for r in g.done if metric in r.numbers]
    if values:
        span = max(values) - min(values)
        ax.set_ylim(min(values) - max(1.0, 0.3 * span), max(values) + max(1.0, 0.3 * span))
    ax.set_title(f"{metric} per group (points: seeds, bars: mean)", fontsize=9)
    _save(fig, path)


def plot_trajectories(grouped: Sequence[Group], path: Path) -> bool:
    """Mean entropy of the mixing weights per epoch, one line per run, one colour per group; False if no run
    logged entropies (benchmark-query methods)."""
    from drnas.analysis.plots import _figure, _save

    if not any(r.entropy for g in grouped for r in g.runs):
        return False
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    colours = [f"C{i % 10}" for i in range(len(grouped))]
    for colour, g in zip(colours, grouped):
        for j, r in enumerate(x for x in g.runs if x.entropy):
            ax.plot(range(1, len(r.entropy) + 1), r.entropy, color=colour, alpha=0.8, lw=1,
                    label=g.label if j == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean entropy per edge (nats)")
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def write_report(path: str | Path, plots: bool = True) -> list[Path]:
    """Write runs.csv, summary.csv, summary.md (and the plots) into the sweep directory; the paths written."""
    sweep = SweepDir(path)
    plan = sweep.read_plan()
    rows = collect(sweep, plan)
    fields = group_fields(plan)
    grouped = groups(rows, fields)
    metrics = _metrics_present(rows)
    out = {sweep.path / "runs.csv": runs_csv(rows, list(plan.axes)),
           sweep.path / "summary.csv": summary_csv(grouped, fields, metrics),
           sweep.path / "summary.md": summary_markdown(plan, rows, grouped, fields).encode()}
    for file, data in out.items():
        atomic_write_bytes(file, data)
    written = list(out)
    if plots and any(r.state == "done" for r in rows):
        plot_groups(grouped, main_metric(rows, plan), sweep.path / "summary.png")
        written.append(sweep.path / "summary.png")
        if plot_trajectories(grouped, sweep.path / "trajectories.png"):
            written.append(sweep.path / "trajectories.png")
    return written
