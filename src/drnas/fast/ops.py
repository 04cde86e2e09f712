"""The CPU rewrites of candidate ops: the same numbers as the plain ops of :mod:`drnas.spaces.ops`, faster.

:func:`drnas.fast.fusion.install` turns a network's ``AvgPool3x3`` and ``MaxPool3x3`` into the classes below (same
settings, no parameters or buffers, so state dicts are unchanged); each runs its fast kernel while
``fast_pooling`` is on (:mod:`drnas.fast.settings`) and the plain pooling op otherwise. :func:`switch_layout` is
the layout conversion the stacked ops of :mod:`drnas.fast.fusion` use as well.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from drnas.fast.settings import current
from drnas.spaces.ops import AvgPool3x3, MaxPool3x3


def _box_sum_3x3(x: torch.Tensor) -> torch.Tensor:
    """Sum over each 3x3 window, zero padding 1, stride 1: a row pass and a column pass of shifted adds.

    Eager, the third term of each pass is added in place (one temporary less). Under ``torch.compile`` all adds
    are out of place: dynamo routes the gradient of an ``autograd.Function`` whose forward mutates a tensor in
    place to the wrong output (pytorch#180642, torch 2.11; it gave compiled NB201 cells wrong eta gradients),
    and inductor fuses the adds anyway, so compiled steps are as fast as with the in-place form.
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


class WindowSumAvgPool3x3(AvgPool3x3):
    """``AvgPool3x3`` as a 3x3 window sum divided by the number of in-image taps: the same numbers as
    ``nn.AvgPool2d(3, stride, 1, count_include_pad=False)`` (up to float rounding), but PyTorch's CPU pooling
    kernel is about 10x slower at NB201's sizes, where pooling was a third of a search step. At stride 1 the
    window sum is four shifted adds (:class:`_BoxSum3x3`), since oneDNN's depthwise kernels are slow at channel
    counts that are not a multiple of 16; at stride 2 it is a depthwise convolution with a ones kernel, which
    is faster there. Timings: docs/performance.md, "The op timings behind the CPU paths".
    """

    _inv_count: dict[tuple, torch.Tensor]

    def _inverse_count(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # a cache lookup would make compiled cells guard on (and recompile per) op
            ones = x.new_ones(1, 1, x.shape[-2], x.shape[-1])
            return F.conv2d(ones, x.new_ones(1, 1, 3, 3), stride=self.stride, padding=1).reciprocal()
        cache = self.__dict__.setdefault("_inv_count", {})
        key = (x.shape[-2], x.shape[-1], x.device, x.dtype)
        inv = cache.get(key)
        if inv is None:
            ones = x.new_ones(1, 1, x.shape[-2], x.shape[-1])
            count = F.conv2d(ones, x.new_ones(1, 1, 3, 3), stride=self.stride, padding=1)
            inv = cache[key] = count.reciprocal()
        return inv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not current().fast_pooling:
            return super().forward(x)
        if self.stride == 1:
            summed = _BoxSum3x3.apply(x)
        else:
            channels = x.shape[1]
            summed = F.conv2d(x, x.new_ones(channels, 1, 3, 3), stride=self.stride, padding=1, groups=channels)
        return summed * self._inverse_count(x)


def may_switch_to_channels_last(x: torch.Tensor) -> bool:
    """An eager CPU image batch not yet in channels_last: the layout switches of the CPU fast paths apply
    (compiled graphs pick their own layouts)."""
    return (x.device.type == "cpu" and x.dim() == 4 and not x.is_contiguous(memory_format=torch.channels_last)
            and not torch.compiler.is_compiling())


class _SwitchLayout(torch.autograd.Function):
    """``x.contiguous(memory_format=...)`` whose gradient goes back in ``x``'s own layout. With a plain
    conversion, the layers on either side get gradients in the other layout, and PyTorch's CPU backward kernels
    on mixed layouts are slow: ReLU's before a small conv cost about what channels_last saved there, and
    BatchNorm's backward on a channels_last input with an NCHW gradient took 1.5-2x its time on one layout,
    a quarter of a ``darts-s1`` step; max pooling is faster with it too (docs/performance.md)."""

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


class ChannelsLastMaxPool3x3(MaxPool3x3):
    """``MaxPool3x3`` that runs in channels_last on the CPU, where PyTorch's NCHW max-pooling kernel is
    5-20x slower than its channels_last one at the supernets' sizes (docs/performance.md). The input is
    converted in and the output back (gradients too, see :func:`switch_layout`), so callers see their own
    layout; the maxima and the positions gradients flow to are the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (current().fast_pooling and may_switch_to_channels_last(x)):
            return super().forward(x)
        return switch_layout(super().forward(switch_layout(x, True)), False)




#: the plain op classes and the fast classes :func:`drnas.fast.fusion.install` gives them
FAST_OPS: dict[type, type] = {AvgPool3x3: WindowSumAvgPool3x3, MaxPool3x3: ChannelsLastMaxPool3x3}
