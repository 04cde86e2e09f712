"""The speed paths of a network: :func:`install` puts them on it; each runs while its switch in
:mod:`drnas.fast.settings` is on, and computes what the plain path computes.

Its main one runs one candidate op of several edges that read the same node as a single, wider op.

In a cell, every edge leaving a node applies the same candidate ops to the same input (the node's partial
slice). At the supernet's small widths (4-16 channels in the progressive stages) each conv, BN and ReLU is
a tiny kernel whose fixed cost dominates, so evaluating ``op(x)`` for E edges one by one wastes most of the
time. :func:`stacked_forward` evaluates the E copies of one op together, exactly:

* leading parameter-free, channel-wise layers (ReLU, pooling, identity) run once on the shared input;
* the first layer with parameters is a dense conv with the E weight tensors concatenated along the output
  channels, or, for any other layer, the input repeated E times along the channels;
* stacks with a depthwise conv switch to channels_last on the CPU (see ``depthwise_channels_last``), and so
  does a first dense conv on very few channels (see ``small_conv_channels_last``);
* inside a compiled graph on the CPU, a first dense 1x1 conv over few NCHW channels is a weighted sum of its
  input channels, which inductor fuses (see ``compiled_pointwise_conv_channels``);
* from there every conv runs with ``groups * E`` and concatenated weights (group e sees only edge e's
  channels) and every BatchNorm over the concatenated channels, with the edges' running statistics
  concatenated in and written back, so each edge's parameters, buffers and gradients are its own;
* the edges' mixing weights, when given, become the affine weight of a final BatchNorm (``fold_scales``):
  the weighted sum then costs no multiplication, forward or backward.

Every edge keeps its own modules, so checkpoints, widening, pruning and optimizer state are untouched; the
stacking happens per forward (concatenating a few small weight tensors). Ops built from anything else (e.g.
``FactorizedReduce``) run edge by edge.

The same machinery runs other modules that read one tensor, when they are :func:`compatible` (same layers and
settings; the first dense conv may differ in output width): :func:`forward_together` groups them, e.g. the
1x1 preprocessing of the DARTS cells that read one cell's output (``drnas.spaces.darts.run_cells``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from drnas.fast.ops import FAST_OPS, may_switch_to_channels_last, switch_layout
from drnas.fast.settings import current
from drnas.method.supernet import CellPaths, SearchCell, join_and_shuffle, run_ops

#: parameter-free layers that act on each channel alone: running them on a shared input is exact
_CHANNELWISE = (nn.ReLU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d)


# Why the switches of drnas.fast.settings that this module reads default as they do (0 turns a threshold off).
#
# ``depthwise_channels_last``: on the CPU, stacked ops containing a depthwise conv run in channels_last (converted on
# the way in and out, gradients too, see ``drnas.fast.ops.switch_layout``): oneDNN's NCHW depthwise backward is 3-4x
# slower than its channels_last one at DARTS' sizes.
#
# ``small_conv_channels_last``: on the CPU, a stack's first dense conv with at most this many input channels runs in
# channels_last (its input converted, its output converted back before the BatchNorm): oneDNN's NCHW kernels are
# slower on 4-channel 3x3 convs (the first stage of the progressive NB201 search), while at 8 channels and more the
# conversions cost what channels_last gains, hence 4. 0 turns it off.
#
# ``channels_last_batch_norm_multiple``: in a stack switched to channels_last, a BatchNorm over a channel count that
# is not a multiple of this runs in NCHW (its input and output converted): PyTorch's channels_last BatchNorm kernel on
# the CPU vectorises over channels and is several times slower than the NCHW one at 6-18 channels, while at
# multiples of 8 it is as fast or faster. 0 turns it off.
#
# ``compiled_pointwise_conv_channels``: inside compiled cells on the CPU, a dense 1x1 conv over at most this many
# input channels of an NCHW batch is written as a weighted sum of its input channels, which inductor fuses into its
# own loops forward and backward, faster than oneDNN's conv at the supernets' sizes (4-16 input channels). Not in
# channels_last, where the channel slices are strided and it made steps slower. Eager steps keep the conv. 0 turns
# it off.
#
# ``compiled_flipped_input_grad_channels``: inside compiled cells on the CPU, a dense stride-1 "same" conv over at
# most this many input channels of an NCHW batch computes its input gradient as a forward convolution of the output
# gradient with the flipped, transposed weights (:class:`_FlippedInputGradConv`): oneDNN's NCHW backward-data kernel
# writing 4 channels is 1.5-2.5x slower than its forward kernel doing the same arithmetic (the first-stage convs of
# the progressive NB201 search). At 8 input channels the whole steps gained nothing, hence 4. Eager steps run these
# convs in channels_last instead (``small_conv_channels_last``). 0 turns it off.
#
# The timings behind each threshold, and each switch's ``benchmarks/compare.py`` ratios: docs/performance.md.


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


def _dense_conv_in_compiled_nchw_cpu_graph(x: torch.Tensor, groups: int) -> bool:
    """What the compiled CPU paths of :func:`_stacked_conv` share; the compile check first, so eager steps stop
    at it."""
    return torch.compiler.is_compiling() and groups == 1 and x.device.type == "cpu" and x.is_contiguous()


def _pointwise(conv: nn.Conv2d, x: torch.Tensor, groups: int) -> bool:
    """A dense 1x1 conv over few channels of an NCHW batch inside a compiled CPU graph (see
    ``compiled_pointwise_conv_channels``)."""
    return (_dense_conv_in_compiled_nchw_cpu_graph(x, groups) and conv.kernel_size == (1, 1)
            and conv.stride == (1, 1) and conv.padding == (0, 0)
            and conv.in_channels <= current().compiled_pointwise_conv_channels)


def _channel_sum(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution written as ``sum_c weight[:, c] * x[:, c]``: elementwise ops that inductor fuses."""
    out = bias.view(1, -1, 1, 1) if bias is not None else None
    for c in range(weight.shape[1]):
        term = weight[:, c].reshape(1, -1, 1, 1) * x[:, c:c + 1]
        out = term if out is None else out + term
    return out


def _flipped_input_grad(conv: nn.Conv2d, x: torch.Tensor, groups: int) -> bool:
    """A dense stride-1 "same" conv over few channels of an NCHW batch inside a compiled CPU graph (see
    ``compiled_flipped_input_grad_channels``)."""
    return (_dense_conv_in_compiled_nchw_cpu_graph(x, groups) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.in_channels <= current().compiled_flipped_input_grad_channels
            and all(k % 2 == 1 and p == k // 2 for k, p in zip(conv.kernel_size, conv.padding)))


class _FlippedInputGradConv(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, 1, padding)`` for odd kernels at "same" padding, whose input gradient is the
    forward convolution of the output gradient with ``weight`` flipped in space and transposed (in and out
    channels swapped), at the same padding: the same sums, run by oneDNN's faster forward kernel."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(2, 3).transpose(0, 1), None, 1, ctx.padding)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], list(ctx.padding), [1, 1], False, [0, 0], 1,
                [False, True, False])[1]
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias, None


def _stacked_conv(convs: Sequence[nn.Conv2d], x: torch.Tensor, groups: int) -> torch.Tensor:
    first = convs[0]
    weight, bias = torch.cat([c.weight for c in convs]), _cat([c.bias for c in convs])
    if _pointwise(first, x, groups):
        return _channel_sum(x, weight, bias)
    if _flipped_input_grad(first, x, groups):
        return _FlippedInputGradConv.apply(x, weight, bias, first.padding)
    return F.conv2d(x, weight, bias, first.stride, first.padding, first.dilation, groups)


def _stacked_batch_norm(norms: Sequence[nn.BatchNorm2d], x: torch.Tensor,
                        scales: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """BatchNorm over the concatenated channels; per channel it is each edge's own BN, statistics included.

    ``scales`` (one scalar per norm) multiply each norm's output, folded into its affine weight and bias.
    """
    first = norms[0]
    track = first.track_running_stats and first.running_mean is not None
    mean = _cat([n.running_mean for n in norms]) if track else None
    var = _cat([n.running_var for n in norms]) if track else None
    use_batch_stats = first.training or not track
    weight, bias = _cat([n.weight for n in norms]), _cat([n.bias for n in norms])
    if scales is not None:
        per_channel = torch.cat([s.reshape(1).expand(n.num_features) for s, n in zip(scales, norms)])
        weight = per_channel if weight is None else weight * per_channel
        bias = None if bias is None else bias * per_channel
    y = F.batch_norm(x, mean, var, weight, bias, use_batch_stats, first.momentum, first.eps)
    if first.training and track:
        with torch.no_grad():  # the concatenated copies were updated in place: hand each edge its part
            sizes = [n.num_features for n in norms]
            torch._foreach_copy_([n.running_mean for n in norms], list(mean.split(sizes)))
            torch._foreach_copy_([n.running_var for n in norms], list(var.split(sizes)))
            torch._foreach_add_([n.num_batches_tracked for n in norms], 1)
    return y


def _signature(layer: nn.Module) -> tuple:
    """What two layers must share to be stacked (a conv's output width may differ, see :func:`compatible`)."""
    if isinstance(layer, nn.Conv2d):
        return (nn.Conv2d, layer.in_channels, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                layer.groups, layer.bias is None, layer.padding_mode)
    if isinstance(layer, nn.BatchNorm2d):
        return (type(layer), layer.eps, layer.momentum, layer.affine, layer.track_running_stats, layer.training)
    return (type(layer), repr(layer))  # parameter-free layers: the same type and settings


def compatible(modules: Sequence[nn.Module]) -> bool:
    """Whether :func:`stacked_forward` can run these modules, which need not be copies of one op: the same
    layers with the same settings, reading the same input. The first dense conv may give each module its own
    output width; convs after it run grouped, so their widths must agree."""
    if not can_stack(modules[0]):
        return False
    layer_lists = [_layers(m) for m in modules]
    if any(len(layers) != len(layer_lists[0]) for layers in layer_lists):
        return False
    seen_dense = False
    for layer_group in zip(*layer_lists):
        if any(_signature(layer) != _signature(layer_group[0]) for layer in layer_group):
            return False
        if isinstance(layer_group[0], nn.Conv2d):
            first_dense = not seen_dense and layer_group[0].groups == 1
            seen_dense = True
            if not first_dense and any(c.out_channels != layer_group[0].out_channels for c in layer_group):
                return False
    return True


def _scaled(outputs: Sequence[torch.Tensor], scales: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    return list(outputs) if scales is None else [s * y for s, y in zip(scales, outputs)]


def stacked_forward(modules: Sequence[nn.Module], x: torch.Tensor,
                    scales: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """``[m(x) for m in modules]`` for copies of one op (or modules that are :func:`compatible`), computed
    together; with ``scales`` (one scalar tensor per module, e.g. the edges' mixing weights for this op),
    ``[s * m(x) for ...]``. A stack that ends in BatchNorm folds the scales into the BN's affine transform: no
    separate multiplication forward, nor its two backward passes (the BN's backward reduces what the scales'
    gradients need anyway).

    Returns one tensor per module; without scales, when the op has no parameters the entries are the same
    tensor.
    """
    if not can_stack(modules[0]):
        return _scaled([m(x) for m in modules], scales)
    copies = len(modules)
    paths = current()
    depthwise = paths.depthwise_channels_last and any(
        isinstance(layer, nn.Conv2d) and layer.groups > 1 for layer in _layers(modules[0]))
    converted = False
    widths: list[int] = []  # each module's channels in h, once h is stacked
    h = x
    layer_groups = list(zip(*(_layers(m) for m in modules)))
    folded = False  # scales folded into the last layer (a BatchNorm)
    for depth, layer_group in enumerate(layer_groups):
        layer = layer_group[0]
        if isinstance(layer, _CHANNELWISE):
            h = layer(h)
            continue
        if not widths and isinstance(layer, nn.Conv2d) and layer.groups == 1:
            if layer.in_channels <= paths.small_conv_channels_last and may_switch_to_channels_last(h):
                h = switch_layout(_stacked_conv(layer_group, switch_layout(h, True), 1), False)
            else:
                h = _stacked_conv(layer_group, h, 1)  # one dense conv, output channels module by module
            widths = [conv.out_channels for conv in layer_group]
            continue
        if not widths:
            if depthwise and may_switch_to_channels_last(h):
                h = switch_layout(h, True)  # cat keeps it; repeat would not
                converted = True
            widths = [h.shape[1]] * copies
            h = torch.cat([h] * copies, dim=1)
        if isinstance(layer, nn.Conv2d):
            h = _stacked_conv(layer_group, h, layer.groups * copies)
            widths = [layer.out_channels] * copies
        else:
            last = depth == len(layer_groups) - 1
            multiple = paths.channels_last_batch_norm_multiple
            in_nchw = converted and multiple > 0 and h.shape[1] % multiple != 0
            folded = paths.fold_scales and scales is not None and last
            h = _stacked_batch_norm(layer_group, switch_layout(h, False) if in_nchw else h,
                                    scales if folded else None)
            if in_nchw:  # back right away: the ReLU and the conv after it then save one copy between them
                converted = not last
                h = switch_layout(h, True) if converted else h
    if converted:
        h = switch_layout(h, False)
    outputs = list(h.split(widths, dim=1)) if widths else [h] * copies
    return outputs if folded else _scaled(outputs, scales)


def forward_together(modules: Sequence[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """``[m(x) for m in modules]`` for any modules reading the same input: those :func:`compatible` with one
    another run as one stack, the others one by one (in order of first appearance)."""
    outputs: list[torch.Tensor | None] = [None] * len(modules)
    pending = list(range(len(modules)))
    while pending:
        head = pending[0]
        group = [i for i in pending if i == head or compatible([modules[head], modules[i]])]
        for i, y in zip(group, stacked_forward([modules[i] for i in group], x) if len(group) > 1
                        else [modules[head](x)]):
            outputs[i] = y
        pending = [i for i in pending if i not in group]
    return outputs  # type: ignore[return-value]


class _JoinShuffle(torch.autograd.Function):
    """``channel_shuffle(torch.cat([ops, bypass], 1), groups)`` for NCHW tensors, written straight into the
    shuffled order: one pass over the node instead of two (the concatenation, then the shuffle's copy)."""

    @staticmethod
    def forward(ctx, ops: torch.Tensor, bypass: torch.Tensor, groups: int) -> torch.Tensor:  # type: ignore[override]
        n, width, h, w = ops.shape
        out = ops.new_empty((n, width * groups, h, w))
        slots = out.view(n, width, groups, h, w)  # output channel j * groups + g sits at slots[:, j, g]
        slots[:, :, 0].copy_(ops)
        slots[:, :, 1:].copy_(bypass.reshape(n, groups - 1, width, h, w).transpose(1, 2))
        ctx.groups = groups
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        n, c, h, w = grad.shape
        width = c // ctx.groups
        slots = grad.contiguous().view(n, width, ctx.groups, h, w)
        return (slots[:, :, 0].contiguous(),
                slots[:, :, 1:].transpose(1, 2).reshape(n, c - width, h, w), None)


class FusedCell(CellPaths):
    """The fast paths of a search cell (see :class:`drnas.method.supernet.CellPaths`), each behind its switch."""

    @staticmethod
    def run_ops(modules: Sequence[nn.Module], x: torch.Tensor, scales: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if current().fuse_edges:
            return stacked_forward(modules, x, scales)
        return run_ops(modules, x, scales)

    @staticmethod
    def join_and_shuffle(ops: torch.Tensor, bypass: torch.Tensor, groups: int) -> torch.Tensor:
        if (current().join_shuffle and all(t.stride(1) >= t.stride(2) for t in (ops, bypass))  # NCHW (or views)
                and not torch.compiler.is_compiling()):  # a compiled cell fuses the plain form by itself
            return _JoinShuffle.apply(ops, bypass, groups)
        return join_and_shuffle(ops, bypass, groups)


FUSED_CELL = FusedCell()


def preprocess_together(modules: Sequence[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """:func:`forward_together` behind its switch (``preprocess_together``): DARTS networks' preprocessing."""
    if current().preprocess_together:
        return forward_together(modules, x)
    return [m(x) for m in modules]


def install(net: nn.Module) -> nn.Module:
    """Put the fast paths onto ``net`` in place and return it: search cells get :data:`FUSED_CELL`, modules with
    a ``run_together`` hook (DARTS networks) get :func:`preprocess_together`, and the pooling ops become the
    fast classes of :mod:`drnas.fast.ops`. Parameters, buffers and state dicts are unchanged. Idempotent; call it
    again after ops are rebuilt (widening). Which paths then run is :mod:`drnas.fast.settings`' to say."""
    for module in net.modules():
        if isinstance(module, SearchCell):
            module.paths = FUSED_CELL
        if hasattr(module, "run_together"):
            module.run_together = preprocess_together
        fast = FAST_OPS.get(type(module))
        if fast is not None:
            module.__class__ = fast  # the fast classes add no state: the same module, a faster forward
    return net
