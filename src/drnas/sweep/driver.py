"""Sweeps (``drnas sweep``): the runs of a plan (:mod:`drnas.sweep.plan`), ordinary searches run in parallel on this
machine or on a Ray cluster; their outcomes and the sweep's status.

A sweep directory holds::

    sweep.json         the plan: every run's name, the values that vary, its resolved config; slots and threads
    configs/NAME.json  the resolved config each run starts from (``drnas search --config``)
    runs/NAME/         one ordinary search run directory per grid point: `drnas show`, `sample` work on it
    logs/NAME.log      what the run printed
    outcomes.json      per run: state, exit status, error line, attempts, wall seconds, peak memory
    summary.csv/.md/.png, runs.csv, trajectories.png   the report (drnas.sweep.report), rewritten at the end

Every run is a child process, ``python -m drnas search``, so a crash or an out-of-memory kill of one run stops
only that run, its peak memory is its own (``wait4``), and its threads are bounded: the local pool divides the
cores among the jobs (oversubscribed PyTorch threads are far slower than fewer jobs). The driver is the one
writer of the sweep's own files (it holds the directory's lock); each run writes only its run directory. A
killed driver takes its children with it (they ask the kernel to, see ``exit_with_parent``) and a resume
continues each unfinished run from its last checkpoint: a kill loses at most the epochs in flight.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from drnas.config.limits import read_bounded
from drnas.engine.runs import RunDir, atomic_write_json, finished
from drnas.registry import plugins
from drnas.sweep.plan import Plan, PlannedRun, SweepError

#: environment variable naming the process a sweep's child must not outlive (read by ``python -m drnas``)
PARENT_ENV = "DRNAS_EXIT_WITH_PARENT"


@dataclass
class Outcome:
    state: str = "pending"  # pending | queued (a Ray task not known to have started) | running | done | failed | interrupted
    code: int | None = None
    error: str | None = None
    attempts: int = 0
    wall_seconds: float = 0.0
    peak_memory_mb: float | None = None
    started: float | None = None


class SweepDir:
    """Paths and files of a sweep directory; the driver that runs it holds its lock."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    plan_file = property(lambda self: self.path / "sweep.json")
    outcomes_file = property(lambda self: self.path / "outcomes.json")

    def run_dir(self, name: str) -> Path:
        return self.path / "runs" / name

    def config_file(self, name: str) -> Path:
        return self.path / "configs" / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.path / "logs" / f"{name}.log"

    def create(self, plan: Plan) -> None:
        if self.plan_file.exists():
            raise SweepError(f"{self.path} already holds a sweep: continue it with `drnas sweep --resume {self.path}`"
                             " or pass another --out")
        if self.path.exists() and not self.path.is_dir():
            raise SweepError(f"--out {self.path} is a file, not a directory")
        RunDir(self.path).lock()
        for sub in ("configs", "runs", "logs"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        for run in plan.runs:
            atomic_write_json(self.config_file(run.name), run.config)
        atomic_write_json(self.plan_file, plan.to_json())

    def read_plan(self) -> Plan:
        if not self.plan_file.is_file():
            raise SweepError(f"{self.path} is not a sweep directory (no sweep.json)")
        try:
            plan = Plan.from_json(json.loads(read_bounded(self.plan_file, what="a sweep plan")))
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
            raise SweepError(f"{self.plan_file} could not be read ({type(err).__name__}): restore it") from None
        plugins.require(plan.plugins, self.path)  # its runs' methods, spaces... may be a plugin's
        return plan

    def reopen(self, jobs: int | None = None, threads: int | None = None, ray: str | None = None) -> Plan:
        """The saved plan of a sweep to continue, locked for this driver, with what a resume may change: the runs
        at a time (``jobs``; the threads then divide the cores among them unless ``threads`` is given), the
        threads per run and the Ray address; saved again."""
        plan = self.read_plan()
        RunDir(self.path).lock()  # one driver per sweep
        plan.jobs = jobs or plan.jobs
        plan.threads = threads or (max(1, (os.cpu_count() or 1) // plan.jobs) if jobs else plan.threads)
        plan.ray = ray if ray is not None else plan.ray
        atomic_write_json(self.plan_file, plan.to_json())
        return plan

    def read_outcomes(self) -> dict[str, Outcome]:
        if not self.outcomes_file.is_file():
            return {}
        try:
            data = json.loads(read_bounded(self.outcomes_file, what="a sweep's outcomes"))
            return {name: Outcome(**value) for name, value in data.items()}
        except (OSError, ValueError, TypeError, RecursionError) as err:
            raise SweepError(f"{self.outcomes_file} could not be read ({type(err).__name__}): delete it; a resume "
                             "then finds every run's state in its run directory") from None

    def write_outcomes(self, outcomes: Mapping[str, Outcome]) -> None:
        atomic_write_json(self.outcomes_file, {k: dataclasses.asdict(v) for k, v in outcomes.items()})

    def epochs_done(self, name: str) -> int:
        run = RunDir(self.run_dir(name))
        return len(run.read_metrics()) if run.config.is_file() else 0

    def finished(self, name: str, epochs: int) -> bool:
        """Whether run ``name`` is over: its ``epochs`` done, or stopped early by its method's rule."""
        run = RunDir(self.run_dir(name))
        return run.config.is_file() and finished(run.read_metrics(), epochs)

    def driver_alive(self) -> bool:
        """Whether the process that last held the sweep's lock is still running (on this host)."""
        try:
            pid = int((self.path / ".lock").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return pid != os.getpid()


# ----------------------------------------------------------------------------------------------- children
def exit_with_parent() -> None:
    """In a sweep's child: ask Linux to end this process when the sweep that started it dies (a killed sweep
    leaves no orphan runs holding their locks); elsewhere, nothing."""
    parent = os.environ.pop(PARENT_ENV, None)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:  # the parent died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def child_command(run_dir: Path, config_file: Path, resume: bool, threads: int, device: str | None,
                  plugin_modules: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "drnas", "search", "--quiet", "--threads", str(threads)]
    for module in plugin_modules:  # the sweep's plugins, also where DRNAS_PLUGINS is not passed on (Ray nodes)
        cmd += ["--plugin", module]
    cmd += ["--resume", str(run_dir)] if resume else ["--config", str(config_file), "--out", str(run_dir)]
    if device:
        cmd += ["--device", device]
    return cmd


def run_child(cmd: Sequence[str], log_path: str, threads: int,
              started: Callable[[subprocess.Popen], None] | None = None) -> dict[str, Any]:
    """Run one search as a child process with its output appended to ``log_path``; its exit status, wall seconds,
    peak resident memory (MiB, from ``wait4``) and error line. Ray calls this on the node that runs the task."""
    env = {**os.environ, PARENT_ENV: str(os.getpid()), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    begin = time.time()
    with open(log_path, "ab") as log:
        log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env)
        if started is not None:
            started(proc)
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            peak = usage.ru_maxrss / (1024 if sys.platform != "darwin" else 1024 * 1024)
        else:  # no per-child resource usage here
            code, peak = proc.wait(), None
    return {"code": code, "wall_seconds": round(time.time() - begin, 3),
            "peak_memory_mb": None if peak is None else round(peak, 1), "error": _error_line(log_path, code)}


def _error_line(log_path: str, code: int) -> str | None:
    """The run's own one-line error (``drnas: error: ...``), or what ended it."""
    if code == 0:
        return None
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()[-50:]
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("drnas: error"):
            return line[len("drnas: "):]
    if code < 0:
        return f"killed by signal {-code} ({signal.Signals(-code).name})" if -code in signal.valid_signals() \
            else f"killed by signal {-code}"
    tail = next((line for line in reversed(lines) if line.strip()), "")
    return f"exit status {code}" + (f": {tail.strip()[:300]}" if tail else "")


# ---------------------------------------------------------------------------------------------- execution
@dataclass(frozen=True)
class Slot:
    """Where one run executes locally: its CPU threads and, on a multi-GPU machine, its device."""

    threads: int
    device: str | None = None


def local_slots(jobs: int, threads: int, devices: Sequence[str] = ()) -> list[Slot]:
    return [Slot(threads, devices[i % len(devices)] if devices else None) for i in range(jobs)]


class Driver:
    """Runs a plan's unfinished runs and keeps ``outcomes.json`` current; one per sweep directory (its lock)."""

    def __init__(self, sweep: SweepDir, plan: Plan, log: Callable[[str], None] = print) -> None:
        self.sweep, self.plan, self.log = sweep, plan, log
        self.outcomes = sweep.read_outcomes()
        for run in plan.runs:
            self.outcomes.setdefault(run.name, Outcome())
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen] = {}

    def todo(self) -> list[PlannedRun]:
        """Runs not finished: pending, failed, interrupted or killed mid-run (the run directory decides)."""
        out = []
        for run in self.plan.runs:
            outcome = self.outcomes[run.name]
            if self.sweep.finished(run.name, run.epochs):
                if outcome.state != "done":
                    outcome.state, outcome.error = "done", None
                continue
            if outcome.state in ("done", "running", "queued"):  # a run directory edited away, or a driver killed
                outcome.state = "interrupted"
            out.append(run)
        return out

    def _command(self, run: PlannedRun, threads: int, device: str | None) -> list[str]:
        resume = RunDir(self.sweep.run_dir(run.name)).config.is_file()
        return child_command(self.sweep.run_dir(run.name), self.sweep.config_file(run.name), resume, threads, device,
                             [p["module"] for p in self.plan.plugins])

    def _started(self, run: PlannedRun, state: str = "running") -> None:
        with self._lock:
            outcome = self.outcomes[run.name]
            outcome.state, outcome.started, outcome.attempts = state, time.time(), outcome.attempts + 1
            self.sweep.write_outcomes(self.outcomes)

    def _finished(self, run: PlannedRun, result: Mapping[str, Any], interrupted: bool) -> None:
        with self._lock:
            outcome = self.outcomes[run.name]
            outcome.code, outcome.error = result["code"], result["error"]
            outcome.wall_seconds = round(outcome.wall_seconds + result["wall_seconds"], 3)
            if result.get("peak_memory_mb") is not None:
                outcome.peak_memory_mb = max(outcome.peak_memory_mb or 0.0, result["peak_memory_mb"])
            done = result["code"] == 0 and self.sweep.finished(run.name, run.epochs)
            outcome.state = "done" if done else "interrupted" if interrupted else "failed"
            if done:
                outcome.error = None
            self.sweep.write_outcomes(self.outcomes)
        word = {"done": "done", "failed": "FAILED", "interrupted": "interrupted"}[outcome.state]
        detail = f" ({outcome.error})" if outcome.state == "failed" else ""
        self.log(f"[{self.count('done')}/{len(self.plan.runs)}] {run.name}: {word} in "
                 f"{result['wall_seconds']:.0f}s{detail}")

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes.values() if o.state == state)

    def run_local(self, slots: Sequence[Slot]) -> bool:
        """Run what is left on a pool of ``slots``; False when interrupted (Ctrl-C), after every child stopped."""
        todo = self.todo()
        self.sweep.write_outcomes(self.outcomes)
        free = list(slots)
        interrupted = threading.Event()

        def one(run: PlannedRun, slot: Slot) -> tuple[PlannedRun, Slot]:
            if interrupted.is_set():
                return run, slot
            self._started(run)

            def keep(proc: subprocess.Popen) -> None:
                with self._lock:
                    self._children[run.name] = proc
            result = run_child(self._command(run, slot.threads, slot.device), str(self.sweep.log_file(run.name)),
                               slot.threads, keep)
            with self._lock:
                self._children.pop(run.name, None)
            self._finished(run, result, interrupted.is_set())
            return run, slot

        queue = list(todo)
        running: set[Future] = set()
        with ThreadPoolExecutor(max_workers=max(1, len(slots))) as pool:
            try:
                while queue or running:
                    while queue and free:
                        running.add(pool.submit(one, queue.pop(0), free.pop(0)))
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        free.append(future.result()[1])
            except KeyboardInterrupt:
                interrupted.set()
                with self._lock:
                    children = list(self._children.values())
                for proc in children:  # a terminal's Ctrl-C reached them already; a `kill -INT` of the driver did not
                    with contextlib.suppress(OSError):
                        proc.send_signal(signal.SIGINT)
                wait(running)
                return False
        return True

    def run_ray(self, address: str, threads: int, gpus: float) -> bool:
        """Run what is left as Ray tasks (one CPU-thread budget each, and ``gpus`` GPUs); the sweep directory must
        be on a file system every node sees."""
        ray = import_ray()
        todo = self.todo()
        self.sweep.write_outcomes(self.outcomes)
        if not ray.is_initialized():
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     logging_level="ERROR", log_to_driver=False,
                     **({"num_cpus": os.cpu_count()} if address == "local" else {}))
        task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(run_child)
        pending = {}
        for run in todo:
            self._started(run, "queued")
            ref = task.remote(self._command(run, threads, None), str(self.sweep.log_file(run.name)), threads)
            pending[ref] = run
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    run = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - a lost node or worker fails this run, not the sweep
                        result = {"code": 1, "wall_seconds": 0.0, "peak_memory_mb": None,
                                  "error": f"Ray task failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"}
                    self._finished(run, result, False)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)  # SIGINT to the task's process: the child run stops at its last checkpoint
            return False
        return True


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError("--ray needs Ray: pip install 'drnas[ray]' (or pip install ray)") from None
    return ray


# ----------------------------------------------------------------------------------------------- status
@dataclass(frozen=True)
class RunStatus:
    name: str
    state: str
    epochs_done: int
    epochs: int
    error: str | None


def status(path: str | os.PathLike) -> tuple[Plan, list[RunStatus], float | None]:
    """Where a sweep stands: each run's state and epochs, and an estimate of the seconds left (None when no
    epoch has finished yet). A run the driver marked running counts as interrupted once the driver is gone."""
    sweep = SweepDir(path)
    plan = sweep.read_plan()
    outcomes = sweep.read_outcomes()
    alive = sweep.driver_alive()
    rows, seconds, epochs_seen, left = [], 0.0, 0, 0
    for run in plan.runs:
        outcome = outcomes.get(run.name, Outcome())
        metrics = RunDir(sweep.run_dir(run.name)).read_metrics() if sweep.run_dir(run.name).is_dir() else []
        done = len(metrics)
        seconds += sum(float(m.get("seconds", 0.0)) for m in metrics)
        epochs_seen += done
        state = outcome.state
        if done >= run.epochs:
            state = "done"
        elif state in ("running", "queued") and not alive:
            state = "interrupted"
        if state != "done":
            left += run.epochs - done
        rows.append(RunStatus(run.name, state, min(done, run.epochs), run.epochs, outcome.error))
    eta = None
    if epochs_seen:
        eta = seconds / epochs_seen * left / max(1, plan.jobs)
    return plan, rows, eta


__all__ = ["PARENT_ENV", "Driver", "Outcome", "RunStatus", "Slot", "SweepDir", "child_command", "exit_with_parent",
           "import_ray", "local_slots", "run_child", "status"]
