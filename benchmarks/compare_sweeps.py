"""Two sets of seeds of one search compared on an NB201 accuracy: failures below a threshold and the spread.

    python benchmarks/compare_sweeps.py A B [--metric cifar10_test_acc] [--below 90] [--json out.json]

A and B are each a sweep directory (its ``runs.csv``, written by ``drnas sweep``) or a results JSON with a
``runs`` list (benchmarks/sweep_results.py's); only finished runs (``state`` done) count. Prints per side: the finished runs, mean ± std (ddof 0), median
and the runs below ``--below``; then Fisher's exact test on the below/above counts and the Mann-Whitney U test on
the accuracies, both two-sided (scipy, from the test extras).
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def accuracies(source: str, metric: str) -> list[float]:
    path = Path(source)
    if path.is_dir():
        with open(path / "runs.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = json.loads(path.read_text())["runs"]
    return [float(r[metric]) for r in rows if r.get(metric) not in (None, "") and r.get("state", "done") == "done"]


def main() -> None:
    from scipy.stats import fisher_exact, mannwhitneyu

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--metric", default="cifar10_test_acc")
    parser.add_argument("--below", type=float, default=90.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    sides = {}
    for name, source in (("a", args.a), ("b", args.b)):
        values = accuracies(source, args.metric)
        sides[name] = {"source": source, "n": len(values), "mean": statistics.mean(values),
                       "std": statistics.pstdev(values), "median": statistics.median(values),
                       "below": sum(v < args.below for v in values), "values": values}
        s = sides[name]
        print(f"{name}: {source}\n   n {s['n']}  {args.metric} {s['mean']:.2f} ± {s['std']:.2f}  median "
              f"{s['median']:.2f}  below {args.below:g}: {s['below']}")
    a, b = sides["a"], sides["b"]
    table = [[a["below"], a["n"] - a["below"]], [b["below"], b["n"] - b["below"]]]
    fisher = float(fisher_exact(table, alternative="two-sided")[1])
    mann = float(mannwhitneyu(a["values"], b["values"], alternative="two-sided").pvalue)
    print(f"Fisher exact p (runs below {args.below:g}) = {fisher:.3f}; Mann-Whitney p = {mann:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"metric": args.metric, "below": args.below, "a": a, "b": b,
                                               "fisher_p": fisher, "mann_whitney_p": mann}, indent=1) + "\n")


if __name__ == "__main__":
    main()
