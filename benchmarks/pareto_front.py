"""How far the cells of a search under a latency cost are from NAS-Bench-201's true accuracy/latency front.

    python benchmarks/pareto_front.py SWEEP_DIR [SWEEP_DIR ...] --column pixel3_ms [--latency hw/nb201-latency.csv]
        [--nb201 nb201/nb201.csv] [--scores proxies.json] [--queries 100] [--derive-within SWEEP]
        [--targets 3,5,8] [--json out.json] [--plot out.png]

For every finished run of the sweeps (``drnas sweep``s over ``cost_target``, methods and seeds), reads the derived
cell and looks up its true latency in the latency table's ``--column`` and its NB201 CIFAR-10 test accuracy. The
true front is, at each latency, the best accuracy of all 15,625 cells no slower. Reported per run and per
(method, target): the cell's latency and accuracy, whether it met the target, and the accuracy lost against the
front at its latency (``gap``). With ``--scores`` (the JSON of benchmarks/proxies_vs_reference.py, which holds
each scored cell's proxies), adds the training-free baseline under the same bound: for each target and seed, the
best-``nwot`` of ``--queries`` cells drawn from the scored ones that meet the target (NASWOT with the table's
latency as the filter). With ``--derive-within`` (a sweep searched without a cost), adds each of its runs' cell
derived within each target by ``drnas derive RUN --max-latency-ms T --cost-table LATENCY:COLUMN`` (the most probable
cell of the learned distribution that the table prices within the budget): searching free and bounding the
derivation, against searching under the cost. ``--targets`` replaces the targets read from the sweep (for a sweep
with none, such as one of ``naswot``/``zc-random`` runs bounded by their own ``cost_target``).
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import io
import json
import os
import random
import statistics
from pathlib import Path

from drnas.cli import main as drnas

SHARED = Path(os.environ.get("DRNAS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ACCURACY = "cifar10_test_acc"


def read_column(path: str, column: str) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {row["arch"]: float(row[column]) for row in csv.DictReader(handle) if row.get(column) not in ("", None)}


class Front:
    """The best accuracy at or under each latency, over every cell of both tables."""

    def __init__(self, latency: dict[str, float], accuracy: dict[str, float]) -> None:
        points = sorted((latency[a], accuracy[a]) for a in latency if a in accuracy)
        self.latencies, self.best, best = [], [], float("-inf")
        for lat, acc in points:
            best = max(best, acc)
            self.latencies.append(lat)
            self.best.append(best)

    def at(self, latency: float) -> float:
        i = bisect.bisect_right(self.latencies, latency) - 1
        return self.best[i] if i >= 0 else float("nan")


def runs(sweep: Path) -> list[dict]:
    found = []
    for run in sorted((sweep / "runs").iterdir()):
        arch_file, config_file = run / "architecture.json", run / "config.json"
        if not arch_file.is_file():
            continue
        arch = json.loads(arch_file.read_text())
        if not arch.get("final"):
            continue
        config = json.loads(config_file.read_text())
        found.append({"run": run.name, "method": config["method"], "seed": config["seed"],
                      "target": config.get("cost_target"), "weight": config.get("cost_weight") or None,
                      "arch": arch["architecture"]["arch"]})
    return found


def derived_within(run: Path, target: float, table: str) -> str | None:
    """The cell ``drnas derive RUN --max-latency-ms TARGET --cost-table TABLE`` gives (None: none fits)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = drnas(["derive", str(run), "--max-latency-ms", str(target), "--cost-table", table, "--json"])
    return json.loads(out.getvalue())["text"] if code == 0 else None


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+")
    parser.add_argument("--column", default="pixel3_ms")
    parser.add_argument("--latency", default=str(SHARED / "hw" / "nb201-latency.csv"))
    parser.add_argument("--nb201", default=str(SHARED / "nb201" / "nb201.csv"))
    parser.add_argument("--scores", help="benchmarks/proxies_vs_reference.py's JSON: adds NASWOT under each bound")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--derive-within", help="a sweep searched without a cost: derive its cells within each target")
    parser.add_argument("--targets", help="comma-separated targets (default: the sweep's cost_target values)")
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args()
    latency, accuracy = read_column(args.latency, args.column), read_column(args.nb201, ACCURACY)
    front = Front(latency, accuracy)
    rows = []
    for run in [run for sweep in args.sweeps for run in runs(Path(sweep))]:
        lat, acc = latency[run["arch"]], accuracy[run["arch"]]
        rows.append({**run, "latency": lat, "accuracy": acc, "front": front.at(lat), "gap": front.at(lat) - acc,
                     "met": run["target"] is None or lat <= run["target"]})
    targets = ([float(t) for t in args.targets.split(",")] if args.targets
               else sorted({r["target"] for r in rows if r["target"] is not None}))
    if args.derive_within:
        for run in runs(Path(args.derive_within)):
            for target in targets:
                arch = derived_within(Path(args.derive_within) / "runs" / run["run"], target,
                                      f"{args.latency}:{args.column}")
                if arch is None:
                    continue
                lat, acc = latency[arch], accuracy[arch]
                rows.append({**run, "run": f"{run['run']},within={target}", "method": f"{run['method']} (derived within)",
                             "target": target, "arch": arch, "latency": lat, "accuracy": acc, "front": front.at(lat),
                             "gap": front.at(lat) - acc, "met": lat <= target})
    if args.scores:
        scored = json.loads(Path(args.scores).read_text())["scores"]
        for target in targets:
            allowed = [a for a in scored if a in latency and latency[a] <= target]
            for seed in sorted({r["seed"] for r in rows}):
                if not allowed:
                    continue
                drawn = random.Random(seed).sample(allowed, min(args.queries, len(allowed)))
                arch = max(drawn, key=lambda a: scored[a]["nwot"])
                lat, acc = latency[arch], accuracy[arch]
                rows.append({"run": f"naswot,seed={seed},cost_target={target}", "method": "naswot (bounded)",
                             "seed": seed, "target": target, "weight": None, "arch": arch, "latency": lat, "accuracy": acc,
                             "front": front.at(lat), "gap": front.at(lat) - acc, "met": True})
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["target"], row["weight"]), []).append(row)
    print(f"| method | {args.column} target | cost_weight | n | met | latency ({args.column}) | {ACCURACY} | front at "
          f"that latency | gap to the front |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for (method, target, weight), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0,
                                                                                  kv[0][2] or 0)):
        line = {"method": method, "target": target, "weight": weight, "n": len(group),
                "met": sum(r["met"] for r in group),
                "latency": mean_std([r["latency"] for r in group]), "accuracy": mean_std([r["accuracy"] for r in group]),
                "front": mean_std([r["front"] for r in group]), "gap": mean_std([r["gap"] for r in group])}
        summary.append(line)
        penalised = target is not None and "(" not in method and method not in ("naswot", "zc-random")
        lam = weight or ("1/target" if penalised else "-")  # derived within a budget, or bounded: no penalty
        met = f"{line['met']}/{line['n']}" if target is not None else "-"
        print(f"| {method} | {target} | {lam} | {line['n']} | {met} | {line['latency']} | "
              f"{line['accuracy']} | {line['front']} | {line['gap']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"column": args.column, "summary": summary, "runs": rows}, indent=1)
                                   + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        cells = [(latency[a], accuracy[a]) for a in latency if a in accuracy]
        ax.scatter(*zip(*cells), s=2, c="0.8", label="all 15,625 cells", rasterized=True)
        ax.step(front.latencies, front.best, where="post", c="k", lw=1, label="true front")
        for method, marker in zip(sorted({r["method"] for r in rows}), "oxs^v"):
            mine = [r for r in rows if r["method"] == method]
            ax.scatter([r["latency"] for r in mine], [r["accuracy"] for r in mine], marker=marker, s=28, label=method)
        for target in sorted({r["target"] for r in rows if r["target"] is not None}):
            ax.axvline(target, c="0.6", ls=":", lw=0.8)
        ax.set_xlabel(f"latency ({args.column}, table)")
        ax.set_ylabel(f"NB201 {ACCURACY}")
        ax.set_ylim(80, 95)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
