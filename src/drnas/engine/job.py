"""Pieces shared by the search loop and retraining: devices, schedules, RNG state, progress, NaN checks.

Jobs report through the ``logging`` module (logger ``drnas.engine.job``): one INFO line per epoch with the run's
ETA, notes and warnings; DEBUG lines with the device settings and memory. The command line shows INFO and above
on stderr; a program using the library sees nothing unless it configures logging (or passes ``log=``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from typing import Any, Callable, Iterable

import torch

from drnas.config.search import RECOVERY_SETTABLE, apply_overrides, without_retired
from drnas.data.formats import DATASETS
from drnas.engine.distributed import (
    all_gather_objects,
    all_reduce_sum,
    average_buffers,
    barrier,
    check_batch_split,
    init_distributed,
    launch_rank,
)
from drnas.engine.passes import PlainRunner, accuracy_counts
from drnas.engine.runs import RunDir, RunError, new_run_id
from drnas.engine.writers import CsvWriter, MetricsWriter, WandbWriter, require_wandb, wandb_has_all
from drnas.engine.writers.tensorboard import MetricsBoard, require_tensorboard
from drnas.errors import DrnasError, reraise_interrupt
from drnas.method.strategies import METHODS
from drnas.registry import plugins
from drnas.spaces.ops import OPS
from drnas.version import __version__

try:
    import resource
except ImportError:  # not a POSIX system: no peak memory in the records
    resource = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)


class NonFiniteLossError(DrnasError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


def lr_at(epoch: int, epochs: int, lr: float, lr_min: float = 0.0, schedule: str = "cosine",
          warmup_epochs: int = 0) -> float:
    """Learning rate of a 0-based epoch: linear warm-up, then cosine or linear decay to ``lr_min``."""
    if epoch < warmup_epochs:
        return lr * (epoch + 1) / warmup_epochs
    span = max(1, epochs - warmup_epochs)
    progress = (epoch - warmup_epochs) / span
    if schedule == "cosine":
        return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return lr_min + (lr - lr_min) * (1.0 - progress)
    raise ValueError(f"unknown schedule {schedule!r}: use cosine or linear")


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"rng_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["rng_cpu"].cpu())
    if "rng_cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)


def progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar on stderr while it is a terminal; None when disabled, or when stderr is a file or a pipe (a
    log then gets each epoch's one line, not a bar redrawn on every step)."""
    isatty = getattr(sys.stderr, "isatty", None)
    if not enabled or not (isatty is not None and isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


#: config fields that runs saved by earlier drnas versions may lack; their defaults reproduce those runs. Such
#: runs hold the fields that moved into the methods' settings instead of ``method_settings``: reading their
#: config.json moves them there (:func:`drnas.config.search.apply_overrides`)
ADDED_SINCE_FIRST_RUNS = frozenset({"fast_paths", "method", "method_settings", "hessian_every", "tensorboard",
                                    "test_images", "wandb", "cost_table", "cost_weight", "cost_target",
                                    "parts", "part_settings", "arch_batches",
                                    "clip_counts_arch", "lr_restart"})

#: fields of a metrics record that measure the machine rather than the run's computation: they differ between a
#: run and its resumed or repeated self (compare records without them)
MEASURED_FIELDS = frozenset({"seconds", "elapsed_seconds", "peak_memory_mb", "cuda_peak_memory_mb"})


def peak_memory(device: torch.device) -> dict[str, float]:
    """This process's peak memory so far in MiB: resident host memory (``getrusage``), and on a GPU the most
    memory torch's allocator held (``torch.cuda.max_memory_allocated``)."""
    out: dict[str, float] = {}
    if resource is not None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        out["peak_memory_mb"] = round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)
    if device.type == "cuda":
        out["cuda_peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: a duration as people read it in a progress line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def non_finite_error(epoch: int, step: int, last_good: int, run_path: Any, lr: float, kind: str) -> NonFiniteLossError:
    """The one line a NaN/inf ends a run with: what survives and a command that recovers."""
    lower = f"--set lr={lr / 2:g}"
    if run_path is None:
        advice = f"lower the learning rate (e.g. {lower}) or check the data"
    elif last_good == 0:
        advice = (f"no epoch had finished, so {run_path} holds no checkpoint: start again with a lower learning "
                  f"rate (e.g. {lower}) and another --out, or check the data")
    else:
        advice = (f"the last good checkpoint (after epoch {last_good}) is intact in {run_path}: continue with a lower "
                  f"learning rate, `drnas {kind} --resume {run_path} {lower}`, or check the data")
    return NonFiniteLossError(f"the loss became NaN/inf in epoch {epoch} (step {step}); {advice}")


def job_log(custom: Callable[[str], None] | None, enabled: bool = True) -> Callable[..., None]:
    """``log(message, level=logging.INFO)`` of a job: to ``custom`` (which then gets every message, whatever its
    level) or else to the ``drnas.engine.job`` logger; nothing where ``enabled`` is false (ranks other than 0)."""
    def log(message: str, level: int = logging.INFO) -> None:
        if not enabled:
            return
        if custom is not None:
            custom(message)
        else:
            logger.log(level, message)
    return log


class Job:
    """The lifecycle shared by a search and a training run.

    Subclasses set ``kind`` and ``config_class`` and implement ``_run_epoch`` (returns the epoch's metrics
    record), ``state_dict``/``load_state_dict``, ``_write_outputs`` and ``result``. A job runs epoch by epoch;
    after each one the checkpoint and metrics line are written, so ``resume`` continues bit-for-bit.
    """

    kind = "job"
    config_class: type = object
    #: set when a rule of the job ended it early (:meth:`_stop_after`): why and when; the checkpoint keeps it
    stopped: dict[str, Any] | None = None

    def _init_job(self, config: Any, out: Any, progress: bool, log: Callable[[str], None] | None,
                  resuming: bool) -> None:
        if getattr(config, "tensorboard", False):
            require_tensorboard()  # before any data loads or directory is made
        if getattr(config, "wandb", False):
            require_wandb()
        self._clock = time.perf_counter()  # the run's wall time counts from here (see run)
        self.dist, self.device = init_distributed(config.device)
        check_batch_split(config.batch_size, self.dist)
        self.progress = progress and self.dist.is_main
        self.log = job_log(log, self.dist.is_main)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.runner: PlainRunner = PlainRunner()  # until the job has its own (_start_runner)
        self.run_dir = RunDir(out) if out is not None else None
        if self.run_dir is not None and not resuming and self.dist.is_main:
            self.run_dir.check_new()
        self.epoch = 0  # epochs completed
        self.metrics: list[dict[str, Any]] = []
        self.run_id: str | None = None  # the run's identity, in its config.json and every checkpoint

    def _start_runner(self, runner: PlainRunner) -> None:
        """The runner the job's passes go through (from :func:`drnas.fast.runner`: the speed paths its settings
        allow)."""
        self.runner = runner
        self.log(f"device {self.device}, {torch.get_num_threads()} CPU thread(s), {runner.describe()}, "
                 f"{self.dist.world_size} process(es)", logging.DEBUG)

    def gradient_pass(self, optimizer: torch.optim.Optimizer, forward: Callable[[], Any], y: torch.Tensor,
                      loss_of: Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero the gradients, run ``forward()`` under the run's autocast, backpropagate ``loss_of(output, y)``
        (which returns the loss and the logits) and return the loss and the correct count. Device work only, so
        it can be captured as a CUDA graph; gradients are then zeroed in place, because the graph keeps writing
        into the tensors it was captured with."""
        optimizer.zero_grad(set_to_none=not self.runner.keeps_gradient_tensors)
        with self.runner.autocast():
            output = forward()
        output = tuple(o.float() for o in output) if isinstance(output, tuple) else output.float()
        loss, logits = loss_of(output, y)
        loss.backward()
        return loss.detach(), accuracy_counts(logits, y)[0]

    def _seed_rank_streams(self, seed: int) -> None:
        """After the identical initialisation of every rank, give each rank its own random stream (Dirichlet
        samples, drop-path); rank 0 keeps the single-process stream."""
        if self.dist.rank > 0:
            torch.manual_seed(seed + 7919 * self.dist.rank)

    def _rng_checkpoint(self) -> dict[str, Any]:
        """Every rank's RNG state (a collective call: every rank must make it)."""
        return {"rng": all_gather_objects(rng_state(self.device), self.dist)}

    def _restore_rng(self, state: dict[str, Any]) -> None:
        saved = state["rng"]
        if len(saved) == self.dist.world_size:
            set_rng_state(saved[self.dist.rank], self.device)
            return
        torch.manual_seed(self.config.seed + 7919 * self.dist.rank + 104729 * int(state["epoch"]))  # type: ignore[attr-defined]
        self.log(f"note: this run was saved by {len(saved)} process(es) and resumes with {self.dist.world_size}: "
                 "it continues correctly, but its data shards and random draws differ from an uninterrupted run")

    def _track_step(self, step: int, steps: int, sums: torch.Tensor, bar: Any, seen_index: int) -> None:
        """Every 10 steps and at the last: the loop's only host synchronisation. Reduces the running sums (loss,
        correct, ..., seen) over ranks, stops on a non-finite value (all ranks see the same sums, so all stop
        together) and refreshes the progress bar."""
        if step % 10 == 0 or step == steps:
            values = self._reduced(sums)
            if not all(math.isfinite(v) for v in values):
                self._fail_non_finite(step)
            if bar is not None:
                seen = values[seen_index]
                bar.set_postfix(loss=f"{values[0] / seen:.3f}", acc=f"{100 * values[1] / seen:.1f}")
        if bar is not None:
            bar.update(1)

    def _epoch_steps(self, batches: Iterable[Any], steps: int, description: str, width: int, seen_index: int,
                     step: Callable[[Any, torch.Tensor], None], network: torch.nn.Module) -> list[float]:
        """The loop of a training epoch, shared by every job: ``step(batch, sums)`` takes one step and adds its
        running sums (losses, correct counts, ..., the batch size at ``seen_index``) into ``sums`` on the device.
        Progress and non-finite checks every 10 steps (:meth:`_track_step`); then ``network``'s BN statistics
        are averaged over ranks. Returns the epoch's sums, reduced over ranks."""
        sums = torch.zeros(width, device=self.device)
        bar = progress_bar(self.progress, steps, description)
        for index, batch in enumerate(batches, start=1):
            step(batch, sums)
            self._track_step(index, steps, sums, bar, seen_index)
        if bar is not None:
            bar.close()
        values = self._reduced(sums)
        average_buffers(network, self.dist)
        return values

    def _reduced(self, values: torch.Tensor) -> list[float]:
        """Sum of a small metrics tensor over ranks, as Python floats (one host synchronisation)."""
        return all_reduce_sum(values.clone(), self.dist).tolist()

    def _load_data(self, config: Any, data: Any) -> None:
        """ImageNet-style folders stream from disk; other datasets load into memory (``train_images`` first)."""
        from drnas.data import load_dataset, streams_folders

        if data is None and streams_folders(config.dataset):
            self._build_folder_loaders()
            return
        arrays = data if data is not None else load_dataset(config.dataset, config.data, download=config.download)
        if config.train_images is not None:
            n = config.train_images
            arrays = dataclasses.replace(arrays, x_train=arrays.x_train[:n], y_train=arrays.y_train[:n])
        self.info = arrays.info
        self._build_loaders(arrays)

    def _entries_used(self) -> list[Any]:
        """The registered objects the run builds on (its space, method, ops, dataset reader): where one comes from a
        module imported outside the plugin loader, the run records that module too."""
        space = getattr(self, "space", None)
        used: list[Any] = [] if space is None else [type(space)]
        method = getattr(self.config, "method", None)  # type: ignore[attr-defined]
        if method in METHODS:
            used.append(METHODS.get(method))
        dataset = self.config.dataset  # type: ignore[attr-defined]
        if dataset in DATASETS and DATASETS.get(dataset).load is not None:
            used.append(DATASETS.get(dataset).load)
        ops = {*getattr(space, "ops", ()), *getattr(getattr(self, "arch", None), "ops", ())}
        return used + [OPS.get(op) for op in sorted(ops) if op in OPS]

    def _start_run_dir(self, config_json: dict[str, Any]) -> None:
        """Create the run directory; called once every input has loaded, so a bad start leaves nothing behind."""
        if self.run_dir is not None and self.dist.is_main:
            self.run_dir.create()
            recorded = plugins.run_records(self._entries_used())
            used = {"plugins": recorded} if recorded else {}
            self.run_id = new_run_id()
            self.run_dir.write_config({"drnas_version": __version__, "kind": self.kind, "run_id": self.run_id, **used,
                                       **config_json})
        barrier(self.dist)

    @property
    def total_epochs(self) -> int:
        return self.config.epochs  # type: ignore[attr-defined]

    def run(self, max_epochs: int | None = None) -> Any:
        """Run (or continue) to the last epoch; ``max_epochs`` stops after that many more epochs.

        Each record gets the run's wall time so far (``elapsed_seconds``: from the job's start, over resumes, the
        time between ``run`` calls left out) and the process's peak memory (:func:`peak_memory`); each epoch
        logs its line with the run's ETA (epochs left x this process's mean epoch time)."""
        stop = self.total_epochs if max_epochs is None else min(self.total_epochs, self.epoch + max_epochs)
        writers = self._open_writers()
        started, done_here = time.perf_counter(), 0
        try:
            while self.epoch < stop and self.stopped is None:
                record = self._run_epoch()
                now = time.perf_counter()
                record["elapsed_seconds"] = round(self._elapsed_before() + now - self._clock, 3)
                record.update(peak_memory(self.device))
                self._clock = now
                self.epoch += 1
                done_here += 1
                self.metrics.append(record)
                self.stopped = self._stop_after(record)
                left = 0 if self.stopped else self.total_epochs - self.epoch
                eta = f", about {format_duration(left * (now - started) / done_here)} left" if left else ""
                self.log(f"{self.epoch_line(record)}  [{self.epoch}/{self.total_epochs} epochs{eta}]")
                self.log(f"peak memory {record.get('peak_memory_mb')} MiB resident"
                         + (f", {record['cuda_peak_memory_mb']} MiB CUDA" if "cuda_peak_memory_mb" in record else ""),
                         logging.DEBUG)
                if self.run_dir is not None:
                    # collective: gathers every rank's RNG state; the metrics records travel with it (see runs.py)
                    state = {**self.state_dict(), "metrics": list(self.metrics)}
                    if self.dist.is_main:
                        self.run_dir.save_checkpoint(state, self.run_id)
                        self.run_dir.append_metrics(record)
                        self._write_outputs()
                        for writer in writers:
                            writer.write([record])
            if self.epoch >= self.total_epochs or self.stopped:
                self._add_final_images(writers)
        finally:
            for writer in writers:
                writer.close()
        return self.result()

    def _stop_after(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """After an epoch (its ``record`` the last of ``self.metrics``): whether the job's own rule ends it early,
        as what the record and the checkpoint keep (``stopped``), or None to go on. Default: never."""
        return None

    def _elapsed_before(self) -> float:
        """The run's wall time up to its last recorded epoch (older records lack it: their epoch seconds)."""
        if not self.metrics:
            return 0.0
        last = self.metrics[-1]
        if last.get("elapsed_seconds") is not None:
            return float(last["elapsed_seconds"])
        return sum(float(m.get("seconds") or 0.0) for m in self.metrics)

    def epoch_line(self, record: dict[str, Any]) -> str:
        """The line an epoch is logged with (the job adds the run's ETA)."""
        return f"epoch {record['epoch']}/{self.total_epochs}"

    def _open_writers(self) -> list[MetricsWriter]:
        """The metrics writers of the process that writes the run (:mod:`drnas.engine.writers`): metrics.csv always,
        TensorBoard and Weights & Biases when the config asks; each starts from the records so far."""
        if self.run_dir is None or not self.dist.is_main:
            return []
        writers: list[MetricsWriter] = [CsvWriter(self.run_dir.metrics_csv, self.metrics)]
        try:
            board = self._open_board()
            if board is not None:
                writers.append(board)
            # a finished run whose W&B run has it all opens none (`--resume` of a finished run only reports)
            if getattr(self.config, "wandb", False) and not wandb_has_all(self.run_dir.path, self.total_epochs):
                config = {"drnas_version": __version__, "kind": self.kind, **self.config.to_json()}  # type: ignore[attr-defined]
                writers.append(WandbWriter(self.run_dir.path, config, self.metrics))
        except BaseException:
            for writer in writers:
                writer.close()
            raise
        return writers

    def _open_board(self) -> MetricsBoard | None:
        """With ``tensorboard=true``, on the process that writes the run: its event files, rewritten from the
        records so far (see :mod:`drnas.engine.writers.tensorboard`)."""
        if not getattr(self.config, "tensorboard", False) or self.run_dir is None or not self.dist.is_main:
            return None
        try:
            return MetricsBoard(self.run_dir.tensorboard, self.metrics)
        except OSError as err:
            raise RunError(f"could not write {self.run_dir.tensorboard} ({type(err).__name__}: {err.strerror}): fix "
                           "the permissions or free disk space, or resume with --set tensorboard=false") from None

    def _add_final_images(self, writers: list[MetricsWriter]) -> None:
        """The job's :meth:`final_images` at its last epoch, to the writers that show pictures; a picture that
        fails is a warning, never a failed run."""
        showing = [w for w in writers if type(w).write_images is not MetricsWriter.write_images]
        if not showing:
            return
        try:
            images = self.final_images()
            for writer in showing:
                writer.write_images(images, self.epoch)
        except Exception as err:  # noqa: BLE001 - a picture must never stop a run (a Ctrl-C must)
            reraise_interrupt(err)
            where = "TensorBoard" if isinstance(showing[0], MetricsBoard) else "W&B"
            self.log(f"warning: could not draw the {where} pictures: {err}", logging.WARNING)

    def final_images(self) -> list[tuple[str, bytes]]:
        """(tag, PNG bytes) shown in TensorBoard at the end of the run; a search shows its architecture."""
        return []

    def _fail_non_finite(self, step: int) -> None:
        raise non_finite_error(self.epoch + 1, step, self.epoch, self.run_dir.path if self.run_dir else None,
                               self.config.lr, self.kind)  # type: ignore[attr-defined]

    @classmethod
    def resume(cls, run_dir: Any, *, data: Any = None, progress: bool = True,
               log: Callable[[str], None] | None = None, **overrides: Any) -> Any:
        """Reopen a run directory and restore its last checkpoint (``overrides``: e.g. ``device="cpu"``)."""
        run = RunDir(run_dir)
        run.require()
        file = run.read_config()
        saved = without_retired(file)
        saved.pop("drnas_version", None)
        saved.pop("plugins", None)
        run_id = saved.pop("run_id", None)
        changes = saved.pop("changes", [])
        # runs from before config.json named its kind are told by their fields: a training run names its arch
        kind = saved.pop("kind", "train" if "arch" in saved else "search" if "stages" in saved else None)
        if kind not in ("search", "train"):
            raise RunError(f"{run.config} names no kind of run (search or train) and holds neither stages nor an arch: "
                           "it was edited or damaged; restore it, or start a new run")
        if kind != cls.kind:
            raise RunError(f"{run.path} is a {kind} run: continue it with `drnas {kind} --resume {run.path}`")
        missing = [f.name for f in dataclasses.fields(cls.config_class)
                   if f.name not in saved and f.name not in ADDED_SINCE_FIRST_RUNS]
        if missing:  # an edited or truncated file: a default would silently run another experiment
            raise RunError(f"{run.config} lacks {', '.join(missing)}: it was edited or damaged; restore it, or start "
                           "a new run")
        config = apply_overrides(cls.config_class(), {**saved, **overrides})
        if launch_rank() == 0:  # rank 0 writes the run: it holds the lock from before the data loads
            run.lock()
            run.remove_stale_files()
        job = cls(config, run.path, data=data, progress=progress, log=log, _resuming=True)  # type: ignore[call-arg]
        state = run.load_checkpoint(map_location=job.device, run_id=run_id if isinstance(run_id, str) else None)
        job.run_id = run_id if isinstance(run_id, str) else None
        if job.run_id is None and job.dist.is_main:  # a run from before runs had an identity gets one now
            job.run_id = new_run_id()
            file = {**file, "run_id": job.run_id}
            run.write_config(file)
        try:
            metrics = run.read_metrics()
        except RunError:  # a damaged history: the checkpoint's own records rewrite it below
            if state is None or "metrics" not in state:
                raise
            metrics = []
        if state is None and metrics:
            raise RunError(f"{run.path} has {len(metrics)} epoch(s) of metrics but no checkpoint.pt to continue from: "
                           f"start a new run with another --out, or delete {run.metrics} to run this one from epoch 0")
        if state is not None:
            job.load_state_dict(state)
        if state is not None and "metrics" in state:
            job.metrics = list(state["metrics"])  # the history as of the checkpoint, line for line
        else:  # a checkpoint written before it carried the records
            job.metrics = [m for m in metrics if m.get("epoch", 0) <= job.epoch]
        recovery = {k: getattr(job.config, k) for k in overrides if k in RECOVERY_SETTABLE
                    and getattr(job.config, k) != saved.get(k)}
        if recovery and job.dist.is_main:  # these change what the rest of the run computes: recorded in the config
            changes = [*changes, {"after_epoch": job.epoch, "set": recovery}]
            values = job.config.to_json()
            run.write_config({**file, **{k: values[k] for k in recovery}, "changes": changes})
            job.log(f"from epoch {job.epoch + 1} on: {', '.join(f'{k}={v}' for k, v in recovery.items())} "
                    f"(recorded in {run.config.name})")
        if job.dist.is_main and run.repair_metrics(job.metrics):
            job.log(f"{run.metrics.name} did not match the checkpoint (a crash between their writes, or an edit): "
                    f"rewritten to its {len(job.metrics)} epoch(s)")
        job.log(f"resumed {run.path} after epoch {job.epoch}/{job.total_epochs}")
        return job

    # to implement
    def _build_loaders(self, arrays: Any) -> None:
        raise NotImplementedError

    def _build_folder_loaders(self) -> None:
        raise NotImplementedError

    def _run_epoch(self) -> dict[str, Any]:
        raise NotImplementedError

    def _write_outputs(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError
