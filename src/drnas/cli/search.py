"""``drnas search``: run (or resume) an architecture search."""
from __future__ import annotations

import argparse
import time

from drnas.cli.job import INTERRUPTED, is_main_process, print_summary, start_or_resume, writer_flags
from drnas.config.resolve import parse_sets, resolve_search_config
from drnas.config.search import SearchConfig
from drnas.method.parts import with_parts
from drnas.method.strategies import check_method, with_method
from drnas.spaces import get_space

#: flags of ``drnas search`` that map one-to-one onto config fields
FIELD_FLAGS = ("space", "dataset", "data", "seed", "device", "benchmark", "batch_size", "threads", "train_images")


def split_names(given: list[str] | None) -> list[str]:
    """``--with a --with b,c`` -> ``[a, b, c]``."""
    return [name.strip() for item in given or () for name in item.split(",") if name.strip()]


def search_config(args: argparse.Namespace) -> SearchConfig:
    """The config of a new search from its command line (:func:`drnas.config.resolve.resolve_search_config`),
    checked against its method and space (:func:`drnas.method.strategies.check_method`) before anything is
    written."""
    flags = {name: getattr(args, name) for name in FIELD_FLAGS if getattr(args, name) is not None}
    if args.download:
        flags["download"] = True
    flags.update(writer_flags(args))
    config = resolve_search_config(apply_method=with_method, preset=args.preset, method=args.method,
                                   config_file=args.config, flags=flags, sets=parse_sets(args.set), epochs=args.epochs,
                                   apply_parts=with_parts, parts=split_names(args.with_parts))
    check_method(config, get_space(config.space, config.ops))
    return config


def command(args: argparse.Namespace) -> int:
    """Run the search (or continue it, ``--resume``) and print its summary."""
    from drnas.search import Search

    flags = [*FIELD_FLAGS, "preset", "method", "config", "epochs", "out"]
    result = start_or_resume(args, Search, flags, lambda: search_config(args),
                             lambda c: f"runs/{c.preset or 'custom'}-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if result is None:
        return INTERRUPTED
    if not is_main_process():
        return 0
    if result.run_dir is not None:
        print_summary(result.run_dir)
    else:
        print(f"architecture: {result.architecture}")
    return 0
