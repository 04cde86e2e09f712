"""The run directory: resolved config, metrics log, architecture file, atomic checkpoints.

Layout of ``RUN_DIR``::

    config.json         resolved SearchConfig (all a resume needs), with the drnas version, the kind of run, the
                        run's identity (``run_id``, which every checkpoint carries too) and the plugins it was made
                        with (``plugins``: module and version of each)
    metrics.jsonl       one JSON object per finished epoch
    metrics.csv         the same records as flat columns (lists left out), rewritten from them every epoch
    architecture.json   derived architecture + eta/beta/Dirichlet mean of every edge (updated every epoch)
    checkpoint.pt       everything needed to continue bit-for-bit (written atomically every epoch), the metrics
                        records included, under a SHA-256 checksum of its payload
    dirichlet_mean.png  a search's expected weight of every op on every edge over the epochs (DrNAS: the
                        Dirichlet mean; methods without a Dirichlet name it op_weights.png)
    tensorboard/        with tensorboard=true: the metrics (and a search's pictures) as TensorBoard event files
    wandb.json          with wandb=true: the Weights & Biases run id (a resume continues that W&B run)
    .lock               the pid of the one process writing the run (an OS lock, released when it ends)

Every file is written to a temporary name and renamed, so a crash never leaves a half-written file. The
checkpoint is the run's state: a resume rewrites ``metrics.jsonl`` from the records it holds, so a crash
between the checkpoint and the metrics line (or a torn line) leaves no trace in the history.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from drnas.config.limits import LIMITS, read_bounded
from drnas.errors import ConfigError, DrnasError, reraise_interrupt, shown
from drnas.registry import plugins

try:
    import fcntl
except ImportError:  # not a POSIX system: runs are not locked
    fcntl = None  # type: ignore[assignment]

#: the largest metrics.jsonl read: a DARTS search keeps about 3 KB per epoch
MAX_METRICS_BYTES = LIMITS["metrics_bytes"].high
#: the fields of an epoch record that readers use as numbers (absent, null, or a number): the summaries and plots
NUMBER_FIELDS = ("stage", "lr", "train_loss", "train_acc", "arch_loss", "arch_acc", "valid_loss", "valid_acc",
                 "test_loss", "top1", "top5", "best_valid_acc", "mean_query_valid_acc", "queries", "seconds",
                 "elapsed_seconds", "peak_memory_mb", "cuda_peak_memory_mb", "simulated_seconds", "expected_cost")
#: the fields that are lists of numbers, and those that map names to numbers
NUMBER_LIST_FIELDS = ("entropy",)
NUMBER_MAP_FIELDS = ("nb201", "eta", "beta")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bad_field(record: dict[str, Any]) -> str | None:
    """The first field of an epoch record whose value is not of its kind (:data:`NUMBER_FIELDS`...), or None."""
    for key in NUMBER_FIELDS:
        if record.get(key) is not None and not _is_number(record[key]):
            return key
    for key in NUMBER_LIST_FIELDS:
        value = record.get(key)
        if value is not None and not (isinstance(value, list) and all(_is_number(v) for v in value)):
            return key
    for key in NUMBER_MAP_FIELDS:
        value = record.get(key)
        if value is not None and not (isinstance(value, dict) and all(v is None or _is_number(v) for v in value.values())):
            return key
    if record.get("arch") is not None and not isinstance(record["arch"], str):
        return "arch"
    return None

#: keys of ``config.json`` that describe the run rather than configure it
RUN_KEYS = ("drnas_version", "kind", "changes", "plugins", "run_id")

#: the format of ``checkpoint.pt``'s envelope: {"envelope": 1, "sha256": hex digest, "payload": torch.save bytes,
#: "run_id": the run's identity (from its config.json; absent in checkpoints written before runs had one)}
CHECKPOINT_ENVELOPE = 1


def finished(metrics: Sequence[Mapping[str, Any]], epochs: int) -> bool:
    """Whether a run with these metrics lines is over: all ``epochs`` done, or stopped early by a rule of its
    method (its last line says ``stopped``)."""
    return len(metrics) >= epochs or bool(metrics and metrics[-1].get("stopped"))


def new_run_id() -> str:
    """A run's identity: random (the OS's, not torch's or Python's seeded streams), written into its config.json
    when it is created and into every checkpoint, so that a checkpoint copied in from another run is refused."""
    return uuid.uuid4().hex

#: run directories this process holds the lock of (real path -> the lock file's descriptor, kept open until exit)
_HELD: dict[str, int] = {}


def check_writable(path: str | os.PathLike, flag: str) -> None:
    """Refuse, before any work starts, an output file that could not be written at the end: the nearest existing
    folder on its way must take a new file (probed with an empty temporary file, removed at once)."""
    target = Path(path).expanduser()
    try:
        if target.is_dir():
            raise RunError(f"{flag} {shown(str(target))} is a directory: give the path of a file")
        folder = target.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise RunError(f"{flag} {shown(str(target))} cannot be written: {shown(str(folder))} is not a folder")
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".drnas-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise RunError(f"{flag} {shown(str(target))} cannot be written ({type(err).__name__}: {err.strerror}): pick a "
                       "writable path") from None


def _unreadable(err: BaseException) -> str:
    """What is wrong with a file ``torch.load`` refused, in a few words rather than torch's."""
    if isinstance(err, pickle.UnpicklingError):  # weights_only met something other than tensors and plain data
        return "it holds Python objects a drnas checkpoint never holds (not a checkpoint drnas wrote, or damaged)"
    if isinstance(err, (EOFError, RuntimeError, ValueError, OSError)):
        return f"it is truncated or not a file torch wrote ({type(err).__name__})"
    return f"{type(err).__name__}"


class RunError(DrnasError, ValueError):
    """A run directory that cannot be used as asked (missing, not a run, already holds a run)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: run files get the permissions of any file the user creates (mkstemp alone makes them 0600)
_FILE_MODE = 0o666 & ~_umask()


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """``write(tmp)`` a temporary file beside ``path``, then rename it over ``path``: a crash, a full disk or a
    read-only directory leaves the previous file as it was (and says so, in one line)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as a RuntimeError
        detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
        kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
        raise RunError(f"could not write {path} ({type(err).__name__}: {detail}); {kept}: free disk space or "
                       "fix the permissions, then resume") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _write_synced(data: bytes) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return write


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, _write_synced(data))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _metrics_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


class RunDir:
    """Paths and I/O of one run directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    metrics_csv = property(lambda self: self.path / "metrics.csv")
    architecture = property(lambda self: self.path / "architecture.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    tensorboard = property(lambda self: self.path / "tensorboard")
    lock_file = property(lambda self: self.path / ".lock")

    def lock(self) -> None:
        """Become the run's one writer: an exclusive OS lock on ``.lock``, held until this process ends (the
        kernel drops it when the process dies, so a killed run never blocks its resume). A run locked by another
        process is a :class:`RunError` naming that process. Taking it again in the same process is a no-op."""
        key = os.path.realpath(self.path)
        if fcntl is None or key in _HELD:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # read-only, no permission, a path too long, /proc, ...
            raise RunError(f"cannot write the run directory {self.path} ({type(err).__name__}: {err.strerror}): "
                           "pick a writable --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RunError(f"{self.path} is in use by process {holder}: one process writes a run at a time; "
                           "wait for it to finish (or stop it), then resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = fd

    def remove_stale_files(self) -> list[Path]:
        """Delete the temporary files a killed write left behind (under the lock: no writer is running)."""
        stale = sorted(self.path.glob(".*.tmp"))
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def check_new(self) -> None:
        """Refuse a directory that already holds a run (``--resume`` continues one)."""
        try:
            holds_run, is_file = self.config.exists(), self.path.exists() and not self.path.is_dir()
        except OSError as err:  # e.g. a name too long for the file system
            raise RunError(f"--out {shown(str(self.path))} cannot be used ({type(err).__name__}: {err.strerror})") from None
        if holds_run:
            raise RunError(f"{self.path} already holds a run: resume it with --resume {self.path} "
                           "or pass another --out")
        if is_file:
            raise RunError(f"--out {self.path} is a file, not a directory")

    def create(self) -> None:
        """Make a fresh run directory and lock it (see :meth:`check_new`; checked again under the lock, so of two
        runs started together on one directory, one runs and the other says so)."""
        self.check_new()
        self.lock()
        self.check_new()

    def require(self) -> None:
        if not self.path.is_dir():
            raise RunError(f"run directory {self.path} does not exist")
        if not self.config.is_file():
            raise RunError(f"{self.path} is not a drnas run directory (no config.json)")

    def read_config(self) -> dict[str, Any]:
        try:
            data = json.loads(read_bounded(self.config, what="a run's config.json"))
        except ConfigError as err:  # not a regular file, too big, not text
            raise RunError(f"{err}: restore it, or start a new run") from None
        except (OSError, ValueError, RecursionError) as err:
            raise RunError(f"{self.config} could not be read ({type(err).__name__}): restore it, or start a new "
                           "run") from None
        if not isinstance(data, dict):
            raise RunError(f"{self.config} does not hold a config object: restore it, or start a new run")
        plugins.require(data.get("plugins"), self.path)  # a run made with plugins is read back with them
        return data

    def read_fields(self) -> dict[str, Any]:
        """``config.json``'s config fields, without what describes the run (:data:`RUN_KEYS`)."""
        return {k: v for k, v in self.read_config().items() if k not in RUN_KEYS}

    def write_config(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.config, data)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The epoch records of ``metrics.jsonl``, each an object with its epoch number; a torn last line (a crash
        mid-write) and what follows it are left out. A file that is not a regular file, is over
        ``MAX_METRICS_BYTES``, or holds a line that is not such a record is one :class:`RunError` naming the line."""
        try:
            info = os.stat(self.metrics)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise RunError(f"{self.metrics} cannot be read ({type(err).__name__}: {err.strerror})") from None
        if not stat.S_ISREG(info.st_mode):  # a directory, or a FIFO that would block the reader
            raise RunError(f"{self.metrics} is not a regular file: restore it, or resume the run to rewrite it")
        if info.st_size > MAX_METRICS_BYTES:
            raise RunError(f"{self.metrics} is {info.st_size:,} bytes, over the {MAX_METRICS_BYTES:,} a run's history "
                           "takes: restore it, or resume the run to rewrite it")
        try:
            text = self.metrics.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise RunError(f"{self.metrics} cannot be read ({type(err).__name__}): restore it, or resume the run to "
                           "rewrite it") from None
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line from a crash: ignore it and what follows
            except (ValueError, RecursionError) as err:  # numbers too long, nesting too deep
                raise RunError(f"{self.metrics}, line {number}: not an epoch record ({type(err).__name__}): "
                               "restore the file, or resume the run to rewrite it") from None
            epoch = record.get("epoch") if isinstance(record, dict) else None
            if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= 10 ** 9:
                raise RunError(f"{self.metrics}, line {number}: not an epoch record (an object with its epoch "
                               "number): restore the file, or resume the run to rewrite it")
            bad = _bad_field(record)
            if bad is not None:
                raise RunError(f"{self.metrics}, line {number}: {bad} is {shown(record[bad])}, not what an epoch "
                               "records: restore the file, or resume the run to rewrite it")
            lines.append(record)
        return lines

    def write_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        atomic_write_bytes(self.metrics, _metrics_bytes(records))

    def repair_metrics(self, records: list[dict[str, Any]]) -> bool:
        """Make ``metrics.jsonl`` hold exactly ``records`` (a missing, torn or extra line is rewritten); says
        whether it had to."""
        wanted = _metrics_bytes(records)
        try:
            mode = os.stat(self.metrics).st_mode
            if stat.S_ISDIR(mode):
                raise RunError(f"{self.metrics} is a directory: remove it, and resume again to rewrite the history")
            if stat.S_ISREG(mode) and self.metrics.read_bytes() == wanted:
                return False  # (a FIFO or other special file is replaced unread: reading it could block)
        except FileNotFoundError:
            if not records:
                return False
        atomic_write_bytes(self.metrics, wanted)
        return True

    def append_metrics(self, record: dict[str, Any]) -> None:
        try:
            with self.metrics.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:  # the checkpoint holds the record: a resume writes the line again
            raise RunError(f"could not append to {self.metrics} ({type(err).__name__}: {err.strerror}); the "
                           "checkpoint holds the epoch: free disk space, then resume") from None

    def save_checkpoint(self, state: dict[str, Any], run_id: str | None = None) -> None:
        """Write ``state`` under a checksum, with the identity of the run it belongs to (``run_id``)."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getvalue()
        owner = {"run_id": run_id} if run_id else {}
        atomic_torch_save(self.checkpoint, {"envelope": CHECKPOINT_ENVELOPE, "payload": payload,
                                            "sha256": hashlib.sha256(payload).hexdigest(), **owner})

    def load_checkpoint(self, map_location: torch.device | str = "cpu", run_id: str | None = None
                        ) -> dict[str, Any] | None:
        """The saved state, its checksum verified and, given the run's ``run_id``, that it is this run's; None when
        the run has no checkpoint yet."""
        if not self.checkpoint.exists():
            return None
        try:
            state = torch.load(self.checkpoint, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
            reraise_interrupt(err)
            raise RunError(f"checkpoint {self.checkpoint} could not be read: {_unreadable(err)}; the run cannot "
                           "continue from it: restore the file from a backup, or start a new run") from None
        if not (isinstance(state, dict) and "envelope" in state):
            return state  # written before checkpoints had an envelope: no checksum to verify
        if state["envelope"] != CHECKPOINT_ENVELOPE:
            raise RunError(f"checkpoint {self.checkpoint} has envelope format {shown(state['envelope'])}, which "
                           f"this drnas does not read (it reads {CHECKPOINT_ENVELOPE}): update drnas")
        payload, digest, owner = state.get("payload"), state.get("sha256"), state.get("run_id")
        if not isinstance(payload, bytes) or not isinstance(digest, str) or hashlib.sha256(payload).hexdigest() != digest:
            raise RunError(f"checkpoint {self.checkpoint} is corrupted (its checksum does not match): the run "
                           "cannot continue from it; start a new run, or restore the file from a backup")
        if run_id and owner is not None and owner != run_id:
            raise RunError(f"checkpoint {self.checkpoint} belongs to another run (run id {shown(owner)}; this "
                           f"run's config.json says {run_id}): it was copied in from elsewhere; put this run's own "
                           "checkpoint back, or start a new run")
        try:
            return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - a payload that matches its checksum but does not load
            reraise_interrupt(err)
            raise RunError(f"checkpoint {self.checkpoint} could not be read: {_unreadable(err)}") from None
