"""Candidate operations, registered by name.

Every op is built by ``build_op(name, c_in, c_out, stride, affine, track_running_stats)``. Names follow the
NAS-Bench-201 and DARTS papers. ``none`` is a zero op: mixed ops skip it exactly (its output is zero, so it
contributes nothing to the sum and nothing to any gradient), which is why it is marked ``is_zero``.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

OpFactory = Callable[[int, int, int, bool, bool], nn.Module]
_OPS: dict[str, OpFactory] = {}


def register_op(name: str) -> Callable[[OpFactory], OpFactory]:
    """Decorator adding an op factory to the registry; names are unique."""

    def add(factory: OpFactory) -> OpFactory:
        if name in _OPS:
            raise ValueError(f"op {name!r} is already registered")
        _OPS[name] = factory
        return factory

    return add


def op_names() -> tuple[str, ...]:
    return tuple(_OPS)


def build_op(name: str, c_in: int, c_out: int, stride: int = 1, affine: bool = True,
             track_running_stats: bool = True) -> nn.Module:
    """Instantiate a registered op."""
    try:
        factory = _OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(_OPS)}") from None
    return factory(c_in, c_out, stride, affine, track_running_stats)


def is_zero_op(name: str) -> bool:
    return name == "none"


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the output shape."""

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
        # conv_2, offset) input was 2.7x slower (forward+backward, 64x144x32x32: 269 vs 101 ms).
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


def _box_sum_3x3(x: torch.Tensor) -> torch.Tensor:
    """Sum over each 3x3 window, zero padding 1, stride 1: a row pass and a column pass of shifted adds.

    Eager, the third term of each pass is added in place (one temporary less). Under ``torch.compile`` all adds
    are out of place: dynamo routes the gradient of an ``autograd.Function`` whose forward mutates a tensor in
    place to the wrong output (pytorch#180642, torch 2.11; it gave compiled NB201 cells wrong eta gradients),
    and inductor fuses the adds anyway (compiled CPU steps against the in-place form, one process, 6 rounds:
    ``nb201-prog-s1`` 0.98x, ``nb201-prog-s2`` 1.03x).
    """
    padded = F.pad(x, (1, 1, 1, 1))
    if torch.compiler.is_compiling():
        rows = padded[..., :-2] + padded[..., 1:-1] + padded[..., 2:]
        return rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
    rows = padded[..., :-2] + padded[..., 1:-1]
    rows += padded[..., 2:]
    out = rows[:, :, :-2] + rows[:, :, 1:-1]
    out += rows[:, :, 2:]
    return out


class _BoxSum3x3(torch.autograd.Function):
    """The 3x3 window sum with a hand-written backward: the kernel is symmetric and zero-padded, so its
    adjoint is the same window sum of the gradient (autograd through the slices would allocate a zero
    tensor per slice)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _box_sum_3x3(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _box_sum_3x3(grad)


class AvgPool3x3(nn.Module):
    """3x3 average pooling, padding 1, padded zeros not counted (``count_include_pad=False``).

    Computed as a 3x3 window sum divided by the number of in-image taps: the same numbers as
    ``nn.AvgPool2d(3, stride, 1, count_include_pad=False)`` (up to float rounding), but PyTorch's CPU pooling
    kernel is about 10x slower at NB201's sizes (9 ms vs 0.7 ms forward for 64x16x32x32 on 2 cores), and
    pooling was a third of a search step. At stride 1 the window sum is four shifted adds (:class:`_BoxSum3x3`);
    at stride 2 it is a depthwise convolution with a ones kernel, which is faster there. oneDNN's depthwise
    kernels are slow at channel counts that are not a multiple of 16: forward+backward on 64x4x32x32 took
    2.3-5.6 ms as a convolution and 0.4-0.6 ms as shifted adds.
    """

    #: When True (inside :func:`reference_pooling`), run PyTorch's pooling op instead: MAC counts then leave
    #: pooling out, as papers count, and exported graphs hold a plain pooling node.
    use_reference = False

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self._inv_count: dict[tuple, torch.Tensor] = {}

    def _inverse_count(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # a cache lookup would make compiled cells guard on (and recompile per) op
            ones = x.new_ones(1, 1, x.shape[-2], x.shape[-1])
            return F.conv2d(ones, x.new_ones(1, 1, 3, 3), stride=self.stride, padding=1).reciprocal()
        key = (x.shape[-2], x.shape[-1], x.device, x.dtype)
        inv = self._inv_count.get(key)
        if inv is None:
            ones = x.new_ones(1, 1, x.shape[-2], x.shape[-1])
            count = F.conv2d(ones, x.new_ones(1, 1, 3, 3), stride=self.stride, padding=1)
            inv = self._inv_count[key] = count.reciprocal()
        return inv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if AvgPool3x3.use_reference:
            return F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=False)
        if self.stride == 1:
            summed = _BoxSum3x3.apply(x)
        else:
            channels = x.shape[1]
            summed = F.conv2d(x, x.new_ones(channels, 1, 3, 3), stride=self.stride, padding=1, groups=channels)
        return summed * self._inverse_count(x)


@contextlib.contextmanager
def reference_pooling() -> Iterator[None]:
    """Run average pooling with PyTorch's pooling op inside this block (for counting and exporting)."""
    previous, AvgPool3x3.use_reference = AvgPool3x3.use_reference, True
    try:
        yield
    finally:
        AvgPool3x3.use_reference = previous


@register_op("avg_pool_3x3")
def _avg_pool(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    return _PoolThenProject(AvgPool3x3(stride), c_in, c_out, affine, track)


def may_switch_to_channels_last(x: torch.Tensor) -> bool:
    """An eager CPU image batch not yet in channels_last: the layout switches of the CPU fast paths apply
    (compiled graphs pick their own layouts)."""
    return (x.device.type == "cpu" and x.dim() == 4 and not x.is_contiguous(memory_format=torch.channels_last)
            and not torch.compiler.is_compiling())


class _SwitchLayout(torch.autograd.Function):
    """``x.contiguous(memory_format=...)`` whose gradient goes back in ``x``'s own layout. With a plain
    conversion, the layers on either side get gradients in the other layout, and PyTorch's CPU backward kernels
    on mixed layouts are slow: ReLU's before a small conv cost about what channels_last saved there (on
    ``nb201-prog-s1`` the plain conversion gained 1.01x, this one 1.02-1.05x), and BatchNorm's backward on a
    channels_last input with an NCHW gradient took 1.5-2x its time on one layout (64x24x32x32: 5.7 vs 3.0 ms),
    which made it a quarter of a ``darts-s1`` step; max pooling forward+backward is 1.05-1.5x faster with it
    (64x60x32x32, stride 2: 12.6 vs 18.6-20.7 ms)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, to_channels_last: bool) -> torch.Tensor:  # type: ignore[override]
        ctx.back = torch.contiguous_format if to_channels_last else torch.channels_last
        return x.contiguous(memory_format=torch.channels_last if to_channels_last else torch.contiguous_format)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad.contiguous(memory_format=ctx.back), None


def switch_layout(x: torch.Tensor, to_channels_last: bool) -> torch.Tensor:
    """``x`` in channels_last (or back in NCHW), its gradient handed back in ``x``'s layout. Without a gradient
    to hand back, or while tracing for an ONNX export (which cannot record a Python autograd function), it is
    the plain conversion."""
    if torch.jit.is_tracing() or not (torch.is_grad_enabled() and x.requires_grad):
        return x.contiguous(memory_format=torch.channels_last if to_channels_last else torch.contiguous_format)
    return _SwitchLayout.apply(x, to_channels_last)


class MaxPool(nn.MaxPool2d):
    """``nn.MaxPool2d`` that runs in channels_last on the CPU, where PyTorch's NCHW max-pooling kernel is
    5-20x slower than its channels_last one at the supernets' sizes (3x3, stride 1, 64x12x32x32: 10-13 ms vs
    2 ms forward). The input is converted in and the output back (gradients too, see :func:`switch_layout`), so
    callers see their own layout; the maxima and the positions gradients flow to are the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not may_switch_to_channels_last(x):
            return super().forward(x)
        return switch_layout(super().forward(switch_layout(x, True)), False)


@register_op("max_pool_3x3")
def _max_pool(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> nn.Module:
    return _PoolThenProject(MaxPool(3, stride, padding=1), c_in, c_out, affine, track)


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
