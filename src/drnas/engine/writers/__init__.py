"""Where a run's metrics go besides ``metrics.jsonl``: one small interface and its writers.

``metrics.jsonl`` is the record of a run; a writer derives a view of it. The job opens its writers on the process
that writes the run (rank 0) with the history it holds (on a resume, that of its checkpoint), hands each
finished epoch's record to :meth:`MetricsWriter.write` after the checkpoint and the metrics line are written,
and, at the end of the run, its pictures to :meth:`MetricsWriter.write_images`.

- :class:`CsvWriter`, always: ``metrics.csv``, every scalar of every record in flat columns (``nb201/cifar10_test_acc``),
  rewritten atomically from the records each epoch, so a resume never repeats a row.
- :class:`drnas.engine.writers.tensorboard.MetricsBoard` (``tensorboard=true``): TensorBoard event files, ``drnas[tensorboard]``.
- :class:`WandbWriter` (``wandb=true``): a Weights & Biases run, ``drnas[wandb]``; ``WANDB_MODE`` (``offline``,
  ``disabled``), ``WANDB_PROJECT`` and ``WANDB_DIR`` are honoured, the run id is kept in ``RUN/wandb.json`` so that
  a resumed run continues the same W&B run.
"""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from drnas.errors import ConfigError, DrnasError, reraise_interrupt
from drnas.engine.runs import RunError, atomic_write_bytes, atomic_write_json

WANDB_INSTALL_HINT = "pip install 'drnas[wandb]'"


class MetricsWriter:
    """A view of a run's metrics. ``write`` takes the records of newly finished epochs, ``write_images`` the
    (tag, PNG bytes) pictures of the end of the run at a step (writers without pictures ignore them), ``close``
    ends the writer."""

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def write_images(self, images: Sequence[tuple[str, bytes]], step: int) -> None:
        """Pictures are optional: a writer that shows none leaves this as it is."""

    def close(self) -> None:
        """Nothing to release by default."""


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The scalars of a metrics record by column: nested objects joined with ``/`` (``nb201/cifar10_test_acc``,
    ``eta/std``); numbers, strings, booleans and nulls are kept, lists (the per-edge distributions, which stay in
    ``metrics.jsonl``) left out."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "/"))
        elif not isinstance(value, (list, tuple)):
            out[name] = value
    return out


def csv_bytes(records: Iterable[Mapping[str, Any]]) -> bytes:
    """``metrics.csv`` of ``records``: one row per record, the header the union of their columns in the order
    they first appear; a column a record lacks (or holds null in) is an empty cell."""
    rows = [flatten(r) for r in records]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return text.getvalue().encode()


class CsvWriter(MetricsWriter):
    """``metrics.csv`` beside ``metrics.jsonl``, rewritten whole (atomically) from the records at every epoch."""

    def __init__(self, path: str | Path, records: Sequence[Mapping[str, Any]]) -> None:
        self.path = Path(path)
        self.records = list(records)
        if self.records or self.path.exists():  # a resume: the file follows the checkpoint's history
            atomic_write_bytes(self.path, csv_bytes(self.records))

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records.extend(records)
        atomic_write_bytes(self.path, csv_bytes(self.records))


class WandbError(DrnasError, RuntimeError):
    """Weights & Biases could not start a run (not logged in, no network in online mode, ...)."""


def require_wandb() -> None:
    """A one-line :class:`ConfigError` saying how to install wandb when it is missing (checked when a job
    starts, before any data loads or directory is made)."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError(f"wandb=true (--wandb) needs the wandb package, which is not installed: "
                          f"{WANDB_INSTALL_HINT}") from None


def read_wandb_state(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/wandb.json``: the W&B run id, the last epoch sent and the step the end-of-run pictures went to."""
    path = Path(run_dir) / "wandb.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise RunError(f"{path} could not be read ({type(err).__name__}): delete it to start a new W&B run for this "
                       "run directory") from None
    return state if isinstance(state, dict) else {}


def wandb_has_all(run_dir: str | Path, epochs: int) -> bool:
    """Whether the W&B run of a run directory was sent all ``epochs`` epochs and the end-of-run pictures."""
    state = read_wandb_state(run_dir)
    return int(state.get("epoch", 0)) >= epochs and state.get("images") == epochs


class WandbWriter(MetricsWriter):
    """A Weights & Biases run of one run directory: the config once, each record at ``step=epoch``.

    ``RUN/wandb.json`` holds the W&B run id and the last epoch sent; a resume continues that W&B run and sends
    the checkpoint's records after that epoch (W&B keeps what it was sent: an epoch it already has is not sent
    again, even when a restored older checkpoint runs it a second time).
    """

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> None:
        import wandb

        self.directory = Path(run_dir)
        self.state_file = self.directory / "wandb.json"
        self.state = read_wandb_state(self.directory)
        self.state.setdefault("id", secrets.token_hex(6))  # W&B run ids: lowercase letters and digits
        self.sent = int(self.state.setdefault("epoch", 0))
        atomic_write_json(self.state_file, self.state)  # before init: a crash keeps the id
        run_id = self.state["id"]
        options: dict[str, Any] = {}
        if not os.environ.get("WANDB_DIR"):
            options["dir"] = str(self.directory)  # its local files in RUN/wandb/
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "drnas", id=run_id, resume="allow",
                                  name=self.directory.name, config=dict(config), mode=os.environ.get("WANDB_MODE"),
                                  settings=wandb.Settings(console="off"), **options)
        except Exception as err:  # noqa: BLE001 - wandb reports login/network problems with many types
            reraise_interrupt(err)
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise WandbError(f"Weights & Biases could not start a run ({type(err).__name__}: {detail}): run "
                             "`wandb login`, set WANDB_MODE=offline (and `wandb sync` later), or resume with "
                             "--set wandb=false") from None
        self.write(records)

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        new = [r for r in records if int(r["epoch"]) > self.sent]
        for record in new:
            self.run.log({k: v for k, v in flatten(record).items() if k != "epoch" and v is not None},
                         step=int(record["epoch"]))
        if new:
            self.sent = self.state["epoch"] = int(new[-1]["epoch"])
            atomic_write_json(self.state_file, self.state)

    def write_images(self, images: Sequence[tuple[str, bytes]], step: int) -> None:
        import wandb
        from PIL import Image

        if self.state.get("images") == step:  # a finished run resumed again: W&B has them
            return
        if images:
            self.run.log({tag: wandb.Image(Image.open(io.BytesIO(png))) for tag, png in images}, step=step)
        self.state["images"] = step
        atomic_write_json(self.state_file, self.state)

    def close(self) -> None:
        self.run.finish()
