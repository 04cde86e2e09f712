"""``drnas show``: summarise a run directory, or write its pictures."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drnas.cli.job import print_summary

if TYPE_CHECKING:  # annotations only: the command imports the analysis when it runs
    from drnas.analysis.learned import LearnedDistribution


def command(args: argparse.Namespace) -> int:
    """Print the summary of a search or training run (``--json``: its architecture.json; ``--plots``: write its
    pictures)."""
    from drnas.engine.runs import RunDir

    run = RunDir(args.run_dir)
    run.require()
    if args.plots is not None:
        from drnas.analysis.diagrams import run_pictures
        from drnas.engine.runs import check_writable

        if args.plots and not Path(args.plots).is_file():  # a folder to make, or one that must take new files
            check_writable(Path(args.plots) / "cells.svg", "--plots")

        for path in run_pictures(run.path, args.plots or None):
            print(path)
        return 0
    from drnas.analysis.learned import LearnedDistribution, read_architecture, saved_config
    from drnas.config.train import TrainConfig

    arch = read_architecture(run)
    if args.json:
        print(json.dumps(arch, indent=2))
        return 0
    metrics = run.read_metrics()
    if run.read_config().get("kind") == "train":
        return _show_training(run, saved_config(run, TrainConfig), metrics)
    config = saved_config(run)
    print(f"{'search:':<14}preset {config.preset}, method {config.method}, space {config.space}, dataset "
          f"{config.dataset}, seed {config.seed}")
    if config.parts:
        settings = {name: ", ".join(f"{k}={v}" for k, v in config.part_settings.get(name, {}).items())
                    for name in config.parts}
        print(f"{'parts:':<14}" + ", ".join(f"{name} ({text})" if text else name for name, text in settings.items()))
    stopped = metrics[-1].get("stopped") if metrics else None
    if isinstance(stopped, dict):
        print(f"{'stopped:':<14}after epoch {stopped.get('epoch')}: {stopped.get('reason')} (keeps the cell of epoch "
              f"{stopped.get('kept_epoch')})")
    print(f"{'stages:':<14}" + ", ".join(f"{s.epochs} ep K={s.partial_k} ops={s.ops_kept or 'all'} "
                                          f"warm-up={s.arch_warmup}" + (f" cells={s.cells}" if s.cells else "")
                                          for s in config.stages))
    if metrics and "train_loss" in metrics[-1]:
        m = metrics[-1]
        print(f"{'last epoch:':<14}train {_number(m, 'train_loss', '.3f')}/{_number(m, 'train_acc', '.1f')}%  valid "
              f"{_number(m, 'valid_loss', '.3f')}/{_number(m, 'valid_acc', '.1f')}%  lr {_number(m, 'lr', '.4g')}")
    print_summary(run.path)
    if arch:
        _print_distribution(LearnedDistribution.from_run(run.path))
    entropy = metrics[-1].get("entropy") if metrics else None
    if isinstance(entropy, list) and entropy and all(isinstance(e, (int, float)) for e in entropy):
        print(f"{'entropy:':<14}{sum(entropy) / len(entropy):.3f} nats per edge on average (of the mixing weights' mean; "
              f"min {min(entropy):.3f}, max {max(entropy):.3f})")
    if args.top:
        from drnas.analysis.sampling import sample_run

        (draws,) = sample_run(run.path, n=1000)
        print(f"top {args.top} of 1000 draws from the learned distribution (epoch {draws.epoch}):")
        for text, count in draws.counts[:args.top]:
            print(f"  {count / draws.total:6.1%}  {text}")
    return 0


def _print_distribution(learned: LearnedDistribution) -> None:
    """The learned distribution per edge and op: the numbers the search wrote for its last epoch."""
    ops = learned.space.ops
    width = max(len(o) for o in ops)
    means = learned.recorded if learned.recorded is not None else learned.weights
    print(f"{learned.label} per edge (pruned ops shown as -):")
    print("  edge   " + " ".join(f"{o[:width]:>{width}}" for o in ops))
    for name, row, kept in zip(learned.space.edge_names(), means.tolist(), learned.kept.tolist()):
        cells = [f"{v:>{width}.3f}" if k else f"{'-':>{width}}" for v, k in zip(row, kept)]
        print(f"  {name:<6} " + " ".join(cells))


def _number(record: dict[str, Any], key: str, spec: str) -> str:
    """``record[key]`` written with ``spec``, or ``-`` where the epoch did not record it (e.g. no test split)."""
    value = record.get(key)
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _show_training(run: Any, config: Any, metrics: list[dict[str, Any]]) -> int:
    print(f"{'training:':<14}protocol {config.preset}, dataset {config.dataset}, seed {config.seed}, "
          f"batch {config.batch_size}, lr {config.lr} ({config.schedule})")
    if metrics:
        m = metrics[-1]
        print(f"{'last epoch:':<14}train {_number(m, 'train_loss', '.3f')}/{_number(m, 'train_acc', '.1f')}%  test "
              f"loss {_number(m, 'test_loss', '.3f')}  lr {_number(m, 'lr', '.4g')}")
    print_summary(run.path)
    return 0
