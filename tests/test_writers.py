"""The metrics writers (drnas.engine.writers): the CSV columns, and a Weights & Biases run written offline and read back
from its own files (one W&B run id across a resume, each epoch sent once); a missing wandb is a one-line error."""
from __future__ import annotations

import json
import struct
import sys
import time

import pytest

from drnas.cli import main
from drnas.config.search import Stage, apply_overrides
from drnas.engine.runs import RunDir
from drnas.search import Search
from drnas.train import PROTOCOLS
from drnas.engine.writers import CsvWriter, csv_bytes, flatten
from helpers import digits, tiny_config

QUIET = dict(progress=False, log=lambda m: None)


def test_csv_columns_are_the_union_of_the_flattened_records(tmp_path):
    records = [{"epoch": 1, "arch_loss": None, "eta": {"min": -1.0}, "dirichlet_mean": [[0.5, 0.5]], "arch": "|a~0|"},
               {"epoch": 2, "arch_loss": 2.5, "eta": {"min": -2.0}, "nb201": {"cifar10_test_acc": 93.5}, "ok": True}]
    assert flatten(records[1]) == {"epoch": 2, "arch_loss": 2.5, "eta/min": -2.0, "nb201/cifar10_test_acc": 93.5,
                                   "ok": True}
    assert csv_bytes(records).decode().splitlines() == [
        "epoch,arch_loss,eta/min,arch,nb201/cifar10_test_acc,ok", "1,,-1.0,|a~0|,,", "2,2.5,-2.0,,93.5,True"]
    writer = CsvWriter(tmp_path / "metrics.csv", records[:1])  # opened with the history: written at once
    assert (tmp_path / "metrics.csv").read_bytes() == csv_bytes(records[:1])
    writer.write(records[1:])
    assert (tmp_path / "metrics.csv").read_bytes() == csv_bytes(records)
    CsvWriter(tmp_path / "metrics.csv", [])  # a resume from before the first epoch empties it
    assert (tmp_path / "metrics.csv").read_text() == "\n"


def _wandb_records(path):
    """The records of a W&B transaction log (``run-ID.wandb``: LevelDB-style 32 KiB blocks of chunks with a
    7-byte header, after a 7-byte file header), parsed with wandb's own protobuf classes."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, chunks, records = path.read_bytes(), 32768, 7, [], []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:  # the rest of a block too short for a header is padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunks.append(data[position + 7:position + 7 + length])
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


def _history(run_file) -> dict[int, dict[str, str]]:
    out = {}
    for record in _wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
            out[record.history.step.num] = items
    return out


def test_a_wandb_run_offline_holds_every_epoch_once_across_a_resume(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    pytest.importorskip("PIL")
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb"), "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "wb").mkdir()
    run = tmp_path / "run"
    config = tiny_config(dataset="digits", wandb=True, stages=[Stage(epochs=1, partial_k=2), Stage(epochs=1)])
    Search(config, run, data=digits(), **QUIET).run(max_epochs=1)
    run_id = json.loads((run / "wandb.json").read_text())["id"]
    assert json.loads((run / "wandb.json").read_text()) == {"id": run_id, "epoch": 1}
    time.sleep(1.0)  # W&B names an offline run's folder by the second it started: the resume's must differ
    Search.resume(run, data=digits(), **QUIET).run()
    assert json.loads((run / "wandb.json").read_text()) == {"id": run_id, "epoch": 2, "images": 2}  # the same run
    Search.resume(run, data=digits(), **QUIET).run()  # finished, W&B has it all: no W&B run opened
    files = sorted((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))  # by time
    assert len(files) == 2  # one per process that ran epochs, both under the one id
    first, second = _history(files[0]), _history(files[1])
    assert sorted(first) == [1] and sorted(second) == [2]  # each epoch sent once
    metrics = RunDir(run).read_metrics()
    for step, history in ((1, first[1]), (2, second[2])):
        record = flatten(metrics[step - 1])
        assert float(history["valid_acc"]) == pytest.approx(record["valid_acc"])
        assert float(history["eta/std"]) == pytest.approx(record["eta/std"])
        assert "epoch" not in history and "dirichlet_mean" not in history
    for tag in ("architecture/cells", "architecture/heatmap"):  # the pictures, at the last epoch
        picture = json.loads(second[2][f"{tag}/path"])
        assert second[2][f"{tag}/format"] == '"png"' and (files[1].parent / "files" / picture).is_file()
    (config_record,) = [r for r in _wandb_records(files[0]) if r.WhichOneof("record_type") == "run"]
    saved = {item.key: item.value_json for item in config_record.run.config.update}
    assert json.loads(saved["method"]) == "drnas" and json.loads(saved["kind"]) == "search"


@pytest.mark.parametrize("argv", [
    ["search", "--preset", "demo", "--epochs", "2", "--out", "{tmp}/r", "--wandb"],
    ["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--out", "{tmp}/r", "--set", "wandb=true"],
])
def test_without_the_package_wandb_fails_at_start_saying_how_to_install(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now fails
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("drnas: error:") and "pip install 'drnas[wandb]'" in err[0], err
    assert not (tmp_path / "r").exists()


def test_wandb_config_field_defaults_off_and_may_be_turned_on_at_resume():
    from drnas.config.search import RESUME_SETTABLE, SearchConfig
    from drnas.engine.job import ADDED_SINCE_FIRST_RUNS

    assert SearchConfig().wandb is False and PROTOCOLS.get("nb201").wandb is False
    assert apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", "wandb": "true"}).wandb is True
    assert "wandb" in RESUME_SETTABLE and "wandb" in ADDED_SINCE_FIRST_RUNS
