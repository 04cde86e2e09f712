"""Search-iteration benchmark: median seconds per (arch step + weight step) at batch 64, by preset stage,
and per training step of the CIFAR evaluation network at batch 96.

    python benchmarks/run.py [--only nb201,nb201-prog-s1,nb201-prog-s2,darts-s1,darts-s2,train-cifar] [--steps N] [--json FILE]

Run by hand, not in CI. Data are random CIFAR-shaped uint8 images (the timing does not depend on pixels).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch

from drnas import Search, apply_overrides, preset
from drnas.train import PROTOCOLS, Trainer
from drnas.data import DatasetInfo, ImageArrays

#: name -> (preset, stage index); "train-cifar" times one step of the CIFAR evaluation network instead
CASES = {"nb201": ("nb201", 0), "nb201-prog-s1": ("nb201-progressive", 0), "nb201-prog-s2": ("nb201-progressive", 1),
         "darts-s1": ("darts-cifar10", 0), "darts-s2": ("darts-cifar10", 1), "train-cifar": ("darts-cifar", 0)}


def _cifar_like(n: int) -> ImageArrays:
    rng = np.random.default_rng(0)
    info = DatasetInfo("cifar10", 10, 3, 32, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), True, 4)
    return ImageArrays(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), None, None, info)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_train(steps: int, warmup: int, device: str) -> dict:
    """One training step (forward, auxiliary loss, backward, clip, SGD) of DrNAS_cifar10 at 20 cells / 36 channels."""
    config = apply_overrides(PROTOCOLS.get("darts-cifar"), {"arch": "DrNAS_cifar10", "device": device, "epochs": 600})
    trainer = Trainer(config, data=_cifar_like(96 * (steps + warmup)), progress=False, log=lambda m: None)
    trainer.model.drop_path_prob = 0.3 * 300 / 600  # mid-training drop-path
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    times = []
    for i, (x, y) in enumerate(trainer.train_loader.epoch(0)):
        sync()
        start = time.perf_counter()
        trainer.train_step(x, y)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"name": "train-cifar", "preset": "darts-cifar", "stage": None, "partial_k": None, "ops_kept": None,
            "steps": len(times), "s_per_iter": median, "images_per_s": 96 / median, "peak_mb": _peak_mb(trainer.device)}


def bench(name: str, steps: int, warmup: int, device: str) -> dict:
    if name == "train-cifar":
        return bench_train(steps, warmup, device)
    preset_name, stage = CASES[name]
    config = dataclasses.replace(preset(preset_name), device=device)
    search = Search(config, data=_cifar_like(2 * 64 * (steps + warmup)), progress=False, log=lambda m: None)
    for index in range(1, stage + 1):
        search._enter_stage(index)
    batches = zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0))
    times = []
    sync = torch.cuda.synchronize if search.device.type == "cuda" else (lambda: None)
    for i, ((xw, yw), (xa, ya)) in enumerate(batches):
        sync()
        start = time.perf_counter()
        search.arch_step(xa, ya)
        search.weight_step(xw, yw)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"name": name, "preset": preset_name, "stage": stage, "partial_k": search.net.partial_k,
            "ops_kept": search.relax.num_kept, "steps": len(times), "s_per_iter": median,
            "images_per_s": 128 / median, "peak_mb": _peak_mb(search.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json")
    args = parser.parse_args()
    machine = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine(),
               "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    results = []
    print(f"{'case':<16}{'K':>3}{'ops':>5}{'s/iter':>9}{'img/s':>9}{'peak MB':>9}")
    for name in args.only.split(","):
        r = bench(name, args.steps, args.warmup, args.device)  # note: peak RSS is cumulative over cases
        results.append(r)
        print(f"{name:<16}{r['partial_k'] or '-':>3}{r['ops_kept'] or '-':>5}{r['s_per_iter']:>9.3f}{r['images_per_s']:>9.1f}"
              f"{r['peak_mb']:>9.0f}", flush=True)
    print(json.dumps(machine), file=sys.stderr)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
