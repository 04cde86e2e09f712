"""A/B timing of one switch, alternating its two settings step by step in one process.

    python benchmarks/compare.py SWITCH [--only NAMES] [--rounds N] [--set FIELD=VALUE ...]

Timings on a shared or throttling machine drift by tens of percent between processes, so a ratio of two
separate ``run.py`` invocations says little. Here both settings run on the same network and data,
interleaved (on, off, on, off, ...), and the ratio of the medians is printed with the range of the per-round
ratios. Switches: every field of ``drnas.fast.settings.FastPaths`` (on: its default; off: ``FastPaths.off``), e.g.

* ``fuse_edges``: the edges leaving a cell node run each op once for all of them, or edge by edge;
* ``preprocess_together``: DARTS networks preprocess each state for all its reader cells as one stack;
* ``join_shuffle``: a partial-channel node writes its channels straight into the shuffled order;
* ``fold_scales``: mixing weights folded into an op's final BatchNorm, or multiplied with its outputs;
* ``fast_pooling``: window-sum average pooling and channels_last max pooling on the CPU, or PyTorch's kernels;
* ``depthwise_channels_last``, ``small_conv_channels_last``, ``batch_norm_nchw``
  (``channels_last_batch_norm_multiple``): the layout switches of stacked ops on the CPU;
* ``compiled_pointwise_conv_channels``, ``compiled_flipped_input_grad_channels``: the conv rewrites inside
  compiled cells (need ``--set compile=cells``);

and two that are settings of the job rather than fast paths:

* ``channels_last``: the supernet and its inputs in channels_last, or contiguous (NCHW);
* ``keep_layout``: compiled cells (needs ``--set compile=cells``) keep the network's layout or take inductor's
  (``keep_layout`` of ``drnas.fast.compiled.compile_cells``); both sets of compiled cells are made once and swapped.

Cases are run.py's: the search cases, and ``train-cifar`` (the evaluation network's training step).
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any, Callable

import torch

from run import CASES, _search_case, _train_case, parse_overrides
from drnas.fast import settings as fastpaths
from drnas.fast.compiled import compile_cells, compiled_with, search_cells
from drnas.engine.job import Job


def _channels_last(job: Job, on: bool) -> None:
    job.runner.memory_format = torch.channels_last if on else torch.contiguous_format
    network = job.net if hasattr(job, "net") else job.model
    network.to(memory_format=job.runner.memory_format)  # in place: the optimizer keeps its parameters


def _keep_layout(job: Job, on: bool) -> None:
    net = job.net
    if compiled_with(net) is None:
        raise SystemExit("keep_layout compares compiled cells: add --set compile=cells")
    wrappers = getattr(job, "_layout_wrappers", None)
    if wrappers is None:  # one wrapper per cell and setting: each keeps its own graphs in dynamo's cache
        wrappers = {}
        for keep in (True, False):
            compile_cells(net, "cells", keep_layout=keep)
            wrappers[keep] = [cell._compiled_call_impl for cell in search_cells(net)]
        job._layout_wrappers = wrappers
    for cell, wrapper in zip(search_cells(net), wrappers[on]):
        cell._compiled_call_impl = wrapper
    net.__dict__["_cell_compile_settings"] = (compiled_with(net)[0], on)


def _fast_path(name: str) -> Callable[[Job, bool], None]:
    def set_switch(job: Job, on: bool) -> None:
        fastpaths.configure(fastpaths.DEFAULT if on else fastpaths.DEFAULT.off(name))
    return set_switch


SWITCHES: dict[str, Callable[[Job, bool], None]] = {
    **{name: _fast_path(name) for name in fastpaths.switch_names()},
    "batch_norm_nchw": _fast_path("channels_last_batch_norm_multiple"),  # the older names of two switches
    "pointwise_conv": _fast_path("compiled_pointwise_conv_channels"),
    "flipped_input_grad": _fast_path("compiled_flipped_input_grad_channels"),
    "channels_last": _channels_last, "keep_layout": _keep_layout}


def alternate(runs: dict[Any, Callable[[int], Callable[[], None]]], rounds: int,
              sync: Callable[[], None] = lambda: None) -> dict[Any, list[float]]:
    """Seconds of each run's steps, taken in turn (a, b, c, a, b, c, ...): one untimed round, then ``rounds``
    timed ones. ``runs[key](i)`` prepares the i-th step untimed and returns it, to be timed."""
    times: dict[Any, list[float]] = {key: [] for key in runs}
    for round_ in range(rounds + 1):
        for key, prepare in runs.items():
            step = prepare(round_)
            sync()
            start = time.perf_counter()
            step()
            sync()
            if round_:
                times[key].append(time.perf_counter() - start)
    return times


def compare(switch: str, name: str, rounds: int, overrides: dict[str, str]) -> tuple[list[float], list[float]]:
    """Seconds per iteration with the switch on and off, one pair per round (after one untimed round)."""
    set_switch = SWITCHES[switch]
    make_case = _train_case if name == "train-cifar" else functools.partial(_search_case, name)
    job, step, available, _ = make_case(2 * rounds + 2, 2, "auto", overrides)

    def prepare(on: bool) -> Callable[[int], Callable[[], None]]:
        def at(round_: int) -> Callable[[], None]:
            set_switch(job, on)
            job.runner.reset()  # a captured graph would replay the other setting
            return step((2 * round_ + (not on)) % available)
        return at

    times = alternate({True: prepare(True), False: prepare(False)}, rounds,
                      torch.cuda.synchronize if job.device.type == "cuda" else (lambda: None))
    return times[True], times[False]


def summary(on: list[float], off: list[float]) -> str:
    """Medians, their ratio, and the spread of the per-round ratios (each round's two steps ran back to back,
    so a round's ratio is the least disturbed by the machine's drift; their range shows how far to trust the
    median ratio)."""
    paired = sorted(b / a for a, b in zip(on, off))
    median_on, median_off = statistics.median(on), statistics.median(off)
    return (f"on {median_on:8.3f}  off {median_off:8.3f}  off/on {median_off / median_on:5.2f}"
            f"  (per round {paired[0]:.2f}-{paired[-1]:.2f}, {len(paired)} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("switch", choices=sorted(SWITCHES))
    parser.add_argument("--only", default="nb201-prog-s1,nb201-prog-s2,nb201", help="comma-separated cases")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per setting")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = parse_overrides(args.set, parser)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; s/iter with {args.switch} on / off")
    for name in args.only.split(","):
        if name not in CASES:
            parser.error(f"unknown case {name!r}; cases: {', '.join(CASES)}")
        on, off = compare(args.switch, name, args.rounds, overrides)
        print(f"{name:<15} {summary(on, off)}", flush=True)


if __name__ == "__main__":
    main()
