"""Seconds per search iteration of several methods, their steps taken in turn in one process.

    python benchmarks/compare_methods.py [--only drnas,darts,gdas] [--rounds N] [--set FIELD=VALUE ...]
    python benchmarks/compare_methods.py --only darts,sdarts-rs,sdarts-adv,beta-darts   # recipes too
    python benchmarks/compare_methods.py --only darts,darts+skip-dropout --set part.skip-dropout.rates=0.4

Each method (or recipe: a method with its parts) searches run.py's ``nb201`` case (the nb201 preset, that
method's defaults applied) on the same data; one iteration is an architecture step (where the method takes one)
and a weight step. The steps of all methods alternate (a, b, c, a, b, c, ...), so the machine's drift hits them
alike, and each method's median is printed with its ratio to the first method's and the range of the per-round
ratios. ``METHOD+PART+...`` times a method with parts that no recipe names; a part's ``--set part.NAME.FIELD``
reaches only the cases that use the part. Each case starts from the loop's state at the middle epoch of its
search (the parts' schedules: β-decay's weight is 0 at the first epoch). Peak memory cannot be told apart in one
process: ``run.py --only nb201-METHOD`` gives it (one process per case).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from compare import alternate
from run import CASE_METHODS, _search_case, machine, method_case, parse_overrides

from drnas.errors import ConfigError
from drnas.method.strategies import get_method, method_names

#: the methods that train a supernet and the recipes, and the run.py case of each
CASES = {"drnas": "nb201", **{method: case for case, method in CASE_METHODS.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated methods; the first is the reference")
    parser.add_argument("--rounds", type=int, default=5, help="timed iterations per method")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--json", help="write every step's seconds here")
    args = parser.parse_args()
    overrides = parse_overrides(args.set, parser)
    methods = [m for m in args.only.split(",") if m]
    CASES.update({m: method_case(m) for m in methods if "+" in m})  # METHOD+PART+...: a case of its own
    unknown = [m for m in methods if m not in CASES]
    if unknown:
        table = [m for m in method_names() if not get_method(m).uses_supernet]
        parser.error(f"unknown or table-only method(s) {unknown}; supernet methods: {', '.join(CASES)} "
                     f"(not {', '.join(table)}, which train no network)")
    runs, device = {}, None
    for method in methods:
        try:
            job, step, available, _ = _search_case(CASES[method], args.rounds + 1, 1, "auto", overrides)
        except ConfigError as error:  # an unknown part of METHOD+PART, a setting out of range...
            parser.error(f"{method}: {error}")
        device = job.device
        runs[method] = lambda round_, step=step, available=available: step(round_ % available)
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; s/iter, methods in turn")
    times = alternate(runs, args.rounds, sync)
    reference, width = methods[0], max(12, *map(len, methods))
    for method in methods:
        median = statistics.median(times[method])
        paired = sorted(a / b for a, b in zip(times[method], times[reference]))
        print(f"{method:<{width}} {median:8.3f} s/iter  {median / statistics.median(times[reference]):5.2f}x {reference}"
              f"  (per round {paired[0]:.2f}-{paired[-1]:.2f}, {len(paired)} rounds)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "overrides": overrides, "case": "nb201",
                                               "seconds": times}, indent=1) + "\n")


if __name__ == "__main__":
    main()
