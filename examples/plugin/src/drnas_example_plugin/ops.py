"""A candidate op: ``conv_5x5``, ReLU -> 5x5 conv -> BatchNorm (NB201's ``nor_conv_3x3`` with a larger kernel).

To add an op, copy this file: an op is a factory ``(c_in, c_out, stride, affine, track_running_stats)`` returning
an ``nn.Module`` that maps ``c_in`` channels to ``c_out`` at the given stride, registered under a name that every
space then accepts in its ``ops``.
"""
from __future__ import annotations

from torch import nn

from drnas.spaces.ops import ReLUConvBN, register_op


@register_op("conv_5x5")
def conv_5x5(c_in: int, c_out: int, stride: int, affine: bool, track_running_stats: bool) -> nn.Module:
    """ReLU, a 5x5 convolution (padding 2 keeps the size at stride 1) and BatchNorm."""
    return ReLUConvBN(c_in, c_out, 5, stride, 2, 1, affine, track_running_stats)
