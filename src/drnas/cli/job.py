"""What ``drnas search`` and ``drnas train`` share: starting or resuming a job, Ctrl-C, the end-of-run summary."""
from __future__ import annotations

import _thread
import argparse
import contextlib
import dataclasses
import os
import sys
from typing import Any, Callable, Iterator, Sequence

from drnas.cli.parser import WRITER_FLAGS
from drnas.config.resolve import parse_sets
from drnas.config.search import RECOVERY_SETTABLE, RESUME_SETTABLE
from drnas.errors import ConfigError

#: exit status of a command stopped by Ctrl-C (128 + SIGINT, what shells report for an interrupted program)
INTERRUPTED = 130


def run_dataset(arch: str | None) -> tuple[str | None, str | None]:
    """(dataset, data path) of the search run ``--arch`` names, when it names a run directory, else (None, None):
    the network of a run's architecture is built for the data it was searched on unless told otherwise."""
    from drnas.engine.runs import RunDir

    if not arch or not os.path.isfile(os.path.join(os.path.expanduser(arch), "config.json")):
        return None, None
    config = RunDir(os.path.expanduser(arch)).read_config()
    dataset, data = config.get("dataset"), config.get("data")
    return (dataset if isinstance(dataset, str) else None), (data if isinstance(data, str) else None)


def is_main_process() -> bool:
    """Whether this process prints a command's output: rank 0 of a torchrun launch, or the only process."""
    return int(os.environ.get("RANK", 0)) == 0


def writer_flags(args: argparse.Namespace) -> dict[str, bool]:
    """The metrics writers the command line adds (``--tensorboard``, ``--wandb``), as config fields."""
    return {name: True for name in WRITER_FLAGS if getattr(args, name, False)}


def start_or_resume(args: argparse.Namespace, job_class: Any, config_flags: Sequence[str],
                    make_config: Callable[[], Any], default_out: Callable[[Any], str],
                    jobs: list[Any] | None = None) -> Any:
    """Build (or resume, ``--resume``) a search or training job and run it; None when interrupted by Ctrl-C.
    ``config_flags``: the flags a resume refuses, as it runs on the saved config; ``jobs`` receives the job."""
    if args.resume:
        given = [f"--{n.replace('_', '-')}" for n in config_flags
                 if n not in ("device", "threads") and getattr(args, n, None) is not None]
        settings = parse_sets(args.set)
        own = {f.name for f in dataclasses.fields(job_class.config_class)}
        settable = [name for name in RESUME_SETTABLE + RECOVERY_SETTABLE if name in own]
        given += [f"--set {key}=..." for key in settings if key not in settable]
        if given:
            may = f"may change only {', '.join(settable)}" if settable else "may change nothing"
            raise ConfigError(f"--resume continues a run with its saved config: drop {' '.join(given)} "
                              f"(on resume --set {may})")
        overrides = {k: getattr(args, k) for k in ("device", "threads") if getattr(args, k) is not None}
        overrides.update(writer_flags(args))  # for this process on: only a view of the metrics
        overrides.update(settings)
        job = job_class.resume(args.resume, progress=not args.quiet, **overrides)
    else:
        config = make_config()
        out = args.out or default_out(config)
        job = job_class(config, out, progress=not args.quiet)
        if not args.quiet and is_main_process():
            print(f"run directory: {out}", file=sys.stderr)
    if jobs is not None:
        jobs.append(job)
    try:
        with _interrupts_not_lost():
            return job.run()
    except KeyboardInterrupt:
        where = job.run_dir.path if job.run_dir is not None else "?"
        print(f"drnas: interrupted; the last checkpoint (after epoch {job.epoch}) is in {where}: "
              f"continue with `drnas {job.kind} --resume {where}`", file=sys.stderr)
        return None


@contextlib.contextmanager
def _interrupts_not_lost() -> Iterator[None]:
    """While a job runs, a Ctrl-C that lands in a finaliser or weakref callback (where Python cannot raise it:
    it prints "Exception ignored in ..." and runs on) is handed back to the main thread, so that it stops the
    run like any other instead of being dropped.

    The interrupt is re-sent from a new thread: sent from the hook itself, it would be raised inside the hook
    (at its next bytecode boundary) and be lost again. ``start_new_thread`` returns without waiting for the
    thread, which needs the GIL the main thread holds until the hook has returned.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            _thread.start_new_thread(_thread.interrupt_main, ())
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def print_summary(run_dir: Any) -> None:
    """The end-of-run block (:func:`drnas.analysis.report.run_summary`), on stdout."""
    from drnas.analysis.report import run_summary

    print("\n".join(run_summary(run_dir)))


__all__ = ["INTERRUPTED", "is_main_process", "print_summary", "start_or_resume", "writer_flags"]
