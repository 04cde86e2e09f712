"""Wall time of one small grid run three ways, taken in turn so the machine's drift hits each alike:
``sequential`` (one run at a time with every core), ``pool`` (``drnas sweep``'s local pool: one run per core,
one thread each) and ``ray`` (the same runs as tasks on a local Ray instance, started and stopped inside the
timing).

    python benchmarks/sweep_wall.py --data ../shared/data/cifar10/cifar10.npz --rounds 2 --json out.json

The grid: DrNAS on the nb201 preset at a small budget (8 channels, 1 cell per stage, 1,000 CIFAR-10 images,
2 epochs), seeds 0..N-1.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def grid(data: str, seeds: int) -> list[str]:
    return ["--method", "drnas", "--seeds", f"0-{seeds - 1}", "--preset", "nb201", "--dataset", "cifar10",
            "--data", data, "--train-images", "1000", "--epochs", "2", "--set", "channels=8",
            "--set", "cells_per_stage=1", "--quiet"]


def variant(name: str, cores: int) -> list[str]:
    return {"sequential": ["--jobs", "1", "--threads", str(cores)],
            "pool": ["--jobs", str(cores), "--threads", "1"],
            "ray": ["--ray", "local", "--threads", "1"]}[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CIFAR-10 directory or .npz")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="sequential,pool,ray")
    parser.add_argument("--json", help="write the raw timings here")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    names = args.variants.split(",")
    times: dict[str, list[float]] = {n: [] for n in names}
    root = Path(tempfile.mkdtemp(prefix="sweep-wall-"))
    try:
        for r in range(args.rounds):
            for name in names:
                out = root / f"{name}-{r}"
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "drnas", "sweep", *grid(args.data, args.seeds),
                                *variant(name, cores), "--out", str(out)], check=True)
                times[name].append(time.perf_counter() - start)
                print(f"round {r} {name}: {times[name][-1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = times[names[0]]
    for name in names:
        ratios = [b / t for b, t in zip(base, times[name])]
        print(f"{name:<11} {' '.join(f'{t:6.1f}' for t in times[name])} s   {names[0]}/{name}: "
              f"{min(ratios):.2f}-{max(ratios):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cores": cores,
                                               "grid": grid("DATA", args.seeds), "seconds": times}, indent=1))


if __name__ == "__main__":
    main()
