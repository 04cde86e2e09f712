"""GPU kernels of one search iteration: how many, their summed device time, and the largest by name.

    python benchmarks/kernels.py [--only NAMES] [--steps N] [--set FIELD=VALUE ...] [--experiment NAME]

A CUDA-graph replay runs the same kernels back to back, so the summed device time is the floor a graphed step
can reach, and kernels x a few microseconds is what the gaps between them cost. Steps run without graphs here
(``cuda_graphs=off``; the profiler does not see inside a replay); ``--set compile=cells`` counts inductor's
kernels instead of eager PyTorch's.

``--experiment NAME`` measures an idea before it goes into the library:

* ``cudnn_batch_norm``: a BatchNorm given a weight but no bias (the stacked BatchNorms carrying the mixing
  weights) gets a zero bias, so PyTorch runs cuDNN's BatchNorm (it needs both) instead of its own kernels, which
  lead an eager ``nb201`` iteration on an H200 (9.8 of 34.5 ms). Same results; the zero bias's gradient is
  dropped.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import _search_case, parse_overrides  # noqa: E402


def _cudnn_batch_norm() -> None:
    plain = torch.nn.functional.batch_norm

    def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                   eps=1e-5):
        if weight is not None and bias is None and input.is_cuda:
            bias = torch.zeros_like(weight)
        return plain(input, running_mean, running_var, weight, bias, training, momentum, eps)

    torch.nn.functional.batch_norm = batch_norm  # drnas.fast.fusion calls F.batch_norm through the module


EXPERIMENTS = {"cudnn_batch_norm": _cudnn_batch_norm}


def profile_case(name: str, steps: int, overrides: dict[str, str]) -> dict[str, object]:
    warmup = 3
    _, step, _, _ = _search_case(name, steps, warmup, "cuda", {**overrides, "cuda_graphs": "off"})
    for i in range(warmup):
        step(i)()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for i in range(warmup, warmup + steps):
            step(i)()
        torch.cuda.synchronize()
    per_name: collections.Counter[str] = collections.Counter()
    count, device_us = 0, 0.0
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        count += 1
        us = event.device_time_total  # a device event's own duration
        device_us += us
        per_name[event.name[:60]] += us
    return {"name": name, "kernels_per_iter": count / steps, "device_ms_per_iter": device_us / steps / 1e3,
            "top": [(kernel, round(us / steps / 1e3, 3)) for kernel, us in per_name.most_common(8)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="nb201,nb201-prog-s1", help="comma-separated case names (search cases)")
    parser.add_argument("--steps", type=int, default=3, help="profiled iterations per case")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override")
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), help="an idea to measure (see above)")
    args = parser.parse_args()
    overrides = parse_overrides(args.set, parser)
    if args.experiment:
        EXPERIMENTS[args.experiment]()
    for name in args.only.split(","):
        result = profile_case(name, args.steps, overrides)
        print(f"{name}: {result['kernels_per_iter']:.0f} kernels, {result['device_ms_per_iter']:.2f} ms of device "
              f"time per iteration {overrides or ''} {args.experiment or ''}", flush=True)
        for kernel, ms in result["top"]:  # type: ignore[union-attr]
            print(f"    {ms:8.3f} ms  {kernel}")


if __name__ == "__main__":
    main()
