"""Run directories that survive crashes, a second writer and damaged files: the lock, the checkpoint as the run's
state (history repaired from it, checksum verified), and one line for every damaged file."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from helpers import pattern_images, tiny_config

from drnas.engine.job import MEASURED_FIELDS
from drnas.engine.runs import RunDir, RunError
from drnas.search import Search

QUIET = dict(progress=False, log=lambda m: None)
DATA = pattern_images(192)


def _run(path, epochs: int = 2, max_epochs: int | None = None) -> Search:
    config = tiny_config(stages=[tiny_config().stages[0].__class__(epochs=epochs, partial_k=2, arch_warmup=1)])
    search = Search(config, path, data=DATA, **QUIET)
    search.run(max_epochs=max_epochs)
    return search


def _holder(path) -> subprocess.Popen:
    """Another process that takes the run's lock and keeps it."""
    code = ("import sys, time; from drnas.engine.runs import RunDir; RunDir(sys.argv[1]).lock(); print('locked', "
            "flush=True); time.sleep(120)")
    process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_locked_run_refuses_a_second_writer_until_the_holder_dies(tmp_path):
    holder = _holder(tmp_path / "run")
    try:
        with pytest.raises(RunError, match=rf"in use by process {holder.pid}: one process writes a run at a time"):
            _run(tmp_path / "run")  # a fresh start on a locked directory
        assert not (tmp_path / "run" / "config.json").exists()  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    _run(tmp_path / "run")  # the kernel dropped the dead holder's lock: nothing blocks the run
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_resume_of_a_run_another_process_writes_is_one_line(tmp_path):
    _run(tmp_path / "run", max_epochs=1)  # this process holds the run's lock from here on
    done = subprocess.run([sys.executable, "-m", "drnas", "search", "--resume", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"drnas: error: {tmp_path / 'run'} is in use by process {os.getpid()}: one "
                                   "process writes a run at a time; wait for it to finish (or stop it), then resume")


@pytest.mark.parametrize("damage", ["missing line", "torn tail", "extra lines", "file gone"])
def test_resume_rewrites_the_history_the_checkpoint_holds(tmp_path, damage):
    """A crash between the checkpoint's rename and the metrics append, a torn append, or lines of epochs whose
    checkpoint never landed: the resumed run's metrics are the checkpoint's, line for line."""
    run = RunDir(tmp_path / "run")
    _run(run.path, epochs=3, max_epochs=2)
    good = run.metrics.read_text()
    lines = good.splitlines(keepends=True)
    damaged = {"missing line": lines[0],
               "torn tail": good + lines[1][:25],
               "extra lines": good + lines[1] + lines[1]}.get(damage)
    if damaged is None:
        run.metrics.unlink()
    else:
        run.metrics.write_text(damaged)
    resumed = Search.resume(run.path, data=DATA, **QUIET)
    assert run.metrics.read_text() == good and len(resumed.metrics) == 2
    resumed.run()
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3]


def _envelope(run: RunDir) -> dict:
    return torch.load(run.checkpoint, weights_only=True)


def test_a_corrupted_checkpoint_is_refused_by_its_checksum(tmp_path):
    run = RunDir(tmp_path / "run")
    _run(run.path, max_epochs=1)
    envelope = _envelope(run)
    payload = bytearray(envelope["payload"])
    middle = len(payload) // 2
    payload[middle:middle + 64] = bytes(64)  # 64 zeroed bytes inside the state
    torch.save({**envelope, "payload": bytes(payload)}, run.checkpoint)
    with pytest.raises(RunError, match="is corrupted \\(its checksum does not match\\)"):
        Search.resume(run.path, data=DATA, **QUIET)


def test_a_checkpoint_edited_to_another_epoch_is_refused(tmp_path):
    """Editing the state (e.g. its epoch) and saving it back without the envelope's checksum is caught too."""
    run = RunDir(tmp_path / "run")
    _run(run.path, max_epochs=1)
    envelope = _envelope(run)
    state = torch.load(io.BytesIO(envelope["payload"]), weights_only=True)
    state["epoch"] = 99
    buffer = io.BytesIO()
    torch.save(state, buffer)
    torch.save({**envelope, "payload": buffer.getvalue()}, run.checkpoint)
    with pytest.raises(RunError, match="checksum does not match"):
        Search.resume(run.path, data=DATA, **QUIET)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_an_unreadable_checkpoint_is_one_line(tmp_path, damage):
    run = RunDir(tmp_path / "run")
    _run(run.path, max_epochs=1)
    data = run.checkpoint.read_bytes()
    run.checkpoint.write_bytes(b"\x00garbage" * 100 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(RunError, match=r"checkpoint .* could not be read") as info:
        Search.resume(run.path, data=DATA, **QUIET)
    assert "\n" not in str(info.value)


def test_a_run_whose_checkpoint_is_gone_does_not_restart_silently(tmp_path):
    run = RunDir(tmp_path / "run")
    _run(run.path, max_epochs=1)
    run.checkpoint.unlink()
    with pytest.raises(RunError, match="1 epoch\\(s\\) of metrics but no checkpoint.pt to continue from"):
        Search.resume(run.path, data=DATA, **QUIET)


def test_resume_removes_the_temporary_files_of_a_killed_write(tmp_path):
    run = RunDir(tmp_path / "run")
    _run(run.path, max_epochs=1)
    stale = [run.path / ".checkpoint.pt.abc123.tmp", run.path / ".metrics.jsonl.x.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    Search.resume(run.path, data=DATA, **QUIET)
    assert not any(path.exists() for path in stale)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\udcff"])
def test_a_damaged_config_is_one_line(tmp_path, content):
    run = RunDir(tmp_path / "run")
    _run(run.path, max_epochs=1)
    run.config.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(RunError, match="config.json") as info:
        Search.resume(run.path, data=DATA, **QUIET)
    assert "\n" not in str(info.value)


def test_a_closed_pipe_ends_the_command_quietly():
    """``drnas methods | head -1``: the reader goes away; no traceback."""
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run([sys.executable, "-m", "drnas", "methods"], stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write)
    assert done.returncode == 1 and done.stderr == ""


def test_checkpoints_written_before_the_envelope_still_resume(tmp_path):
    """Runs saved by an earlier drnas (a bare state dict in checkpoint.pt) keep resuming."""
    run = RunDir(tmp_path / "run")
    _run(run.path, epochs=2, max_epochs=1)
    state = torch.load(io.BytesIO(_envelope(run)["payload"]), weights_only=True)
    del state["metrics"]
    torch.save(state, run.checkpoint)
    resumed = Search.resume(run.path, data=DATA, **QUIET)
    assert resumed.epoch == 1 and [m["epoch"] for m in resumed.metrics] == [1]
    assert json.loads(run.metrics.read_text().splitlines()[0])["epoch"] == 1


def test_the_nan_advice_names_what_exists_and_a_command_that_is_accepted(tmp_path):
    from drnas.engine.job import NonFiniteLossError

    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="no epoch had finished, so .* holds no checkpoint: start again"):
        search = Search(tiny_config(lr=1e30, lr_min=1e30), run, data=DATA, **QUIET)
        search.run()
    search = _run(tmp_path / "ok", epochs=3, max_epochs=1)
    search.config.lr = search.config.lr_min = 1e30
    with pytest.raises(NonFiniteLossError) as info:
        search.run()
    message = str(info.value)
    assert "the last good checkpoint (after epoch 1) is intact" in message
    command = message.split("`")[1]
    assert command.startswith(f"drnas search --resume {tmp_path / 'ok'} --set lr=")
    lr = float(command.split("lr=")[1])
    resumed = Search.resume(tmp_path / "ok", data=DATA, **QUIET, lr=lr)  # what that command does
    assert resumed.config.lr == lr and resumed.epoch == 1
    saved = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert saved["changes"] == [{"after_epoch": 1, "set": {"lr": lr}}]


class _Kill(BaseException):
    """Stands for a kill -9 at one write point: nothing after it runs, no handler sees it."""


def _strip(metrics):
    return [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in metrics]


@pytest.mark.parametrize("point", ["inside torch.save", "after the checkpoint rename", "inside the metrics append",
                                   "after the metrics append"])
def test_a_kill_at_any_write_point_of_an_epoch_loses_nothing(tmp_path, point, monkeypatch):
    """Killed while epoch 2 is being written; the resumed run ends with the uninterrupted run's checkpoint and
    metrics, line for line, and no leftover files."""
    full = _run(tmp_path / "full", epochs=3)
    run = RunDir(tmp_path / "run")
    calls = {"n": 0}

    def second_time() -> bool:
        calls["n"] += 1
        return calls["n"] == 2

    if point == "inside torch.save":
        real_save = torch.save

        def save(obj, target, *args, **kwargs):
            if isinstance(target, str) and second_time():  # the envelope going to its temporary file
                with open(target, "wb") as handle:
                    handle.write(b"PK\x03\x04 half a zip")
                raise _Kill
            return real_save(obj, target, *args, **kwargs)

        monkeypatch.setattr(torch, "save", save)
    elif point in ("after the checkpoint rename", "inside the metrics append"):
        real_append = RunDir.append_metrics

        def append(self, record):
            if second_time():
                if point == "inside the metrics append":
                    with self.metrics.open("a") as handle:
                        handle.write(json.dumps(record)[:40])  # a torn line
                raise _Kill
            real_append(self, record)

        monkeypatch.setattr(RunDir, "append_metrics", append)
    else:
        real_outputs = Search._write_outputs

        def outputs(self):
            if second_time():
                raise _Kill
            real_outputs(self)

        monkeypatch.setattr(Search, "_write_outputs", outputs)
    with pytest.raises(_Kill):
        _run(run.path, epochs=3)
    monkeypatch.undo()
    (run.path / ".checkpoint.pt.killed.tmp").write_bytes(b"what a kill leaves")  # as a real kill -9 would
    resumed = Search.resume(run.path, data=DATA, **QUIET)
    resumed.run()
    assert _strip(run.read_metrics()) == _strip(full.metrics)
    assert len(run.metrics.read_text().splitlines()) == 3
    a, b = RunDir(tmp_path / "full").load_checkpoint(), run.load_checkpoint()
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"]) and torch.equal(a["relax"]["eta"],
                                                                                       b["relax"]["eta"])
    assert not list(run.path.glob(".*.tmp"))


def test_a_full_disk_at_the_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    search = _run(run.path, epochs=3, max_epochs=1)
    before = run.checkpoint.read_bytes()
    real_save = torch.save

    def full_disk(obj, target, *args, **kwargs):
        if isinstance(target, str):
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1234 vs 5678\nmore")
        return real_save(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RunError, match=r"could not write .*checkpoint.pt \(RuntimeError: \[enforce fail at "
                                       r"inline_container.cc:664\] . unexpected pos 1234 vs 5678\); the previous "
                                       r"checkpoint.pt is intact: free disk space") as info:
        search.run()
    assert "\n" not in str(info.value) and run.checkpoint.read_bytes() == before
    assert not list(run.path.glob(".*.tmp"))


@pytest.mark.parametrize("out", ["/proc/drnas-test-run", "/dev/null/run"])
def test_an_output_path_that_cannot_be_written_is_one_line_before_any_epoch(out):
    with pytest.raises(RunError, match="cannot write the run directory .*: pick a writable --out"):
        _run(out)


def _job(kind: str, path, max_epochs: int = 1):
    """A finished first epoch of a tiny search or training run in ``path``; returns the job class."""
    if kind == "search":
        _run(path, epochs=2, max_epochs=max_epochs)
        return Search
    from drnas.config.search import apply_overrides
    from drnas.train import PROTOCOLS, Trainer

    config = apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", "dataset": "npz", "epochs": 2,
                                                     "batch_size": 32, "channels": 8, "cells_per_stage": 1,
                                                     "device": "cpu"})
    Trainer(config, path, data=DATA, **QUIET).run(max_epochs=max_epochs)
    return Trainer


def _flip_payload(run: RunDir) -> None:
    envelope = torch.load(run.checkpoint, weights_only=True)
    payload = bytearray(envelope["payload"])
    payload[len(payload) // 3] ^= 0xFF
    torch.save({**envelope, "payload": bytes(payload)}, run.checkpoint)


def _drop_field(run: RunDir, field: str) -> None:
    config = json.loads(run.config.read_text())
    del config[field]
    run.config.write_text(json.dumps(config))


class _Foreign:
    """An object no drnas checkpoint holds (weights-only loading refuses it)."""


DAMAGE = {
    "checkpoint bytes": (_flip_payload, "checksum does not match"),
    "checkpoint of objects": (lambda run: torch.save({"state": _Foreign()}, run.checkpoint),
                              "could not be read: it holds Python objects a drnas checkpoint never holds"),
    "checkpoint truncated": (lambda run: run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:300]),
                             "could not be read: it is truncated or not a file torch wrote"),
    "checkpoint garbage": (lambda run: run.checkpoint.write_bytes(b"junk" * 50), "could not be read"),
    "checkpoint gone": (lambda run: run.checkpoint.unlink(), "no checkpoint.pt to continue from"),
    "config field gone": (lambda run: _drop_field(run, "epochs" if run.path.name == "train" else "stages"),
                          "lacks .*: it was edited or damaged"),
    "config not json": (lambda run: run.config.write_text("{"), "config.json could not be read"),
    "config a list": (lambda run: run.config.write_text("[]"), "does not hold a config object"),
    "config of no kind": (lambda run: [_drop_field(run, f) for f in ("kind", "stages", "arch") if f in
                                       json.loads(run.config.read_text())], "names no kind of run"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("kind", ["search", "train"])
def test_every_damaged_run_file_is_one_line_for_search_and_train_runs(tmp_path, kind, damage):
    run = RunDir(tmp_path / kind)
    job_class = _job(kind, run.path)
    corrupt, message = DAMAGE[damage]
    corrupt(run)
    with pytest.raises(RunError, match=message) as info:
        job_class.resume(run.path, data=DATA, **QUIET)
    assert "\n" not in str(info.value) and "Weights only" not in str(info.value)


@pytest.mark.parametrize("kind", ["search", "train"])
def test_a_checkpoint_copied_in_from_another_run_is_refused(tmp_path, kind):
    mine, other = RunDir(tmp_path / "mine" / kind), RunDir(tmp_path / "other" / kind)
    job_class = _job(kind, mine.path)
    _job(kind, other.path)
    ids = [json.loads(r.config.read_text())["run_id"] for r in (mine, other)]
    assert all(isinstance(i, str) and len(i) == 32 for i in ids) and ids[0] != ids[1]
    other.checkpoint.replace(mine.checkpoint)
    before = {p.name: p.read_bytes() for p in mine.path.iterdir() if p.is_file() and p.name != ".lock"}
    with pytest.raises(RunError, match=f"belongs to another run \\(run id '{ids[1]}'; this run's config.json says "
                                       f"{ids[0]}\\)") as info:
        job_class.resume(mine.path, data=DATA, **QUIET)
    assert "\n" not in str(info.value)
    assert {p.name: p.read_bytes() for p in mine.path.iterdir() if p.is_file() and p.name != ".lock"} == before


def test_a_run_from_before_run_ids_resumes_and_gets_one(tmp_path):
    run = RunDir(tmp_path / "run")
    _run(run.path, epochs=2, max_epochs=1)
    config = json.loads(run.config.read_text())
    del config["run_id"]
    run.config.write_text(json.dumps(config))
    envelope = torch.load(run.checkpoint, weights_only=True)
    del envelope["run_id"]
    torch.save(envelope, run.checkpoint)
    Search.resume(run.path, data=DATA, **QUIET).run()
    run_id = json.loads(run.config.read_text())["run_id"]
    assert torch.load(run.checkpoint, weights_only=True)["run_id"] == run_id


@pytest.mark.parametrize("kind", ["search", "train"])
def test_damaged_metrics_are_repaired_for_search_and_train_runs(tmp_path, kind):
    run = RunDir(tmp_path / kind)
    job_class = _job(kind, run.path)
    good = run.metrics.read_text()
    run.metrics.write_text(good + '{"epoch": 2, "torn')
    job_class.resume(run.path, data=DATA, **QUIET)
    assert run.metrics.read_text() == good


def test_a_config_saved_before_the_method_fields_existed_still_resumes(tmp_path):
    run = RunDir(tmp_path / "run")
    _run(run.path, epochs=2, max_epochs=1)
    for field in ("method", "method_settings"):
        _drop_field(run, field)
    resumed = Search.resume(run.path, data=DATA, **QUIET)
    assert resumed.config.method == "drnas" and resumed.epoch == 1


def test_a_read_only_run_directory_is_one_line_before_any_epoch(tmp_path, monkeypatch):
    """Resuming a run on a read-only file system (simulated: the tests may run as root, whom permission bits do
    not stop) fails at the lock, before data or an epoch, with the previous state untouched."""
    import errno

    from drnas.engine import runs
    run = RunDir(tmp_path / "run")
    _run(run.path, epochs=2, max_epochs=1)
    before = run.checkpoint.read_bytes()
    monkeypatch.setattr(runs, "_HELD", {})  # as a fresh process would start
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(RunError, match=r"cannot write the run directory .* \(OSError: Read-only file system\)"):
        Search.resume(run.path, data=DATA, **QUIET)
    monkeypatch.undo()
    assert run.checkpoint.read_bytes() == before


def test_run_files_get_the_users_umask_permissions(tmp_path):
    """A shared results directory stays readable to colleagues: no 0600 files from mkstemp."""
    run = RunDir(tmp_path / "run")
    _run(run.path, epochs=2, max_epochs=1)
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "checkpoint.pt", "architecture.json", "metrics.jsonl"):
        assert (run.path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


@pytest.mark.parametrize("damage", ["a line that is no record", "an epoch of 5000 digits", "a FIFO"])
def test_a_history_damaged_past_reading_is_rewritten_from_the_checkpoint(tmp_path, damage):
    run = RunDir(tmp_path / "run")
    _run(run.path, epochs=2, max_epochs=1)
    good = run.metrics.read_text()
    if damage == "a FIFO":
        run.metrics.unlink()
        os.mkfifo(run.metrics)
    else:
        run.metrics.write_text(good + ("[1, 2]\n" if damage == "a line that is no record" else
                                       '{"epoch": ' + "9" * 5000 + "}\n"))
    with pytest.raises(RunError, match="metrics.jsonl"):
        run.read_metrics()
    Search.resume(run.path, data=DATA, **QUIET)
    assert run.metrics.read_text() == good
