"""The switchboard of the speed paths: one settings object that every fast path reads, and nothing else.

A network runs its plain, readable path (the mixed op as ``sum_o theta_o * op_o(x)``, PyTorch's own pooling
kernels) until :func:`drnas.fast.fusion.install` puts the fast paths onto it. Each installed path then asks
:func:`current` on every call whether it is on, so a switch flips at run time, for the whole process, without
rebuilding or reinstalling anything (as ``timm.layers.config`` does for its layer flags)::

    from drnas.fast import settings as fastpaths
    with fastpaths.using(fuse_edges=False):      # one switch off inside the block
        ...
    with fastpaths.using(fastpaths.PLAIN):       # every fast path off: the reference the tests compare against
        ...

Every fast path is exact: it computes what the plain path computes (up to float rounding) and it is tested
against it (``tests/test_fusion.py``). ``benchmarks/compare.py SWITCH`` times one switch on against off.
This module imports nothing from drnas: the method code never needs it, the fast paths all do.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class FastPaths:
    """Which speed paths run. Integers are channel thresholds (0 turns the path off); the measurements behind
    each default are with the code that reads it (:mod:`drnas.fast.fusion`, :mod:`drnas.fast.ops`)."""

    #: the edges leaving a cell node run each candidate op once for all of them, as one wider op
    fuse_edges: bool = True
    #: DARTS networks preprocess each state for all the cells that read it as one stack
    preprocess_together: bool = True
    #: a partial-channel node writes its op and bypass channels straight into the shuffled order
    join_shuffle: bool = True
    #: the edges' mixing weights are folded into a stacked op's final BatchNorm
    fold_scales: bool = True
    #: average pooling as a window sum and max pooling in channels_last on the CPU (not PyTorch's pooling kernels)
    fast_pooling: bool = True
    #: stacked ops with a depthwise conv run in channels_last on the CPU
    depthwise_channels_last: bool = True
    #: a stack's first dense conv over at most this many input channels runs in channels_last on the CPU
    small_conv_channels_last: int = 4
    #: in a stack switched to channels_last, BatchNorms over channel counts not a multiple of this run in NCHW
    channels_last_batch_norm_multiple: int = 8
    #: in compiled cells on the CPU, 1x1 convs over at most this many NCHW channels are weighted channel sums
    compiled_pointwise_conv_channels: int = 16
    #: in compiled cells on the CPU, stride-1 convs over at most this many NCHW channels take their input
    #: gradient from a forward conv with flipped weights
    compiled_flipped_input_grad_channels: int = 4

    def off(self, name: str) -> "FastPaths":
        """These settings with one switch off."""
        field = self.__dataclass_fields__[name]
        return dataclasses.replace(self, **{name: 0 if field.type == "int" else False})


#: every fast path on (the defaults)
DEFAULT = FastPaths()
#: every fast path off: the plain path
PLAIN = FastPaths(**{f.name: 0 if f.type == "int" else False for f in dataclasses.fields(FastPaths)})

_current = DEFAULT


def switch_names() -> list[str]:
    return [f.name for f in dataclasses.fields(FastPaths)]


def current() -> FastPaths:
    """The settings the fast paths run with now."""
    return _current


def configure(paths: FastPaths | None = None, **changes: bool | int) -> FastPaths:
    """Set the process-wide settings (``paths``, then ``changes`` on top of it); returns the previous ones."""
    global _current
    unknown = sorted(set(changes) - set(switch_names()))
    if unknown:
        raise ValueError(f"unknown fast path {unknown[0]!r}; known: {', '.join(switch_names())}")
    previous = _current
    _current = dataclasses.replace(paths or _current, **changes)
    return previous


@contextlib.contextmanager
def using(paths: FastPaths | None = None, **changes: bool | int) -> Iterator[FastPaths]:
    """The settings ``paths`` (with ``changes`` on top) inside the block, the previous ones after it."""
    previous = configure(paths, **changes)
    try:
        yield _current
    finally:
        configure(previous)
