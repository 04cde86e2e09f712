"""The bounds of every size and count (drnas.config.limits): at the bound accepted, past it one line naming the
bound, at once and without allocating what was asked; table-driven over LIMITS, so a new bound is covered."""
from __future__ import annotations

import dataclasses
import time

import pytest

from drnas.cli import main
from drnas.config.limits import LIMITS, check_limit
from drnas.config.presets import preset
from drnas.config.search import SearchConfig, Stage, apply_overrides, set_total_epochs
from drnas.config.train import PROTOCOLS, TrainConfig
from drnas.errors import ConfigError
from drnas.method.strategies import with_method

SEARCH_FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _search(name: str, value: int) -> SearchConfig:
    return apply_overrides(preset("nb201"), {name: value}).validate()


def _train(name: str, value: int) -> TrainConfig:
    return apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", name: value}).validate()


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_bound_accepts_its_ends_and_refuses_past_them_in_one_line(name):
    limit = LIMITS[name]
    builders = [b for fields, b in ((SEARCH_FIELDS, _search), (TRAIN_FIELDS, _train)) if name in fields
                and name != "stages"]
    if not builders:  # a count of no config field (draws, sweep runs, stages, settings): the check itself
        builders = [lambda n, v: check_limit(n, v)]
    for build in builders:
        for value in (limit.low, limit.high):
            build(name, value)
        for value in (limit.low - 1, limit.high + 1, 10 ** 5000):
            started = time.perf_counter()
            with pytest.raises(ConfigError) as info:
                build(name, value)
            message = str(info.value)
            assert name in message and "\n" not in message and len(message) < 300
            assert value < limit.low or f"[{limit.low}, {limit.high:,}]" in message
            assert time.perf_counter() - started < 2


def test_epochs_and_stages_are_bounded_in_total():
    top = LIMITS["epochs"].high
    assert set_total_epochs(preset("demo"), top).epochs == top
    with pytest.raises(ConfigError, match=r"--epochs must be in \[1, 10,000\]"):
        set_total_epochs(preset("demo"), top + 1)
    with pytest.raises(ConfigError, match="the stages' epochs in total must be"):
        dataclasses.replace(preset("demo"), stages=[Stage(epochs=top), Stage(epochs=top)]).validate()
    stages = LIMITS["stages"].high
    dataclasses.replace(preset("demo"), stages=[Stage(epochs=1)] * stages).validate()
    with pytest.raises(ConfigError, match="the number of stages must be in"):
        dataclasses.replace(preset("demo"), stages=[Stage(epochs=1)] * (stages + 1)).validate()


@pytest.mark.parametrize("method, setting", [("rsps", "candidates"), ("enas", "candidates"),
                                             ("random", "queries"), ("reinforce", "queries")])
def test_a_methods_counts_are_bounded(method, setting):
    high = LIMITS[setting].high
    assert with_method(preset("demo"), method, {setting: high}).method_settings[setting] == high
    with pytest.raises(ConfigError, match=f"{setting} must be in \\[1, {high}\\]"):
        with_method(preset("demo"), method, {setting: high + 1})


@pytest.mark.parametrize("argv, says", [
    (["arch", "DrNAS_cifar10", "--channels", "0"], "--channels must be in [1, 512]"),
    (["arch", "DrNAS_cifar10", "--channels", "100000000"], "--channels must be in [1, 512]"),
    (["derive", "no-such-run", "--cells", "1000000"], None),  # the run is read first: its own one line
    (["search", "--preset", "demo", "--epochs", "99999999999999999999"], "--epochs must be in [1, 10,000]"),
    (["search", "--preset", "demo", "--set", 'stages=[{"epochs": 1e308}]'], "stage 1: epochs must be in"),
    (["search", "--preset", "demo", "--set", "cells_per_stage=1000000"], "cells_per_stage must be in [1, 32]"),
    (["search", "--preset", "demo", "--set", "channels=" + "9" * 5000], "channels must be an integer"),
    (["sample", "no-such-run", "--n", "1000000001"], "--n must be in [1, 1,000,000]"),
    (["arch", "Genotype(normal=[], normal_concat=range(100000000000000000000), reduce=[], reduce_concat=[])"],
     "normal_concat: a cell has at most 8 intermediate nodes"),
    (["arch", "|none~" + "9" * 5000 + "|+|none~0|none~1|+|none~0|none~1|none~2|"], "input index must be 0"),
    (["train", "--arch", "|none~" + "9" * 5000 + "|+|none~0|none~1|+|none~0|none~1|none~2|", "--dataset", "digits"],
     "input index must be 0"),
])
def test_big_numbers_on_the_command_line_are_one_line_at_once(tmp_path, capsys, argv, says):
    out = tmp_path / "run"
    started = time.perf_counter()
    assert main([*argv, *(["--out", str(out)] if argv[0] in ("search", "train") else [])]) == 2
    assert time.perf_counter() - started < 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("drnas: error: ") and "Traceback" not in err[0], err
    assert says is None or says in err[0], err
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ files read whole
def _npz_claiming(path, shape) -> None:
    """An npz whose x_train header claims ``shape`` but holds no data (as a hostile or damaged file would)."""
    import io
    import zipfile

    import numpy as np

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    labels = io.BytesIO()
    np.save(labels, np.zeros(shape[0] if shape[0] < 100 else 4, np.int64))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", header.getvalue())
        z.writestr("y_train.npy", labels.getvalue())


def test_an_npz_is_checked_by_its_headers_before_anything_is_read(tmp_path, monkeypatch):
    import numpy as np

    from drnas.config.limits import Limit
    from drnas.data.formats import load_dataset
    from drnas.data.info import DataError

    _npz_claiming(tmp_path / "huge.npz", (10 ** 6, 4096, 4096, 3))
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"claims shape \(1000000, 4096, 4096, 3\)"):
        load_dataset("npz", tmp_path / "huge.npz")
    assert time.perf_counter() - started < 2
    np.savez(tmp_path / "wide.npz", x_train=np.zeros((1, 4097, 4097, 1), np.uint8), y_train=np.zeros(1, np.int64))
    with pytest.raises(DataError, match="at most 4096 pixels"):
        load_dataset("npz", tmp_path / "wide.npz")
    np.savez_compressed(tmp_path / "zeros.npz", x_train=np.zeros((64, 32, 32, 3), np.uint8),
                        y_train=np.zeros(64, np.int64))
    assert load_dataset("npz", tmp_path / "zeros.npz").x_train.shape == (64, 32, 32, 3)
    monkeypatch.setitem(LIMITS, "array_bytes", Limit(0, 100_000, "a small bound for this test"))
    with pytest.raises(DataError, match=r"holds 197,120 bytes of arrays, over the 100,000"):
        load_dataset("npz", tmp_path / "zeros.npz")  # compressed to a few hundred bytes: the headers tell


def test_the_files_drnas_reads_whole_are_regular_bounded_text(tmp_path, monkeypatch):
    import os

    from drnas.config.limits import Limit, read_bounded

    (tmp_path / "ok.json").write_text("{}")
    assert read_bounded(tmp_path / "ok.json") == "{}"
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "latin.json").write_bytes(b"{\"a\": \"\xe9\"}")
    for name, says in (("fifo", "not a regular file"), ("dir", "not a regular file"), ("latin.json", "not UTF-8")):
        started = time.perf_counter()
        with pytest.raises(ConfigError, match=says):
            read_bounded(tmp_path / name)  # a FIFO would block a plain read
        assert time.perf_counter() - started < 2
    monkeypatch.setitem(LIMITS, "file_bytes", Limit(0, 10, "a small bound for this test"))
    (tmp_path / "big.json").write_text("[" + "0," * 10 + "0]")
    with pytest.raises(ConfigError, match="is 23 bytes, over the 10"):
        read_bounded(tmp_path / "big.json")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A finished two-epoch demo search, copied by each test that damages it."""
    import torch

    run = tmp_path_factory.mktemp("limits") / "run"
    torch.set_num_threads(1)
    assert main(["search", "--preset", "demo", "--epochs", "2", "--train-images", "64", "--quiet", "--out",
                 str(run)]) == 0
    return run


@pytest.mark.parametrize("name", ["config.json", "architecture.json", "metrics.jsonl"])
def test_a_run_file_replaced_by_a_fifo_is_one_line_at_once(demo_run, tmp_path, capsys, name):
    import os
    import shutil

    run = tmp_path / "run"
    shutil.copytree(demo_run, run, ignore=shutil.ignore_patterns(".lock"))
    capsys.readouterr()
    (run / name).unlink()
    os.mkfifo(run / name)
    for argv in (["show", str(run)], ["sample", str(run), "--n", "3"]):
        started = time.perf_counter()
        assert main(argv) == 2
        assert time.perf_counter() - started < 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("drnas: error:") and name in err[0], err


@pytest.mark.parametrize("argv, says", [
    (["search", "--preset", "demo", "--seed", "9" * 5000], "invalid int value"),
    (["sample", "run", "--seed", str(2 ** 70)], "--seed must be in [0, 9,223,372,036,854,775,807]"),
    (["sweep", "--preset", "demo", "--grid", "seed=0", "--jobs", "100000"], "--jobs must be in [1, 1,024]"),
    (["search", "--preset", "demo", "--set", "eta_init_std=1e308"], "eta_init_std must be in [0, 1]"),
    (["search", "--no-such-flag"], "unrecognized arguments"),
])
def test_numbers_and_flags_of_any_command_are_one_line(tmp_path, capsys, argv, says):
    started = time.perf_counter()
    try:
        code = main([*argv, "--out", str(tmp_path / "out")] if argv[0] in ("search", "sweep") else argv)
    except SystemExit as exit_:  # argparse's own errors leave through SystemExit, as drnas' entry point lets them
        code = exit_.code
    assert code == 2 and time.perf_counter() - started < 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("drnas: error: ") and says in err[0] and len(err[0]) < 500, err


def test_the_docs_list_every_bound_as_it_is():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    for name, limit in LIMITS.items():
        assert f"| `{name}` | {limit.low:,} | {limit.high:,} | {limit.why} |" in text, name
