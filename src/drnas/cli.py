"""Command line: argument parsing only; the work is done by the library.

    drnas search --preset NAME [--dataset D] [--data DIR] [...] --out RUN_DIR
    drnas search --resume RUN_DIR
    drnas show RUN_DIR
    drnas nb201 query ARCH --benchmark FILE
    drnas train --arch NAME|FILE|RUN_DIR|TEXT [--protocol P] [--dataset D] [...] --out RUN_DIR
    drnas train --resume RUN_DIR
    drnas arch NAME|FILE|RUN_DIR|TEXT [--dataset D] [--json]
    drnas presets
    drnas methods
"""
from __future__ import annotations

import _thread
import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from typing import Any, Iterator, Sequence

from .version import __version__
from .config import (RECOVERY_SETTABLE, RESUME_SETTABLE, ConfigError, SearchConfig, apply_overrides, load_config_file, preset,
                     preset_names, set_total_epochs)
from .errors import DrnasError

#: exit status of a command stopped by Ctrl-C (128 + SIGINT, what shells report for an interrupted program)
INTERRUPTED = 130

#: flags of ``drnas search`` that map one-to-one onto config fields
_FIELD_FLAGS = {"space": str, "dataset": str, "data": str, "seed": int, "device": str, "benchmark": str,
                "batch_size": int, "threads": int, "train_images": int}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drnas", description="DrNAS: Dirichlet neural architecture search.")
    parser.add_argument("--version", action="version", version=f"drnas {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="run (or resume) an architecture search (DrNAS by default)",
                                 description="Run an architecture search. Values resolve as: preset < the method's "
                                             "own hyperparameters < --config file < flags and --set. The resolved "
                                             "config is saved in the run directory.")
    search.add_argument("--preset", help="named settings (see `drnas presets`); default nb201")
    search.add_argument("--method", help="search method (see `drnas methods`); default drnas")
    search.add_argument("--config", help="JSON or TOML file of config fields overriding the preset")
    search.add_argument("--space", help="search space (nb201)")
    search.add_argument("--dataset", help="cifar10, cifar100, imagenet16-120, digits (embedded) or npz")
    search.add_argument("--data", help="dataset directory, archive or .npz file")
    search.add_argument("--download", action="store_true", help="download CIFAR into --data if it is missing")
    search.add_argument("--epochs", type=int, help="total epochs; stages and warm-ups are rescaled to fit")
    search.add_argument("--batch-size", type=int, dest="batch_size")
    search.add_argument("--train-images", type=int, dest="train_images",
                        help="use only the first N training images (quick runs)")
    search.add_argument("--seed", type=int)
    search.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    search.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    search.add_argument("--benchmark", help="NB201 results CSV: log the NB201 accuracies of the current cell each epoch")
    search.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set lr=0.05 or "
                             "--set 'stages=[{\"epochs\": 10, \"partial_k\": 2}]' (repeatable)")
    search.add_argument("--out", help="run directory (default runs/PRESET-DATASET-TIME)")
    search.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    search.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")

    commands.add_parser("methods", help="list the search methods (--method NAME) and their papers")

    show = commands.add_parser("show", help="summarise a run directory")
    show.add_argument("run_dir")
    show.add_argument("--json", action="store_true", help="print architecture.json instead of a summary")
    show.add_argument("--top", type=int, default=0, metavar="K",
                      help="also list the K most frequent of 1,000 architectures drawn from the learned distribution")

    sample = commands.add_parser("sample", help="draw architectures from the distribution a search learned",
                                 description="Draw architectures from the distribution of one epoch of a search run "
                                             "(DrNAS: Dir(beta)); each draw is derived by the space's rule.")
    sample.add_argument("run_dir")
    sample.add_argument("--n", type=int, default=100, help="draws per epoch (default 100)")
    sample.add_argument("--epoch", type=int, help="the epoch (1-based; default: the last)")
    sample.add_argument("--all-epochs", action="store_true", help="every epoch: the spread of the draws over the search")
    sample.add_argument("--benchmark", help="NB201 results CSV: the draws' test accuracies")
    sample.add_argument("--plot", help="with --all-epochs and --benchmark: a PNG of min/median/max accuracy per epoch")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--json", action="store_true")

    nb201 = commands.add_parser("nb201", help="NAS-Bench-201 tools")
    nb201_commands = nb201.add_subparsers(dest="nb201_command", required=True)
    query = nb201_commands.add_parser("query", help="print one architecture's row of an NB201 results table")
    query.add_argument("arch", help="NB201 architecture string, e.g. '|nor_conv_3x3~0|+|...|'")
    query.add_argument("--benchmark", required=True, help="NB201 results CSV")
    query.add_argument("--json", action="store_true")

    train = commands.add_parser("train", help="retrain an architecture from scratch (or resume a training run)",
                                description="Train an architecture's evaluation network from scratch. Values resolve "
                                            "as: protocol < --config file < flags and --set.")
    train.add_argument("--arch", help="architecture: a name (see `drnas arch --list`), a file, a search run "
                                      "directory, a Genotype(...) text or an NB201 string")
    train.add_argument("--protocol", help="training protocol: darts-cifar, darts-imagenet or nb201 "
                                          "(default: by the architecture's space and the dataset)")
    train.add_argument("--config", help="JSON or TOML file of training config fields")
    train.add_argument("--dataset", help="cifar10, cifar100, imagenet16-120, imagenet (folders), digits or npz")
    train.add_argument("--data", help="dataset directory, archive or .npz file")
    train.add_argument("--download", action="store_true", help="download CIFAR into --data if it is missing")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, dest="batch_size")
    train.add_argument("--train-images", type=int, dest="train_images", help="use only the first N training images")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    train.add_argument("--threads", type=int)
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override any training config field, e.g. --set drop_path=0.2 (repeatable)")
    train.add_argument("--out", help="run directory (default runs/train-ARCH-DATASET-TIME)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the training run in RUN_DIR")
    train.add_argument("--export", action="append", default=[], metavar="PATH",
                       help="after training, write the network to PATH: .onnx for ONNX, else TorchScript (repeatable)")
    train.add_argument("--quiet", action="store_true")

    arch = commands.add_parser("arch", help="print an architecture with its network's parameters and MACs")
    arch.add_argument("arch", nargs="?", help="a name, a file, a run directory, a Genotype(...) text or an NB201 string")
    arch.add_argument("--dataset", default="cifar10", help="sets classes and input size (default cifar10)")
    arch.add_argument("--protocol", help="network size from this training protocol (default: by space and dataset)")
    arch.add_argument("--channels", type=int)
    arch.add_argument("--cells", type=int)
    arch.add_argument("--json", action="store_true")
    arch.add_argument("--list", action="store_true", help="list the named architectures")

    commands.add_parser("presets", help="list the named search presets and training protocols")
    return parser


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like FIELD=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def resolve_search_config(args: argparse.Namespace) -> SearchConfig:
    """preset < the method's defaults < config file < flags < --set."""
    from .strategies import with_method

    config = preset(args.preset or "nb201")
    from_file = load_config_file(args.config) if args.config else {}
    settings = _parse_set(args.set)
    method = args.method or settings.get("method") or from_file.get("method") or config.method
    config = with_method(config, str(method))
    config = apply_overrides(config, from_file)
    flags = {name: getattr(args, name) for name in _FIELD_FLAGS if getattr(args, name) is not None}
    if args.download:
        flags["download"] = True
    if "space" in flags and args.preset and flags["space"] != config.space:
        raise ConfigError(f"--space {flags['space']} contradicts preset {args.preset} (space {config.space})")
    config = apply_overrides(config, flags)
    if args.epochs is not None:
        config = set_total_epochs(config, args.epochs)
    config = apply_overrides(config, _parse_set(args.set))
    return config.validate()


def _start_or_resume(args: argparse.Namespace, job_class: Any, config_flags: Sequence[str], make_config: Any,
                     default_out: Any, jobs: list[Any] | None = None) -> Any:
    """Build (or resume) a search or training job and run it; None when interrupted by Ctrl-C."""
    log = (lambda msg: None) if args.quiet else None
    if args.resume:
        given = [f"--{n.replace('_', '-')}" for n in config_flags
                 if n not in ("device", "threads") and getattr(args, n, None) is not None]
        settings = _parse_set(args.set)
        own = {f.name for f in dataclasses.fields(job_class.config_class)}
        settable = [name for name in RESUME_SETTABLE + RECOVERY_SETTABLE if name in own]
        given += [f"--set {key}=..." for key in settings if key not in settable]
        if given:
            may = f"may change only {', '.join(settable)}" if settable else "may change nothing"
            raise ConfigError(f"--resume continues a run with its saved config: drop {' '.join(given)} "
                              f"(on resume --set {may})")
        overrides = {k: getattr(args, k) for k in ("device", "threads") if getattr(args, k) is not None}
        overrides.update(settings)
        job = job_class.resume(args.resume, progress=not args.quiet, log=log, **overrides)
    else:
        config = make_config()
        out = args.out or default_out(config)
        job = job_class(config, out, progress=not args.quiet, log=log)
        if not args.quiet and _is_main_process():
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


def _run_search(args: argparse.Namespace) -> int:
    from .search import Search

    flags = list(_FIELD_FLAGS) + ["preset", "method", "config", "epochs", "out"]
    result = _start_or_resume(args, Search, flags, lambda: resolve_search_config(args),
                              lambda c: f"runs/{c.preset or 'custom'}-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if result is None:
        return INTERRUPTED
    if not _is_main_process():
        return 0
    last = result.metrics[-1] if result.metrics else {}
    if last.get("nb201"):
        print("nb201: " + " ".join(f"{k}={v:.2f}" for k, v in last["nb201"].items()))
    print(f"architecture: {result.architecture}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .runs import RunDir

    run = RunDir(args.run_dir)
    run.require()
    arch = json.loads(run.architecture.read_text()) if run.architecture.exists() else None
    if args.json:
        print(json.dumps(arch, indent=2))
        return 0
    config = run.read_config()
    metrics = run.read_metrics()
    if config.get("kind") == "train":
        return _show_training(run, config, metrics, arch)
    total = sum(s["epochs"] for s in config["stages"])
    print(f"run:      {run.path}")
    print(f"preset:   {config.get('preset')}  method: {config.get('method', 'drnas')}  space: {config['space']}  "
          f"dataset: {config['dataset']}  seed: {config['seed']}")
    print("stages:   " + ", ".join(f"{s['epochs']} ep K={s['partial_k']} ops={s['ops_kept'] or 'all'} "
                                    f"warm-up={s['arch_warmup']}" for s in config["stages"]))
    print(f"progress: {len(metrics)}/{total} epochs" + (" (finished)" if len(metrics) >= total else ""))
    if metrics:
        m = metrics[-1]
        if "train_loss" in m:
            print(f"last:     train {m['train_loss']:.3f}/{m['train_acc']:.1f}%  valid {m['valid_loss']:.3f}/"
                  f"{m['valid_acc']:.1f}%  lr {m['lr']:.4g}")
        else:  # a benchmark-query search
            print(f"last:     {m['queries']} queries, best table validation accuracy {m['best_valid_acc']:.2f}")
        if m.get("nb201"):
            print("nb201:    " + "  ".join(f"{k}={v:.2f}" for k, v in m["nb201"].items()))
    if arch:
        print(f"arch:     {arch['architecture'].get('arch', arch['architecture'])}")
        ops = arch["ops"]
        width = max(len(o) for o in ops)
        print(("Dirichlet mean" if config.get("method", "drnas").startswith("drnas") else "expected weight")
              + " per edge (pruned ops shown as -):")
        print("  edge   " + " ".join(f"{o[:width]:>{width}}" for o in ops))
        for edge in arch["edges"]:
            cells = [f"{v:>{width}.3f}" if op in edge["kept"] else f"{'-':>{width}}" for op, v in zip(ops, edge["mean"])]
            print(f"  {edge['edge']:<6} " + " ".join(cells))
    if metrics and metrics[-1].get("entropy"):
        entropy = metrics[-1]["entropy"]
        print(f"entropy:  {sum(entropy) / len(entropy):.3f} nats per edge on average (of the mixing weights' mean; "
              f"min {min(entropy):.3f}, max {max(entropy):.3f})")
    if args.top:
        from .sampling import sample_run

        (draws,) = sample_run(run.path, n=1000)
        print(f"top {args.top} of 1000 draws from the learned distribution (epoch {draws.epoch}):")
        for text, count in draws.counts[:args.top]:
            print(f"  {count / draws.total:6.1%}  {text}")
    return 0


def _show_training(run: Any, config: dict[str, Any], metrics: list[dict[str, Any]], arch: Any) -> int:
    total = config["epochs"]
    print(f"run:      {run.path}  (training)")
    print(f"protocol: {config.get('preset')}  dataset: {config['dataset']}  seed: {config['seed']}  "
          f"batch: {config['batch_size']}  lr: {config['lr']} ({config['schedule']})")
    if arch:
        text = arch["architecture"].get("arch") or arch["architecture"]
        print(f"arch:     {text}")
    print(f"progress: {len(metrics)}/{total} epochs" + (" (finished)" if len(metrics) >= total else ""))
    if metrics:
        m = metrics[-1]
        print(f"last:     train {m['train_loss']:.3f}/{m['train_acc']:.1f}%  test top1 {m['top1']:.2f}%  "
              f"top5 {m['top5']:.2f}%  lr {m['lr']:.4g}")
    result = run.path / "result.json"
    if result.exists():
        r = json.loads(result.read_text())
        print(f"network:  {r['params_without_aux'] / 1e6:.3f}M parameters without the auxiliary head "
              f"({r['params'] / 1e6:.3f}M with), {r['macs'] / 1e6:.1f}M MACs")
    return 0


def _nb201_query(args: argparse.Namespace) -> int:
    from .bench.nb201 import NB201Table
    from .spaces.nb201 import NB201Arch

    arch = NB201Arch.parse(args.arch)
    row = NB201Table.load(args.benchmark).query(arch)
    if args.json:
        print(json.dumps({"arch": str(arch), **row}, indent=2))
    else:
        print(f"arch: {arch}")
        for key, value in row.items():
            print(f"{key:>24}: {value:g}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .bench.nb201 import NB201Table
    from .plots import sampled_accuracies
    from .sampling import sample_run

    draws = sample_run(args.run_dir, args.n, 0 if args.all_epochs else args.epoch, args.seed)
    table = NB201Table.load(args.benchmark) if args.benchmark else None
    column = f"{_nb201_prefix(args.run_dir)}_test_acc"

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
    if args.plot:
        if table is None or not args.all_epochs:
            raise ConfigError("--plot draws the accuracy spread over the epochs: give --all-epochs and --benchmark")
        from .plots import plot_sampled_accuracy

        plot_sampled_accuracy(rows, column, args.plot)
    return 0


def _nb201_prefix(run_dir: str) -> str:
    """The NB201 table's column prefix of a run's dataset (cifar10 when the table has none for it)."""
    from .runs import RunDir

    dataset = RunDir(run_dir).read_config().get("dataset", "cifar10")
    return {"cifar100": "cifar100", "imagenet16-120": "imagenet16"}.get(dataset, "cifar10")


def _methods(args: argparse.Namespace) -> int:
    from .strategies import METHODS, method_names

    print("search methods (drnas search --method NAME):")
    for name in method_names():
        print(f"  {name:<12} {METHODS.docs()[name]}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .train import PROTOCOLS

    print("search presets (drnas search --preset NAME):")
    for name, doc in preset_names().items():
        print(f"  {name:<20} {doc}")
    print("training protocols (drnas train --protocol NAME):")
    for name, doc in PROTOCOLS.names().items():
        print(f"  {name:<20} {doc}")
    return 0


def _train_config(args: argparse.Namespace):
    from .resolve import resolve_architecture
    from .train import PROTOCOLS, default_protocol

    if not args.arch:
        raise ConfigError("drnas train needs --arch NAME|FILE|RUN_DIR|TEXT (or --resume RUN_DIR)")
    arch = resolve_architecture(args.arch)
    dataset = args.dataset or ("imagenet" if args.protocol == "darts-imagenet" else "cifar10")
    config = PROTOCOLS.get(args.protocol or default_protocol(arch.space, dataset))
    if args.config:
        config = apply_overrides(config, load_config_file(args.config))
    flags = {name: getattr(args, name) for name in ("dataset", "data", "epochs", "batch_size", "train_images", "seed",
                                                    "device", "threads") if getattr(args, name) is not None}
    if args.download:
        flags["download"] = True
    # a run directory or file is stored as the architecture itself, so the training run does not depend on it
    config = apply_overrides(config, {**flags, "arch": str(arch) if arch.space == "nb201" else json.dumps(arch.to_json())})
    return apply_overrides(config, _parse_set(args.set)).validate()


def _train(args: argparse.Namespace) -> int:
    from .train import Trainer

    flags = ["arch", "protocol", "config", "dataset", "data", "epochs", "batch_size", "train_images", "seed", "out"]
    jobs: list[Any] = []
    result = _start_or_resume(args, Trainer, flags, lambda: _train_config(args),
                              lambda c: f"runs/train-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}", jobs)
    if result is None:
        return INTERRUPTED
    if not _is_main_process():
        return 0
    for path in args.export:
        print(f"exported: {jobs[0].export(path)}")
    r = result.report
    print(f"top1: {result.top1:.2f}  top5: {result.top5:.2f}  params: {r['params_without_aux'] / 1e6:.3f}M "
          f"(with auxiliary head {r['params'] / 1e6:.3f}M)  MACs: {r['macs'] / 1e6:.1f}M")
    return 0


def _arch(args: argparse.Namespace) -> int:
    from .archs import architecture_names, get_architecture
    from .resolve import resolve_architecture
    from .spaces import get_space
    from .train import PROTOCOLS, default_protocol, model_report, network_spec

    if args.list or not args.arch:
        for name in architecture_names():
            entry = get_architecture(name)
            print(f"{name:<16} {entry.arch.space:<6} {entry.source}")
        return 0
    arch = resolve_architecture(args.arch)
    config = PROTOCOLS.get(args.protocol or default_protocol(arch.space, args.dataset))
    sizes = {k: getattr(args, k) for k in ("channels", "cells") if getattr(args, k) is not None}
    config = apply_overrides(config, sizes)
    info = _dataset_shape(args.dataset)
    model = get_space(arch.space).build_network(arch, network_spec(config, info))
    report = {"space": arch.space, "architecture": arch.to_json(), "text": str(arch), "dataset": args.dataset,
              "channels": config.channels, "cells": config.cells if arch.space == "darts" else config.cells_per_stage,
              **model_report(model, info)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"architecture: {arch}")
    size = f"{config.cells} cells" if arch.space == "darts" else f"N={config.cells_per_stage}"
    print(f"network:      {arch.space}, {config.channels} channels, {size}, {info.num_classes} classes, "
          f"{info.image_size}x{info.image_size} input")
    print(f"parameters:   {report['params_without_aux'] / 1e6:.3f}M without the auxiliary head, "
          f"{report['params'] / 1e6:.3f}M with it")
    print(f"MACs:         {report['macs'] / 1e6:.1f}M per image")
    return 0


#: input shape and classes of each dataset, for counting without loading any data
_DATASET_SHAPES = {"cifar10": (10, 3, 32), "cifar100": (100, 3, 32), "imagenet16-120": (120, 3, 16),
                   "imagenet": (1000, 3, 224), "digits": (10, 1, 8)}


def _dataset_shape(name: str):
    from .data import DatasetInfo

    if name not in _DATASET_SHAPES:
        raise ConfigError(f"unknown dataset {name!r} for counting; choose one of {', '.join(_DATASET_SHAPES)}")
    classes, channels, size = _DATASET_SHAPES[name]
    return DatasetInfo(name, classes, channels, size, (0.5,) * channels, (0.25,) * channels, True, 0)


def main(argv: Sequence[str] | None = None) -> int:
    from .distributed import exit_worker, shutdown

    args = _parser().parse_args(argv)
    handlers = {"search": _run_search, "show": _show, "nb201": _nb201_query, "presets": _presets, "train": _train,
                "arch": _arch, "methods": _methods, "sample": _sample}
    try:
        code = handlers[args.command](args)
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


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


def _report(err: DrnasError) -> None:
    """One line per failure: a collective failure (every rank sees the same NaN) is told by rank 0 only."""
    from .training import NonFiniteLossError

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


if __name__ == "__main__":
    sys.exit(main())
