"""Any registered op on a cell: every op builds on an NB201 edge and on a DARTS normal and reduction edge; NB201's
topology and the DARTS cell take any list of registered ops (a plugin's too) through search, derivation, `drnas
arch`, `drnas derive`, retraining and export; the NB201 table skips an op set it was not built from with one note;
an unregistered op is one error line."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from helpers import pattern_images, tiny_config

from drnas.bench import BENCHMARKS, BenchmarkError, open_table
from drnas.cli import main
from drnas.method.supernet import MixedOp
from drnas.registry import Registry
from drnas.search import Search
from drnas.spaces import (
    ArchitectureError,
    DartsGenotype,
    NB201Arch,
    NetworkSpec,
    SupernetSpec,
    get_space,
    ops,
)
from drnas.spaces.darts import search_op
from drnas.spaces.nb201 import NB201_OPS
from drnas.spaces.resolve import resolve_architecture

QUIET = {"progress": False, "log": lambda m: None}
#: NB201's topology with one op it does not have (the issue's example), and the note a table lookup then gives
EXTRA = ["none", "skip_connect", "nor_conv_3x3", "sep_conv_3x3"]
NOTE = "note: ops [none, skip_connect, nor_conv_3x3, sep_conv_3x3] are not NAS-Bench-201's: benchmark lookup skipped"
ARCH = "|sep_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|sep_conv_3x3~1|nor_conv_3x3~2|"
TINY = ["--preset", "demo", "--epochs", "2", "--train-images", "128", "--quiet", "--threads", "1"]


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("drnas: error: "), err
    return err[0]


@pytest.fixture
def op_registry(monkeypatch) -> Registry:
    """A copy of the op registry for one test to add to (what a plugin's ``register_op`` does), put back after."""
    copy = Registry("op")
    for name in ops.OPS:
        copy.register(name, ops.OPS.get(name))
    monkeypatch.setattr(ops, "OPS", copy)
    return copy


def _conv_5x5(c_in: int, c_out: int, stride: int, affine: bool, track: bool) -> torch.nn.Module:
    return ops.ReLUConvBN(c_in, c_out, 5, stride, 2, 1, affine, track)


# --------------------------------------------------------------------------- every op on every kind of edge


@pytest.mark.parametrize("name", ops.op_names())
def test_every_registered_op_builds_on_an_nb201_edge_and_a_darts_normal_and_reduction_edge(name):
    x = torch.randn(2, 6, 8, 8)
    nb201_edge = ops.build_op(name, 6, 6, 1, affine=False)  # a search cell's edge
    assert nb201_edge(x).shape == (2, 6, 8, 8)
    for stride, size in ((1, 8), (2, 4)):  # DARTS: a normal edge, a reduction edge leaving an input node
        assert search_op(name, 6, 6, stride, False, True)(x).shape == (2, 6, size, size)
        assert ops.build_op(name, 6, 6, stride)(x).shape == (2, 6, size, size)  # the evaluation network's op
    mixed = MixedOp(["skip_connect", name] if name != "skip_connect" else [name], 8, 2, 2, op_factory=search_op)
    wide = torch.randn(2, 8, 8, 8)
    assert mixed(wide, torch.full((len(mixed.op_names),), 0.5)).shape == (2, 8, 4, 4)  # partial channels, stride 2


def test_a_plugins_op_works_on_both_cells(op_registry):
    ops.register_op("test_conv_5x5")(_conv_5x5)
    nb201 = get_space("nb201", ["none", "skip_connect", "test_conv_5x5"])
    net = nb201.build_supernet(SupernetSpec(channels=4, cells_per_stage=1, in_channels=3, num_classes=5))
    assert net(torch.randn(2, 3, 8, 8), torch.full((6, 3), 1 / 3)).shape == (2, 5)
    arch = NB201Arch.parse("|test_conv_5x5~0|+|skip_connect~0|test_conv_5x5~1|+|none~0|skip_connect~1|test_conv_5x5~2|")
    model = nb201.build_network(arch, NetworkSpec(channels=4, cells_per_stage=1, num_classes=5))
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)

    darts = get_space("darts", ["test_conv_5x5", "skip_connect", "max_pool_3x3"])
    supernet = darts.build_supernet(SupernetSpec(channels=4, cells=3, in_channels=3, num_classes=5))
    assert supernet(torch.randn(2, 3, 8, 8), torch.full((28, 3), 1 / 3)).shape == (2, 5)
    genotype = darts.derive(torch.rand(28, 3) + 0.1)
    assert {op for op, _ in genotype.normal + genotype.reduce} <= {"test_conv_5x5", "skip_connect", "max_pool_3x3"}
    network = darts.build_network(genotype, NetworkSpec(channels=4, cells=3, num_classes=5))
    assert network.eval()(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    assert DartsGenotype.parse(str(genotype)) == genotype  # its text reads back


# --------------------------------------------------------------------------- op sets and architectures


def test_nb201_keeps_its_five_ops_by_default_and_takes_subsets_and_other_ops():
    assert get_space("nb201").ops == NB201_OPS
    assert get_space("nb201", ["none", "nor_conv_3x3"]).ops == ("none", "nor_conv_3x3")
    assert get_space("nb201", EXTRA).ops == tuple(EXTRA)
    arch = NB201Arch.parse(ARCH)
    assert str(arch) == ARCH and NB201Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
    assert resolve_architecture(ARCH) == arch
    with pytest.raises(ArchitectureError, match="'skip_connect' is listed twice"):
        get_space("nb201", ["skip_connect", "skip_connect"])


def test_the_default_ops_and_naming_them_search_the_same():
    """ops unset and ops = NB201's five in their order are one search: the default op set changed nothing."""
    data = pattern_images(96)
    config = tiny_config(stages=tiny_config().stages[:1])
    plain = Search(config, data=data, **QUIET)
    assert plain.space.ops == NB201_OPS
    first = plain.run()  # each search seeds the global generator when built: one after the other
    named = Search(tiny_config(stages=config.stages, ops=list(NB201_OPS)), data=data, **QUIET)
    assert named.space.ops == NB201_OPS
    second = named.run()
    assert torch.equal(first.eta, second.eta) and str(first.architecture) == str(second.architecture)


def test_darts_takes_nb201_ops_on_its_reduction_edges():
    data = pattern_images(64, size=8)
    config = tiny_config(space="darts", cells=3, channels=4, ops=["nor_conv_1x1", "nor_conv_3x3", "skip_connect"],
                         stages=tiny_config().stages[:1])
    result = Search(config, data=data, **QUIET).run()
    genotype = result.architecture
    assert {op for op, _ in genotype.normal + genotype.reduce} <= {"nor_conv_1x1", "nor_conv_3x3", "skip_connect"}
    network = get_space("darts").build_network(genotype, NetworkSpec(channels=4, cells=3, num_classes=4))
    assert network.eval()(torch.randn(2, 3, 8, 8)).shape == (2, 4)


@pytest.mark.parametrize("make", [
    lambda: NB201Arch.parse("|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
    lambda: get_space("nb201", ["none", "foo"]),
    lambda: get_space("darts", ["sep_conv_3x3", "foo"]),
    lambda: DartsGenotype.from_json({"normal": [["foo", 0], ["sep_conv_3x3", 1]],
                                     "reduce": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]}),
])
def test_an_unknown_op_is_one_line_listing_the_registered_ones(make):
    with pytest.raises(ArchitectureError) as err:
        make()
    message = str(err.value)
    assert "unknown op 'foo'; registered ops: none, skip_connect" in message and "\n" not in message
    assert "sep_conv_3x3" in message and "--plugin MODULE" in message


def test_an_unknown_op_on_the_command_line_is_one_error_line(tmp_path, capsys):
    assert main(["search", *TINY, "--set", "ops=[none,foo]", "--out", str(tmp_path / "run")]) == 2
    assert "unknown op 'foo'; registered ops:" in _error_line(capsys)
    assert not (tmp_path / "run").exists()
    assert main(["arch", "|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|"]) == 2
    assert "unknown op 'foo'" in _error_line(capsys)


# --------------------------------------------------------------------------- the benchmark's coverage


def test_the_nb201_table_covers_its_own_ops_and_their_subsets_only():
    table = BENCHMARKS.get("NAS-Bench-201")
    assert table.uncovered(get_space("nb201")) is None
    assert table.uncovered(get_space("nb201", ["none", "skip_connect", "nor_conv_3x3"])) is None
    assert table.uncovered(get_space("nb201", EXTRA)) == ("ops [none, skip_connect, nor_conv_3x3, sep_conv_3x3] "
                                                          "are not NAS-Bench-201's")
    assert "holds nb201 architectures" in table.uncovered(get_space("darts"))
    assert table.uncovered(get_space("nb201"), "cifar100") is None
    assert "no results for dataset 'digits'" in table.uncovered(get_space("nb201"), "digits")


def test_a_lookup_it_cannot_answer_is_skipped_with_one_note(tmp_path):
    csv = tmp_path / "nb201.csv"
    csv.write_text(f"arch,cifar10_test_acc\n{ARCH.replace('sep_conv_3x3', 'nor_conv_1x1')},90.0\n")
    notes: list[str] = []
    assert open_table(get_space("nb201", EXTRA), csv, notes.append) is None
    assert notes == [NOTE]
    assert open_table(get_space("nb201"), csv, notes.append, "digits") is None and len(notes) == 2
    assert "no results for dataset 'digits'" in notes[1] and notes[1].endswith("benchmark lookup skipped")
    assert len(open_table(get_space("nb201"), csv, notes.append, "cifar10")) == 1 and len(notes) == 2
    assert open_table(get_space("nb201"), None, notes.append) is None
    with pytest.raises(BenchmarkError, match="index no darts architecture: use it with --space nb201"):
        open_table(get_space("darts"), csv, notes.append)


# --------------------------------------------------------------------------- through the command line


@pytest.fixture(scope="module")
def extra_op_run(tmp_path_factory):
    """`drnas search --preset demo --set ops=[...]` with a benchmark table: the run, and what it said."""
    root = tmp_path_factory.mktemp("extra-op")
    csv = root / "nb201.csv"
    csv.write_text(f"arch,cifar10_test_acc\n{ARCH.replace('sep_conv_3x3', 'nor_conv_1x1')},90.0\n")
    err = io.StringIO()  # a module-scoped fixture has no capsys: main's log lines go to sys.stderr, caught here
    with contextlib.redirect_stderr(err):
        code = main(["search", "--preset", "demo", "--epochs", "2", "--train-images", "128", "--threads", "1",
                     "--set", "ops=[none,skip_connect,nor_conv_3x3,sep_conv_3x3]", "--benchmark", str(csv),
                     "--out", str(root / "run")])
    return root / "run", csv, code, err.getvalue()


def test_a_search_with_another_op_runs_derives_and_notes_the_skipped_lookup(extra_op_run):
    run, _, code, said = extra_op_run
    assert code == 0
    notes = [line for line in said.splitlines() if line.startswith("note: ")]
    assert notes == [NOTE]
    config = json.loads((run / "config.json").read_text())
    assert config["ops"] == EXTRA
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(not record.get("nb201") for record in records)  # no lookup, no wrong number
    arch = NB201Arch.parse(json.loads((run / "architecture.json").read_text())["architecture"]["arch"])
    assert set(arch.ops) <= set(EXTRA)


def test_its_architecture_goes_through_arch_derive_and_sample(extra_op_run, tmp_path, capsys):
    run, csv, _, _ = extra_op_run
    capsys.readouterr()
    assert main(["arch", str(run), "--dataset", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] > 0 and report["macs"] > 0 and set(report["architecture"]["ops"]) <= set(EXTRA)
    assert main(["arch", str(run), "--plot", str(tmp_path / "cell.svg")]) == 0
    assert "<svg" in (tmp_path / "cell.svg").read_text() and "sep_conv_3x3" in (tmp_path / "cell.svg").read_text()
    capsys.readouterr()
    assert main(["derive", str(run), "--max-params", "10M", "--json"]) == 0
    assert set(NB201Arch.parse(json.loads(capsys.readouterr().out)["text"]).ops) <= set(EXTRA)
    assert main(["sample", str(run), "--n", "10", "--benchmark", str(csv)]) == 0
    out = capsys.readouterr()
    assert "benchmark lookup skipped" in out.err and "distinct of 10 draws" in out.out


def test_its_architecture_retrains_and_exports(extra_op_run, tmp_path, capsys):
    run, _, _, _ = extra_op_run
    assert main(["train", "--arch", str(run), "--dataset", "digits", "--epochs", "1", "--train-images", "64",
                 "--test-images", "32", "--set", "channels=4", "--set", "cells_per_stage=1", "--quiet", "--threads",
                 "1", "--out", str(tmp_path / "train"), "--export", str(tmp_path / "net.pt2")]) == 0
    saved = json.loads((tmp_path / "train" / "config.json").read_text())
    assert "sep_conv_3x3" in saved["arch"] or set(NB201Arch.parse(saved["arch"]).ops) <= set(EXTRA)
    net = torch.export.load(str(tmp_path / "net.pt2")).module()
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_a_table_method_refuses_an_op_set_the_table_was_not_built_from(tmp_path, capsys):
    csv = tmp_path / "nb201.csv"
    csv.write_text(f"arch,cifar10_valid_acc\n{ARCH.replace('sep_conv_3x3', 'nor_conv_1x1')},90.0\n")
    assert main(["search", "--method", "random", "--dataset", "cifar10", "--benchmark", str(csv), "--set",
                 "ops=[none,skip_connect,sep_conv_3x3]", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = _error_line(capsys)
    assert "ops [none, skip_connect, sep_conv_3x3] are not NAS-Bench-201's" in line and "leave ops unset" in line
    assert not (tmp_path / "run").exists()
