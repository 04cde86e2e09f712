"""Runs that report: the end-of-run summary (the same from `drnas show`), the per-epoch ETA line, the measured
fields of each record, metrics.csv, and the log levels of the command line."""
from __future__ import annotations

import csv
import json
import logging

from drnas.cli import main
from drnas.config.search import Stage
from drnas.engine.runs import RunDir
from drnas.search import Search
from drnas.engine.job import MEASURED_FIELDS, format_duration
from drnas.engine.writers import flatten
from helpers import digits, tiny_config

DEMO = ["search", "--preset", "demo", "--epochs", "2", "--train-images", "160", "--batch-size", "32"]
TRAIN = ["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "2", "--train-images", "160",
         "--batch-size", "32", "--set", "channels=4", "--set", "cells_per_stage=1", "--device", "cpu"]


def _block(text: str) -> list[str]:
    """The summary block of a command's output: from its architecture line to its files line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("architecture: "))
    end = next(i for i, line in enumerate(lines) if line.startswith("files: "))
    return lines[start:end + 1]


def _field(block: list[str], label: str) -> str:
    (line,) = [line for line in block if line.startswith(label)]
    return line[len(label):].strip()


def _csv_matches_jsonl(run) -> None:
    """metrics.csv holds one row per metrics.jsonl record, each scalar in its flattened column."""
    records = RunDir(run).read_metrics()
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(records)
    for row, record in zip(rows, records):
        flat = flatten(record)
        assert set(row) >= set(flat)
        assert row == {k: "" if flat.get(k) is None else str(flat[k]) for k in row}


def test_a_search_ends_with_its_summary_and_show_prints_the_same(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*DEMO, "--out", str(run), "--quiet"]) == 0
    block = _block(capsys.readouterr().out)
    metrics = RunDir(run).read_metrics()
    saved = json.loads((run / "architecture.json").read_text())
    assert _field(block, "architecture:") == saved["architecture"]["arch"]  # NB201 notation
    best = max(metrics, key=lambda m: m["valid_acc"])
    assert _field(block, "valid acc:").startswith(f"final {metrics[-1]['valid_acc']:.2f}%, best "
                                                  f"{best['valid_acc']:.2f}% (epoch {best['epoch']})")
    assert _field(block, "progress:") == "2/2 epochs (finished)"
    assert _field(block, "wall time:") == format_duration(metrics[-1]["elapsed_seconds"])
    peak = max(m["peak_memory_mb"] for m in metrics)
    assert _field(block, "peak memory:") == f"{peak:,.0f} MiB resident (host)"
    assert _field(block, "run:") == f"{run} (search)"
    assert _field(block, "files:").split(", ")[:6] == ["config.json", "metrics.jsonl", "metrics.csv",
                                                         "architecture.json", "checkpoint.pt", "dirichlet_mean.png"]
    assert not any(line.startswith("nb201:") for line in block)  # no table given
    assert main(["show", str(run)]) == 0
    assert _block(capsys.readouterr().out) == block


def test_every_record_measures_time_and_memory_across_a_resume(tmp_path, capsys):
    run = tmp_path / "run"
    config = tiny_config(dataset="digits", stages=[Stage(epochs=1, partial_k=2), Stage(epochs=2, partial_k=1)])
    Search(config, run, data=digits(), progress=False).run(max_epochs=2)
    assert main(["show", str(run)]) == 0
    assert "2/3 epochs (not finished: continue with `drnas search --resume" in capsys.readouterr().out
    _csv_matches_jsonl(run)
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    block = _block(capsys.readouterr().out)
    metrics = RunDir(run).read_metrics()
    assert {"seconds", "elapsed_seconds", "peak_memory_mb"} <= set(metrics[-1]) <= set(metrics[0]) | MEASURED_FIELDS
    elapsed = [m["elapsed_seconds"] for m in metrics]
    assert elapsed == sorted(elapsed) and all(e > 0 for e in elapsed)
    assert all(e >= m["seconds"] for e, m in zip(elapsed, metrics))  # the run's time so far, each epoch's within
    assert _field(block, "progress:") == "3/3 epochs (finished)"
    _csv_matches_jsonl(run)  # rewritten from the records: no row twice after the resume
    assert main(["show", str(run)]) == 0
    assert _block(capsys.readouterr().out) == block


def test_training_ends_with_its_summary_in_its_own_terms(tmp_path, capsys):
    run = tmp_path / "train"
    assert main([*TRAIN, "--out", str(run), "--quiet"]) == 0
    block = _block(capsys.readouterr().out)
    metrics = RunDir(run).read_metrics()
    result = json.loads((run / "result.json").read_text())
    assert _field(block, "architecture:").startswith("|nor_conv_3x3~0|+")  # NB201 notation, not a dict
    best = max(metrics, key=lambda m: m["top1"])
    assert _field(block, "test top1:") == (f"final {metrics[-1]['top1']:.2f}%, best {best['top1']:.2f}% "
                                           f"(epoch {best['epoch']})")
    assert _field(block, "test top5:").startswith(f"final {metrics[-1]['top5']:.2f}%")
    # an NB201 network has no auxiliary head: no figure for one
    assert _field(block, "parameters:") == f"{result['params_without_aux'] / 1e6:.3f}M"
    assert _field(block, "MACs:") == f"{result['macs'] / 1e6:.1f}M per image"
    assert _field(block, "progress:") == "2/2 epochs (finished)"
    assert _field(block, "run:") == f"{run} (training)"
    assert "result.json" in _field(block, "files:") and "metrics.csv" in _field(block, "files:")
    _csv_matches_jsonl(run)
    assert main(["show", str(run)]) == 0
    assert _block(capsys.readouterr().out) == block


def test_a_darts_architecture_is_reported_as_a_genotype(tmp_path, capsys):
    run = tmp_path / "train"
    assert main(["train", "--arch", "DARTS_V2", "--dataset", "digits", "--epochs", "1", "--train-images", "64",
                 "--batch-size", "32", "--set", "channels=4", "--set", "cells=2", "--set", "auxiliary_weight=0",
                 "--set", "drop_path=0", "--device", "cpu", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", str(run)]) == 0
    assert _field(_block(capsys.readouterr().out), "architecture:").startswith("Genotype(normal=[('sep_conv_3x3', 0)")


def test_log_levels_of_the_command_line(tmp_path, capsys):
    assert main([*DEMO, "--out", str(tmp_path / "default")]) == 0
    err = capsys.readouterr().err
    assert "epoch 1/2 stage 1" in err and "[2/2 epochs]" in err and "device cpu" not in err
    assert main(["-v", *DEMO, "--out", str(tmp_path / "verbose")]) == 0
    err = capsys.readouterr().err
    assert "device cpu, " in err and "peak memory " in err  # DEBUG lines
    assert "[1/2 epochs, about " in err and "s left]" in err and "[2/2 epochs]" in err  # the run's ETA
    assert main([*DEMO, "-v", "--out", str(tmp_path / "after")]) == 0  # -v after the command too
    assert "device cpu, " in capsys.readouterr().err
    assert main([*DEMO, "--quiet", "--out", str(tmp_path / "quiet")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "architecture: " in captured.out  # no INFO lines, no bar; the summary stays


def test_the_library_logs_and_prints_nothing(tmp_path, capsys, caplog):
    """Without logging configured a program sees no output from a run; its records go to the drnas loggers."""
    caplog.set_level(logging.INFO, logger="drnas")
    config = tiny_config(dataset="digits", stages=[Stage(epochs=2, partial_k=1)])
    Search(config, tmp_path / "run", data=digits(), progress=False).run()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    lines = [r.getMessage() for r in caplog.records if r.name == "drnas.engine.job" and r.levelno == logging.INFO]
    assert lines[0].startswith("epoch 1/2 stage 1 ") and "[1/2 epochs, about " in lines[0]
    assert lines[1].endswith("[2/2 epochs]")


def test_format_duration():
    assert [format_duration(s) for s in (0, 42.4, 185, 7620, -3)] == ["0s", "42s", "3m05s", "2h07m", "0s"]
