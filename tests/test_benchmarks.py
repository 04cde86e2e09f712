"""The measuring parts of ``benchmarks/run.py`` (the suite itself is run by hand, not in CI)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
_spec = importlib.util.spec_from_file_location("bench_run", _RUN_PY)
bench_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_run)


def test_traffic_counts_what_ops_read_and_write_but_not_views() -> None:
    x, w = torch.randn(1000), torch.randn(1000)  # 4000 bytes each

    def step() -> None:
        y = x.view(10, 100).t().t().reshape(-1)  # views: nothing moves
        z = y + 1.0                              # reads 4000, writes 4000
        z.mul_(2.0)                              # in place: reads and writes the same 4000 bytes
        (z * w).sum()                            # 8000 + 4000, then 4000 + a 4-byte scalar
        w + x[:1].expand(1000)                   # a broadcast operand counts once: 4000 + 4 + 4000

    assert bench_run._count_bytes(step) == 8000 + 8000 + 12000 + 4004 + 8004


def test_traffic_counts_the_backward_pass() -> None:
    x, w = torch.randn(1000), torch.randn(1000, requires_grad=True)
    forward_only = bench_run._count_bytes(lambda: (x * w).sum())
    with_backward = bench_run._count_bytes(lambda: (x * w).sum().backward())
    assert with_backward >= forward_only + 8004  # w.grad = x * (the sum's broadcast gradient): 4000 + 4 + 4000


def test_copy_rate_is_a_plausible_bandwidth() -> None:
    rate = bench_run.copy_rate(torch.device("cpu"), seconds=0.2)
    assert 1e8 < rate < 1e13  # between 0.1 GB/s and 10 TB/s


def _benchmark_module(name: str):
    import sys

    sys.path.insert(0, str(_RUN_PY.parent))  # the scripts import one another by name, as when run from there
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(_RUN_PY.parent))


def test_alternate_takes_the_runs_in_turn_and_times_only_the_steps() -> None:
    import time

    order: list[str] = []

    def run(key: str, seconds: float):
        def prepare(round_: int):
            time.sleep(0.02)  # preparation is not timed
            order.append(f"{key}{round_}")
            return lambda: time.sleep(seconds)
        return prepare

    times = _benchmark_module("compare").alternate({"a": run("a", 0.001), "b": run("b", 0.03)}, rounds=2)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]  # one untimed round first
    assert len(times["a"]) == len(times["b"]) == 2
    assert max(times["a"]) < 0.02 <= min(times["b"])


def test_compare_revs_imports_a_commit_beside_the_working_tree(tmp_path) -> None:
    import subprocess

    import drnas

    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=_RUN_PY.parent, capture_output=True).returncode:
        import pytest

        pytest.skip("not a git checkout")
    old = _benchmark_module("compare_revs").import_revision("HEAD", tmp_path)
    assert old.__name__.startswith("drnas_") and old is not drnas and old.Search is not drnas.Search
    assert Path(old.__file__).is_relative_to(tmp_path)
    assert old.preset("nb201").space == "nb201"


def test_flop_count_of_a_convolution_forward_and_both_gradients_inside_autograd_grad() -> None:
    """The second-order steps take gradients with ``torch.autograd.grad``: the counter works there too."""
    import torch.nn.functional as F

    x, w = torch.randn(2, 3, 8, 8, requires_grad=True), torch.randn(4, 3, 3, 3, requires_grad=True)
    forward = bench_run._count_flops(lambda: F.conv2d(x, w, padding=1))
    assert forward == 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3)
    both = bench_run._count_flops(lambda: torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), [x, w]))
    assert both == 3 * forward


def test_search_case_composes_parts_and_starts_from_the_middle_epoch() -> None:
    """``METHOD+PART`` cases get their parts, a part's ``--set`` setting reaches only the cases using the part, and
    every case starts from the loop's state at its middle epoch (skip dropout on, beta-decay's weight above 0)."""
    small = {"channels": "4", "cells_per_stage": "1", "part.skip-dropout.rates": "0.4"}
    dropped, step, _, _ = bench_run._search_case(bench_run.method_case("darts+skip-dropout"), 1, 0, "cpu", small)
    assert dropped.config.parts == ["skip-dropout"] and dropped.config.part_settings["skip-dropout"]["rates"] == [0.4]
    assert dropped.strategy.parts[0].epoch == dropped.config.epochs // 2
    drops = [mixed.drop for _, mixed in dropped.net.mixed_ops() if mixed.drop]
    assert drops and all(0 < p < 0.4 for drop in drops for p in drop.values())
    step(0)()  # an arch step and a weight step run with the masks on
    plain, _, _, _ = bench_run._search_case("nb201-darts", 1, 0, "cpu", small)
    assert plain.config.parts == [] and not any(mixed.drop for _, mixed in plain.net.mixed_ops())
    beta, _, _, _ = bench_run._search_case("nb201-beta-darts", 1, 0, "cpu", {"channels": "4", "cells_per_stage": "1"})
    assert beta.config.parts == ["beta-decay"] and beta.strategy.parts[0].scale > 0
