"""The scores file of ``drnas proxies``: ``OUT/scores.jsonl``, append-only, so that an interrupted scoring resumes.

Its first line holds the settings every score depends on (``{"settings": {...}}``: space, ops, dataset, data,
network size, batch, seed, proxies); each further line is one architecture's :class:`~drnas.analysis.proxies.score.Scores`.
Every line is written whole by one ``write`` on a file opened for appending, then flushed to disk (``fsync``): a
crash or a ``kill -9`` leaves at most a last line cut short, which a resume drops (rewriting the file atomically
without it). A resume with other settings is refused, in one line; more architectures than before (a larger
``--archs N`` with the same seed, another file) are scored on top of those already there.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from drnas.analysis.proxies.score import Scores
from drnas.config.limits import read_bounded
from drnas.engine.runs import RunError, atomic_write_bytes

SCORES_FILE = "scores.jsonl"


class ScoreStore:
    """``OUT/scores.jsonl`` of one scoring: :meth:`open` it (new, or resuming), :meth:`add` scores as they come."""

    def __init__(self, out: str | os.PathLike[str], settings: dict[str, Any]) -> None:
        self.path = Path(out).expanduser() / SCORES_FILE
        self.settings = json.loads(json.dumps(settings))  # as the file holds it (tuples as lists)
        self.rows: dict[str, Scores] = {}

    def open(self) -> ScoreStore:
        """Read what an earlier scoring into the same folder wrote (refusing other settings), or start the file."""
        if self.path.exists():
            self._read()
        else:
            if self.path.parent.exists() and not self.path.parent.is_dir():
                raise RunError(f"--out {self.path.parent} is a file: give a folder for {SCORES_FILE}")
            atomic_write_bytes(self.path, self._line({"settings": self.settings}))
        return self

    def _read(self) -> None:
        text = read_bounded(self.path, "file_bytes", f"a {SCORES_FILE} that drnas proxies wrote")
        lines = text.split("\n")
        complete, cut = lines[:-1], lines[-1]  # the text after the last newline: a line a crash cut short
        rows: list[Scores] = []
        for number, line in enumerate(complete, start=1):
            try:
                data = json.loads(line)
                if number == 1:
                    saved = data["settings"]
                    if not isinstance(saved, dict):
                        raise TypeError
                    continue
                rows.append(Scores(str(data["arch"]), {str(k): math.nan if v is None else float(v)
                                                        for k, v in data["scores"].items()},
                                   {str(k): float(v) for k, v in data["seconds"].items()}))
            except (ValueError, TypeError, KeyError, AttributeError):
                raise RunError(f"{self.path}, line {number}: not a line drnas proxies wrote; score into another "
                               f"--out, or delete {self.path} to start again") from None
        if not complete:
            raise RunError(f"{self.path} has no settings line: score into another --out, or delete it to start again")
        if saved != self.settings:
            differ = sorted(k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k))
            was = ", ".join(f"{k}={json.dumps(saved.get(k))}" for k in differ)
            raise RunError(f"{self.path} holds scores made with other settings ({was}): rerun with those, or give "
                           "another --out")
        self.rows = {row.arch: row for row in rows}
        if cut:  # rewrite the file without the cut line, so that appending starts on a line of its own
            atomic_write_bytes(self.path, "".join(line + "\n" for line in complete).encode())

    def add(self, scores: Scores) -> None:
        """Append one architecture's scores as one line, on disk before this returns."""
        data = self._line(scores.to_json())
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise RunError(f"could not append to {self.path} ({type(err).__name__}: {err.strerror}); the scores so "
                           "far are intact: free disk space or fix the permissions, then rerun to continue") from None
        self.rows[scores.arch] = scores

    @staticmethod
    def _line(data: dict[str, Any]) -> bytes:
        """One line of strict JSON: a score that is not finite (nwot of a singular kernel) is written as null."""
        if "scores" in data:
            data = {**data, "scores": {k: v if math.isfinite(v) else None for k, v in data["scores"].items()}}
        return (json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n").encode()


__all__ = ["SCORES_FILE", "ScoreStore"]
