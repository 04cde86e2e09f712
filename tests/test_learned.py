"""The one reader of a run's learned distribution (``LearnedDistribution``) on a real tiny run of the demo preset:
it reads each epoch's η and kept ops, and it is what ``drnas sample``, ``drnas derive`` and ``drnas show`` use."""
from __future__ import annotations

import json
import os
import shutil
import time

import pytest
import torch

from drnas.analysis.budget import Budget, derive_within_budget
from drnas.analysis.learned import LearnedDistribution, read_architecture
from drnas.analysis.sampling import draw, sample_run
from drnas.cli import main
from drnas.engine.runs import RunDir, RunError
from drnas.spaces import NetworkSpec

DEMO = ["search", "--preset", "demo", "--epochs", "2", "--train-images", "160", "--batch-size", "32", "--quiet"]
#: a small evaluation network, so that a derivation counts quickly
NETWORK = (NetworkSpec(channels=4, cells_per_stage=1, in_channels=1), (1, 1, 8, 8))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A finished two-epoch search of the demo preset (the second stage prunes every edge to 3 ops)."""
    path = tmp_path_factory.mktemp("learned") / "demo"
    torch.set_num_threads(1)
    assert main([*DEMO, "--out", str(path)]) == 0
    return path


def _kept(record: dict) -> torch.Tensor:
    ops = len(record["architecture_parameters"]["eta"][0])
    return torch.tensor([[o in kept for o in range(ops)] for kept in record["architecture_parameters"]["kept"]])


def test_each_epoch_is_read_from_its_metrics_line(demo):
    records = RunDir(demo).read_metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    every = LearnedDistribution.every_epoch(demo)
    assert [d.epoch for d in every] == [1, 2]
    for record, learned in zip(records, every):
        one = LearnedDistribution.from_run(demo, record["epoch"])
        params = record["architecture_parameters"]
        for d in (one, learned):
            assert d.epoch == record["epoch"] and d.parameters == params
            assert torch.equal(d.strategy().eta.detach(), torch.tensor(params["eta"]))  # η whole, as kept
            assert torch.equal(d.kept, _kept(record))
            # the strategy's expected weights: the record's (rounded) Dirichlet mean, 0 on the pruned ops
            assert torch.allclose(d.weights, torch.tensor(record["dirichlet_mean"]), rtol=0, atol=1e-6)
            assert torch.equal(d.weights > 0, d.kept)
            assert torch.equal(d.allowed, d.kept)  # NB201 excludes no op from the derivation
        assert torch.equal(one.weights, learned.weights)
    assert every[0].kept.sum(1).tolist() == [5] * 6 and every[1].kept.sum(1).tolist() == [3] * 6  # pruned at stage 2


def test_the_last_epoch_is_the_one_the_run_wrote(demo):
    saved = json.loads((demo / "architecture.json").read_text())
    learned = LearnedDistribution.from_run(demo)
    assert learned.epoch == learned.epochs == 2 and learned.method == "drnas" and learned.dataset == "digits"
    assert learned.label == "Dirichlet mean" and learned.space.name == "nb201"
    assert learned.derived == saved["architecture"]["arch"] == str(learned.space.derive(learned.weights))
    assert learned.recorded.tolist() == [e["mean"] for e in saved["edges"]]
    assert torch.equal(learned.recorded, learned.weights)  # rebuilt from η on the CPU that searched: the same bits
    assert learned.kept.tolist() == [[op in e["kept"] for op in saved["ops"]] for e in saved["edges"]]
    earlier = LearnedDistribution.from_run(demo, 1)
    assert earlier.recorded is None and earlier.derived is None
    assert read_architecture(RunDir(demo)) == saved


def test_sample_draws_from_it(demo):
    learned = LearnedDistribution.from_run(demo)
    assert sample_run(demo, n=40, seed=3) == [draw(learned, 40, seed=3)]
    assert sample_run(demo, n=10, epoch=0) == [draw(d, 10) for d in LearnedDistribution.every_epoch(demo)]
    # a shared strategy is given its own epoch's parameters before each draw
    first, last = LearnedDistribution.every_epoch(demo)
    assert draw(last, 30, seed=1) == draw(learned, 30, seed=1) and draw(first, 30, seed=1) == sample_run(
        demo, n=30, epoch=1, seed=1)[0]


def test_derive_derives_from_it(demo, capsys):
    learned = LearnedDistribution.from_run(demo)
    found = derive_within_budget(learned, Budget(), *NETWORK)
    assert str(found.arch) == learned.derived and found.learned is learned
    assert main(["derive", str(demo), "--json", "--dataset", "digits", "--channels", "4", "--cells", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == str(found.arch) and out["run_architecture"] == learned.derived and out["epoch"] == 2
    assert out["log_probability"] == pytest.approx(found.log_probability, abs=1e-12)


def test_show_prints_it(demo, capsys):
    learned = LearnedDistribution.from_run(demo)
    assert main(["show", str(demo), "--top", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = lines.index("Dirichlet mean per edge (pruned ops shown as -):")
    width = max(len(o) for o in learned.space.ops)
    for name, row, kept, line in zip(learned.space.edge_names(), learned.recorded.tolist(), learned.kept.tolist(),
                                     lines[start + 2:]):
        assert line == f"  {name:<6} " + " ".join(f"{v:>{width}.3f}" if k else f"{'-':>{width}}"
                                                   for v, k in zip(row, kept))
    draws = draw(learned, 1000)
    top = out.split(f"top 2 of 1000 draws from the learned distribution (epoch {draws.epoch}):\n")[1].splitlines()
    assert top == [f"  {count / draws.total:6.1%}  {text}" for text, count in draws.counts[:2]]


def test_a_run_that_keeps_no_parameters_gives_its_architecture_file(demo, tmp_path):
    """A benchmark-query search, or a run of an older drnas: its architecture.json's means, no draws."""
    old = tmp_path / "old"
    shutil.copytree(demo, old)
    RunDir(old).write_metrics([{k: v for k, v in m.items() if k != "architecture_parameters"}
                               for m in RunDir(demo).read_metrics()])
    learned, wrote = LearnedDistribution.from_run(old), LearnedDistribution.from_run(demo)
    assert learned.parameters is None and learned.epoch == 2 and learned.derived == wrote.derived
    assert torch.equal(learned.weights, wrote.recorded) and torch.equal(learned.kept, wrote.kept)
    with pytest.raises(RunError, match="keeps no architecture parameters per epoch"):
        learned.strategy()
    with pytest.raises(RunError, match="keeps no architecture parameters per epoch"):
        LearnedDistribution.every_epoch(old)
    with pytest.raises(RunError, match=r"epoch 1 is not in .* \(no epoch keeps its architecture parameters\)"):
        LearnedDistribution.from_run(old, 1)
    RunDir(old).architecture.unlink()
    with pytest.raises(RunError, match="keeps no architecture parameters per epoch .* no learned distribution"):
        LearnedDistribution.from_run(old)


def test_what_it_refuses(demo, tmp_path):
    with pytest.raises(RunError, match=r"epoch 9 is not in .*metrics.jsonl \(epochs 1..2\)"):
        LearnedDistribution.from_run(demo, 9)
    broken = tmp_path / "broken"
    shutil.copytree(demo, broken)
    RunDir(broken).architecture.write_bytes(b"\xff\xfe not json")
    with pytest.raises(RunError, match="architecture.json could not be read .*: resume the run to rewrite it"):
        LearnedDistribution.from_run(broken)
    trained = tmp_path / "train"
    trained.mkdir()
    RunDir(trained).config.write_text(json.dumps({"kind": "train", "arch": "DrNAS_nb201"}))
    with pytest.raises(RunError, match="is a training run: give a search run directory"):
        LearnedDistribution.from_run(trained)


def _last_line(run: RunDir, change) -> None:
    lines = run.metrics.read_text().splitlines()
    record = json.loads(lines[-1])
    change(record["architecture_parameters"])
    run.metrics.write_text("\n".join([*lines[:-1], json.dumps(record)]) + "\n")


def _fifo(run: RunDir) -> None:
    run.metrics.unlink()
    os.mkfifo(run.metrics)


def _directory(run: RunDir) -> None:
    run.metrics.unlink()
    run.metrics.mkdir()


#: damage to metrics.jsonl, and what the one line says
DAMAGED_METRICS = {
    "eta of another shape": (lambda run: _last_line(run, lambda p: p.update(eta=[[1.0, 2.0]])), "eta has shape (1, 2)"),
    "eta of text": (lambda run: _last_line(run, lambda p: p.update(eta="many")), "eta is not an array of numbers"),
    "eta not finite": (lambda run: _last_line(run, lambda p: p["eta"][0].__setitem__(0, float("nan"))),
                       "eta holds NaN or infinite values"),
    "kept out of range": (lambda run: _last_line(run, lambda p: p["kept"][0].append(99)), "kept must list"),
    "an epoch of 5000 digits": (lambda run: run.metrics.write_text('{"epoch": ' + "9" * 5000 + "}\n"),
                                "line 1: not an epoch record (ValueError)"),
    "a line nested too deep": (lambda run: run.metrics.write_text('{"epoch": 1, "x": ' + "[" * 100_000 + "]" * 100_000
                                                                  + "}\n"), "line 1: not an epoch record"),
    "a line that is no record": (lambda run: run.metrics.write_text("[1, 2]\n"), "line 1: not an epoch record"),
    "a directory": (_directory, "is not a regular file"),
    "a FIFO": (_fifo, "is not a regular file"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_METRICS))
def test_a_damaged_metrics_file_is_one_line_for_sample_and_derive(demo, tmp_path, capsys, damage):
    run = RunDir(tmp_path / "run")
    shutil.copytree(demo, run.path)
    corrupt, says = DAMAGED_METRICS[damage]
    corrupt(run)
    for argv in (["sample", str(run.path), "--n", "5"], ["derive", str(run.path)]):
        started = time.perf_counter()
        assert main(argv) == 2, argv
        assert time.perf_counter() - started < 10
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and says in err[0] and "metrics.jsonl" in err[0], (argv, err)
