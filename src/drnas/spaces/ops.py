"""Candidate operations, registered by name.

Every op is built by ``build_op(name, c_in, c_out, stride, affine, track_running_stats)``. Names follow the
NAS-Bench-201 and DARTS papers. ``none`` is a zero op: mixed ops skip it exactly (its output is zero, so it
contributes nothing to the sum and nothing to any gradient), which is why it is marked ``is_zero``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from drnas.registry import Registry
from drnas.spaces.base import ArchitectureError

OpFactory = Callable[[int, int, int, bool, bool], nn.Module]
#: every candidate op: ``factory(c_in, c_out, stride, affine, track_running_stats)``
OPS: Registry[OpFactory] = Registry("op")


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Decorator adding an op factory to the registry; names are unique."""
    return OPS.register(name)  # type: ignore[return-value]


def op_names() -> tuple[str, ...]:
    """Every registered op, those a plugin registered included (read now, never a snapshot)."""
    return OPS.names()


def is_op(name: object) -> bool:
    """Whether ``name`` is a registered op."""
    return isinstance(name, str) and name in OPS


def check_ops(ops: Sequence[str], where: str = "") -> tuple[str, ...]:
    """``ops`` as a tuple once every name is a registered op, given once: else one :class:`ArchitectureError` line
    naming the op, the registered ones and how a plugin's op becomes known (``where`` prefixes the message)."""
    ops = tuple(ops)
    for name in ops:
        if not is_op(name):
            raise ArchitectureError(f"{where}{unknown_op(name)}")
    twice = sorted({name for name in ops if ops.count(name) > 1})
    if twice:
        raise ArchitectureError(f"{where}op {twice[0]!r} is listed twice; list each op once")
    return ops


def unknown_op(name: object) -> str:
    """The message for an op name nobody registered."""
    return (f"unknown op {name!r}; registered ops: {', '.join(OPS.names())}; a plugin's op needs "
            "--plugin MODULE")


def build_op(name: str, c_in: int, c_out: int, stride: int = 1, affine: bool = True,
             track_running_stats: bool = True) -> nn.Module:
    """Instantiate a registered op."""
    return OPS.get(name)(c_in, c_out, stride, affine, track_running_stats)


def is_zero_op(name: str) -> bool:
    return name == "none"


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the output shape (``is_zero``: mixed ops skip it exactly)."""

    is_zero = True

    def __init__(self, c_out: int, stride: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.new_zeros(n, self.c_out, (h + self.stride - 1) // self.stride, (w + self.stride - 1) // self.stride)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BatchNorm, the conv unit of NAS-Bench-201 and DARTS."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int = 1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs (DARTS' skip_connect at stride 2)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)  # on the even pixels (stride 2 from (0, 0))
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)  # on the odd pixels (stride 2 from (1, 1))
        self.bn = nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 1x1 conv at stride 2 reads only every other pixel, and so does ReLU's output: subsample first,
        # then ReLU and convolve at stride 1. Same numbers; on the CPU the strided conv on the full (or, for
        # conv_2, offset) input was nearly 3x slower (docs/performance.md).
        even, odd = self.relu(x[:, :, ::2, ::2]), self.relu(x[:, :, 1::2, 1::2])
        return self.bn(torch.cat([self.conv_1(even), self.conv_2(odd)], dim=1))


@register_op("none")
def _none(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    return Zero(c_out, stride)


@register_op("skip_connect")
def _skip(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return FactorizedReduce(c_in, c_out, affine, track)


@register_op("nor_conv_1x1")
def _conv1(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    return ReLUConvBN(c_in, c_out, 1, stride, 0, 1, affine, track)


@register_op("nor_conv_3x3")
def _conv3(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    return ReLUConvBN(c_in, c_out, 3, stride, 1, 1, affine, track)


class _PoolThenProject(nn.Sequential):
    """Pooling, preceded by a 1x1 ReLUConvBN when the channel count changes (as NAS-Bench-201 does)."""

    def __init__(self, pool: nn.Module, c_in: int, c_out: int, affine: bool, track: bool) -> None:
        layers: list[nn.Module] = []
        if c_in != c_out:
            layers.append(ReLUConvBN(c_in, c_out, 1, 1, 0, 1, affine, track))
        layers.append(pool)
        super().__init__(*layers)


class AvgPool3x3(nn.AvgPool2d):
    """3x3 average pooling, padding 1, padded zeros not counted (NAS-Bench-201's and DARTS' ``avg_pool_3x3``)."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__(3, stride, 1, count_include_pad=False)


class MaxPool3x3(nn.MaxPool2d):
    """3x3 max pooling, padding 1 (``max_pool_3x3``)."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__(3, stride, 1)


@register_op("avg_pool_3x3")
def _avg_pool(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    return _PoolThenProject(AvgPool3x3(stride), c_in, c_out, affine, track)


@register_op("max_pool_3x3")
def _max_pool(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    return _PoolThenProject(MaxPool3x3(stride), c_in, c_out, affine, track)


class SepConv(nn.Sequential):
    """DARTS' separable conv: (ReLU, depthwise kxk, pointwise, BN) twice, the first with the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine, track_running_stats=track_running_stats),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, 1, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class DilConv(nn.Sequential):
    """DARTS' dilated separable conv: ReLU, dilated depthwise kxk, pointwise, BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


def _register_separable(name: str, kernel: int, dilation: int) -> None:
    padding = dilation * (kernel - 1) // 2

    @register_op(name)
    def factory(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
        if dilation == 1:
            return SepConv(c_in, c_out, kernel, stride, padding, affine, track)
        return DilConv(c_in, c_out, kernel, stride, padding, dilation, affine, track)


for _name, _kernel, _dilation in (("sep_conv_3x3", 3, 1), ("sep_conv_5x5", 5, 1),
                                  ("dil_conv_3x3", 3, 2), ("dil_conv_5x5", 5, 2)):
    _register_separable(_name, _kernel, _dilation)
