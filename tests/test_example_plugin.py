"""The example plugin package (examples/plugin, ``drnas-example-plugin``) as a researcher uses it: installed into a
fresh virtual environment (drnas finds it by its entry point) or named by ``--plugin``, its method, op, space and
dataset go through search, kill -9 and ``--resume``, a sweep (local pool, Ray), torchrun, ``show``, ``sample``,
``derive``, ``arch`` and ``train`` on its runs, with no flag when a run is reopened; where the plugin is missing,
reopening a run is one error line naming it and the run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"
MODULE = "drnas_example_plugin"
#: the example's search: its method (at a temperature other than the default), space and dataset, a small supernet
SEARCH = ["--method", "temperature-softmax", "--space", "tiny-cell", "--dataset", "noise16",
          "--set", "method.temperature=0.5", "--set", "channels=4", "--set", "cells_per_stage=1",
          "--batch-size", "32", "--train-images", "256", "--threads", "1"]
#: metrics fields that measure the machine, not the run
MEASURED = {"seconds", "elapsed_seconds", "peak_memory_mb", "cuda_peak_memory_mb"}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DRNAS_PLUGINS", "PYTHONPATH")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _flag_env() -> dict[str, str]:
    """The example importable without installing it, as --plugin needs."""
    return {"PYTHONPATH": str(EXAMPLE / "src")}


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtual environment with the example installed from a copy of its folder (pip, no build isolation),
    seeing the test environment's packages (torch, drnas) through a site directory, not a copy."""
    pytest.importorskip("setuptools", reason="building the example needs setuptools (requirements/test.txt)")
    root = tmp_path_factory.mktemp("example-plugin")
    source = root / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "_parent_env.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", "install",
                           "--no-deps", "--no-build-isolation", str(source)], capture_output=True, text=True,
                          timeout=300, env=_clean_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return python


def run(python: Path | str, *args: str, cwd: Path | None = None, timeout: int = 300, **env: str
        ) -> subprocess.CompletedProcess:
    done = subprocess.run([str(python), "-m", "drnas", *args], capture_output=True, text=True, cwd=cwd,
                          env=_clean_env(**env), timeout=timeout)
    assert done.returncode == 0, f"drnas {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def in_one_process(python: Path | str, *commands: list[str]) -> tuple[list[int], str, str]:
    """Several ``drnas`` commands run one after another by one fresh process (no plugin flag or variable): their exit
    codes, stdout and stderr."""
    code = f"from drnas.cli import main\nprint('@codes', [main(argv) for argv in {list(commands)!r}])"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=_clean_env(), timeout=300)
    found = [line for line in done.stdout.splitlines() if line.startswith("@codes ")]
    assert done.returncode == 0 and found, done.stderr[-3000:]
    return json.loads(found[0].split(" ", 1)[1]), done.stdout, done.stderr


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in MEASURED} for line in lines]


def test_installed_plugin_is_found_by_its_entry_point(venv):
    listed = run(venv, "plugins").stdout
    assert f"{MODULE} 0.1.0" in listed and "entry point 'example' of drnas-example-plugin" in listed
    for kind, name in (("method", "temperature-softmax"), ("op", "conv_5x5"), ("search space", "tiny-cell"),
                       ("dataset", "noise16")):
        assert f"{kind}: " in listed and name in listed, listed
    shown = run(venv, "methods", "temperature-softmax").stdout
    assert "temperature" in shown and "1.0" in shown


def test_search_kill_resume_and_every_command_on_its_run(venv, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(venv, "search", *SEARCH, "--epochs", "3", "--quiet", "--out", str(whole))
    config = json.loads((whole / "config.json").read_text())
    assert config["plugins"] == [{"module": MODULE, "version": "0.1.0"}]
    assert (config["method"], config["space"], config["dataset"]) == ("temperature-softmax", "tiny-cell", "noise16")
    assert config["method_settings"]["temperature"] == 0.5

    # kill -9 once an epoch is on disk; the resume (no flags: the run's record imports the plugin) ends where the
    # uninterrupted run did
    proc = subprocess.Popen([str(venv), "-m", "drnas", "search", *SEARCH, "--epochs", "3", "--quiet", "--out",
                             str(killed)], env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metrics = killed / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    run(venv, "search", "--resume", str(killed), "--quiet")
    assert records(killed) == records(whole)
    assert json.loads((killed / "architecture.json").read_text())["architecture"] == \
        json.loads((whole / "architecture.json").read_text())["architecture"]

    codes, out, err = in_one_process(venv, ["show", str(whole)], ["sample", str(whole), "--n", "20"],
                                     ["derive", str(whole), "--max-params", "1M"])
    assert codes == [0, 0, 0] and "tiny-cell" in out, err
    # a run's network is built for the data it was searched on, unless told otherwise
    arch = json.loads(run(venv, "arch", str(whole), "--json").stdout)
    assert arch["dataset"] == "noise16" and arch["space"] == "tiny-cell"
    trained = tmp_path / "trained"
    run(venv, "train", "--arch", str(whole), "--epochs", "1", "--threads", "1", "--quiet", "--set", "batch_size=32",
        "--out", str(trained))
    assert json.loads((trained / "config.json").read_text())["dataset"] == "noise16"

    # the test environment does not have the plugin: reopening its run is one line naming both, nothing written
    before = {p.name: p.stat().st_mtime_ns for p in whole.iterdir()}
    codes, _, err = in_one_process(sys.executable, ["show", str(whole)], ["search", "--resume", str(whole)])
    lines = err.strip().splitlines()
    assert codes == [2, 2] and len(lines) == 2, err
    assert all(MODULE in line and str(whole) in line and line.startswith("drnas: error: ") for line in lines)
    assert {p.name: p.stat().st_mtime_ns for p in whole.iterdir()} == before


def test_sweep_of_two_runs_hands_its_plugin_to_each(tmp_path):
    """The plugin named by --plugin (not installed, no DRNAS_PLUGINS): each run of the sweep's pool imports it."""
    out = tmp_path / "sweep"
    run(sys.executable, "sweep", "--plugin", MODULE, "--method", "temperature-softmax", "--seeds", "0", "--space",
        "tiny-cell",
        "--dataset", "noise16", "--epochs", "2", "--train-images", "128", "--set", "channels=4",
        "--set", "cells_per_stage=1", "--grid", "method.temperature=0.5,2", "--jobs", "2", "--threads", "1",
        "--quiet", "--out", str(out), timeout=600, **_flag_env())
    configs = [json.loads(p.read_text()) for p in out.glob("**/config.json")]
    assert sorted(c["method_settings"]["temperature"] for c in configs) == [0.5, 2.0]
    assert all(c["plugins"] == [{"module": MODULE, "version": "0.1.0"}] for c in configs)
    summary = (out / "summary.csv").read_text().splitlines()  # grouped by the swept setting
    assert summary[0].startswith("method.temperature,") and [r.split(",")[0] for r in summary[1:]] == ["0.5", "2"]


def test_plugin_flag_reaches_ray_workers(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    run(sys.executable, "sweep", "--plugin", MODULE, "--method", "temperature-softmax", "--seeds", "0",
        "--space", "tiny-cell", "--dataset", "noise16", "--epochs", "1", "--train-images", "128",
        "--set", "channels=4", "--set", "cells_per_stage=1", "--ray", "local", "--threads", "1", "--quiet",
        "--out", str(out), timeout=600, **_flag_env())
    configs = [json.loads(p.read_text()) for p in out.glob("**/config.json")]
    assert len(configs) == 1 and configs[0]["space"] == "tiny-cell" and configs[0]["plugins"][0]["module"] == MODULE


def test_plugin_flag_reaches_torchrun_ranks(tmp_path):
    out = tmp_path / "ddp"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "drnas", "search", "--plugin", MODULE, *SEARCH,
                           "--device", "cpu", "--epochs", "2", "--quiet", "--out", str(out)],
                          capture_output=True, text=True, env=_clean_env(**_flag_env()), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(records(out)) == 2
    assert json.loads((out / "config.json").read_text())["plugins"][0]["module"] == MODULE
