"""kill -9 at random moments of real ``drnas search`` and ``drnas train`` processes, then ``--resume`` until the
run ends: its metrics and final checkpoint must equal those of a run that was never stopped.

CI runs a fast slice (``DRNAS_KILL_TRIALS``, default 2 trials of each command); a campaign runs more, e.g.
``DRNAS_KILL_TRIALS=15 pytest tests/test_kill.py -s`` prints its table.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from drnas.engine.runs import RunDir
from drnas.engine.job import MEASURED_FIELDS

TRIALS = int(os.environ.get("DRNAS_KILL_TRIALS", "2"))
COMMANDS = {
    "search": ["search", "--preset", "demo", "--epochs", "3", "--train-images", "200", "--quiet"],
    "train": ["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "3", "--set", "channels=8",
              "--set", "cells_per_stage=1", "--batch-size", "64", "--train-images", "300", "--quiet"],
}
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


def _drnas(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "drnas", *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _state(run: Path) -> tuple[list[dict], dict]:
    """What the run computed: metrics without the timings, and the checkpoint's tensors (no RNG bookkeeping)."""
    metrics = [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in RunDir(run).read_metrics()]
    state = RunDir(run).load_checkpoint()
    tensors = {}
    for key, value in state.items():
        if isinstance(value, dict):
            tensors.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, torch.Tensor)})
    return metrics, tensors


def _same(a: tuple[list[dict], dict], b: tuple[list[dict], dict]) -> bool:
    return a[0] == b[0] and a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_random_kills_lose_nothing(tmp_path, command):
    reference = tmp_path / "reference"
    started = time.perf_counter()
    done = _drnas(*COMMANDS[command], "--out", str(reference))
    assert done.wait(timeout=300) == 0, done.stderr.read()
    full_seconds = time.perf_counter() - started
    expected = _state(reference)
    rng = random.Random(f"{command}-{TRIALS}")
    rows = []
    for trial in range(TRIALS):
        run = tmp_path / f"trial{trial}"
        args, kills = [*COMMANDS[command], "--out", str(run)], 0
        while True:
            process = _drnas(*args)
            try:
                # random moments; later tries wait longer, so a trial always ends (a restart costs startup)
                code = process.wait(timeout=rng.uniform(0.5, full_seconds) * (1 + kills / 4))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                code = None
            if code == 0:
                break
            assert code is None, process.stderr.read()  # a kill; anything else is a failure
            # killed before the run directory held a config: start again, else continue it
            args = ([command, "--resume", str(run), "--quiet"] if (run / "config.json").exists()
                    else [*COMMANDS[command], "--out", str(run)])
            if kills > 20:
                pytest.fail(f"trial {trial} did not finish in 20 kills")
        same = _same(_state(run), expected)
        rows.append((trial, kills, same))
        assert same, f"trial {trial}: after {kills} kill(s) the run differs from the uninterrupted one"
        assert not list(run.glob(".*.tmp"))
    print(f"\n{command}: {TRIALS} trials, kills per trial {[k for _, k, _ in rows]}, all identical to the "
          f"uninterrupted run: {all(s for *_, s in rows)}")
