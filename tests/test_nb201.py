"""NB201 architecture strings, derivation, the supernet shape, and the benchmark lookup."""
from __future__ import annotations

import json

import pytest
import torch

from drnas.bench.nb201 import BenchmarkError, NB201Table
from drnas.spaces import ArchitectureError, NB201Arch, SupernetSpec, get_space

DRNAS_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_arch_string_round_trip_and_json():
    arch = NB201Arch.parse(DRNAS_ARCH)
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    assert str(arch) == DRNAS_ARCH
    assert NB201Arch.parse("  " + DRNAS_ARCH + "\n") == arch
    data = json.loads(json.dumps(arch.to_json()))
    assert NB201Arch.from_json(data) == arch


@pytest.mark.parametrize("bad", [
    "",
    "|nor_conv_3x3~0|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",
    "|conv_7x7~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "__import__('os').system('true')",
])
def test_bad_arch_strings_are_rejected_with_a_clear_error(bad):
    with pytest.raises(ArchitectureError) as err:
        NB201Arch.parse(bad)
    assert "\n" not in str(err.value)


def test_bad_arch_json_is_rejected():
    with pytest.raises(ArchitectureError):
        NB201Arch.from_json({"space": "darts", "arch": DRNAS_ARCH})
    with pytest.raises(ArchitectureError):
        NB201Arch.from_json({"ops": []})


def test_derive_takes_argmax_of_expected_weights_per_edge():
    space = get_space("nb201")
    weights = torch.full((6, 5), 0.1)
    for e, o in enumerate([3, 3, 3, 1, 3, 3]):
        weights[e, o] = 0.6
    assert str(space.derive(weights)) == DRNAS_ARCH
    with pytest.raises(ValueError):
        space.derive(torch.zeros(5, 5))


@pytest.mark.parametrize("partial_k", [1, 4])
def test_supernet_forward_shapes_and_edges(partial_k):
    space = get_space("nb201")
    net = space.build_supernet(SupernetSpec(channels=8, cells_per_stage=1, partial_k=partial_k, in_channels=3,
                                            num_classes=7))
    edges = list(net.mixed_ops())
    assert len(edges) == 3 * 6 and [e for e, _ in edges[:6]] == list(range(6))
    assert net.partial_k == partial_k
    out = net(torch.randn(2, 3, 16, 16), torch.full((6, 5), 0.2))
    assert out.shape == (2, 7)
    # search cells use BN without affine parameters
    bns = [m for _, op in edges for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not bn.affine for bn in bns)


def test_benchmark_lookup_reads_the_drnas_architecture(nb201_csv):
    table = NB201Table.load(nb201_csv)
    assert len(table) == 15625
    acc = table.accuracies(DRNAS_ARCH)
    assert acc["cifar10_test_acc"] == pytest.approx(94.36, abs=0.005)
    assert acc["cifar10_valid_acc"] == pytest.approx(91.55, abs=0.005)
    assert acc["cifar100_test_acc"] == pytest.approx(73.51, abs=0.005)
    assert acc["imagenet16_test_acc"] == pytest.approx(46.34, abs=0.005)
    skip = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    assert table.query(skip)["cifar10_test_acc"] == pytest.approx(54.30, abs=0.005)
    # every row's key is the canonical string of a parsed architecture
    assert all(str(NB201Arch.parse(k)) == k for k in table.rows)


def test_benchmark_errors(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        NB201Table.load(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,acc\nx,1\n")
    with pytest.raises(BenchmarkError, match="'arch' column"):
        NB201Table.load(bad)
    small = tmp_path / "small.csv"
    small.write_text(f"arch,cifar10_test_acc\n{DRNAS_ARCH},94.36\n")
    table = NB201Table.load(small)
    with pytest.raises(BenchmarkError, match="not in the table"):
        table.query("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")


@pytest.mark.parametrize("content, says", [
    (b"x" * 200_000, "is not a CSV table of UTF-8 text (Error: field larger than field limit"),
    (b"arch,cifar10_test_acc\n\xff\xfe\x00bad\n", "is not a CSV table of UTF-8 text (UnicodeDecodeError"),
    (b"arch,cifar10_test_acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1.0,2.0\n",
     "line 2: more values than the header has columns"),
])
def test_a_benchmark_file_that_is_not_a_table_is_one_line(tmp_path, content, says):
    from drnas.bench import BenchmarkError, NB201Table

    path = tmp_path / "table.csv"
    path.write_bytes(content)
    with pytest.raises(BenchmarkError) as info:
        NB201Table.load(path)
    assert says in str(info.value) and "\n" not in str(info.value)
