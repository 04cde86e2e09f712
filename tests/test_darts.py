"""The DARTS space: genotypes (JSON and safe parsing), derivation, supernet with partial channels and
widening, evaluation networks matching the papers' parameter counts and MACs."""
from __future__ import annotations

import json

import pytest
import torch

from drnas.spaces.archs import architecture_names, get_architecture
from drnas.analysis.cost import count_macs, count_parameters
from drnas.spaces import ArchitectureError, DartsGenotype, NetworkSpec, SupernetSpec, get_space
from drnas.spaces.darts import DARTS_OPS, EDGES, derive_cell

DARTS_V2_TEXT = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
                 "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
                 "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
                 "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
                 "('max_pool_3x3', 1)], reduce_concat=range(2, 6))")


def test_parse_darts_notation_and_round_trips():
    genotype = DartsGenotype.parse(DARTS_V2_TEXT)
    assert genotype == get_architecture("DARTS_V2").arch
    assert DartsGenotype.parse(str(genotype)) == genotype
    assert DartsGenotype.from_json(json.loads(json.dumps(genotype.to_json()))) == genotype
    assert DartsGenotype.parse(json.dumps(genotype.to_json())) == genotype


@pytest.mark.parametrize("text,needle", [
    ("__import__('os').system('echo pwned')", "single Genotype"),
    ("Genotype(normal=__import__('os').listdir('/'), reduce=[])", "literal list"),
    ("Genotype(normal=[('sep_conv_3x3', 0)] * 8, reduce=[])", "literal list"),
    ("Genotype([('sep_conv_3x3', 0)])", "keyword arguments"),
    ("Genotype(normal=[('conv_9x9', 0), ('sep_conv_3x3', 1)], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", "conv_9x9"),
    ("Genotype(normal=[('none', 0), ('sep_conv_3x3', 1)], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", "none"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 2)], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", "inputs 0..1"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', -1)], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", "inputs 0..1"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", "two (op, input) pairs"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2, 7], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", "concat"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=range(2, 3, 0, 1), reduce=[])", "range"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], extra=1, reduce=[])", "unknown Genotype field"),
    ("Genotype(normal=[('sep_conv_3x3', 0.5), ('sep_conv_3x3', 1)], reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)])", "pair"),
    ("Genotype(normal=[", "not valid notation"),
    ("Genotype(normal=[(" + "'a', 0), (" * 5000 + ")])", "characters long"),
])
def test_hostile_or_malformed_genotypes_are_rejected(text, needle):
    with pytest.raises(ArchitectureError, match=needle.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        DartsGenotype.parse(text)


def test_derivation_keeps_two_inputs_per_node_and_never_none_or_pruned_ops():
    torch.manual_seed(0)
    space = get_space("darts")
    none = DARTS_OPS.index("none")
    for _ in range(20):
        weights = torch.softmax(3 * torch.randn(28, 8), -1)
        weights[:, none] = 0.9  # `none` is the strongest everywhere, yet must never be picked
        pruned = torch.rand(28, 8) < 0.3
        pruned[:, DARTS_OPS.index("sep_conv_3x3")] = False  # every edge keeps at least one real op
        weights = weights.masked_fill(pruned, 0.0)
        genotype = space.derive(weights)
        for cell, offset in ((genotype.normal, 0), (genotype.reduce, 14)):
            assert len(cell) == 8
            for node in range(4):
                (op_a, a), (op_b, b) = cell[2 * node], cell[2 * node + 1]
                assert a != b and 0 <= a < node + 2 and 0 <= b < node + 2
                for op, j in ((op_a, a), (op_b, b)):
                    assert op != "none"
                    row = offset + EDGES.index((node, j))
                    assert not pruned[row, DARTS_OPS.index(op)]


def test_derivation_picks_the_strongest_edges_and_ops():
    ops = DARTS_OPS
    w = torch.full((14, 8), 0.01)
    # node 2 (rows 0, 1): edge from 1 is stronger; node 3 (rows 2-4): edges from 2 and 0
    w[0, ops.index("sep_conv_5x5")] = 0.3
    w[1, ops.index("dil_conv_3x3")] = 0.6
    w[2, ops.index("max_pool_3x3")] = 0.4
    w[4, ops.index("skip_connect")] = 0.5
    w[3, ops.index("none")] = 0.99
    pairs = derive_cell(w, ops)
    assert pairs[:4] == (("dil_conv_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 2), ("max_pool_3x3", 0))


def test_supernet_partial_channels_widening_and_pruning_with_separable_convs():
    torch.manual_seed(0)
    space = get_space("darts")
    net = space.build_supernet(SupernetSpec(channels=6, cells=3, partial_k=3, num_classes=4))
    assert len(list(net.mixed_ops())) == 3 * 14
    assert sorted({e for e, _ in net.mixed_ops()}) == list(range(28))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    theta = torch.softmax(torch.randn(28, 8), -1)
    net(torch.randn(2, 3, 16, 16), theta).sum().backward()
    opt.step()
    edge = next(op for _, op in net.mixed_ops())
    depthwise_old = edge.ops[DARTS_OPS.index("sep_conv_3x3")][1].weight.detach().clone()  # [2, 1, 3, 3]
    net.widen(1, torch.Generator().manual_seed(0), opt)
    depthwise_new = edge.ops[DARTS_OPS.index("sep_conv_3x3")][1].weight
    assert depthwise_new.shape == (6, 1, 3, 3) and torch.equal(depthwise_new[:2], depthwise_old)
    assert edge.ops[DARTS_OPS.index("sep_conv_3x3")][1].groups == 6
    assert opt.state[depthwise_new]["momentum_buffer"].shape == (6, 1, 3, 3)
    net.set_kept([[1, 4, 5, 7]] * 28)
    out = net(torch.randn(2, 3, 16, 16), theta)
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_imagenet_stem_reduces_224_to_28():
    space = get_space("darts")
    net = space.build_supernet(SupernetSpec(channels=8, cells=2, partial_k=2, num_classes=5, imagenet_stem=True))
    s0 = net.stem0(torch.randn(1, 3, 224, 224))
    assert net.stem1(s0).shape[-1] == 28


def test_ops_subset_for_the_authors_code_preset():
    from drnas.config import preset

    cfg = preset("darts-cifar10-code")
    space = get_space("darts", cfg.ops)
    assert "none" not in space.ops and len(space.ops) == 7
    assert [(s.partial_k, s.ops_kept) for s in cfg.stages] == [(6, None), (4, 4)]
    paper = preset("darts-cifar10")
    assert [(s.epochs, s.partial_k, s.ops_kept, s.arch_warmup) for s in paper.stages] == [(25, 6, None, 10), (25, 3, 4, 10)]
    assert (paper.cells, paper.channels, paper.batch_size, paper.lr, paper.lr_min, paper.arch_lr) == (20, 36, 64, 0.1, 0.0, 6e-4)
    with pytest.raises(ArchitectureError):
        get_space("darts", ["sep_conv_3x3", "conv_9x9"])


@pytest.mark.parametrize("name,spec,size,expected_m", [
    ("DrNAS_cifar10", NetworkSpec(36, 20, num_classes=10, auxiliary=True), 32, 4.1),
    ("DARTS_V2", NetworkSpec(36, 20, num_classes=10, auxiliary=True), 32, 3.3),
    ("DrNAS_imagenet", NetworkSpec(48, 14, num_classes=1000, auxiliary=True, imagenet_stem=True), 224, 5.7),
])
def test_evaluation_networks_match_the_papers_parameter_counts(name, spec, size, expected_m):
    entry = get_architecture(name)
    net = get_space("darts").build_network(entry.arch, spec)
    params = count_parameters(net, ("auxiliary",)) / 1e6
    assert round(params, 1) == expected_m == entry.reported["params_m"]
    assert count_parameters(net) > count_parameters(net, ("auxiliary",))  # the head exists and is excluded
    net.train()
    logits, aux = net(torch.randn(2, 3, size, size))
    assert logits.shape == aux.shape == (2, spec.num_classes)


def test_imagenet_network_multiply_accumulates():
    """The authors' network definition gives about 624M MACs (convolutions and classifier) at 224x224."""
    net = get_space("darts").build_network(get_architecture("DrNAS_imagenet").arch,
                                           NetworkSpec(48, 14, num_classes=1000, auxiliary=True, imagenet_stem=True))
    assert count_macs(net, (1, 3, 224, 224)) / 1e6 == pytest.approx(624.4, abs=0.5)


def test_drop_path_only_in_training_and_scaled():
    from drnas.spaces.darts import drop_path

    torch.manual_seed(0)
    x = torch.ones(10000, 1, 1, 1)
    y = drop_path(x, 0.3)
    values = torch.unique(y)
    assert len(values) == 2 and values[0] == 0 and torch.isclose(values[1], torch.tensor(1 / 0.7))
    assert abs(float(y.mean()) - 1.0) < 0.03
    net = get_space("darts").build_network(get_architecture("DARTS_V2").arch, NetworkSpec(8, 5, num_classes=3))
    net.drop_path_prob = 0.5
    net.eval()
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(net(x), net(x))


def test_named_architectures_registry():
    assert {"DrNAS_cifar10", "DrNAS_imagenet", "DARTS_V2", "DrNAS_nb201"} <= set(architecture_names())
    with pytest.raises(ArchitectureError, match="unknown architecture name .nope.; known: DrNAS_cifar10, "):
        get_architecture("nope")


@pytest.mark.parametrize("imagenet_stem", [False, True])
def test_evaluation_network_preprocessing_together_equals_cell_by_cell(imagenet_stem):
    """Each state's readers are preprocessed as one stack (drnas.spaces.darts.run_cells); with drop-path and
    the auxiliary head in training mode, logits, gradients and BN statistics equal the one-by-one path."""
    from drnas.fast import settings as fastpaths
    from drnas.fast import fusion
    def run(together: bool):
        torch.manual_seed(0)
        net = fusion.install(get_space("darts").build_network(get_architecture("DrNAS_cifar10").arch,
                                                              NetworkSpec(8, 6, num_classes=3, auxiliary=True,
                                                                          imagenet_stem=imagenet_stem)))
        net.train()
        net.drop_path_prob = 0.2
        size = 224 if imagenet_stem else 32  # the auxiliary head needs 8x8 (CIFAR) or 7x7 (ImageNet) at 2/3 depth
        x = torch.randn(3, 3, size, size)
        with fastpaths.using(preprocess_together=together):
            logits, aux = net(x)  # drop-path draws the same random masks in the same order either way
            (logits.pow(2).sum() + aux.pow(2).sum()).backward()
            net.eval()
            return ([logits.detach(), aux.detach(), net(x).detach()], [p.grad for p in net.parameters()],
                    [b.float() for b in net.buffers()])

    fused, plain = run(True), run(False)
    for a, b in zip(fused[0] + fused[1], plain[0] + plain[1]):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(fused[2], plain[2]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
