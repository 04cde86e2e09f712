"""The shared mixed op: exact skipping, partial channels, and widening by eq. (8)-(9) with optimizer state."""
from __future__ import annotations

import pytest
import torch

from drnas.spaces import SupernetSpec, get_space
from drnas.spaces.nb201 import NB201_OPS
from drnas.spaces.ops import build_op
from drnas.fast.fusion import FUSED_CELL
from drnas.method.supernet import MixedOp, channel_shuffle, widen_mapping, widen_tensor


def _reference(op: MixedOp, x: torch.Tensor, w: torch.Tensor, kept) -> torch.Tensor:
    """The mixed op written out: every kept op (the zero op included) times its weight, summed."""
    k = op.partial_k
    part = x[:, : op.width]
    mixed = sum(w[i] * op.ops[i](part) for i in kept)
    if k == 1:
        return mixed
    return channel_shuffle(torch.cat([mixed, x[:, op.width:]], 1), k)


@pytest.mark.parametrize("partial_k", [1, 2, 4])
def test_mixed_op_equals_the_written_out_sum(partial_k):
    torch.manual_seed(0)
    op = MixedOp(NB201_OPS, 8, partial_k=partial_k, op_factory=build_op).eval()
    x, w = torch.randn(3, 8, 6, 6), torch.softmax(torch.randn(5), 0)
    assert torch.allclose(op(x, w), _reference(op, x, w, range(5)), atol=1e-6)
    op.set_kept([0, 2, 4])  # none, conv1x1, pool: none and pruned ops are skipped, exactly
    assert op.active == [2, 4]
    assert torch.allclose(op(x, w), _reference(op, x, w, [0, 2, 4]), atol=1e-6)


def test_partial_channels_bypass_the_ops():
    op = MixedOp(NB201_OPS, 8, partial_k=4, op_factory=build_op).eval()
    assert all(p.shape[0] == 2 for p in op.parameters() if p.dim() == 4)  # ops see 8 / 4 channels
    x = torch.randn(1, 8, 4, 4)
    out = op(x, torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))  # pure skip_connect: output is a shuffle of x
    assert torch.equal(out, channel_shuffle(x, 4))


@pytest.mark.parametrize("groups", [2, 4])
def test_channel_shuffle_keeps_channels_last(groups):
    """A network run in channels_last (memory_format=channels_last) stays in it through the node shuffles."""
    x = torch.randn(2, 8, 3, 5)
    out = channel_shuffle(x.contiguous(memory_format=torch.channels_last), groups)
    assert torch.equal(out, channel_shuffle(x, groups)) and out.is_contiguous(memory_format=torch.channels_last)


def test_channel_shuffle_is_a_permutation():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.parametrize("groups", [2, 4])
@pytest.mark.parametrize("layout", ["contiguous", "slice views", "channels_last"])
def test_fused_join_and_shuffle_equals_cat_then_shuffle(groups, layout):
    """A node's join: values and both inputs' gradients as ``channel_shuffle(cat(...))``, written in one pass for
    NCHW inputs (views included); channels_last inputs keep the plain path and stay channels_last."""
    width = 3
    ops = torch.randn(2, width, 4, 5)
    bypass = torch.randn(2, width * (groups - 1), 4, 5)
    if layout == "slice views":  # as a single incoming edge hands them over: channel slices of larger tensors
        ops, bypass = torch.randn(2, width + 2, 4, 5)[:, 1:width + 1], torch.randn(2, width * groups, 4, 5)[:, width:]
    if layout == "channels_last":
        ops, bypass = (t.contiguous(memory_format=torch.channels_last) for t in (ops, bypass))
    a = [t.detach().clone().requires_grad_(True) for t in (ops, bypass)]
    b = [t.detach().clone().requires_grad_(True) for t in (ops, bypass)]
    out = FUSED_CELL.join_and_shuffle(a[0], a[1], groups)  # the fast path; the plain one is the reference
    ref = channel_shuffle(torch.cat(b, dim=1), groups)
    assert torch.equal(out, ref)
    assert ("JoinShuffle" in out.grad_fn.name()) == (layout != "channels_last")
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    weights = torch.randn_like(ref)
    (weights * out).sum().backward()
    (weights * ref).sum().backward()
    for x, y in zip(a, b):
        assert torch.equal(x.grad, y.grad)


def test_widen_mapping_is_eq8():
    g = widen_mapping(4, 10, torch.Generator().manual_seed(0))
    assert g[:4].tolist() == [0, 1, 2, 3]
    assert len(g) == 10 and int(g.max()) < 4 and int(g.min()) >= 0


def test_widen_tensor_is_eq9_without_division():
    w = torch.randn(4, 4, 3, 3)
    g = torch.tensor([0, 1, 2, 3, 2, 0])
    u = widen_tensor(w, (6, 6, 3, 3), lambda old, new: g)
    for o in range(6):
        for i in range(6):
            assert torch.equal(u[o, i], w[g[o], g[i]])
    assert torch.equal(u[:4, :4], w)  # old weights kept as they were, no replication factor
    with pytest.raises(ValueError):
        widen_tensor(w, (5, 6, 3, 3), lambda old, new: g)  # g has 6 entries, not 5
    with pytest.raises(ValueError):
        widen_tensor(w, (2, 4, 3, 3), lambda old, new: g)  # narrowing is not widening


def test_widen_mapping_is_drawn_once_per_size_and_reused():
    from drnas.method.supernet import WidenMapping

    mapping = WidenMapping(torch.Generator().manual_seed(0))
    g = mapping(4, 8)
    assert mapping(4, 8) is g and len(mapping(2, 4)) == 4 and mapping(2, 4)[:2].tolist() == [0, 1]


def test_supernet_widening_keeps_weights_and_carries_momentum():
    torch.manual_seed(0)
    space = get_space("nb201")
    net = space.build_supernet(SupernetSpec(channels=8, cells_per_stage=1, partial_k=4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    theta = torch.softmax(torch.randn(6, 5), -1)
    for _ in range(2):  # build real momentum buffers
        opt.zero_grad()
        net(torch.randn(4, 3, 8, 8), theta).sum().backward()
        opt.step()
    edge_op = next(op for _, op in net.mixed_ops())
    conv_old = edge_op.ops[3][1].weight.detach().clone()  # nor_conv_3x3's conv, 2 -> 2 channels
    bn_mean_old = edge_op.ops[3][2].running_mean.clone()
    momentum_old = opt.state[edge_op.ops[3][1].weight]["momentum_buffer"].clone()
    n_params = len(list(net.parameters()))

    net.widen(2, torch.Generator().manual_seed(1), opt)

    assert net.partial_k == 2
    conv_new = edge_op.ops[3][1].weight
    assert conv_new.shape == (4, 4, 3, 3)
    assert torch.equal(conv_new[:2, :2], conv_old)
    # the extra channels are copies of old ones: every new slice equals some old slice (eq. 9)
    for o in range(4):
        for i in range(4):
            assert any(torch.equal(conv_new[o, i], conv_old[a, b]) for a in range(2) for b in range(2))
    assert torch.equal(edge_op.ops[3][2].running_mean[:2], bn_mean_old)
    # the optimizer now holds the new parameters, with widened momentum
    params_in_opt = [p for g in opt.param_groups for p in g["params"]]
    assert len(params_in_opt) == n_params and all(a is b for a, b in zip(params_in_opt, net.parameters()))
    momentum_new = opt.state[conv_new]["momentum_buffer"]
    assert momentum_new.shape == conv_new.shape and torch.equal(momentum_new[:2, :2], momentum_old)
    # and the widened network trains on
    opt.zero_grad()
    net(torch.randn(4, 3, 8, 8), theta).sum().backward()
    opt.step()


def test_widened_net_state_loads_into_a_net_built_wide():
    """Resume relies on this: a widened supernet has the same state layout as one built at the new K."""
    space = get_space("nb201")
    spec = SupernetSpec(channels=8, cells_per_stage=1, partial_k=4)
    net = space.build_supernet(spec)
    net.widen(2, torch.Generator().manual_seed(0))
    fresh = space.build_supernet(SupernetSpec(channels=8, cells_per_stage=1, partial_k=2))
    fresh.load_state_dict(net.state_dict())
    assert [n for n, _ in fresh.named_parameters()] == [n for n, _ in net.named_parameters()]


def _channel_slice(size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A leaf tensor and its first ``channels`` channels: ops in a supernet read such a (non-contiguous)
    partial slice of a node."""
    whole = torch.randn(2, channels + 2, size, size, requires_grad=True)
    return whole, whole[:, :channels]


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("stride,size", [(1, 8), (1, 5), (2, 8), (2, 7)])
def test_avg_pool_op_equals_torch_pooling_forward_and_backward(stride, size, compiled):
    """Eager, and traced by dynamo as in a compiled cell (aot_eager: no C++ build). Under torch 2.11 the traced
    window sum's in-place adds sent its gradient to the wrong output (pytorch#180642): wrong eta gradients in
    compiled NB201 cells, on the CPU and on CUDA alike."""
    from drnas.fast.ops import WindowSumAvgPool3x3

    torch.manual_seed(0)
    whole, x = _channel_slice(size, 3)
    reference = torch.nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
    pool = WindowSumAvgPool3x3(stride)
    if compiled:
        torch._dynamo.reset()
        pool = torch.compile(pool, backend="aot_eager", dynamic=False)
    ours, theirs = pool(x * 1.0), reference(x)  # a non-leaf input, as inside a cell
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-6)
    g = torch.randn_like(theirs)
    (ga,) = torch.autograd.grad(ours, whole, g)
    (gb,) = torch.autograd.grad(theirs, whole, g)
    assert torch.allclose(ga, gb, atol=1e-6)


@pytest.mark.parametrize("stride,size", [(1, 8), (2, 8), (2, 7)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_op_equals_torch_pooling_exactly(stride, size, channels_last):
    from drnas.fast.ops import ChannelsLastMaxPool3x3

    torch.manual_seed(0)
    whole, x = _channel_slice(size, 3)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    seen = []
    x.register_hook(seen.append)
    ours, theirs = ChannelsLastMaxPool3x3(stride)(x), torch.nn.MaxPool2d(3, stride, 1)(x)
    assert torch.equal(ours, theirs)
    assert ours.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    g = torch.randn_like(theirs)
    assert torch.equal(torch.autograd.grad(ours, whole, g)[0], torch.autograd.grad(theirs, whole, g)[0])
    if not channels_last:  # the gradient comes back in the input's layout (mixed-layout kernels are slow)
        assert seen[0].is_contiguous()


@pytest.mark.parametrize("size", [8, 6])
def test_factorized_reduce_equals_the_two_strided_convs(size):
    """The op subsamples before its ReLU and 1x1 convs; it must equal the textbook form: ReLU, then the two
    stride-2 convs on the input and on the input shifted by one pixel, concatenated, then BN."""
    import torch.nn.functional as F

    from drnas.spaces.ops import FactorizedReduce

    torch.manual_seed(0)
    op = FactorizedReduce(5, 6, affine=True)
    op.bn.weight.data.uniform_(0.5, 1.5)
    whole, x = _channel_slice(size, 5)
    ours = op(x)
    r = F.relu(x)
    halves = [F.conv2d(r, op.conv_1.weight, stride=2), F.conv2d(r[:, :, 1:, 1:], op.conv_2.weight, stride=2)]
    theirs = F.batch_norm(torch.cat(halves, 1), None, None, op.bn.weight, op.bn.bias, training=True)
    assert ours.shape == (2, 6, size // 2, size // 2) and torch.allclose(ours, theirs, atol=1e-5)
    g = torch.randn_like(ours)
    params = [whole, op.conv_1.weight, op.conv_2.weight, op.bn.weight]
    for a, b in zip(torch.autograd.grad(ours, params, g), torch.autograd.grad(theirs, params, g)):
        assert torch.allclose(a, b, atol=1e-5)
