"""The DrNAS paper's Fig. 3 from runs: the largest eigenvalue of the validation Hessian in the architecture
parameters, epoch by epoch, mean and band over seeds, one curve per method.

    drnas search --method drnas --set hessian_every=1 --seed S --out runs/drnas-S ...   (and --method darts)
    python benchmarks/fig3.py runs/drnas-* runs/darts-* --out fig3.png [--json fig3.json]

Prints, per method, the mean eigenvalue at the first and last measured epoch and their ratio (the paper: about
10x for DARTS over 100 NB201 epochs, low for DrNAS).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from drnas.analysis.plots import hessian_trajectories, plot_hessian_trajectories
from drnas.engine.runs import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories searched with --set hessian_every=N")
    parser.add_argument("--out", default="fig3.png", help="the PNG to write")
    parser.add_argument("--json", help="also write the curves here")
    args = parser.parse_args()
    runs = []
    for path in args.runs:
        run = RunDir(path)
        runs.append((run.read_config().get("method", "drnas"), run.read_metrics()))
    curves = hessian_trajectories(runs)
    if not curves:
        parser.error("no curvature in these runs: search with --set hessian_every=N")
    plot_hessian_trajectories(runs, Path(args.out))
    for label, curve in curves.items():
        first, last = curve["mean"][0], curve["mean"][-1]
        ratio = last / first if first else float("nan")
        print(f"{label:<12} epochs {curve['epoch'][0]}-{curve['epoch'][-1]}, runs {max(curve['runs'])}: "
              f"eigenvalue {first:.4g} -> {last:.4g} (last/first {ratio:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(curves, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
