"""The run directory: resolved config, metrics log, architecture file, atomic checkpoints.

Layout of ``RUN_DIR``::

    config.json         resolved SearchConfig (all a resume needs)
    metrics.jsonl       one JSON object per finished epoch
    architecture.json   derived architecture + eta/beta/Dirichlet mean of every edge (updated every epoch)
    checkpoint.pt       everything needed to continue bit-for-bit (written atomically every epoch)
    dirichlet_mean.png  Dirichlet mean of every op on every edge over the epochs

Every file is written to a temporary name and renamed, so a crash never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch

from .errors import DrnasError, reraise_interrupt


class RunError(DrnasError, ValueError):
    """A run directory that cannot be used as asked (missing, not a run, already holds a run)."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """Paths and I/O of one run directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    architecture = property(lambda self: self.path / "architecture.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    plot = property(lambda self: self.path / "dirichlet_mean.png")

    def check_new(self) -> None:
        """Refuse a directory that already holds a run (``--resume`` continues one)."""
        if self.config.exists():
            raise RunError(f"{self.path} already holds a run: resume it with --resume {self.path} "
                           "or pass another --out")
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"--out {self.path} is a file, not a directory")

    def create(self) -> None:
        """Make a fresh run directory (see :meth:`check_new`)."""
        self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)

    def require(self) -> None:
        if not self.path.is_dir():
            raise RunError(f"run directory {self.path} does not exist")
        if not self.config.is_file():
            raise RunError(f"{self.path} is not a drnas run directory (no config.json)")

    def read_config(self) -> dict[str, Any]:
        return json.loads(self.config.read_text())

    def write_config(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.config, data)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.exists():
            return []
        lines = []
        for line in self.metrics.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a torn last line from a crash: ignore it and what follows
        return lines

    def write_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        atomic_write_bytes(self.metrics, "".join(json.dumps(r) + "\n" for r in records).encode())

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_torch_save(self.checkpoint, state)

    def load_checkpoint(self, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
        if not self.checkpoint.exists():
            return None
        try:
            return torch.load(self.checkpoint, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
            reraise_interrupt(err)
            raise RunError(f"checkpoint {self.checkpoint} could not be read ({type(err).__name__}: {err})") from None
