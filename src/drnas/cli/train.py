"""``drnas train``: retrain an architecture from scratch (or resume a training run)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any

from drnas.cli.job import INTERRUPTED, is_main_process, print_summary, run_dataset, start_or_resume, writer_flags
from drnas.cli.parser import BUDGET_FLAGS
from drnas.config.resolve import parse_sets, resolve_train_config
from drnas.config.train import PROTOCOLS, TrainConfig
from drnas.errors import ConfigError, shown

#: flags of ``drnas train`` that map one-to-one onto config fields
FIELD_FLAGS = ("dataset", "data", "epochs", "batch_size", "train_images", "test_images", "seed", "device", "threads")


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The config of a new training run from its command line (:func:`drnas.config.resolve.resolve_train_config`):
    the architecture stored as its text, the protocol by default the space's for the dataset; under a budget, the
    search run's most probable architecture that fits."""
    from drnas.analysis.budget import Budget
    from drnas.spaces import get_space
    from drnas.spaces.resolve import resolve_architecture

    if not args.arch:
        raise ConfigError("drnas train needs --arch NAME|FILE|RUN_DIR|TEXT (or --resume RUN_DIR)")
    budget = Budget.parse(*(getattr(args, name) for name in BUDGET_FLAGS))
    if not budget.empty and not os.path.isdir(os.path.expanduser(args.arch)):
        raise ConfigError(f"--max-params/--max-macs/--max-latency-ms pick from the distribution a search learned: "
                          f"--arch must be a search run directory, not {shown(args.arch)} (or drop the budget)")
    arch = resolve_architecture(args.arch)
    space = get_space(arch.space)
    searched, searched_data = run_dataset(args.arch)
    dataset = args.dataset or searched or (PROTOCOLS.get(args.protocol).dataset if args.protocol else "cifar10")
    flags = {name: getattr(args, name) for name in FIELD_FLAGS if getattr(args, name) is not None}
    if searched and not args.dataset:  # the search's data, as the network is the one searched for it
        flags["dataset"] = searched
        if searched_data and not args.data:
            flags["data"] = searched_data
    if args.download:
        flags["download"] = True
    flags.update(writer_flags(args))
    # a run directory or file is stored as the architecture itself, so the training run does not depend on it
    flags["arch"] = space.config_text(arch)
    config = resolve_train_config(protocol=args.protocol or space.default_protocol(dataset), config_file=args.config,
                                  flags=flags, sets=parse_sets(args.set))
    return config if budget.empty else _within_budget(args, config, budget)


def _within_budget(args: argparse.Namespace, config: TrainConfig, budget: Any) -> TrainConfig:
    """``config`` training the most probable architecture of the search run ``--arch`` that fits ``budget``."""
    from drnas.analysis.budget import derive_for_training

    found = derive_for_training(args.arch, config, budget)
    if not args.quiet and is_main_process():
        latency = f", {found.latency_ms:.3g} ms measured on {found.device}" if found.latency_ms is not None else ""
        print(f"within the budget ({budget.describe()}): {found.arch}  (probability {found.probability:.4g}, "
              f"{found.params / 1e6:.3f}M parameters, {found.macs / 1e6:.1f}M MACs{latency}; epoch {found.learned.epoch})",
              file=sys.stderr)
    return dataclasses.replace(config, arch=found.learned.space.config_text(found.arch))


def command(args: argparse.Namespace) -> int:
    """Train (or continue, ``--resume``), export the network where asked, and print the run's summary."""
    from drnas.engine.export import export_format
    from drnas.engine.runs import check_writable
    from drnas.train import Trainer

    for path in args.export:  # a path of unknown format or that cannot be written fails now, not after the training
        export_format(path)
        check_writable(path, "--export")
    flags = ["arch", "protocol", "config", *FIELD_FLAGS, "out", *BUDGET_FLAGS]  # a resume keeps device, threads
    jobs: list[Any] = []
    result = start_or_resume(args, Trainer, flags, lambda: train_config(args),
                             lambda c: f"runs/train-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}", jobs)
    if result is None:
        return INTERRUPTED
    if not is_main_process():
        return 0
    for path in args.export:
        print(f"exported: {jobs[0].export(path)}")
    print_summary(result.run_dir)
    return 0
