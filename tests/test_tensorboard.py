"""TensorBoard (``tensorboard=true``, ``--tensorboard``): the event files hold every number of metrics.jsonl, once per
epoch across resumes, plus a search's pictures at the end; only the writing process writes; a missing package is a
one-line error before any epoch."""
from __future__ import annotations

import dataclasses
import json
import sys

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from drnas.cli import main  # noqa: E402
from drnas.config.search import ConfigError, Stage, apply_overrides  # noqa: E402
from drnas.engine.distributed import DistContext  # noqa: E402
from drnas.engine.runs import RunDir  # noqa: E402
from drnas.search import Search  # noqa: E402
from drnas.engine.writers.tensorboard import scalars  # noqa: E402
from drnas.train import PROTOCOLS  # noqa: E402
from helpers import digits, tiny_config  # noqa: E402

QUIET = dict(progress=False, log=lambda m: None)


def _events(run) -> EventAccumulator:
    board = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    board.Reload()
    return board


def _check_scalars_match_metrics(run) -> None:
    """Every tag holds exactly one value per epoch, equal (to float32) to the metrics.jsonl value."""
    records = RunDir(run).read_metrics()
    board = _events(run)
    expected: dict[str, dict[int, float]] = {}
    for record in records:
        for tag, value in scalars(record).items():
            expected.setdefault(tag, {})[record["epoch"]] = value
    assert set(board.Tags()["scalars"]) == set(expected)
    for tag, by_epoch in expected.items():
        events = board.Scalars(tag)
        assert [e.step for e in events] == sorted(by_epoch), tag  # no step twice, none missing
        for event in events:
            assert event.value == pytest.approx(by_epoch[event.step], rel=1e-6, abs=1e-30), tag


def test_scalars_flatten_every_number_of_a_record():
    record = {"epoch": 3, "stage": 1, "lr": 0.02, "arch_loss": None, "arch": "|...|", "ok": True,
              "dirichlet_mean": [[0.5, 0.5]], "eta": {"min": -1.0, "max": 2}, "nb201": {"cifar10_test_acc": 93.5},
              "hessian": {"eigenvalue": 0.25, "inner": {"deep": 1}}}
    assert scalars(record) == {"stage": 1.0, "lr": 0.02, "eta/min": -1.0, "eta/max": 2.0,
                               "nb201/cifar10_test_acc": 93.5, "hessian/eigenvalue": 0.25, "hessian/inner/deep": 1.0}


def _config(**changes):
    """Two epochs: a warm-up (no architecture step, so a null arch_loss), then a stage that prunes."""
    settings = dict(dataset="digits", tensorboard=True,
                    stages=[Stage(epochs=1, partial_k=2, arch_warmup=1), Stage(epochs=1, partial_k=1, ops_kept=3)])
    return tiny_config(**{**settings, **changes})


def test_a_search_writes_every_metric_and_its_pictures_once_across_resumes(tmp_path):
    run = tmp_path / "run"
    Search(_config(), run, data=digits(), **QUIET).run(max_epochs=1)
    _check_scalars_match_metrics(run)
    assert not _events(run).Tags()["images"]  # not finished: no pictures yet
    after_one = RunDir(run).load_checkpoint()
    Search.resume(run, data=digits(), **QUIET).run()
    _check_scalars_match_metrics(run)
    board = _events(run)
    assert {"stage", "lr", "train_loss", "valid_acc", "eta/std", "beta/mean", "arch_loss"} <= set(board.Tags()["scalars"])
    assert [e.step for e in board.Scalars("arch_loss")] == [2]  # epoch 1 was a warm-up: null, not written
    assert sorted(board.Tags()["images"]) == ["architecture/cells", "architecture/heatmap"]
    for tag in board.Tags()["images"]:
        (image,) = board.Images(tag)
        assert image.step == 2 and image.encoded_image_string[:4] == b"\x89PNG" and image.width > 100
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    # back to the checkpoint after epoch 1 (a restored backup): the resume cuts metrics.jsonl to its one epoch,
    # the events follow, and epoch 2, run again, is written once
    RunDir(run).save_checkpoint(after_one)
    Search.resume(run, data=digits(), **QUIET).run()
    _check_scalars_match_metrics(run)
    assert [e.step for e in _events(run).Images("architecture/cells")] == [2]


def test_old_runs_load_and_tensorboard_can_be_turned_on_at_resume(tmp_path, capsys):
    run = tmp_path / "run"
    config = tiny_config(dataset="digits", train_images=160, stages=[Stage(epochs=1, partial_k=2), Stage(epochs=1)])
    Search(config, run, **QUIET).run(max_epochs=1)
    saved = json.loads((run / "config.json").read_text())
    assert saved["tensorboard"] is False and not (run / "tensorboard").exists()
    del saved["tensorboard"]  # a run saved before the field existed
    (run / "config.json").write_text(json.dumps(saved))
    assert main(["search", "--resume", str(run), "--tensorboard", "--quiet"]) == 0
    _check_scalars_match_metrics(run)
    assert [e.step for e in _events(run).Scalars("valid_acc")] == [1, 2]
    assert sorted(_events(run).Tags()["images"]) == ["architecture/cells", "architecture/heatmap"]
    assert "tensorboard" not in json.loads((run / "config.json").read_text())  # for that process only
    capsys.readouterr()
    assert main(["search", "--resume", str(run), "--set", "tensorboard=true", "--quiet"]) == 0  # finished: rewritten
    _check_scalars_match_metrics(run)


def test_only_the_writing_process_opens_a_writer(tmp_path):
    search = Search(_config(), tmp_path / "run", data=digits(), **QUIET)
    search.dist = DistContext(rank=1, world_size=2)
    assert search._open_board() is None
    search.dist = DistContext()
    board = search._open_board()
    assert board is not None
    board.close()
    assert Search(_config(tensorboard=False), tmp_path / "other", data=digits(), **QUIET)._open_board() is None


def test_a_failing_picture_is_a_warning_not_a_failed_run(tmp_path, monkeypatch):
    lines: list[str] = []

    def broken(self):
        raise RuntimeError("no pictures today")

    monkeypatch.setattr(Search, "final_images", broken)
    config = dataclasses.replace(_config(), stages=[Stage(epochs=1)])
    Search(config, tmp_path / "run", data=digits(), progress=False, log=lines.append).run()
    assert any("could not draw the TensorBoard pictures: no pictures today" in line for line in lines)
    _check_scalars_match_metrics(tmp_path / "run")


def test_training_writes_its_metrics(tmp_path, capsys):
    run = tmp_path / "train"
    assert main(["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "1", "--train-images", "160",
                 "--batch-size", "32", "--set", "channels=4", "--set", "cells_per_stage=1", "--device", "cpu",
                 "--out", str(run), "--quiet", "--tensorboard"]) == 0
    assert json.loads((run / "config.json").read_text())["tensorboard"] is True
    _check_scalars_match_metrics(run)
    assert {"top1", "top5", "test_loss", "train_loss", "lr"} <= set(_events(run).Tags()["scalars"])
    assert not _events(run).Tags()["images"]


@pytest.mark.parametrize("argv", [
    ["search", "--preset", "demo", "--epochs", "2", "--out", "{tmp}/r", "--tensorboard"],
    ["search", "--preset", "demo", "--epochs", "2", "--out", "{tmp}/r", "--set", "tensorboard=true"],
    ["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--out", "{tmp}/r", "--tensorboard"],
])
def test_without_the_package_tensorboard_fails_at_start_saying_how_to_install(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("drnas: error:") and "pip install 'drnas[tensorboard]'" in err[0], err
    assert not (tmp_path / "r").exists()  # before any epoch, before the run directory


def test_train_config_field_defaults_off():
    assert PROTOCOLS.get("nb201").tensorboard is False
    config = apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", "tensorboard": "true"})
    assert config.tensorboard is True
    with pytest.raises(ConfigError, match="tensorboard must be true or false"):
        apply_overrides(config, {"tensorboard": "maybe"})
