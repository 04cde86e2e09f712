"""Speed of search iterations and training steps, by preset stage.

    python benchmarks/run.py [--only NAMES] [--steps N] [--warmup N] [--device auto|cpu|cuda] [--json FILE]
                             [--set FIELD=VALUE ...]

Cases: nb201 (K=1), nb201-prog-s1 / -s2 (the progressive preset's stages), darts-s1 / darts-s2 (darts-cifar10's
stages at 20 cells / 36 channels), train-cifar (one training step of DrNAS_cifar10 at batch 96), and
nb201-METHOD for every other method that trains a supernet (nb201-darts, nb201-gdas, ...: the nb201 preset under
``--method METHOD``, its arch step, which the method may lack, plus a weight step). For each case,
in a fresh process so its peak memory is its own: median seconds per iteration (arch step + weight step at
batch 64, or one training step) after warm-up, images per second, peak memory (RSS on the CPU, max allocated
on a GPU), FLOPs of one iteration (torch.utils.flop_counter, with a groups-correct count for the backward of
grouped/depthwise convolutions), the achieved FLOP/s, and its ratio to the float32 (bf16 on GPU)
matrix-multiply rate measured in the same run; and the bytes that the ops of one eager iteration read and
write (every tensor argument and output of each op that is not a view: an upper bound of its memory traffic,
since some operands are still in cache), the rate that makes at the median time, and its ratio to the copy
bandwidth measured in the same run (a large ``copy_``, bytes read plus written). Near 1, an iteration is bound
by memory bandwidth: fewer FLOPs would not make it faster, fewer passes over the activations would. (A compiled
iteration fuses passes, so its own traffic is lower than the eager count.) Data are random CIFAR-shaped uint8
images: timing does not depend on pixel values. ``--set`` overrides config fields of every case (e.g. ``--set
compile=cells``, or ``--set cuda_graphs=off`` for the plain eager path on a GPU; the search and training configs
share the device fields), so variants can be compared. The first ``--warmup`` iterations are not timed: they
hold compilation (reported apart, with the number of graphs dynamo compiled) and, on a GPU, the two eager
warm-up calls and the CUDA-graph capture (and, with compiled cells, their check against eager cells, whose log
line is printed as a ``# CASE:`` line, as are stage transitions; the JSON's ``compile`` says whether the cells
stayed compiled). Run by hand; not part of the test suite.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import drnas
from drnas import apply_overrides
from drnas.data import DatasetInfo, ImageArrays
from drnas.fast.compiled import compile_cells
from drnas.method.parts import RECIPES
from drnas.method.strategies import get_method, method_names
from drnas.search import HESSIAN_BATCHES
from drnas.train import PROTOCOLS, Trainer

#: name -> (preset or protocol, stage index); "train-cifar" times the CIFAR evaluation network instead
CASES = {"nb201": ("nb201", 0), "nb201-prog-s1": ("nb201-progressive", 0), "nb201-prog-s2": ("nb201-progressive", 1),
         "darts-s1": ("darts-cifar10", 0), "darts-s2": ("darts-cifar10", 1), "train-cifar": ("darts-cifar", 0)}
#: ``nb201-METHOD``: the nb201 preset searched by another method (``--method``'s defaults applied); the
#: benchmark-query methods train no network and have no case
CASE_METHODS = {f"nb201-{name}": name for name in method_names() if name != "drnas" and get_method(name).uses_supernet}
CASE_METHODS.update({f"nb201-{name}": name for name in RECIPES})  # a recipe: its method with its parts
CASES.update({case: ("nb201", 0) for case in CASE_METHODS})


def method_case(method: str) -> str:
    """The ``nb201-...`` case of a method, a recipe or ``METHOD+PART+...`` (a method with parts no recipe names,
    registered here on first use)."""
    case = "nb201" if method == "drnas" else f"nb201-{method}"
    if "+" in method and case not in CASES:
        CASE_METHODS[case], CASES[case] = method, ("nb201", 0)
    return case


#: one curvature measurement (``--set hessian_every=N``: largest eigenvalue and trace) on the nb201 supernet; its
#: s/iter divided by an epoch's seconds (CIFAR-10: 391 iterations of the ``nb201`` case) is the per-epoch overhead
CASES["nb201-hessian"] = ("nb201", 0)


def _cifar_like(n: int) -> ImageArrays:
    rng = np.random.default_rng(0)
    info = DatasetInfo("cifar10", 10, 3, 32, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), True, 4)
    return ImageArrays(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), None, None, info)


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of convolution_backward: each requested gradient costs as much as the forward convolution.

    The weight shape is [out, in / groups, kh, kw], so counting from it accounts for groups (PyTorch's own
    formula ignores groups in the weight-gradient term and over-counts depthwise convolutions)."""
    if transposed:
        raise NotImplementedError("transposed convolutions do not occur in drnas networks")
    forward = 2 * int(np.prod(grad_out_shape)) * int(np.prod(w_shape[1:]))
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


class _FlopCounter(TorchDispatchMode):
    """FLOPs of every op by ``torch.utils.flop_counter``'s formulas (convolution_backward by ours). Not
    ``FlopCounterMode`` itself: its per-module tracking hooks fail inside ``torch.autograd.grad`` (torch 2.13),
    which the second-order methods' steps call."""

    def __init__(self) -> None:
        from torch.utils.flop_counter import flop_registry, shape_wrapper

        super().__init__()
        self.flops = 0
        self.formulas = {**flop_registry, torch.ops.aten.convolution_backward: shape_wrapper(_conv_backward_flops)}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def _count_flops(step: Callable[[], None]) -> int:
    with _FlopCounter() as counter:
        step()
    return counter.flops


def _addressed_bytes(t: torch.Tensor) -> int:
    """The bytes a tensor's elements occupy: a broadcast (stride-0) dimension does not multiply them."""
    count = 1
    for size, stride in zip(t.shape, t.stride()):
        count *= size if stride else 1
    return count * t.element_size()


class _TrafficCounter(TorchDispatchMode):
    """Bytes of the tensor arguments and outputs of every op that is not a view (its outputs share no storage
    with its inputs, or it writes in place)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        storages = {t.untyped_storage().data_ptr() for t in inputs}
        in_place = any(a.alias_info is not None and a.alias_info.is_write for a in func._schema.arguments)
        if in_place or not all(t.untyped_storage().data_ptr() in storages for t in outputs):
            self.bytes += sum(_addressed_bytes(t) for t in inputs + outputs)
        return out


def _count_bytes(step: Callable[[], None]) -> int:
    with torch.compiler.set_stance("force_eager"), _TrafficCounter() as counter:
        step()
    return counter.bytes


def copy_rate(device: torch.device, seconds: float = 1.0) -> float:
    """Memory bandwidth of a large tensor copy, bytes read plus written per second."""
    src = torch.randn(64 * 2**20, device=device)  # 256 MB: far beyond any cache
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    dst.copy_(src)
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dst.copy_(src)
        count += 1
    sync()
    return 2 * src.numel() * src.element_size() * count / (time.perf_counter() - start)


def matmul_rate(device: torch.device, seconds: float = 1.0) -> float:
    """Dense matrix-multiply FLOP/s on ``device`` (float32 on the CPU, bf16 on a GPU)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 4096 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    sync()
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def build_search(name: str, overrides: dict[str, str], device: str, data: Any, pkg: ModuleType = drnas,
                 log: Callable[[str], None] = lambda m: None) -> Any:
    """The search of case ``name`` built with the package ``pkg`` (the working tree's ``drnas``, or an earlier
    revision's for compare_revs.py), at the loop's state for the middle epoch of the case's stage."""
    def module(sub: str) -> ModuleType:
        return importlib.import_module(f"{pkg.__name__}.{sub}")

    preset_name, stage = CASES[name]
    config, parts = pkg.preset(preset_name), []
    if name in CASE_METHODS:  # a method, a recipe, or METHOD+PART+...
        method, *parts = CASE_METHODS[name].split("+")
        config = module("method.strategies").with_method(config, method)
    fields, extra, settings = module("config.resolve").split_parts(overrides, "--set")
    parts = [*config.parts, *parts, *extra]
    # a part's --set settings reach the cases that use the part; the other fields reach every case
    config = module("method.parts").with_parts(config, parts, {part: values for part, values in settings.items()
                                                               if part in parts})
    search = pkg.Search(pkg.apply_overrides(config, {**fields, "device": device}), data=data, progress=False, log=log)
    for index in range(1, stage + 1):
        search._enter_stage(index)
    # the state the loop gives the stage's middle epoch: the parts' schedules (beta-decay's lambda is 0 at the
    # first epoch, so it would cost nothing there) and their op-level state (skip dropout)
    middle = sum(s.epochs for s in config.stages[:stage]) + config.stages[stage].epochs // 2
    search.strategy.start_epoch(middle, config.epochs)
    search.strategy.prepare_network(search.net)
    return search


def _search_case(name: str, steps: int, warmup: int, device: str,
                 overrides: dict[str, str]) -> tuple[Any, Callable[[int], Callable[[], None]], int, int]:
    images = 2 * 64 * (steps + warmup + 1 + (HESSIAN_BATCHES if name == "nb201-hessian" else 0))
    search = build_search(name, overrides, device, _cifar_like(images),
                          log=lambda m: print(f"# {m}", file=sys.stderr, flush=True))  # main() shows these lines
    batches = list(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0)))

    def step(i: int) -> Callable[[], None]:
        (xw, yw), (xa, ya) = batches[i]
        if name == "nb201-hessian":
            return lambda: search.curvature()
        if not search.method.trains_arch:
            return lambda: search.weight_step(xw, yw)
        return lambda: (search.arch_step(xa, ya, (xw, yw)), search.weight_step(xw, yw))

    return search, step, len(batches), 128


def _train_case(steps: int, warmup: int, device: str,
                overrides: dict[str, str]) -> tuple[Any, Callable[[int], Callable[[], None]], int, int]:
    config = apply_overrides(PROTOCOLS.get("darts-cifar"), {**overrides, "arch": "DrNAS_cifar10", "device": device})
    trainer = Trainer(config, data=_cifar_like(96 * (steps + warmup + 1)), progress=False, log=lambda m: None)
    trainer.model.drop_path_prob = 0.15  # mid-training drop-path
    batches = list(trainer.train_loader.epoch(0))

    def step(i: int) -> Callable[[], None]:
        x, y = batches[i]
        return lambda: trainer.train_step(x, y)

    return trainer, step, len(batches), 96


def run_case(name: str, steps: int, warmup: int, device: str, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    from torch._dynamo.utils import counters

    overrides = overrides or {}
    job, step, available, images = (_train_case(steps, warmup, device, overrides) if name == "train-cifar"
                                    else _search_case(name, steps, warmup, device, overrides))
    sync = torch.cuda.synchronize if job.device.type == "cuda" else (lambda: None)
    times, warmup_s, graphs_warm = [], 0.0, 0
    for i in range(min(available - 1, steps + warmup)):
        if i == warmup:
            graphs_warm = counters["stats"]["unique_graphs"]
        sync()
        start = time.perf_counter()
        step(i)()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
        else:
            warmup_s += time.perf_counter() - start
    graphs = counters["stats"]["unique_graphs"]  # more than graphs_warm: compiled while timed (raise --warmup)
    median = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if job.device.type == "cuda"  # before counting FLOPs,
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)       # which may hold more memory
    job.runner.steps.enabled = False  # count FLOPs on the eager path: a graph replay is invisible to the counter,
    if name != "train-cifar":  # and generated kernels are too (eager cells do the same arithmetic, uncompiled)
        compile_cells(job.net, "none")
    # counting a curvature measurement op by op takes many minutes (every Hessian-vector product): not counted
    counted = name != "nb201-hessian"
    flops = _count_flops(step(available - 1)) if counted else float("nan")
    touched = _count_bytes(step(available - 1)) if counted else float("nan")
    rate, bandwidth = matmul_rate(job.device), copy_rate(job.device)
    record = {"name": name, "steps": len(times), "s_per_iter": median, "images_per_s": images / median,
              "peak_mb": peak, "gflop_per_iter": flops / 1e9, "achieved_gflops": flops / median / 1e9,
              "matmul_gflops": rate / 1e9, "fraction_of_matmul": flops / median / rate,
              "gb_touched_per_iter": touched / 1e9, "achieved_gbps": touched / median / 1e9,
              "copy_gbps": bandwidth / 1e9, "fraction_of_copy": touched / median / bandwidth,
              "device": str(job.device),
              "amp": str(job.runner.amp_dtype).replace("torch.", "") if job.runner.amp_dtype else "off",
              "cuda_graphs": job.runner.steps.captured, "warmup_s": warmup_s, "graphs_compiled": graphs,
              "compile": job.runner.compile_mode,
              "graphs_while_timed": graphs - graphs_warm, "overrides": overrides}
    if name != "train-cifar":
        record.update(partial_k=job.net.partial_k, ops_kept=job.relax.num_kept)
    return record


def parse_overrides(items: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    """``--set FIELD=VALUE`` items as a dict (a malformed item ends with the parser's usage error)."""
    bad = [item for item in items if "=" not in item]
    if bad:
        parser.error(f"--set needs FIELD=VALUE, got {bad[0]!r}")
    return dict(item.split("=", 1) for item in items)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(c for c in CASES if c not in CASE_METHODS and c != "nb201-hessian"),
                        help="comma-separated case names (default: all but the nb201-METHOD and nb201-hessian cases)")
    parser.add_argument("--steps", type=int, default=10, help="timed iterations per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations (>= 3 for CUDA-graph capture)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field of every case (repeatable), e.g. --set compile=cells")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    overrides = parse_overrides(args.set, parser)
    if args.case:
        print(json.dumps(run_case(args.case, args.steps, args.warmup, args.device, overrides)))
        return
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    info = machine()
    print(f"# {json.dumps({**info, 'overrides': overrides})}")
    print(f"{'case':<15}{'K':>3}{'ops':>5}{'s/iter':>9}{'img/s':>8}{'peak MB':>9}{'GFLOP/it':>10}{'GFLOP/s':>9}{'of mm':>7}"
          f"{'GB/it':>7}{'of copy':>8}{'warmup s':>10}{'graphs':>7}")
    results = []
    for name in names:  # one process per case: peak memory is the case's own
        done = subprocess.run([sys.executable, __file__, "--case", name, "--steps", str(args.steps), "--warmup",
                               str(args.warmup), "--device", args.device, *(f"--set={item}" for item in args.set)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name:<15} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        for line in done.stderr.splitlines():  # the search's log (compile checks, stages)
            if line.startswith("# "):
                print(f"# {name}: {line[2:]}")
        print(f"{name:<15}{r.get('partial_k', '-'):>3}{r.get('ops_kept', '-'):>5}{r['s_per_iter']:>9.3f}"
              f"{r['images_per_s']:>8.1f}{r['peak_mb']:>9.0f}{r['gflop_per_iter']:>10.1f}{r['achieved_gflops']:>9.1f}"
              f"{r['fraction_of_matmul']:>7.2f}{r['gb_touched_per_iter']:>7.1f}{r['fraction_of_copy']:>8.2f}"
              f"{r['warmup_s']:>10.1f}{r['graphs_compiled']:>7}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "overrides": overrides, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
