"""``drnas sample``: draw architectures from the distribution a search learned."""
from __future__ import annotations

import argparse
import json
import sys

from drnas.config.limits import check_limit
from drnas.errors import ConfigError


def command(args: argparse.Namespace) -> int:
    """Print the draws of one epoch (``--all-epochs``: of each), with their NB201 accuracies when a table is
    given; ``--plot``: the accuracy spread over the epochs."""
    from drnas.analysis.plots import sampled_accuracies
    from drnas.analysis.sampling import sample_run
    from drnas.bench import BENCHMARKS, open_table
    from drnas.engine.runs import RunDir, check_writable
    from drnas.spaces import get_space

    check_limit("draws", args.n, "--n")
    check_limit("seed", args.seed, "--seed")
    if args.plot:  # before any drawing
        if not args.benchmark or not args.all_epochs:
            raise ConfigError("--plot draws the accuracy spread over the epochs: give --all-epochs and --benchmark")
        check_writable(args.plot, "--plot")
    draws = sample_run(args.run_dir, args.n, 0 if args.all_epochs else args.epoch, args.seed)
    config = RunDir(args.run_dir).read_config()
    dataset, space = config.get("dataset", "cifar10"), get_space(config.get("space", "nb201"), config.get("ops"))
    # the test column of the searched dataset; a table without one (or of another op set) is skipped with a note
    table = open_table(space, args.benchmark, lambda note: print(note, file=sys.stderr), dataset)
    benchmark = BENCHMARKS.get(space.benchmark) if space.benchmark in BENCHMARKS else None
    column = (benchmark.column(dataset) if benchmark else None) or "test_acc"

    def accuracy(arch: str) -> float | None:
        return table.query(arch).get(column) if table is not None else None

    rows = [{"epoch": d.epoch, "draws": d.total,
             "architectures": [{"arch": a, "count": c, column: accuracy(a)} for a, c in d.counts]} for d in draws]
    if args.json:
        print(json.dumps(rows, indent=2))
    for row in ([] if args.json else rows):
        accs = sampled_accuracies(row, column)
        spread = (f"  {column}: min {accs[0]:.2f} median {accs[len(accs) // 2]:.2f} max {accs[-1]:.2f}"
                  if accs else "")
        print(f"epoch {row['epoch']}: {len(row['architectures'])} distinct of {row['draws']} draws{spread}")
        if not args.all_epochs:
            for entry in row["architectures"][:20]:
                acc = f"  {entry[column]:.2f}" if entry[column] is not None else ""
                print(f"  {entry['count']:>5}  {entry['count'] / row['draws']:6.1%}  {entry['arch']}{acc}")
    if args.plot and table is not None:  # else the note above said why there are no accuracies to draw
        from drnas.analysis.plots import plot_sampled_accuracy

        plot_sampled_accuracy(rows, column, args.plot)
    return 0
