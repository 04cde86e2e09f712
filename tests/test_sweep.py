"""`drnas sweep`: grids of real searches on the embedded digits, through the local pool and a local Ray instance,
their summaries against the runs' own metrics, failures, a killed sweep resumed, and the one-line errors."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drnas.cli import main
from drnas.config.search import SearchConfig, Stage
from drnas.engine.runs import RUN_KEYS
from drnas.sweep.driver import status
from drnas.sweep.plan import Plan, PlannedRun, grid_points, parse_seeds, with_axis_values
from drnas.sweep.report import Group, RunRow, summary_markdown

#: a 2 x 2 grid (methods x seeds) of 4-epoch searches on the embedded digits, tiny enough for seconds per run
GRID = ["--method", "drnas,darts", "--seeds", "0-1", "--dataset", "digits", "--epochs", "4",
        "--set", "channels=4", "--set", "cells_per_stage=1", "--train-images", "400", "--threads", "1"]
#: what must not depend on how the runs were scheduled (seconds and memory do)
SAME = ("method", "seed", "state", "epochs_done", "valid_acc", "train_acc", "arch")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _stable(sweep: Path) -> list[tuple]:
    return [tuple(row[k] for k in SAME) for row in _rows(sweep / "runs.csv")]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "grid"
    assert main(["sweep", *GRID, "--jobs", "2", "--out", str(out), "--quiet"]) == 0
    return out


def test_local_sweep_runs_every_point_and_summarises_their_own_metrics(local_sweep):
    plan = json.loads((local_sweep / "sweep.json").read_text())
    assert [r["name"] for r in plan["runs"]] == ["method=drnas,seed=0", "method=drnas,seed=1",
                                                 "method=darts,seed=0", "method=darts,seed=1"]
    assert plan["varying"] == ["method", "seed"] and plan["jobs"] == 2
    by_method: dict[str, list[float]] = {}
    for run in plan["runs"]:
        rundir = local_sweep / "runs" / run["name"]
        saved = json.loads((rundir / "config.json").read_text())
        assert saved["method"] == run["values"]["method"] and saved["seed"] == run["values"]["seed"]
        assert {k: v for k, v in saved.items() if k not in RUN_KEYS} == run["config"]
        metrics = [json.loads(line) for line in (rundir / "metrics.jsonl").read_text().splitlines()]
        assert len(metrics) == 4
        by_method.setdefault(run["values"]["method"], []).append(metrics[-1]["valid_acc"])
    summary = {row["method"]: row for row in _rows(local_sweep / "summary.csv")}
    assert set(summary) == {"drnas", "darts"}
    for method, values in by_method.items():
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        assert float(summary[method]["valid_acc_mean"]) == pytest.approx(mean, abs=1e-3)
        assert float(summary[method]["valid_acc_std"]) == pytest.approx(std, abs=1e-3)
        assert summary[method]["done"] == "2" and summary[method]["failed"] == "0"
        assert float(summary[method]["peak_memory_mb_mean"]) > 50  # a torch process, measured by wait4
    markdown = (local_sweep / "summary.md").read_text()
    assert "| drnas | 2 |" in markdown and "| darts | 2 |" in markdown
    for name in ("summary.png", "trajectories.png"):
        assert (local_sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_status_of_a_finished_sweep(local_sweep, capsys):
    assert main(["sweep", "--status", str(local_sweep)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "4 runs: 4 done"
    assert all(" done " in line and "4/4 epochs" in line for line in out[:-1])


def test_resuming_a_finished_sweep_runs_nothing(local_sweep, capsys):
    before = (local_sweep / "runs.csv").read_text()
    assert main(["sweep", "--resume", str(local_sweep)]) == 0
    assert "4 runs, 0 to run" in capsys.readouterr().out
    assert _stable(local_sweep) == [tuple(r[k] for k in SAME) for r in csv.DictReader(before.splitlines())]


def test_ray_sweep_gives_the_local_pool_results(local_sweep, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    assert main(["sweep", *GRID, "--ray", "local", "--out", str(out), "--quiet"]) == 0
    assert _stable(out) == _stable(local_sweep)


def test_killed_sweep_resumes_to_the_uninterrupted_summary(local_sweep, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "drnas", "sweep", *GRID, "--jobs", "2", "--out", str(out), "--quiet"]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    first = out / "runs" / "method=drnas,seed=0" / "metrics.jsonl"
    while time.time() < deadline and not (first.exists() and first.read_text().count("\n") >= 1):
        time.sleep(0.2)
    driver.kill()  # SIGKILL: no chance to clean up; its children must die with it
    driver.wait()
    time.sleep(1.0)
    outcomes = json.loads((out / "outcomes.json").read_text())
    assert any(o["state"] == "running" for o in outcomes.values())
    states = {r.name: r.state for r in status(out)[1]}
    assert "running" not in states.values() and "interrupted" in states.values()
    assert main(["sweep", "--resume", str(out), "--quiet"]) == 0  # a living orphan would hold its run's lock
    assert _stable(out) == _stable(local_sweep)


def test_a_failed_run_does_not_stop_the_sweep_and_is_retried_on_resume(tmp_path, capsys):
    data = tmp_path / "later.npz"
    out = tmp_path / "sweep"
    args = ["sweep", "--method", "drnas", "--seeds", "0", "--dataset", "digits,npz", "--data", f"npz={data}",
            "--epochs", "1", "--set", "channels=4", "--set", "cells_per_stage=1", "--train-images", "200",
            "--jobs", "2", "--threads", "1", "--out", str(out), "--quiet"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 of 2 runs failed" in err and f"drnas sweep --resume {out}" in err
    markdown = (out / "summary.md").read_text()
    assert "## Failed runs" in markdown and "- `dataset=npz`: error:" in markdown and str(data) in markdown
    rows = {r["run"]: r for r in _rows(out / "runs.csv")}
    assert rows["dataset=digits"]["state"] == "done" and rows["dataset=npz"]["state"] == "failed"
    assert main(["sweep", "--status", str(out)]) == 0
    assert "1 done, 1 failed" in capsys.readouterr().out

    import numpy as np  # the missing input appears: the resume retries the failed run only
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.integers(0, 255, (64, 8, 8, 1), dtype=np.uint8), y_train=rng.integers(0, 4, 64),
             x_test=rng.integers(0, 255, (16, 8, 8, 1), dtype=np.uint8), y_test=rng.integers(0, 4, 16))
    assert main(["sweep", "--resume", str(out), "--quiet"]) == 0
    assert "2 runs, 1 to run" not in capsys.readouterr().out  # quiet
    assert {r["state"] for r in _rows(out / "runs.csv")} == {"done"}
    outcomes = json.loads((out / "outcomes.json").read_text())
    assert outcomes["dataset=npz"]["attempts"] == 2 and outcomes["dataset=digits"]["attempts"] == 1


def test_a_toml_sweep_file_under_the_command_line_flags(tmp_path, capsys):
    spec = tmp_path / "grid.toml"
    out = tmp_path / "from-file"
    spec.write_text(f"""
out = "{out}"
jobs = 2
threads = 1
[grid]
seeds = "0-1"
dataset = ["digits"]
[search]
epochs = 3
train_images = 200
channels = 4
cells_per_stage = 1
""")
    assert main(["sweep", "--file", str(spec), "--epochs", "1", "--quiet"]) == 0  # the flag wins over the file
    plan = json.loads((out / "sweep.json").read_text())
    assert [r["name"] for r in plan["runs"]] == ["seed=0", "seed=1"] and plan["jobs"] == 2
    config = plan["runs"][1]["config"]
    assert config["seed"] == 1 and config["channels"] == 4 and config["train_images"] == 200
    assert sum(s["epochs"] for s in config["stages"]) == 1
    assert {r["state"] for r in _rows(out / "runs.csv")} == {"done"}
    spec.write_text("colour = 1\n")
    assert main(["sweep", "--file", str(spec)]) == 2
    assert "unknown key(s) colour" in capsys.readouterr().err


@pytest.mark.parametrize("text, flags, says", [
    ("[grid]\nlr = []\n", [], "grid axis lr has no values: give at least one"),
    ("[search]\nepochs = \"many\"\n", ["--epochs", "2"], "[search] epochs must be a whole number, got 'many'"),
    ("[search]\nbatch_size = 0\n", ["--batch-size", "8"], "[search] batch_size must be >= 1, got 0"),
    ("[grid]\nlr = [" + ",".join(str(0.001 * (i + 1)) for i in range(10_000)) + "]\n",
     ["--grid", "momentum=" + ",".join(f"0.{i:05d}" for i in range(10_000))],
     "the grid has 100000000 runs (10000 lr x 10000 momentum); a sweep plans at most 10000"),
])
def test_a_sweep_that_is_empty_too_large_or_mistyped_in_its_file_is_one_line(tmp_path, capsys, text, flags, says):
    spec = tmp_path / "sweep.toml"
    spec.write_text(text)
    out = tmp_path / "sweep"
    started = time.perf_counter()
    assert main(["sweep", "--file", str(spec), *flags, "--out", str(out)]) == 2
    assert time.perf_counter() - started < 10  # refused before any run is planned
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and says in err[0], err
    assert not out.exists()


def test_grid_over_stage_fields_and_epochs():
    config = SearchConfig(stages=[Stage(epochs=10, partial_k=4, arch_warmup=2), Stage(epochs=10, partial_k=2)])
    changed = with_axis_values(config, {"partial_k": "2", "epochs": 6, "ops_kept": 3})
    assert [s.partial_k for s in changed.stages] == [2, 2]
    assert [s.ops_kept for s in changed.stages] == [None, 3]
    assert changed.epochs == 6
    assert len(grid_points({"method": ["a", "b"], "seed": [0, 1, 2], "partial_k": [1, 2]})) == 12


@pytest.mark.parametrize("text, seeds", [("0-3", [0, 1, 2, 3]), ("0,2,5", [0, 2, 5]), ("0-1,7", [0, 1, 7]), ("4", [4])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


def test_the_plan_resolves_each_grid_point_as_drnas_search_resolves_its_flags(tmp_path):
    """A grid over seeds and a config field: each run's config is the one `drnas search` gives for the same
    method, seed and --set (paths absolute, the sweep's threads), over the sweep's own options and --set."""
    from drnas.cli.parser import build_parser
    from drnas.cli.search import search_config
    from drnas.cli.sweep import sweep_plan
    from drnas.config.search import with_absolute_paths

    common = ["--preset", "demo", "--epochs", "4", "--train-images", "200", "--set", "channels=4"]
    args = build_parser().parse_args(["sweep", "--method", "drnas,darts", "--seeds", "0-1", "--grid", "lr=0.05,0.1",
                                      "--threads", "1", "--jobs", "2", *common])
    plan, out = sweep_plan(args)
    assert out is None and (plan.jobs, plan.threads) == (2, 1)
    assert plan.varying == ["method", "seed", "lr"] and plan.axes["lr"] == ["0.05", "0.1"]
    assert [r.name for r in plan.runs][:3] == ["method=drnas,seed=0,lr=0.05", "method=drnas,seed=0,lr=0.1",
                                               "method=drnas,seed=1,lr=0.05"]
    for run in plan.runs:
        values = run.values
        alone = build_parser().parse_args(["search", "--method", values["method"], "--seed", str(values["seed"]),
                                           *common, "--set", f"lr={values['lr']}"])
        expected = dataclasses.replace(with_absolute_paths(search_config(alone)), threads=1)
        assert run.config == expected.to_json(), run.name
        assert (run.config["seed"], run.config["lr"], run.config["channels"]) == (values["seed"], float(values["lr"]), 4)
        assert run.epochs == 4


def test_a_plan_over_a_stage_field_sets_it_on_every_stage():
    from drnas.sweep.plan import plan_sweep

    plan, _ = plan_sweep(grid=["partial_k=1,2"], search={"preset": "demo", "epochs": 4}, threads=1)
    assert [r.name for r in plan.runs] == ["partial_k=1", "partial_k=2"]
    for run, k in zip(plan.runs, (1, 2)):
        assert [s["partial_k"] for s in run.config["stages"]] == [k, k] and run.config["method"] == "drnas"


@pytest.mark.parametrize("argv, says", [
    (["--seeds", "3-1"], "--seeds '3-1'"),
    (["--seeds", "0,0"], "names a seed twice"),
    (["--grid", "colour=1,2"], "cannot sweep over 'colour'"),
    (["--grid", "partial_k"], "must look like FIELD=V1,V2"),
    (["--grid", "device=cpu,cuda"], "cannot sweep over device"),
    (["--method", "drnas,nosuch"], "nosuch"),
    (["--grid", "partial_k=3"], "partial_k=3 must divide channels=4"),
    (["--jobs", "0"], "--jobs must be in [1, 1,024]"),
])
def test_bad_sweeps_are_one_line_and_exit_2(tmp_path, capsys, argv, says):
    out = tmp_path / "bad"
    base = ["sweep", "--dataset", "digits", "--set", "channels=4", "--epochs", "1", "--out", str(out)]
    assert main([*base, *argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("drnas: error: ") and says in err[0], err
    assert not (out / "sweep.json").exists()  # nothing started


def test_resume_refuses_new_grid_flags_and_status_needs_a_sweep(local_sweep, tmp_path, capsys):
    assert main(["sweep", "--resume", str(local_sweep), "--method", "gdas"]) == 2
    assert "drop --method" in capsys.readouterr().err
    assert main(["sweep", "--status", str(tmp_path)]) == 2
    assert "is not a sweep directory" in capsys.readouterr().err
    assert main(["sweep", *GRID, "--out", str(local_sweep)]) == 2
    assert "already holds a sweep" in capsys.readouterr().err


def _row(name: str, method: str, seed: int, test: float, memory: float, partial_k: int | None = None) -> RunRow:
    values = {"method": method, "seed": seed, **({"partial_k": partial_k} if partial_k else {})}
    numbers = {"cifar10_valid_acc": test - 3, "cifar10_test_acc": test, "peak_memory_mb": memory}
    return RunRow(name, values, "done", None, 10, 10, numbers, None, [])


def test_markdown_puts_the_papers_tables_beside_ours():
    config = SearchConfig(space="nb201", dataset="cifar10").to_json()
    runs = [_row("a", "drnas", 0, 94.0, 900), _row("b", "drnas", 1, 92.0, 900), _row("c", "gdas", 0, 93.0, 800)]
    plan = Plan([PlannedRun(r.name, r.values, {**config, "method": r.values["method"]}) for r in runs],
                   ["method", "seed"], {"method": ["drnas", "gdas"], "seed": [0, 1]})
    grouped = [Group({"method": "drnas"}, runs[:2]), Group({"method": "gdas"}, runs[2:])]
    text = summary_markdown(plan, runs, grouped, ["method"])
    assert "## Table 4 layout" in text
    assert "| drnas (ours) | 2 | 90.00 ± 1.00 | 93.00 ± 1.00 | - |" in text
    assert "| DrNAS (paper) | 4 | 91.55 ± 0.00 | 94.36 ± 0.00 |" in text
    assert "| GDAS (paper) | 4 | 90.01 ± 0.46 |" in text

    runs = [_row("k1", "drnas", 0, 94.0, 1000, 1), _row("k2", "drnas", 0, 93.0, 700, 2)]
    plan = Plan([PlannedRun(r.name, r.values, config) for r in runs], ["partial_k"], {"partial_k": [1, 2]})
    grouped = [Group({"partial_k": 1}, runs[:1]), Group({"partial_k": 2}, runs[1:])]
    text = summary_markdown(plan, runs, grouped, ["partial_k"])
    assert "| 1 | 1 | 94.00 ± 0.00 | 1000 ± 0 | 94.36 ± 0.00 | 2437 |" in text
    assert "| 2 | 1 | 93.00 ± 0.00 | 700 ± 0 | 93.49 ± 0.28 | 1583 |" in text
