"""A sweep's results file: its runs, outcomes and summary as one JSON, plus what the early-stopping rules would
have done on each run's recorded trajectory.

    python benchmarks/sweep_results.py SWEEP_DIR --note "..." --json results/NAME.json

For every run it reads the metrics lines and replays the stopping rules of ``drnas.method.parts.early_stop`` on
them as if the run had used them: DARTS+ (the first epoch whose derived cell holds 2 skip connections) and DARTS-ES
on the eigenvalues the run measured (``hessian_every``), with k and the window counted in measurements. Each
replayed stop gives the epoch whose cell the rule keeps, that cell and its NB201 test accuracy, so a reader sees
whether stopping early would have saved DARTS where it collapsed.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from drnas.config.search import SearchConfig
from drnas.engine.runs import RunDir
from drnas.method.parts.early_stop import DartsES, DartsPlus
from drnas.spaces import get_space
from drnas.sweep.driver import SweepDir
from drnas.sweep.report import COLLAPSED_EDGES, skip_none_edges

sys.path.insert(0, str(Path(__file__).parent))
from run import machine  # noqa: E402


def replay(metrics: list[dict[str, Any]], space_name: str, es_lookback: int, es_window: int) -> dict[str, Any]:
    """The cell's skip/none edges over the epochs, and where DARTS+ and DARTS-ES would have stopped this trajectory,
    the cell each keeps and its NB201 accuracies (None where the rule never fires)."""
    space, config = get_space(space_name), SearchConfig()
    rules = {"darts-plus": DartsPlus(DartsPlus.Settings(), config, space),
             "darts-es": DartsES(DartsES.Settings(lookback=es_lookback, window=es_window), config, space)}
    free = [skip_none_edges(space.graph(space.parse(m["arch"]))[0].ops()) for m in metrics]
    collapsed = [m["epoch"] for m, f in zip(metrics, free) if f >= COLLAPSED_EDGES]
    # the trajectory of the cell: its skip/none edges per epoch, and from when on it stayed collapsed
    out: dict[str, Any] = {"skip_none_edges": free, "first_collapsed_epoch": collapsed[0] if collapsed else None,
                           "collapsed_from": next((m["epoch"] for i, m in enumerate(metrics)
                                                   if all(f >= COLLAPSED_EDGES for f in free[i:])), None)}
    for name, rule in rules.items():
        out[name] = None
        for i in range(len(metrics)):
            ops = space.graph(space.parse(metrics[i]["arch"]))[0].ops()
            stop = rule.stop(metrics[:i + 1], ops)
            if stop is not None:
                kept = metrics[stop.keep_epoch - 1]
                out[name] = {"stopped_after": metrics[i]["epoch"], "kept_epoch": stop.keep_epoch,
                             "arch": kept["arch"], "nb201": kept.get("nb201"), "reason": stop.reason}
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="a sweep directory")
    parser.add_argument("--note", default="", help="what the reader must know about how it ran")
    parser.add_argument("--json", required=True, help="the results file to write")
    parser.add_argument("--es-lookback", type=int, default=1, help="DARTS-ES' k, in measurements (default 1)")
    parser.add_argument("--es-window", type=int, default=1, help="DARTS-ES' window, in measurements (default 1)")
    args = parser.parse_args()
    sweep = SweepDir(args.sweep)
    plan = sweep.read_plan()
    with open(Path(args.sweep) / "runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    replays = {}
    for run in plan.runs:
        metrics = RunDir(sweep.run_dir(run.name)).read_metrics()
        if metrics and "arch" in metrics[-1]:
            replays[run.name] = replay(metrics, run.config["space"], args.es_lookback, args.es_window)
    data = {"date": datetime.date.today().isoformat(), "machine": machine(), "note": args.note,
            "command": "drnas " + " ".join(plan.command), "runs": runs,
            "outcomes": {k: v.__dict__ for k, v in sweep.read_outcomes().items()},
            "stopping_rules_replayed": {"es_lookback": args.es_lookback, "es_window": args.es_window,
                                        "runs": replays},
            "summary_md": (Path(args.sweep) / "summary.md").read_text()}
    Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    for name, found in replays.items():
        print(name, f"collapsed from epoch {found['collapsed_from']}",
              {rule: (None if found[rule] is None else (found[rule]["kept_epoch"],
                                                        (found[rule]["nb201"] or {}).get("cifar10_test_acc")))
               for rule in ("darts-plus", "darts-es")})


if __name__ == "__main__":
    main()
