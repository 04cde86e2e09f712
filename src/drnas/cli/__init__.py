"""Command line: argument parsing and printing only; the work is done by the library.

    drnas search --preset NAME [--dataset D] [--data DIR] [...] --out RUN_DIR
    drnas search --resume RUN_DIR
    drnas sweep --method M1,M2 --seeds 0-3 [--grid FIELD=V1,V2] [...] --out SWEEP_DIR
    drnas show RUN_DIR [--plots [DIR]]
    drnas sample RUN_DIR [--all-epochs] [--benchmark FILE]
    drnas nb201 query ARCH --benchmark FILE
    drnas train --arch NAME|FILE|RUN_DIR|TEXT [--protocol P] [--dataset D] [...] --out RUN_DIR
    drnas train --resume RUN_DIR
    drnas derive RUN_DIR [--max-params 3.5M] [--max-macs 600M] [--max-latency-ms X] [--json]
    drnas arch NAME|FILE|RUN_DIR|TEXT [--dataset D] [--json] [--plot PATH]
    drnas latency --space S [--device cpu|cuda] [--batch B] [--repeats N] [--check N] [--out TABLE.csv]
    drnas proxies --space S --dataset D --data FILE --archs N|all|FILE [--proxies a,b] [--benchmark FILE] [--json]
    drnas presets
    drnas methods [NAME]
    drnas plugins

Every subcommand takes ``--plugin MODULE`` (repeatable): a module imported before the command line is parsed,
which registers methods, spaces, ops, datasets... (:mod:`drnas.registry.plugins`; also ``DRNAS_PLUGINS`` and
installed ``drnas.plugins`` entry points).

:mod:`drnas.cli.parser` builds the parser; each subcommand is one module (``drnas.cli.search``, ...). This module
runs one: its log lines on stderr, and any :class:`~drnas.errors.DrnasError` as one ``drnas: error:`` line.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator, Sequence

from drnas.cli import arch, derive, latency, lists, nb201, proxies, sample, search, show, sweep, train
from drnas.cli.job import INTERRUPTED
from drnas.cli.parser import build_parser
from drnas.errors import DrnasError

#: each subcommand's handler: the parsed arguments in, the exit status out
HANDLERS = {"search": search.command, "sweep": sweep.command, "methods": lists.methods, "show": show.command,
            "sample": sample.command, "nb201": nb201.command, "train": train.command, "arch": arch.command,
            "derive": derive.command, "latency": latency.command, "proxies": proxies.command, "presets": lists.presets, "plugins": lists.plugins, "datasets": lists.datasets}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``drnas`` with ``argv`` (default: the process's arguments); the exit status: 0, 1 when some work
    failed (a sweep's run), 2 for a ``drnas: error:``, 130 when interrupted."""
    from drnas.engine.distributed import exit_worker, shutdown
    from drnas.registry import plugins

    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # before parsing: the parser's help lists the registered names, a plugin's among them
        plugins.load_all(plugins.flag_values(argv))
    except DrnasError as err:
        _report(err)
        return 2
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING if quiet else logging.INFO
    try:
        with _logging_to_stderr(level):
            code = HANDLERS[args.command](args)
    except DrnasError as err:
        _report(err)
        code = 2
    except BrokenPipeError:
        # the reader of our output went away (`drnas show RUN | head`): stop quietly; stdout goes to /dev/null so
        # that flushing it at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    finally:
        had_group = shutdown()
    if had_group:
        exit_worker(code)  # a torchrun worker: see exit_worker for why it skips interpreter teardown
    return code


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (a test's capture, a redirected stream)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextlib.contextmanager
def _logging_to_stderr(level: int) -> Iterator[None]:
    """The library's log messages (logger ``drnas``) as plain lines on stderr at ``level`` and above, for one
    command: INFO by default, WARNING with --quiet, DEBUG with -v. Restored afterwards, so that a program calling
    :func:`main` keeps its own logging."""
    logger = logging.getLogger("drnas")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # the lines are the command's output, not also the root logger's
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _report(err: DrnasError) -> None:
    """One line per failure: a collective failure (every rank sees the same NaN) is told by rank 0 only."""
    from drnas.engine.job import NonFiniteLossError

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and rank > 0 and isinstance(err, NonFiniteLossError):
        return
    where = f" (rank {rank} of {world})" if world > 1 else ""
    print(f"drnas: error{where}: {_one_line(str(err))}", file=sys.stderr)


def _one_line(text: str, limit: int = 800) -> str:
    """A message as one printable line: control characters from paths or text the user gave (a newline, a
    terminal escape) are escaped, and the line is cut at ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


__all__ = ["HANDLERS", "INTERRUPTED", "main"]
