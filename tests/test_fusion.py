"""The edges leaving a node run their ops together: same outputs, gradients and BN statistics as edge by edge."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from drnas.fast import settings as fastpaths

from drnas.fast import fusion
from drnas.fast.ops import FAST_OPS, WindowSumAvgPool3x3
from drnas.fast.fusion import can_stack, stacked_forward
from drnas.spaces import SupernetSpec, get_space
from drnas.spaces.darts import DARTS_OPS, search_op
from drnas.spaces.nb201 import NB201_OPS
from drnas.spaces.ops import build_op, is_zero_op


def _copies(make, count: int) -> list[torch.nn.Module]:
    mods = []
    for seed in range(count):
        torch.manual_seed(seed)
        m = make()
        for p in m.parameters():  # distinct weights and statistics per copy, so a mixed-up edge would show
            p.data.normal_()
        mods.append(_random_statistics(m))
    return mods


def _random_statistics(module: torch.nn.Module) -> torch.nn.Module:
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    return module


def _buffers(mods):
    return [b.clone() for m in mods for b in m.buffers()]


def _assert_same_results(outs, refs, x, x_ref, mods, ref_mods) -> None:
    """Outputs, then (after one backward of a random weighting) input and parameter gradients and buffers."""
    for a, b in zip(outs, refs):  # rounding grows with the values (an eval-mode sep_conv_5x5 reaches ~200)
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=max(1e-5, 1e-6 * b.abs().max().item()))
    loss_weights = [torch.randn_like(b) for b in refs]
    sum((w * y).sum() for w, y in zip(loss_weights, outs)).backward()
    sum((w * y).sum() for w, y in zip(loss_weights, refs)).backward()
    assert torch.allclose(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    for m, r in zip(mods, ref_mods):
        for a, b in zip(m.parameters(), r.parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-4)
    for a, b in zip(_buffers(mods), _buffers(ref_mods)):  # running stats and batch counts, per module
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6)


def _three_copies_and_input(name, stride, factory, training, affine=False):
    """Three copies of one op at 4 channels (distinct weights), their plain clones, an input and its clone."""
    mods = _copies(lambda: factory(name, 4, 4, stride, affine, True), 3)
    for m in mods:
        m.train(training)
    x = torch.randn(5, 4, 8, 8, requires_grad=True)
    return mods, copy.deepcopy(mods), x, x.detach().clone().requires_grad_(True)


ALL_OPS = ([(n, 1, build_op) for n in NB201_OPS if not is_zero_op(n)]
           + [(n, s, search_op) for n in DARTS_OPS if not is_zero_op(n) for s in (1, 2)])


@pytest.mark.parametrize("name,stride,factory", ALL_OPS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("channels_last_paths,batch_norm_multiple", [(True, 8), (True, 0), (False, 8)])
def test_stacked_op_equals_each_copy(name, stride, factory, training, channels_last_paths, batch_norm_multiple):
    """At 4 channels the CPU's channels_last paths (depthwise stacks, small dense convs) are taken when on; the
    stacked BatchNorms of a depthwise stack (12 channels) then run in NCHW, or with the multiple at 0 in
    channels_last."""
    fastpaths.configure(depthwise_channels_last=channels_last_paths,
                        small_conv_channels_last=4 if channels_last_paths else 0,
                        channels_last_batch_norm_multiple=batch_norm_multiple)
    mods, plain, x, x_plain = _three_copies_and_input(name, stride, factory, training)
    _assert_same_results(stacked_forward(mods, x), [m(x_plain) for m in plain], x, x_plain, mods, plain)
    expected_stackable = name != "skip_connect" or stride == 1  # FactorizedReduce runs edge by edge
    assert can_stack(mods[0]) == expected_stackable


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _cell_step(space: str, fuse: bool, kept, partial_k: int, training: bool, device: str,
               dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    sp = get_space(space)
    spec = SupernetSpec(channels=8, cells_per_stage=1, cells=3, partial_k=partial_k, num_classes=3)
    net = sp.build_supernet(spec).train(training)
    if kept is not None:
        net.set_kept(kept)
    if fuse:
        fusion.install(net)  # fused edges, and for DARTS the cells' preprocessing of each state as one stack
    x = torch.randn(4, 3, 8, 8)
    theta = torch.softmax(torch.randn(len(sp.edge_names()) if space == "nb201" else 28, len(sp.ops)), -1)
    net, x, theta = net.to(device, dtype), x.to(device, dtype), theta.to(device, dtype).requires_grad_(True)
    with torch.backends.cudnn.flags(enabled=True, deterministic=True, allow_tf32=False):  # float32 on a GPU too
        logits = net(x, theta)
        logits.pow(2).sum().backward()
    grads = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    return logits.detach().cpu(), theta.grad.cpu(), [g.cpu() for g in grads], [b.double().cpu() for b in net.buffers()]


#: (logits, d/dtheta and weight gradients, BN buffers) tolerances of fused against edge-by-edge cells. float64
#: checks the stacking, splitting and folding to 1e-9 (measured: 1e-14 apart), where float32's rounding needs
#: 1e-3 (and can move an activation across a ReLU's kink); float32 runs the kernels a search runs.
FUSED_TOLERANCES = {torch.float32: ((1e-4, 1e-4), (1e-3, 1e-4), (1e-5, 1e-6)),
                    torch.float64: ((1e-9, 1e-12), (1e-9, 1e-12), (1e-9, 1e-12))}


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("partial_k", [1, 2])
@pytest.mark.parametrize("pruned", [False, True])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(FUSED_TOLERANCES))
def test_fused_cells_equal_edge_by_edge(space, partial_k, pruned, device, dtype):
    """Whole supernets (NB201, and DARTS with its reduction cells): logits, d/dtheta, weight gradients and BN
    buffers agree; pruning leaves every edge its own (different) set of ops, so groups are partial."""
    ops = len(get_space(space).ops)
    edges = 6 if space == "nb201" else 28
    kept = [sorted({(e + s) % ops for s in range(3)}) for e in range(edges)] if pruned else None
    (out_rtol, out_atol), (grad_rtol, grad_atol), (buf_rtol, buf_atol) = FUSED_TOLERANCES[dtype]
    for training in (True, False):
        fused = _cell_step(space, True, kept, partial_k, training, device, dtype)
        plain = _cell_step(space, False, kept, partial_k, training, device, dtype)
        assert torch.allclose(fused[0], plain[0], rtol=out_rtol, atol=out_atol)
        assert torch.allclose(fused[1], plain[1], rtol=grad_rtol, atol=grad_atol)
        assert len(fused[2]) == len(plain[2])  # pruned ops get no gradient either way
        for a, b in zip(fused[2], plain[2]):
            assert torch.allclose(a, b, rtol=grad_rtol, atol=grad_atol)
        for a, b in zip(fused[3], plain[3]):
            assert torch.allclose(a, b, rtol=buf_rtol, atol=buf_atol)


def test_unsafe_layers_run_edge_by_edge():
    """An in-place ReLU (it would overwrite the shared input) and non-zero conv padding run edge by edge."""
    assert not can_stack(torch.nn.Sequential(torch.nn.ReLU(inplace=True), torch.nn.Conv2d(4, 4, 3, padding=1)))
    assert not can_stack(torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")))
    assert can_stack(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.BatchNorm2d(4)))


def test_forward_together_stacks_compatible_readers_of_one_input():
    """The DARTS preprocessing: 1x1 ReLUConvBNs of different cells read one state; those with the same
    settings run as one stack (output widths may differ), anything else runs on its own."""
    from drnas.fast.fusion import compatible, forward_together
    from drnas.spaces.ops import FactorizedReduce, ReLUConvBN

    def make():
        torch.manual_seed(0)
        mods = [ReLUConvBN(4, 3, 1, 1, 0, affine=False), ReLUConvBN(4, 5, 1, 1, 0, affine=False),
                FactorizedReduce(4, 4, affine=False), ReLUConvBN(4, 6, 1, 1, 0, affine=True),
                ReLUConvBN(4, 3, 1, 1, 0, affine=False).eval(), ReLUConvBN(4, 2, 1, 1, 0, affine=False)]
        return [_random_statistics(m) for m in mods]

    together, alone = make(), make()
    assert compatible([together[0], together[1], together[5]])
    assert not compatible([together[0], together[3]])  # affine and non-affine BN
    assert not compatible([together[0], together[4]])  # training and eval mode
    assert not compatible([together[0], together[2]])
    x = torch.randn(5, 4, 6, 6, requires_grad=True)
    x_alone = x.detach().clone().requires_grad_(True)
    _assert_same_results(forward_together(together, x), [m(x_alone) for m in alone], x, x_alone, together, alone)


def test_darts_supernet_preprocesses_each_state_once_for_its_readers(monkeypatch):
    """Every state's readers go through forward_together together (the stem's output has three: cell 0's two
    preprocessors and cell 1's preprocess0)."""
    calls: list[int] = []
    real = fusion.forward_together

    def counting(modules, x):
        calls.append(len(modules))
        return real(modules, x)

    monkeypatch.setattr(fusion, "forward_together", counting)
    net = fusion.install(get_space("darts").build_supernet(SupernetSpec(channels=8, cells=5, partial_k=2,
                                                                        num_classes=3)))
    theta = torch.softmax(torch.randn(28, len(DARTS_OPS)), -1)
    net(torch.randn(2, 3, 8, 8), theta)
    assert calls == [3, 2, 2, 2]  # the stem's output, then cells 0-2's (cell 3's has one reader, cell 4's none)


def test_stacked_depthwise_op_keeps_a_channels_last_input_in_channels_last():
    """Depthwise stacks convert an NCHW input to channels_last and back; a channels_last input stays so."""
    mods = _copies(lambda: search_op("sep_conv_3x3", 4, 4, 1, False, True), 2)
    x = torch.randn(2, 4, 6, 6)
    for fmt in (torch.contiguous_format, torch.channels_last):
        outs = stacked_forward(mods, x.contiguous(memory_format=fmt))
        innermost = 1 if fmt == torch.channels_last else 3  # outputs are channel slices of one stacked tensor
        assert all(o.stride(innermost) == 1 for o in outs)
        assert all(torch.allclose(o, m(x), rtol=1e-4, atol=1e-5) for o, m in zip(outs, mods))


@pytest.mark.parametrize("copies,batch_norm_nchw", [(3, True), (2, False)])
def test_depthwise_stack_runs_convs_in_channels_last_and_unaligned_batch_norms_in_nchw(copies, batch_norm_nchw,
                                                                                      monkeypatch):
    """A separable conv stack of 4-channel copies: its convs run in channels_last; its BatchNorms in NCHW over 12
    channels (not a multiple of 8, where PyTorch's channels_last kernel is slow) and in channels_last over 8.
    Every switch of layout hands its gradient back in the layout it was given (mixed-layout backward kernels
    are slow), and the outputs are NCHW like the input."""
    mods = _copies(lambda: search_op("sep_conv_3x3", 4, 4, 1, False, True), copies)
    x = torch.randn(3, 4, 6, 6, requires_grad=True)
    conv_layouts, norm_layouts, switches = [], [], []
    stacked_conv, stacked_norm, switch = fusion._stacked_conv, fusion._stacked_batch_norm, fusion.switch_layout
    is_channels_last = lambda t: t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    monkeypatch.setattr(fusion, "_stacked_conv", lambda convs, t, groups: (
        conv_layouts.append(is_channels_last(t)), stacked_conv(convs, t, groups))[1])
    monkeypatch.setattr(fusion, "_stacked_batch_norm", lambda norms, t, scales=None: (
        norm_layouts.append(is_channels_last(t)), stacked_norm(norms, t, scales))[1])
    monkeypatch.setattr(fusion, "switch_layout", lambda t, to_channels_last: (
        switches.append(to_channels_last), switch(t, to_channels_last))[1])
    outs = stacked_forward(mods, x, list(torch.rand(copies)))
    assert conv_layouts == [True] * 4  # two depthwise and two pointwise convs
    assert norm_layouts == [not batch_norm_nchw] * 2
    assert switches == ([True, False, True, False] if batch_norm_nchw else [True, False])
    assert all(o.stride()[2:] == (6, 1) for o in outs)  # channel slices of one NCHW tensor


@pytest.mark.parametrize("to_channels_last", [True, False])
def test_layout_switch_hands_back_its_gradient_in_the_input_layout(to_channels_last):
    source = torch.channels_last if not to_channels_last else torch.contiguous_format
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=source).requires_grad_(True)
    y = fusion.switch_layout(x, to_channels_last)
    assert torch.equal(y, x) and y.is_contiguous(memory_format=torch.channels_last) == to_channels_last
    grad = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last if to_channels_last else
                                              torch.contiguous_format)
    y.backward(grad)
    assert torch.equal(x.grad, grad) and x.grad.is_contiguous(memory_format=source)
    with torch.no_grad():  # nothing to hand back: the plain conversion, which an ONNX export can trace
        z = fusion.switch_layout(x, to_channels_last)
    assert torch.equal(z, x) and z.grad_fn is None
    assert z.is_contiguous(memory_format=torch.channels_last) == to_channels_last


@pytest.mark.parametrize("small_conv_channels_last", [4, 0])
def test_small_conv_stack_hands_back_an_nchw_gradient(small_conv_channels_last, monkeypatch):
    """A small conv runs in channels_last inside the stack, but its output and the gradient it hands to the
    layers before it stay NCHW (mixed-layout backward kernels are what made the plain conversion slow)."""
    fastpaths.configure(small_conv_channels_last=small_conv_channels_last)
    conv_bn = lambda: torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4))
    mods = _copies(conv_bn, 2)
    x = torch.randn(3, 8, 6, 6, requires_grad=True)
    part = x[:, :4] * 1.0  # the partial slice, as a node's ops read it (no ReLU first: the conv's own gradient)
    seen = []
    part.register_hook(seen.append)
    layouts = []
    stacked_conv = fusion._stacked_conv
    monkeypatch.setattr(fusion, "_stacked_conv", lambda convs, h, groups: (
        layouts.append(h.is_contiguous(memory_format=torch.channels_last)), stacked_conv(convs, h, groups))[1])
    outs = stacked_forward(mods, part)
    assert layouts == [small_conv_channels_last > 0]  # the conv itself ran in channels_last when on
    assert all(o.stride()[1:] == (36, 6, 1) for o in outs)  # channel slices of one NCHW tensor
    sum((torch.randn_like(o) * o).sum() for o in outs).backward()
    assert seen[0].is_contiguous()


@pytest.mark.parametrize("name,stride,factory", ALL_OPS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [False, True])
def test_scaled_stack_equals_scaled_copies(name, stride, factory, training, affine):
    """``stacked_forward(..., scales)`` = ``[s * m(x)]``: outputs and the gradients of the input, the parameters
    and the scales (the mixing weights); ops ending in BatchNorm fold the scales into it (no multiplication),
    into its weight and bias when it has them."""
    mods, plain, x, x_plain = _three_copies_and_input(name, stride, factory, training, affine)
    scales = torch.rand(3, requires_grad=True)
    scales_plain = scales.detach().clone().requires_grad_(True)
    outs = stacked_forward(mods, x, list(scales))
    refs = [s * m(x_plain) for s, m in zip(scales_plain, plain)]
    _assert_same_results(outs, refs, x, x_plain, mods, plain)
    assert torch.allclose(scales.grad, scales_plain.grad, rtol=1e-4, atol=1e-5)
    ends_in_bn = isinstance(fusion._layers(mods[0])[-1], torch.nn.BatchNorm2d) and can_stack(mods[0])
    assert ends_in_bn == (name != "skip_connect" and (factory is search_op or "conv" in name))
    assert all(("MulBackward" in out.grad_fn.name()) != ends_in_bn for out in outs)


@pytest.mark.parametrize("with_bias", [False, True])
def test_channel_sum_is_a_1x1_convolution(with_bias):
    """The compiled path's 1x1 conv (a weighted sum of input channels): outputs and the gradients of input,
    weight and bias equal ``F.conv2d``'s; only the path's condition differs (compiled, CPU, NCHW, few channels)."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6, requires_grad=True)
    weight = torch.randn(12, 4, 1, 1, requires_grad=True)
    bias = torch.randn(12, requires_grad=True) if with_bias else None
    inputs = [t for t in (x, weight, bias) if t is not None]
    grad = torch.randn(3, 12, 5, 6)
    expected = torch.nn.functional.conv2d(x, weight, bias)
    got = fusion._channel_sum(x, weight, bias)
    assert torch.allclose(got, expected, atol=1e-6)
    for a, b in zip(torch.autograd.grad(expected, inputs, grad), torch.autograd.grad(got, inputs, grad)):
        assert torch.allclose(a, b, atol=1e-5)
    conv = torch.nn.Conv2d(4, 12, 1)
    assert not fusion._pointwise(conv, x, 1)  # eager: the conv stays a conv


@pytest.mark.parametrize("kernel", [(3, 3), (5, 5), (1, 3)])
@pytest.mark.parametrize("wanted", ["all", "input", "weight"])
def test_flipped_input_grad_conv_is_a_convolution(kernel, wanted):
    """The compiled path's small conv (input gradient from a forward conv with flipped, transposed weights):
    outputs and the gradients asked for equal ``F.conv2d``'s, for odd and non-square kernels at "same" padding,
    with a bias, and with only some inputs needing a gradient (the arch step asks for no weight gradient)."""
    torch.manual_seed(0)
    padding = (kernel[0] // 2, kernel[1] // 2)
    x = torch.randn(3, 4, 7, 6, requires_grad=wanted in ("all", "input"))
    weight = torch.randn(10, 4, *kernel, requires_grad=wanted in ("all", "weight"))
    bias = torch.randn(10, requires_grad=wanted == "all")
    inputs = [t for t in (x, weight, bias) if t.requires_grad]
    grad = torch.randn(3, 10, 7, 6)
    expected = torch.nn.functional.conv2d(x, weight, bias, 1, padding)
    got = fusion._FlippedInputGradConv.apply(x, weight, bias, padding)
    assert torch.allclose(got, expected, atol=1e-5)
    for a, b in zip(torch.autograd.grad(expected, inputs, grad), torch.autograd.grad(got, inputs, grad)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    conv = torch.nn.Conv2d(4, 10, kernel, padding=padding)
    assert not fusion._flipped_input_grad(conv, x, 1)  # eager: oneDNN's own backward


def _stack_of_three(op_name: str, channels_last: bool) -> tuple[list[torch.nn.Module], torch.Tensor]:
    """Three 4-channel copies of ``op_name`` and an input batch, in NCHW or channels_last (dynamo reset)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    ops = [build_op(op_name, 4, 4, 1, False, True) for _ in range(3)]
    x = torch.randn(2, 4, 5, 5)
    return ops, x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_stack_takes_small_conv_input_grads_from_flipped_weights_in_nchw_only(channels_last):
    """The backward graph of a compiled stack of 4-channel 3x3 ReLUConvBNs computes the input gradient with a
    forward convolution (flipped weights) when the batch is NCHW, and with ``convolution_backward`` in
    channels_last; either way outputs and input gradients equal the eager stack's."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    ops, x = _stack_of_three("nor_conv_3x3", channels_last)
    backward_graphs = []

    def keep_backward(gm, example_inputs):
        backward_graphs.append(gm)
        return make_boxed_func(gm.forward)

    backend = aot_autograd(fw_compiler=lambda gm, example_inputs: make_boxed_func(gm.forward),
                           bw_compiler=keep_backward)
    x_eager, x_compiled = x.clone().requires_grad_(), x.clone().requires_grad_()
    eager = stacked_forward(copy.deepcopy(ops), x_eager)
    compiled = torch.compile(lambda t: stacked_forward(ops, t), backend=backend, dynamic=False)(x_compiled)
    grads = [torch.randn_like(y) for y in eager]
    torch.autograd.backward(eager, grads)
    torch.autograd.backward(compiled, grads)
    targets = [str(node.target) for gm in backward_graphs for node in gm.graph.nodes]
    assert ("aten.convolution.default" in targets) != channels_last
    input_grad_masks = [node.args[-1] for gm in backward_graphs for node in gm.graph.nodes
                        if "convolution_backward" in str(node.target)]
    assert all(not mask[0] for mask in input_grad_masks) != channels_last
    for a, b in zip(eager, compiled):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(x_eager.grad, x_compiled.grad, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_stack_writes_small_1x1_convs_as_channel_sums_in_nchw_only(channels_last):
    """The graph dynamo captures for a stack of 4-channel 1x1 ReLUConvBNs has no convolution when the batch is
    NCHW (the channel sums) and keeps it in channels_last; either way it equals the eager stack."""
    ops, x = _stack_of_three("nor_conv_1x1", channels_last)
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    eager = stacked_forward(copy.deepcopy(ops), x)
    compiled = torch.compile(lambda t: stacked_forward(ops, t), backend=record, dynamic=False)(x)
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    assert any("conv2d" in t for t in targets) == channels_last
    for a, b in zip(eager, compiled):
        assert torch.allclose(a, b, atol=1e-5)


# ------------------------------------------------------------------------------------------ the switchboard
def _supernet_pass(space: str, installed: bool, paths: fastpaths.FastPaths) -> list[torch.Tensor]:
    """Logits, d/dtheta, weight gradients and BN buffers of one float64 training pass of a small partial-channel
    supernet (DARTS: 3 cells, a reduction between two normal ones)."""
    torch.manual_seed(0)
    sp = get_space(space)
    net = sp.build_supernet(SupernetSpec(channels=8, cells_per_stage=1, cells=3, partial_k=2, num_classes=3))
    net = (fusion.install(net) if installed else net).double()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    theta = torch.softmax(torch.randn(sum(1 for _ in net.mixed_ops()), len(sp.ops), dtype=torch.float64), -1)
    theta.requires_grad_(True)
    with fastpaths.using(paths):
        logits = net(x, theta)
        logits.pow(2).sum().backward()
    return [logits.detach(), theta.grad, *(p.grad for p in net.parameters()), *net.buffers()]


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_installed_network_with_every_switch_off_runs_the_plain_path_bit_for_bit(space):
    plain = _supernet_pass(space, False, fastpaths.DEFAULT)  # not installed: the switches do not reach it
    off = _supernet_pass(space, True, fastpaths.PLAIN)
    assert len(plain) == len(off) and all(torch.equal(a, b) for a, b in zip(plain, off))


@pytest.mark.parametrize("switch", fastpaths.switch_names())
@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_every_fast_path_alone_equals_the_plain_path(space, switch):
    """Each switch of the board on its own (the others off) computes what the plain network computes (float64).
    The compiled-cell switches have no effect eagerly; their paths are checked in the tests above."""
    only = dataclasses.replace(fastpaths.PLAIN, **{switch: getattr(fastpaths.DEFAULT, switch)})
    plain = _supernet_pass(space, False, fastpaths.DEFAULT)
    fast = _supernet_pass(space, True, only)
    assert len(plain) == len(fast)
    for a, b in zip(plain, fast):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_install_swaps_the_pooling_ops_and_keeps_the_state_dict():
    torch.manual_seed(0)
    net = get_space("darts").build_supernet(SupernetSpec(channels=8, cells=3, partial_k=2, num_classes=3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert fusion.install(fusion.install(net)) is net  # idempotent
    kinds = {type(m) for m in net.modules()}
    assert set(FAST_OPS.values()) <= kinds and not set(FAST_OPS) & kinds
    assert all(cell.paths is fusion.FUSED_CELL for cell in net.search_cells())
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_search_reinstalls_the_fast_paths_on_the_ops_widening_rebuilds():
    from helpers import pattern_images, tiny_config

    from drnas.search import Search

    search = Search(tiny_config(), data=pattern_images(64), progress=False, log=lambda m: None)
    search._enter_stage(1)  # K 2 -> 1: every op is rebuilt wider
    kinds = {type(m) for m in search.net.modules()}
    assert WindowSumAvgPool3x3 in kinds and not set(FAST_OPS) & kinds  # NB201 has no max pooling
    assert all(cell.paths is fusion.FUSED_CELL for cell in search.net.search_cells())


def test_a_search_with_fast_paths_plain_runs_the_plain_path_and_agrees_with_the_default():
    """``--set fast_paths=plain``: no fast path installed, eager NCHW cells, no CUDA graphs; the same search as
    the default one up to float rounding."""
    from helpers import pattern_images, tiny_config

    from drnas.config.search import ConfigError
    from drnas.search import Search
    from drnas.spaces.ops import AvgPool3x3

    results = {}
    for mode in ("plain", "default"):
        search = Search(tiny_config(fast_paths=mode), data=pattern_images(64), progress=False, log=lambda m: None)
        if mode == "plain":
            kinds = {type(m) for m in search.net.modules()}
            assert AvgPool3x3 in kinds and WindowSumAvgPool3x3 not in kinds
            assert not any(cell.paths is fusion.FUSED_CELL for cell in search.net.search_cells())
            assert search.runner.compile_mode == "none" and not search.runner.steps.enabled
            assert search.runner.memory_format == torch.contiguous_format
        results[mode] = search.run(max_epochs=3)
    plain, default = results["plain"], results["default"]
    assert str(plain.architecture) == str(default.architecture)
    assert torch.allclose(plain.eta, default.eta, rtol=1e-3, atol=1e-5)
    for a, b in zip(plain.metrics, default.metrics):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    with pytest.raises(ConfigError, match="fast_paths=plain runs the plain eager path"):
        tiny_config(fast_paths="plain", compile="cells").validate()
    with pytest.raises(ConfigError, match="fast_paths must be 'default' or 'plain'"):
        tiny_config(fast_paths="fast").validate()


def test_switchboard_settings():
    assert fastpaths.DEFAULT.off("small_conv_channels_last").small_conv_channels_last == 0
    assert fastpaths.DEFAULT.off("fuse_edges").fuse_edges is False
    assert not any(getattr(fastpaths.PLAIN, name) for name in fastpaths.switch_names())
    with pytest.raises(ValueError, match="unknown fast path 'fuse'; known: fuse_edges, "):
        fastpaths.configure(fuse=False)
    with pytest.raises(RuntimeError), fastpaths.using(fold_scales=False) as inside:
        assert inside.fold_scales is False and fastpaths.current() == inside
        raise RuntimeError
    assert fastpaths.current() == fastpaths.DEFAULT  # restored, also after an error
