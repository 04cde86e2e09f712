"""Architectures drawn from the distribution a search learned (``drnas sample``)."""
from __future__ import annotations

import json

import pytest

from drnas.cli import main
from drnas.engine.runs import RunDir, RunError
from drnas.analysis.sampling import sample_run
from drnas.search import Search
from drnas.spaces import NB201Arch
from drnas.method.strategies import with_method
from helpers import pattern_images, tiny_config

QUIET = dict(progress=False, log=lambda m: None)
DATA = pattern_images(192)


@pytest.fixture(scope="module")
def drnas_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "drnas"
    # named cifar10 (the images are the patterns), so that `drnas sample --benchmark` reads NB201's cifar10 columns
    Search(tiny_config(dataset="cifar10"), path, data=DATA, **QUIET).run()
    return path


def test_draws_are_architectures_of_the_epochs_distribution_and_repeat_with_the_seed(drnas_run):
    (last,) = sample_run(drnas_run, n=50, seed=3)
    assert last.epoch == 4 and last.total == 50 and sum(c for _, c in last.counts) == 50
    assert all(NB201Arch.parse(a) for a, _ in last.counts)
    assert [c for _, c in last.counts] == sorted((c for _, c in last.counts), reverse=True)
    assert sample_run(drnas_run, n=50, seed=3) == [last]  # seeded: the same draws
    assert sample_run(drnas_run, n=50, seed=4) != [last] or len(last.counts) == 1
    every = sample_run(drnas_run, n=10, epoch=0)
    assert [d.epoch for d in every] == [1, 2, 3, 4]
    assert sample_run(drnas_run, n=10, epoch=2)[0].epoch == 2


def test_pruned_ops_are_never_drawn(drnas_run):
    """Stage 2 of the tiny search keeps 3 of 5 ops per edge: draws of its epochs use only those."""
    record = RunDir(drnas_run).read_metrics()[-1]
    kept = record["architecture_parameters"]["kept"]
    ops = NB201Arch.parse(sample_run(drnas_run, n=1)[0].counts[0][0]).ops
    from drnas.spaces.nb201 import NB201_OPS

    for edge, op in enumerate(ops):
        assert NB201_OPS.index(op) in kept[edge]
    for arch, _ in sample_run(drnas_run, n=100, seed=1)[0].counts:
        assert all(NB201_OPS.index(op) in kept[e] for e, op in enumerate(NB201Arch.parse(arch).ops))


def test_a_method_with_deterministic_weights_gives_its_derived_architecture(tmp_path):
    stages = [tiny_config().stages[0]]
    result = Search(with_method(tiny_config(stages=stages), "darts"), tmp_path / "darts", data=DATA, **QUIET).run()
    (draws,) = sample_run(tmp_path / "darts", n=20)
    assert draws.counts == [(str(result.architecture), 20)]


def test_sample_command(drnas_run, tmp_path, capsys, nb201_csv):
    assert main(["sample", str(drnas_run), "--n", "30"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("epoch 4: ") and "distinct of 30 draws" in out
    assert main(["sample", str(drnas_run), "--n", "30", "--all-epochs", "--benchmark", str(nb201_csv), "--plot",
                 str(tmp_path / "spread.png"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert all(isinstance(a["cifar10_test_acc"], float) for r in rows for a in r["architectures"])
    assert (tmp_path / "spread.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv,needle", [
    (["--epoch", "9"], "epoch 9 is not in"),
    (["--n", "0"], "--n must be in [1, 1,000,000]"),
    (["--plot", "x.png"], "give --all-epochs and --benchmark"),
])
def test_sample_command_errors_are_one_line(drnas_run, argv, needle, capsys):
    assert main(["sample", str(drnas_run), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_a_run_without_kept_parameters_says_so(drnas_run, tmp_path):
    run = RunDir(tmp_path / "old")
    run.path.mkdir()
    run.config.write_text(RunDir(drnas_run).config.read_text())
    run.write_metrics([{k: v for k, v in m.items() if k != "architecture_parameters"}
                       for m in RunDir(drnas_run).read_metrics()])
    with pytest.raises(RunError, match="keeps no architecture parameters per epoch"):
        sample_run(run.path)


def test_show_prints_the_entropy_and_the_most_frequent_draws(drnas_run, capsys):
    assert main(["show", str(drnas_run), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "entropy:  " in out and "nats per edge" in out
    top = out.split("top 3 of 1000 draws from the learned distribution (epoch 4):\n")[1].splitlines()
    assert 1 <= len(top) <= 3 and all("%" in line and "|" in line for line in top)
