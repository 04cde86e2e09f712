"""``drnas sweep``: run a grid of searches, print a sweep's status, rewrite its summary."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from drnas.cli.job import INTERRUPTED
from drnas.config.limits import check_limit
from drnas.errors import ConfigError

#: the flags that change a sweep's plan, which a resume runs on as saved
_PLAN_FLAGS = ("method", "seeds", "dataset", "file", "preset", "config", "space", "epochs", "batch_size",
               "train_images", "device", "benchmark", "out")


def sweep_plan(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The plan of a new sweep from its command line and its directory, if given
    (:func:`drnas.sweep.plan.plan_sweep`)."""
    from drnas.sweep.plan import SEARCH_OPTIONS, plan_sweep

    return plan_sweep(file=args.file, methods=args.method, seeds=args.seeds, datasets=args.dataset, grid=args.grid,
                      data=args.data, search={name: getattr(args, name) for name in SEARCH_OPTIONS},
                      sets=[*args.set, *([f"parts={','.join(args.with_parts)}"] if args.with_parts else [])],
                      jobs=args.jobs, threads=args.threads, ray=args.ray, out=args.out, command=sys.argv[1:])


def command(args: argparse.Namespace) -> int:
    """Run a new sweep or continue one (``--resume``), then print its summary; or only print its status
    (``--status``) or rewrite its summary (``--summary``)."""
    from drnas.sweep.driver import Driver, SweepDir, local_slots

    given = [name for name in ("resume", "status", "summary") if getattr(args, name)]
    if len(given) > 1:
        raise ConfigError(f"give one of --{', --'.join(given)}")
    if args.status:
        return _status(args.status)
    if args.summary:
        return _report(args.summary)
    check_limit("jobs", args.jobs, "--jobs")
    check_limit("threads", args.threads, "--threads")
    if args.resume:
        extra = [f"--{n.replace('_', '-')}" for n in _PLAN_FLAGS if getattr(args, n)]
        extra += ["--data"] * bool(args.data) + ["--grid"] * bool(args.grid) + ["--set"] * bool(args.set)
        if extra:
            raise ConfigError(f"--resume continues a sweep with its saved plan: drop {' '.join(extra)} (on resume "
                              "only --jobs, --threads and --ray may change)")
        directory = SweepDir(args.resume)
        plan = directory.reopen(args.jobs, args.threads, args.ray)
    else:
        plan, out = sweep_plan(args)
        directory = SweepDir(out or os.path.join("sweeps", time.strftime("%Y%m%d-%H%M%S")))
        directory.create(plan)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    driver = Driver(directory, plan, log)
    left = len(driver.todo())
    where = f"Ray ({plan.ray})" if plan.ray else f"{plan.jobs} at a time"
    log(f"sweep {directory.path}: {len(plan.runs)} runs, {left} to run, {where}, {plan.threads} thread(s) each")
    if plan.ray:
        finished = driver.run_ray(plan.ray, plan.threads, plan.gpus_per_run)
    else:
        finished = driver.run_local(local_slots(plan.jobs, plan.threads))
    code = _report(str(directory.path), quiet=args.quiet)
    if not finished:
        print(f"drnas: interrupted; finished epochs are kept: continue with `drnas sweep --resume {directory.path}`",
              file=sys.stderr)
        return INTERRUPTED
    return code


def _status(path: str) -> int:
    """``--status``: a line per run (its state and epochs), then the counts and an ETA."""
    from drnas.sweep.driver import status

    plan, rows, eta = status(path)
    counts = {state: sum(r.state == state for r in rows) for state in ("done", "running", "queued", "failed",
                                                                      "interrupted", "pending")}
    width = max(len(r.name) for r in rows)
    for r in rows:
        detail = f"  {r.error}" if r.state == "failed" and r.error else ""
        print(f"{r.name:<{width}}  {r.state:<11} {r.epochs_done:>4}/{r.epochs} epochs{detail}")
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    left = "" if eta is None or counts["done"] == len(rows) else f"; about {_duration(eta)} left at {plan.jobs} at a time"
    print(f"{len(rows)} runs: {summary}{left}")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _report(path: str, quiet: bool = False) -> int:
    """Write the sweep's summary and print its table; 1 when a run failed."""
    from drnas.sweep.driver import SweepDir
    from drnas.sweep.report import collect, write_report

    written = write_report(path)
    rows = collect(SweepDir(path))
    if not quiet:
        lines = (SweepDir(path).path / "summary.md").read_text().splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        print("\n".join(lines[start:end]))
        print("wrote " + ", ".join(str(p) for p in written))
    failed = [r for r in rows if r.state == "failed"]
    if failed:
        print(f"drnas: {len(failed)} of {len(rows)} runs failed (listed in summary.md): retry them with "
              f"`drnas sweep --resume {path}`", file=sys.stderr)
        return 1
    return 0
