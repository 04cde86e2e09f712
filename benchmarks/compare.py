"""A/B timing of one switch, alternating its two settings step by step in one process.

    python benchmarks/compare.py SWITCH [--only NAMES] [--rounds N] [--set FIELD=VALUE ...]

Timings on a shared or throttling machine drift by tens of percent between processes, so a ratio of two
separate ``run.py`` invocations says little. Here both settings run on the same network and data,
interleaved (on, off, on, off, ...), and the ratio of the medians is printed. Switches:

* ``fuse_edges``: the edges leaving a cell node run together (``SearchCell.fuse_edges``) or edge by edge.
* ``channels_last``: the supernet and its inputs in channels_last, or contiguous (NCHW).
* ``depthwise_channels_last``: stacked ops with depthwise convs (DARTS' separable and dilated convs) run in
  channels_last on the CPU (``drnas.fusion.DEPTHWISE_CHANNELS_LAST``), or in the network's layout.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from run import CASES, _search_case, parse_overrides
import drnas.fusion
from drnas import Search
from drnas.supernet import SearchCell


def _fuse_edges(search: Search, on: bool) -> None:
    SearchCell.fuse_edges = on


def _channels_last(search: Search, on: bool) -> None:
    search.memory_format = torch.channels_last if on else torch.contiguous_format
    search.net.to(memory_format=search.memory_format)  # in place: the optimizer keeps its parameters


def _depthwise_channels_last(search: Search, on: bool) -> None:
    drnas.fusion.DEPTHWISE_CHANNELS_LAST = on


SWITCHES: dict[str, Callable[[Search, bool], None]] = {"fuse_edges": _fuse_edges, "channels_last": _channels_last,
                                                       "depthwise_channels_last": _depthwise_channels_last}


def compare(switch: str, name: str, rounds: int, overrides: dict[str, str]) -> tuple[float, float]:
    """Median seconds per iteration with the switch on and off (one untimed round first)."""
    set_switch = SWITCHES[switch]
    search, step, available, _ = _search_case(name, 2 * rounds + 2, 2, "auto", overrides)
    sync = torch.cuda.synchronize if search.device.type == "cuda" else (lambda: None)
    times: dict[bool, list[float]] = {True: [], False: []}
    i = 0
    for round_ in range(rounds + 1):
        for on in (True, False):
            set_switch(search, on)
            search.steps.reset()  # a captured graph would replay the other setting
            sync()
            start = time.perf_counter()
            step(i % available)()
            sync()
            if round_:
                times[on].append(time.perf_counter() - start)
            i += 1
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("switch", choices=sorted(SWITCHES))
    parser.add_argument("--only", default="nb201-prog-s1,nb201-prog-s2,nb201", help="comma-separated search cases")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per setting")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = parse_overrides(args.set, parser)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; s/iter with {args.switch} on / off")
    for name in args.only.split(","):
        if name not in CASES or name == "train-cifar":
            parser.error(f"{name!r} is not a search case; cases: {', '.join(c for c in CASES if c != 'train-cifar')}")
        on, off = compare(args.switch, name, args.rounds, overrides)
        print(f"{name:<15} on {on:8.3f}  off {off:8.3f}  off/on {off / on:5.2f}", flush=True)


if __name__ == "__main__":
    main()
