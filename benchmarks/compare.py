"""A/B timing of one switch, alternating its two settings step by step in one process.

    python benchmarks/compare.py SWITCH [--only NAMES] [--rounds N] [--set FIELD=VALUE ...]

Timings on a shared or throttling machine drift by tens of percent between processes, so a ratio of two
separate ``run.py`` invocations says little. Here both settings run on the same network and data,
interleaved (on, off, on, off, ...), and the ratio of the medians is printed with the range of the per-round
ratios. Switches:

* ``fuse_edges``: the edges leaving a cell node run together (``SearchCell.fuse_edges``) or edge by edge.
* ``channels_last``: the supernet and its inputs in channels_last, or contiguous (NCHW).
* ``depthwise_channels_last``: stacked ops with depthwise convs (DARTS' separable and dilated convs) run in
  channels_last on the CPU (``drnas.fusion.DEPTHWISE_CHANNELS_LAST``), or in the network's layout.
* ``small_conv_channels_last``: a stack's first dense conv with at most 4 input channels runs in channels_last
  on the CPU (``drnas.fusion.SMALL_CONV_CHANNELS_LAST``), or in the network's layout.
* ``fold_scales``: the mixing weights of an op's edges are folded into the op's final BatchNorm
  (``drnas.fusion.FOLD_SCALES``), or multiplied with its outputs.
* ``batch_norm_nchw``: in a stack switched to channels_last, BatchNorms over channel counts that are not a
  multiple of 8 run in NCHW (``drnas.fusion.CHANNELS_LAST_BATCH_NORM_MULTIPLE``), or in channels_last.
* ``keep_layout``: compiled cells (needs ``--set compile=cells``) keep the network's layout or take inductor's
  (``keep_layout`` of ``Supernet.compile_cells``); both sets of compiled cells are made once and swapped.
* ``pointwise_conv``: inside compiled cells (``--set compile=cells``), 1x1 convs over at most 16 channels are
  weighted channel sums (``drnas.fusion.COMPILED_POINTWISE_CONV_CHANNELS``), or oneDNN convs.
* ``flipped_input_grad``: inside compiled cells (``--set compile=cells``), stride-1 convs over at most 4 NCHW
  channels take their input gradient from a forward conv with flipped weights
  (``drnas.fusion.COMPILED_FLIPPED_INPUT_GRAD_CHANNELS``), or from oneDNN's backward-data kernel.
* ``join_shuffle``: a partial-channel node writes its op and bypass channels straight into the shuffled order
  (``drnas.supernet.JOIN_SHUFFLE``), or concatenates them and then shuffles.
* ``preprocess_together``: DARTS networks (search and evaluation) preprocess each state for all the cells that
  read it as one stack, or module by module (``preprocess_together`` of ``DartsSupernet`` and ``DartsNetwork``).

Cases are run.py's: the search cases, and ``train-cifar`` (the evaluation network's training step).
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Callable

import torch

from run import CASES, _search_case, _train_case, parse_overrides
import drnas.fusion
import drnas.supernet
from drnas.spaces.darts import DartsNetwork, DartsSupernet
from drnas.supernet import SearchCell
from drnas.training import Job


def _fuse_edges(job: Job, on: bool) -> None:
    SearchCell.fuse_edges = on


def _channels_last(job: Job, on: bool) -> None:
    job.memory_format = torch.channels_last if on else torch.contiguous_format
    network = job.net if hasattr(job, "net") else job.model
    network.to(memory_format=job.memory_format)  # in place: the optimizer keeps its parameters


def _depthwise_channels_last(job: Job, on: bool) -> None:
    drnas.fusion.DEPTHWISE_CHANNELS_LAST = on


def _small_conv_channels_last(job: Job, on: bool) -> None:
    drnas.fusion.SMALL_CONV_CHANNELS_LAST = 4 if on else 0


def _batch_norm_nchw(job: Job, on: bool) -> None:
    drnas.fusion.CHANNELS_LAST_BATCH_NORM_MULTIPLE = 8 if on else 0


def _fold_scales(job: Job, on: bool) -> None:
    drnas.fusion.FOLD_SCALES = on


def _keep_layout(job: Job, on: bool) -> None:
    net = job.net
    if net.cell_compile_settings is None:
        raise SystemExit("keep_layout compares compiled cells: add --set compile=cells")
    wrappers = getattr(job, "_layout_wrappers", None)
    if wrappers is None:  # one wrapper per cell and setting: each keeps its own graphs in dynamo's cache
        wrappers = {}
        for keep in (True, False):
            net.compile_cells("cells", keep_layout=keep)
            wrappers[keep] = [cell._compiled_call_impl for cell in net.search_cells()]
        job._layout_wrappers = wrappers
    for cell, wrapper in zip(net.search_cells(), wrappers[on]):
        cell._compiled_call_impl = wrapper
    net.cell_compile_settings = (net.cell_compile_settings[0], on)


def _pointwise_conv(job: Job, on: bool) -> None:
    drnas.fusion.COMPILED_POINTWISE_CONV_CHANNELS = 16 if on else 0


def _flipped_input_grad(job: Job, on: bool) -> None:
    drnas.fusion.COMPILED_FLIPPED_INPUT_GRAD_CHANNELS = 4 if on else 0


def _join_shuffle(job: Job, on: bool) -> None:
    drnas.supernet.JOIN_SHUFFLE = on


def _preprocess_together(job: Job, on: bool) -> None:
    DartsSupernet.preprocess_together = DartsNetwork.preprocess_together = on


SWITCHES: dict[str, Callable[[Job, bool], None]] = {"fuse_edges": _fuse_edges, "channels_last": _channels_last,
                                                    "depthwise_channels_last": _depthwise_channels_last,
                                                    "small_conv_channels_last": _small_conv_channels_last,
                                                    "preprocess_together": _preprocess_together,
                                                    "fold_scales": _fold_scales,
                                                    "batch_norm_nchw": _batch_norm_nchw,
                                                    "keep_layout": _keep_layout,
                                                    "pointwise_conv": _pointwise_conv,
                                                    "flipped_input_grad": _flipped_input_grad,
                                                    "join_shuffle": _join_shuffle}


def compare(switch: str, name: str, rounds: int, overrides: dict[str, str]) -> tuple[list[float], list[float]]:
    """Seconds per iteration with the switch on and off, one pair per round (after one untimed round)."""
    set_switch = SWITCHES[switch]
    make_case = _train_case if name == "train-cifar" else functools.partial(_search_case, name)
    job, step, available, _ = make_case(2 * rounds + 2, 2, "auto", overrides)
    sync = torch.cuda.synchronize if job.device.type == "cuda" else (lambda: None)
    times: dict[bool, list[float]] = {True: [], False: []}
    i = 0
    for round_ in range(rounds + 1):
        for on in (True, False):
            set_switch(job, on)
            job.steps.reset()  # a captured graph would replay the other setting
            sync()
            start = time.perf_counter()
            step(i % available)()
            sync()
            if round_:
                times[on].append(time.perf_counter() - start)
            i += 1
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
