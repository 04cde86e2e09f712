"""Run one candidate op of several edges that read the same node as a single, wider op.

In a cell, every edge leaving a node applies the same candidate ops to the same input (the node's partial
slice). At the supernet's small widths (4-16 channels in the progressive stages) each conv, BN and ReLU is
a tiny kernel whose fixed cost dominates, so evaluating ``op(x)`` for E edges one by one wastes most of the
time. :func:`stacked_forward` evaluates the E copies of one op together, exactly:

* leading parameter-free, channel-wise layers (ReLU, pooling, identity) run once on the shared input;
* the first layer with parameters is a dense conv with the E weight tensors concatenated along the output
  channels, or, for any other layer, the input repeated E times along the channels;
* stacks with a depthwise conv switch to channels_last on the CPU (see ``DEPTHWISE_CHANNELS_LAST``);
* from there every conv runs with ``groups * E`` and concatenated weights (group e sees only edge e's
  channels) and every BatchNorm over the concatenated channels, with the edges' running statistics
  concatenated in and written back, so each edge's parameters, buffers and gradients are its own.

Every edge keeps its own modules, so checkpoints, widening, pruning and optimizer state are untouched; the
stacking happens per forward (concatenating a few small weight tensors). Ops built from anything else (e.g.
``FactorizedReduce``) run edge by edge.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .spaces.ops import AvgPool3x3

#: parameter-free layers that act on each channel alone: running them on a shared input is exact
_CHANNELWISE = (nn.ReLU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, AvgPool3x3)


#: On the CPU, stacked ops containing a depthwise conv run in channels_last (converted once on the way in and
#: once on the way out): oneDNN's NCHW depthwise backward is 3-4x slower than its channels_last one at DARTS'
#: sizes (5x5, 24 channels, 32x32: 45 vs 12 ms). Measured on darts-s1 with ``benchmarks/compare.py``.
DEPTHWISE_CHANNELS_LAST = True


def _layers(module: nn.Module) -> list[nn.Module]:
    """The leaf layers of nested Sequentials, in order."""
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _layers(child)]
    return [module]


def _stackable_layer(layer: nn.Module) -> bool:
    if isinstance(layer, nn.ReLU) and layer.inplace:
        return False  # on the shared input it would overwrite what the other ops and the bypass read
    if isinstance(layer, _CHANNELWISE):
        return True
    if isinstance(layer, nn.Conv2d):
        return layer.padding_mode == "zeros"
    if isinstance(layer, nn.BatchNorm2d):
        return layer.momentum is not None  # cumulative averaging would need per-edge batch counts
    return False


def can_stack(module: nn.Module) -> bool:
    """Whether :func:`stacked_forward` can run several copies of ``module`` as one."""
    return all(_stackable_layer(layer) for layer in _layers(module))


def _cat(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat(list(tensors))  # type: ignore[arg-type]


def _stacked_conv(convs: Sequence[nn.Conv2d], x: torch.Tensor, groups: int) -> torch.Tensor:
    first = convs[0]
    return F.conv2d(x, torch.cat([c.weight for c in convs]), _cat([c.bias for c in convs]),
                    first.stride, first.padding, first.dilation, groups)


def _stacked_batch_norm(norms: Sequence[nn.BatchNorm2d], x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the concatenated channels; per channel it is each edge's own BN, statistics included."""
    first = norms[0]
    track = first.track_running_stats and first.running_mean is not None
    mean = _cat([n.running_mean for n in norms]) if track else None
    var = _cat([n.running_var for n in norms]) if track else None
    use_batch_stats = first.training or not track
    y = F.batch_norm(x, mean, var, _cat([n.weight for n in norms]), _cat([n.bias for n in norms]),
                     use_batch_stats, first.momentum, first.eps)
    if first.training and track:
        with torch.no_grad():  # the concatenated copies were updated in place: hand each edge its part
            torch._foreach_copy_([n.running_mean for n in norms], list(mean.chunk(len(norms))))
            torch._foreach_copy_([n.running_var for n in norms], list(var.chunk(len(norms))))
            torch._foreach_add_([n.num_batches_tracked for n in norms], 1)
    return y


def stacked_forward(modules: Sequence[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """``[m(x) for m in modules]`` for copies of one op (same structure and sizes), computed together.

    Returns one tensor per module; when the op has no parameters the entries are the same tensor.
    """
    if not can_stack(modules[0]):
        return [m(x) for m in modules]
    copies = len(modules)
    depthwise = DEPTHWISE_CHANNELS_LAST and any(
        isinstance(layer, nn.Conv2d) and layer.groups > 1 for layer in _layers(modules[0]))
    converted = False
    shared = True  # h is still the single value every copy computes
    h = x
    for layer_group in zip(*(_layers(m) for m in modules)):
        layer = layer_group[0]
        if isinstance(layer, _CHANNELWISE):
            h = layer(h)
            continue
        if shared and isinstance(layer, nn.Conv2d) and layer.groups == 1:
            h = _stacked_conv(layer_group, h, 1)  # one dense conv, output channels edge by edge
            shared = False
            continue
        if shared:
            if depthwise and h.device.type == "cpu" and not torch.compiler.is_compiling():
                h = h.contiguous(memory_format=torch.channels_last)  # cat keeps it; repeat would not
                converted = True
            h = torch.cat([h] * copies, dim=1)
            shared = False
        if isinstance(layer, nn.Conv2d):
            h = _stacked_conv(layer_group, h, layer.groups * copies)
        else:
            h = _stacked_batch_norm(layer_group, h)
    if converted:
        h = h.contiguous()
    return [h] * copies if shared else list(h.chunk(copies, dim=1))
