"""Command line: argument parsing only; the work is done by the library.

    drnas search --preset NAME [--dataset D] [--data DIR] [...] --out RUN_DIR
    drnas search --resume RUN_DIR
    drnas show RUN_DIR [--plots [DIR]]
    drnas nb201 query ARCH --benchmark FILE
    drnas train --arch NAME|FILE|RUN_DIR|TEXT [--protocol P] [--dataset D] [...] --out RUN_DIR
    drnas train --resume RUN_DIR
    drnas derive RUN_DIR [--max-params 3.5M] [--max-macs 600M] [--max-latency-ms X] [--json]
    drnas arch NAME|FILE|RUN_DIR|TEXT [--dataset D] [--json] [--plot PATH]
    drnas presets
    drnas methods
"""
from __future__ import annotations

import _thread
import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Any, Iterator, Sequence

from drnas.version import __version__
from drnas.config.search import (RECOVERY_SETTABLE, RESUME_SETTABLE, ConfigError, SearchConfig, apply_overrides, load_config_file, preset,
                     preset_names, set_total_epochs)
from drnas.errors import DrnasError

#: exit status of a command stopped by Ctrl-C (128 + SIGINT, what shells report for an interrupted program)
INTERRUPTED = 130

#: flags of ``drnas search`` that map one-to-one onto config fields
_FIELD_FLAGS = {"space": str, "dataset": str, "data": str, "seed": int, "device": str, "benchmark": str,
                "batch_size": int, "threads": int, "train_images": int}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drnas", description="DrNAS: Dirichlet neural architecture search.")
    parser.add_argument("--version", action="version", version=f"drnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print debugging details (device settings, "
                                                                    "memory, compile checks) on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="run (or resume) an architecture search (DrNAS by default)",
                                 description="Run an architecture search. Values resolve as: preset < the method's "
                                             "own hyperparameters < --config file < flags and --set. The resolved "
                                             "config is saved in the run directory.")
    _add_search_options(search)
    search.add_argument("--method", help="search method (see `drnas methods`); default drnas")
    search.add_argument("--dataset", help="cifar10, cifar100, imagenet16-120, imagenet (folders), digits (embedded) "
                                          "or npz")
    search.add_argument("--data", help="dataset directory, archive or .npz file")
    search.add_argument("--seed", type=int)
    search.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    search.add_argument("--out", help="run directory (default runs/PRESET-DATASET-TIME)")
    search.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    search.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (warnings only)")
    _add_writer_options(search)

    sweep = commands.add_parser(
        "sweep", help="run a grid of searches (methods x seeds x datasets x config fields) in parallel",
        description="Run every combination of the listed methods, seeds, datasets and --grid values as ordinary "
                    "search run directories under --out, several at a time on this machine (the cores divided "
                    "among the jobs) or as tasks on a Ray cluster (--ray), then summarise them as mean ± std over "
                    "seeds (summary.md, summary.csv, summary.png). A failed run does not stop the others; "
                    "--resume DIR retries it and continues interrupted runs from their checkpoints.")
    sweep.add_argument("--method", help="comma-separated search methods, e.g. drnas,darts,gdas (default drnas)")
    sweep.add_argument("--seeds", help="seeds: a range and/or a list, e.g. 0-3 or 0,2,5 (default 0)")
    sweep.add_argument("--dataset", help="comma-separated datasets, e.g. cifar10,cifar100")
    sweep.add_argument("--data", action="append", default=[], metavar="[DATASET=]PATH",
                       help="the data: one PATH for every dataset, or DATASET=PATH per dataset (repeatable)")
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                       help="also sweep a config field or a stage field, e.g. --grid partial_k=1,2,4 (repeatable)")
    sweep.add_argument("--file", help="TOML sweep file: [grid] axes, [data] paths, [search] options (see the docs)")
    _add_search_options(sweep)
    sweep.add_argument("--threads", type=int, help="CPU threads per run (default: the cores divided among the jobs)")
    sweep.add_argument("--jobs", type=int, help="runs at a time on this machine (default: one per core up to 4 "
                                                 "cores, then one per 4 cores)")
    sweep.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: its address, 'auto', or 'local' "
                                                        "(a Ray instance on this machine); needs drnas[ray]")
    sweep.add_argument("--out", help="sweep directory (default sweeps/TIME)")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue a sweep: retry failed runs, resume the rest")
    sweep.add_argument("--status", metavar="SWEEP_DIR", help="print the state of each run and an ETA, then exit")
    sweep.add_argument("--summary", metavar="SWEEP_DIR", help="rewrite the summary of a sweep directory, then exit")
    sweep.add_argument("--quiet", action="store_true", help="no line per finished run")

    commands.add_parser("methods", help="list the search methods (--method NAME) and their papers")

    show = commands.add_parser("show", help="summarise a run directory")
    show.add_argument("run_dir")
    show.add_argument("--json", action="store_true", help="print architecture.json instead of a summary")
    show.add_argument("--top", type=int, default=0, metavar="K",
                      help="also list the K most frequent of 1,000 architectures drawn from the learned distribution")
    show.add_argument("--plots", nargs="?", const="", metavar="DIR",
                      help="instead of the summary, write the run's pictures into DIR (default RUN/plots): the cells "
                           "(SVG, PNG), the heatmap of the learned distribution, the plots over the epochs")

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
    train.add_argument("--train-images", type=int, dest="train_images", help="use only the first N training images "
                       "(ImageNet folders: N spread over the classes)")
    train.add_argument("--test-images", type=int, dest="test_images",
                       help="evaluate on only the first N test images (quicker, noisier; ImageNet folders: N spread "
                            "over the classes)")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    train.add_argument("--threads", type=int)
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override any training config field, e.g. --set drop_path=0.2 (repeatable)")
    train.add_argument("--out", help="run directory (default runs/train-DATASET-TIME)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the training run in RUN_DIR")
    train.add_argument("--export", action="append", default=[], metavar="PATH",
                       help="after training, write the network without its auxiliary head to PATH, for inference "
                            "at any batch size: .pt2 for torch.export (load with torch.export.load(PATH).module()), "
                            ".pt for TorchScript, .onnx for ONNX (needs drnas[export]) (repeatable)")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (warnings only)")
    _add_budget_options(train, " (with --arch RUN_DIR of a search: train its most probable architecture that fits)")
    _add_writer_options(train)

    arch = commands.add_parser("arch", help="print an architecture with its network's parameters and MACs")
    arch.add_argument("arch", nargs="?", help="a name, a file, a run directory, a Genotype(...) text or an NB201 string")
    arch.add_argument("--dataset", default="cifar10", help="sets classes and input size (default cifar10)")
    arch.add_argument("--protocol", help="network size from this training protocol (default: by space and dataset)")
    arch.add_argument("--channels", type=int)
    arch.add_argument("--cells", type=int)
    arch.add_argument("--json", action="store_true")
    arch.add_argument("--list", action="store_true", help="list the named architectures")
    arch.add_argument("--plot", metavar="PATH", help="instead of counting, draw the cells into PATH (.svg or .png; "
                                                     "graphviz when installed, else matplotlib)")

    derive = commands.add_parser(
        "derive", help="the most probable architecture of a search run within a parameter/MAC/latency budget",
        description="The most probable architecture of the distribution a search run learned (per edge, the "
                    "expected mixing weights over the kept ops) whose evaluation network fits a budget: parameters "
                    "without the auxiliary head, MACs per image, latency measured on this device. Sizes may be "
                    "written 3.5M, 600M, 2e6, 1.2G or 500k. Without a budget: the run's own derivation.")
    derive.add_argument("run_dir")
    _add_budget_options(derive, "")
    derive.add_argument("--dataset", help="sets classes and input size (default: the run's dataset, else cifar10)")
    derive.add_argument("--protocol", help="network size from this training protocol (default: by space and dataset)")
    derive.add_argument("--channels", type=int)
    derive.add_argument("--cells", type=int, help="DARTS: cells in all; NB201: cells per stage (N)")
    derive.add_argument("--epoch", type=int, help="the distribution of this epoch (1-based; default: the last)")
    derive.add_argument("--beam", type=int, default=64,
                        help="beam width where the space is too large to score every architecture (DARTS; default 64)")
    derive.add_argument("--device", default="auto",
                        help="where latency is measured: auto (default), cpu, cuda or cuda:N")
    derive.add_argument("--json", action="store_true")

    commands.add_parser("presets", help="list the named search presets and training protocols")
    for command in commands.choices.values():  # -v also after the command; SUPPRESS keeps a -v given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="also print debugging details on stderr")
    return parser


#: the metrics writers a run may add (drnas.engine.writers): each a flag of search and train and a config field
_WRITER_FLAGS = ("tensorboard", "wandb")


def _add_writer_options(parser: argparse.ArgumentParser) -> None:
    """``--tensorboard`` and ``--wandb`` of ``drnas search`` and ``drnas train`` (config fields of the same name)."""
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write the metrics (and at the end of a search its pictures) for TensorBoard into "
                             "RUN/tensorboard/; needs pip install 'drnas[tensorboard]'")
    parser.add_argument("--wandb", action="store_true",
                        help="also send the metrics (and at the end of a search its pictures) to a Weights & Biases "
                             "run (WANDB_MODE=offline: local files only); needs pip install 'drnas[wandb]'")


def _add_budget_options(parser: argparse.ArgumentParser, scope: str) -> None:
    """The budget of ``drnas derive`` and ``drnas train --arch RUN_DIR`` (strings, parsed by drnas.analysis.budget)."""
    parser.add_argument("--max-params", dest="max_params", metavar="N",
                        help="at most N parameters without the auxiliary head, e.g. 3.5M" + scope)
    parser.add_argument("--max-macs", dest="max_macs", metavar="N", help="at most N multiply-accumulates per image, "
                                                                          "e.g. 600M")
    parser.add_argument("--max-latency-ms", dest="max_latency_ms", metavar="MS",
                        help="at most MS milliseconds per forward pass, measured on this device")
    parser.add_argument("--latency-batch", dest="latency_batch", metavar="B",
                        help="images per timed pass for --max-latency-ms (default 1)")


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """The options ``drnas search`` and ``drnas sweep`` share (a sweep passes them on to every run)."""
    parser.add_argument("--preset", help="named settings (see `drnas presets`); default nb201")
    parser.add_argument("--config", help="JSON or TOML file of config fields overriding the preset")
    from drnas.spaces import space_names

    parser.add_argument("--space", help=f"search space: {', '.join(space_names())} (default: the preset's)")
    parser.add_argument("--download", action="store_true", help="download CIFAR into --data if it is missing")
    parser.add_argument("--epochs", type=int, help="total epochs; stages and warm-ups are rescaled to fit")
    parser.add_argument("--batch-size", type=int, dest="batch_size")
    parser.add_argument("--train-images", type=int, dest="train_images",
                        help="use only the first N training images (quick runs)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--benchmark", help="NB201 results CSV: log the NB201 accuracies of the current cell each epoch")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set lr=0.05 or "
                             "--set 'stages=[{\"epochs\": 10, \"partial_k\": 2}]' (repeatable)")


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
    from drnas.method.strategies import with_method

    config = preset(args.preset or "nb201")
    from_file = load_config_file(args.config) if args.config else {}
    settings = _parse_set(args.set)
    method = args.method or settings.get("method") or from_file.get("method") or config.method
    config = with_method(config, str(method))
    config = apply_overrides(config, from_file)
    flags = {name: getattr(args, name) for name in _FIELD_FLAGS if getattr(args, name) is not None}
    if args.download:
        flags["download"] = True
    flags.update({name: True for name in _WRITER_FLAGS if getattr(args, name, False)})  # (a sweep has none)
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
        for view in _WRITER_FLAGS:
            if getattr(args, view, False):
                overrides[view] = True  # for this process on: only a view of the metrics
        overrides.update(settings)
        job = job_class.resume(args.resume, progress=not args.quiet, **overrides)
    else:
        config = make_config()
        out = args.out or default_out(config)
        job = job_class(config, out, progress=not args.quiet)
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
    from drnas.search import Search

    flags = list(_FIELD_FLAGS) + ["preset", "method", "config", "epochs", "out"]
    result = _start_or_resume(args, Search, flags, lambda: resolve_search_config(args),
                              lambda c: f"runs/{c.preset or 'custom'}-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if result is None:
        return INTERRUPTED
    if not _is_main_process():
        return 0
    if result.run_dir is not None:
        _print_summary(result.run_dir)
    else:
        print(f"architecture: {result.architecture}")
    return 0


def _print_summary(run_dir: Any) -> None:
    """The end-of-run block (:func:`drnas.analysis.report.run_summary`), on stdout."""
    from drnas.analysis.report import run_summary

    print("\n".join(run_summary(run_dir)))


def _sweep(args: argparse.Namespace) -> int:
    from drnas.sweep import driver as sw
    from drnas.engine.runs import RunDir, atomic_write_json

    given = [name for name in ("resume", "status", "summary") if getattr(args, name)]
    if len(given) > 1:
        raise ConfigError(f"give one of --{', --'.join(given)}")
    if args.status:
        return _sweep_status(args.status)
    if args.summary:
        return _sweep_report(args.summary)
    if args.jobs is not None and args.jobs < 1 or args.threads is not None and args.threads < 1:
        raise ConfigError("--jobs and --threads must be >= 1")
    if args.resume:
        extra = [f"--{n.replace('_', '-')}" for n in ("method", "seeds", "dataset", "file", "preset", "config", "space",
                                                     "epochs", "batch_size", "train_images", "device", "benchmark",
                                                     "out") if getattr(args, n)]
        extra += ["--data"] * bool(args.data) + ["--grid"] * bool(args.grid) + ["--set"] * bool(args.set)
        if extra:
            raise ConfigError(f"--resume continues a sweep with its saved plan: drop {' '.join(extra)} (on resume "
                              "only --jobs, --threads and --ray may change)")
        directory = sw.SweepDir(args.resume)
        plan = directory.read_plan()
        RunDir(directory.path).lock()  # one driver per sweep
        plan.jobs = args.jobs or plan.jobs
        plan.threads = args.threads or (max(1, (os.cpu_count() or 1) // plan.jobs) if args.jobs else plan.threads)
        plan.ray = args.ray if args.ray is not None else plan.ray
        atomic_write_json(directory.plan_file, plan.to_json())
    else:
        plan, out = _sweep_plan(args)
        directory = sw.SweepDir(out or os.path.join("sweeps", time.strftime("%Y%m%d-%H%M%S")))
        directory.create(plan)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    driver = sw.Driver(directory, plan, log)
    left = len(driver.todo())
    where = f"Ray ({plan.ray})" if plan.ray else f"{plan.jobs} at a time"
    log(f"sweep {directory.path}: {len(plan.runs)} runs, {left} to run, {where}, {plan.threads} thread(s) each")
    if plan.ray:
        gpus = 1.0 if any(str(r.config.get("device", "")).startswith("cuda") for r in plan.runs) else 0.0
        finished = driver.run_ray(plan.ray, plan.threads, gpus)
    else:
        finished = driver.run_local(sw.local_slots(plan.jobs, plan.threads))
    code = _sweep_report(str(directory.path), quiet=args.quiet)
    if not finished:
        print(f"drnas: interrupted; finished epochs are kept: continue with `drnas sweep --resume {directory.path}`",
              file=sys.stderr)
        return INTERRUPTED
    return code


def _sweep_plan(args: argparse.Namespace) -> tuple[Any, str | None]:
    """Every grid point's resolved config, from the flags over the sweep file (``--file``); and the directory."""
    from drnas.sweep import driver as sw
    from drnas.config.search import with_absolute_paths

    spec = load_config_file(args.file) if args.file else {}
    unknown = set(spec) - {"grid", "data", "search", "out", "jobs", "threads", "ray"}
    if unknown:
        raise ConfigError(f"sweep file {args.file}: unknown key(s) {', '.join(sorted(unknown))}; it takes [grid], "
                          "[data], [search] and out, jobs, threads, ray")
    file_grid = {k.replace("-", "_"): v if isinstance(v, list) else [v] for k, v in spec.get("grid", {}).items()}
    if "seeds" in file_grid:
        file_grid["seed"] = [s for v in file_grid.pop("seeds") for s in sw.parse_seeds(str(v))]
    axes: dict[str, list[Any]] = {}
    axes["method"] = sw.parse_list(args.method) if args.method else file_grid.pop("method", None) or ["drnas"]
    file_grid.pop("method", None)
    axes["seed"] = sw.parse_seeds(args.seeds) if args.seeds else [int(v) for v in file_grid.pop("seed", [0])]
    file_grid.pop("seed", None)
    datasets = sw.parse_list(args.dataset) if args.dataset else file_grid.pop("dataset", None)
    file_grid.pop("dataset", None)
    if datasets:
        axes["dataset"] = list(datasets)
    axes.update(file_grid)
    for key, values in sw.parse_grid(args.grid).items():
        axes[key] = values
    data = _sweep_data(args.data, spec.get("data", {}), axes.get("dataset"))
    search = dict(spec.get("search", {}))
    flags = ("preset", "config", "space", "download", "epochs", "batch_size", "train_images", "device", "benchmark")
    from_file = {name: search.pop(name) for name in flags if name in search}  # flags given on the command line win
    base = argparse.Namespace(**{name: getattr(args, name) if getattr(args, name) not in (None, False)
                                 else from_file.get(name, getattr(args, name)) for name in flags},
                              threads=None, out=None, resume=None, quiet=True)
    file_sets = [f"{k}={json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else v}" for k, v in search.items()]
    jobs = args.jobs or spec.get("jobs") or sw.default_jobs()
    points = sw.grid_points(axes)
    jobs = max(1, min(int(jobs), len(points)))
    threads = int(args.threads or spec.get("threads") or max(1, (os.cpu_count() or 1) // jobs))
    varying = [k for k, v in axes.items() if len(v) > 1]
    runs, names = [], set()
    for point in points:
        ns = argparse.Namespace(**vars(base))
        ns.method, ns.seed = str(point["method"]), int(point["seed"])
        ns.dataset = point.get("dataset")
        ns.data = data.get(ns.dataset, data.get(None)) if data else None
        direct = {k: v for k, v in point.items() if k not in ("method", "seed", "dataset", *sw.SPECIAL_AXES,
                                                                 *sw.STAGE_FIELDS)}
        ns.set = [*file_sets, *args.set, *(f"{k}={v}" for k, v in direct.items())]
        try:
            config = sw.with_axis_values(resolve_search_config(ns), point)
        except ConfigError as err:
            raise ConfigError(f"run {sw.run_name(point, varying)}: {err}") from None
        config = dataclasses.replace(with_absolute_paths(config), threads=threads)
        name = sw.run_name(point, varying)
        if name in names:
            raise ConfigError(f"two grid points are both named {name}: give each value once")
        names.add(name)
        runs.append(sw.PlannedRun(name, {k: _plain(v) for k, v in point.items()}, config.to_json()))
    return sw.Plan(runs, varying, {k: [_plain(v) for v in vs] for k, vs in axes.items()}, jobs, threads,
                   args.ray or spec.get("ray"), sys.argv[1:]), args.out or spec.get("out")


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def _sweep_data(flags: Sequence[str], from_file: Any, datasets: Sequence[str] | None) -> dict[Any, str]:
    """--data PATH (every dataset) or --data DATASET=PATH per dataset, over the sweep file's [data] table."""
    data: dict[Any, str] = dict(from_file) if isinstance(from_file, dict) else {None: str(from_file)}
    for item in flags:
        key, _, path = item.partition("=") if "=" in item and not os.path.exists(item) else ("", "", item)
        data[key or None] = path
    unknown = [k for k in data if k is not None and datasets is not None and k not in datasets]
    if unknown:
        raise ConfigError(f"--data names dataset(s) {', '.join(unknown)} that --dataset does not list")
    return data


def _sweep_status(path: str) -> int:
    from drnas.sweep.driver import status

    plan, rows, eta = status(path)
    counts = {state: sum(r.state == state for r in rows) for state in ("done", "running", "queued", "failed",
                                                                      "interrupted", "pending")}
    width = max(len(r.name) for r in rows)
    for r in rows:
        detail = f"  {r.error}" if r.state == "failed" and r.error else ""
        print(f"{r.name:<{width}}  {r.state:<11} {r.epochs_done:>4}/{r.epochs} epochs{detail}")
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    left = "" if eta is None or counts["done"] == len(rows) else f"; about {_duration(eta)} left at {plan.jobs} at a time"
    print(f"{len(rows)} runs: {summary}{left}")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _sweep_report(path: str, quiet: bool = False) -> int:
    from drnas.sweep.report import collect, write_report
    from drnas.sweep.driver import SweepDir

    written = write_report(path)
    rows = collect(SweepDir(path))
    if not quiet:
        lines = (SweepDir(path).path / "summary.md").read_text().splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        print("\n".join(lines[start:end]))
        print("wrote " + ", ".join(str(p) for p in written))
    failed = [r for r in rows if r.state == "failed"]
    if failed:
        print(f"drnas: {len(failed)} of {len(rows)} runs failed (listed in summary.md): retry them with "
              f"`drnas sweep --resume {path}`", file=sys.stderr)
        return 1
    return 0


def _show(args: argparse.Namespace) -> int:
    from drnas.engine.runs import RunDir

    run = RunDir(args.run_dir)
    run.require()
    if args.plots is not None:
        from drnas.analysis.diagrams import run_pictures

        for path in run_pictures(run.path, args.plots or None):
            print(path)
        return 0
    arch = json.loads(run.architecture.read_text()) if run.architecture.exists() else None
    if args.json:
        print(json.dumps(arch, indent=2))
        return 0
    config = run.read_config()
    metrics = run.read_metrics()
    if config.get("kind") == "train":
        return _show_training(run, config, metrics, arch)
    print(f"{'search:':<14}preset {config.get('preset')}, method {config.get('method', 'drnas')}, space "
          f"{config['space']}, dataset {config['dataset']}, seed {config['seed']}")
    print(f"{'stages:':<14}" + ", ".join(f"{s['epochs']} ep K={s['partial_k']} ops={s['ops_kept'] or 'all'} "
                                          f"warm-up={s['arch_warmup']}" for s in config["stages"]))
    if metrics and "train_loss" in metrics[-1]:
        m = metrics[-1]
        print(f"{'last epoch:':<14}train {m['train_loss']:.3f}/{m['train_acc']:.1f}%  valid {m['valid_loss']:.3f}/"
              f"{m['valid_acc']:.1f}%  lr {m['lr']:.4g}")
    _print_summary(run.path)
    if arch:
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
        print(f"{'entropy:':<14}{sum(entropy) / len(entropy):.3f} nats per edge on average (of the mixing weights' mean; "
              f"min {min(entropy):.3f}, max {max(entropy):.3f})")
    if args.top:
        from drnas.analysis.sampling import sample_run

        (draws,) = sample_run(run.path, n=1000)
        print(f"top {args.top} of 1000 draws from the learned distribution (epoch {draws.epoch}):")
        for text, count in draws.counts[:args.top]:
            print(f"  {count / draws.total:6.1%}  {text}")
    return 0


def _show_training(run: Any, config: dict[str, Any], metrics: list[dict[str, Any]], arch: Any) -> int:
    print(f"{'training:':<14}protocol {config.get('preset')}, dataset {config['dataset']}, seed {config['seed']}, "
          f"batch {config['batch_size']}, lr {config['lr']} ({config['schedule']})")
    if metrics:
        m = metrics[-1]
        print(f"{'last epoch:':<14}train {m['train_loss']:.3f}/{m['train_acc']:.1f}%  test loss "
              f"{m['test_loss']:.3f}  lr {m['lr']:.4g}")
    _print_summary(run.path)
    return 0


def _nb201_query(args: argparse.Namespace) -> int:
    from drnas.bench.nb201 import NB201Table
    from drnas.spaces.nb201 import NB201Arch

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
    from drnas.bench.nb201 import NB201Table
    from drnas.analysis.plots import sampled_accuracies
    from drnas.analysis.sampling import sample_run

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
        from drnas.analysis.plots import plot_sampled_accuracy

        plot_sampled_accuracy(rows, column, args.plot)
    return 0


def _nb201_prefix(run_dir: str) -> str:
    """The NB201 table's column prefix of a run's dataset (cifar10 when the table has none for it)."""
    from drnas.engine.runs import RunDir

    dataset = RunDir(run_dir).read_config().get("dataset", "cifar10")
    return {"cifar100": "cifar100", "imagenet16-120": "imagenet16"}.get(dataset, "cifar10")


def _methods(args: argparse.Namespace) -> int:
    from drnas.method.strategies import METHODS, method_names

    print("search methods (drnas search --method NAME):")
    for name in method_names():
        print(f"  {name:<12} {METHODS.docs()[name]}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from drnas.train import PROTOCOLS

    print("search presets (drnas search --preset NAME):")
    for name, doc in preset_names().items():
        print(f"  {name:<20} {doc}")
    print("training protocols (drnas train --protocol NAME):")
    for name, doc in PROTOCOLS.names().items():
        print(f"  {name:<20} {doc}")
    return 0


def _train_config(args: argparse.Namespace):
    from drnas.spaces.resolve import resolve_architecture
    from drnas.train import PROTOCOLS, default_protocol

    if not args.arch:
        raise ConfigError("drnas train needs --arch NAME|FILE|RUN_DIR|TEXT (or --resume RUN_DIR)")
    from drnas.errors import shown

    budget = _budget(args)
    if not budget.empty and not os.path.isdir(os.path.expanduser(args.arch)):
        raise ConfigError(f"--max-params/--max-macs/--max-latency-ms pick from the distribution a search learned: "
                          f"--arch must be a search run directory, not {shown(args.arch)} (or drop the budget)")
    arch = resolve_architecture(args.arch)
    dataset = args.dataset or ("imagenet" if args.protocol == "darts-imagenet" else "cifar10")
    config = PROTOCOLS.get(args.protocol or default_protocol(arch.space, dataset))
    if args.config:
        config = apply_overrides(config, load_config_file(args.config))
    flags = {name: getattr(args, name) for name in ("dataset", "data", "epochs", "batch_size", "train_images",
                                                    "test_images", "seed", "device", "threads")
             if getattr(args, name) is not None}
    if args.download:
        flags["download"] = True
    flags.update({name: True for name in _WRITER_FLAGS if getattr(args, name)})
    # a run directory or file is stored as the architecture itself, so the training run does not depend on it
    config = apply_overrides(config, {**flags, "arch": _arch_field(arch)})
    config = apply_overrides(config, _parse_set(args.set)).validate()
    return config if budget.empty else _within_budget(args, config, budget)


def _arch_field(arch: Any) -> str:
    """An architecture as a training config stores it (the text itself, so the run needs no other file)."""
    return str(arch) if arch.space == "nb201" else json.dumps(arch.to_json())


def _budget(args: argparse.Namespace):
    from drnas.analysis.budget import Budget

    return Budget.parse(args.max_params, args.max_macs, args.max_latency_ms, args.latency_batch)


def _within_budget(args: argparse.Namespace, config: Any, budget: Any) -> Any:
    """``config`` training the most probable architecture of the search run ``--arch`` that fits ``budget``
    at the network size the config trains."""
    from drnas.analysis.budget import derive_within_budget, evaluation_network, learned_weights
    from drnas.engine.distributed import resolve_device

    if budget.latency_ms is not None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise ConfigError("--max-latency-ms measures on each process's device, which could pick different "
                          "architectures: run `drnas derive RUN --max-latency-ms ...` first and train what it prints")
    if config.dataset not in _DATASET_SHAPES:
        raise ConfigError(f"a budget counts the network of a dataset of known shape ({', '.join(_DATASET_SHAPES)}); "
                          f"{config.dataset} is not one: derive with `drnas derive RUN --dataset D` and train that")
    info = _dataset_shape(config.dataset)
    if config.dataset == "imagenet":
        info = dataclasses.replace(info, image_size=config.image_size)
    spec, shape = evaluation_network(config, info)
    device = resolve_device(config.device) if budget.latency_ms is not None else None
    found = derive_within_budget(learned_weights(args.arch), budget, spec, shape, device=device)
    if not args.quiet and _is_main_process():
        latency = f", {found.latency_ms:.3g} ms measured on {found.device}" if found.latency_ms is not None else ""
        print(f"within the budget ({budget.describe()}): {found.arch}  (probability {found.probability:.4g}, "
              f"{found.params / 1e6:.3f}M parameters, {found.macs / 1e6:.1f}M MACs{latency}; epoch {found.learned.epoch})",
              file=sys.stderr)
    return dataclasses.replace(config, arch=_arch_field(found.arch))


def _train(args: argparse.Namespace) -> int:
    from drnas.train import Trainer, export_format

    for path in args.export:  # a path of unknown format fails now, not after the training
        export_format(path)
    flags = ["arch", "protocol", "config", "dataset", "data", "epochs", "batch_size", "train_images", "test_images",
             "seed", "out", "max_params", "max_macs", "max_latency_ms", "latency_batch"]
    jobs: list[Any] = []
    result = _start_or_resume(args, Trainer, flags, lambda: _train_config(args),
                              lambda c: f"runs/train-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}", jobs)
    if result is None:
        return INTERRUPTED
    if not _is_main_process():
        return 0
    for path in args.export:
        print(f"exported: {jobs[0].export(path)}")
    _print_summary(result.run_dir)
    return 0


def _arch(args: argparse.Namespace) -> int:
    from drnas.spaces.archs import architecture_names, get_architecture
    from drnas.spaces.resolve import resolve_architecture
    from drnas.spaces import get_space
    from drnas.train import PROTOCOLS, default_protocol, model_report, network_spec

    if args.plot is not None:
        from drnas.analysis.diagrams import draw_architecture, picture_format

        if not args.arch:
            raise ConfigError("--plot PATH draws an architecture: give one, e.g. drnas arch DrNAS_cifar10 --plot "
                              "cells.svg (names: drnas arch --list)")
        picture_format(args.plot)  # a bad path is refused before the architecture is read
        print(draw_architecture(resolve_architecture(args.arch), args.plot))
        return 0
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


def _derive(args: argparse.Namespace) -> int:
    from drnas.analysis.budget import REPEATS, WARMUP, derive_within_budget, evaluation_network, format_size, learned_weights
    from drnas.engine.distributed import resolve_device
    from drnas.train import PROTOCOLS, default_protocol

    budget = _budget(args)
    learned = learned_weights(args.run_dir, args.epoch)
    dataset = args.dataset or (learned.dataset if learned.dataset in _DATASET_SHAPES else "cifar10")
    info = _dataset_shape(dataset)
    protocol = args.protocol or default_protocol(learned.space.name, dataset)
    sizes: dict[str, int] = {}
    for flag, value, fields in (("--channels", args.channels, ("channels",)),
                                ("--cells", args.cells, ("cells", "cells_per_stage"))):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
        sizes.update({f: value for f in fields if value is not None})  # --cells: DARTS' cells, NB201's N
    spec, shape = evaluation_network(apply_overrides(PROTOCOLS.get(protocol), sizes), info)
    device = resolve_device(args.device) if budget.latency_ms is not None else None
    found = derive_within_budget(learned, budget, spec, shape, beam=args.beam, device=device)
    if args.json:
        print(json.dumps({**found.to_json(), "dataset": dataset, "protocol": protocol}, indent=2))
        return 0
    estimate = found.estimate or {}

    def bound(limit: float | None, estimated: float | None, exact: float) -> str:
        notes = [f"budget {format_size(limit)}"] if limit is not None else []
        if estimated is not None and estimated != exact:  # the per-op sum missed: both numbers are shown
            notes.append(f"per-op estimate {format_size(estimated)}")
        return f" ({'; '.join(notes)})" if notes else ""

    rank = f"; rank {found.rank:,} of {found.architectures:,} without the budget" if found.rank else ""
    print(f"architecture: {found.arch}")
    print(f"probability:  {found.probability:.4g} (log {found.log_probability:.3f}){rank}")
    print(f"parameters:   {found.params / 1e6:.3f}M without the auxiliary head"
          + bound(budget.params, estimate.get("params"), found.params))
    print(f"MACs:         {found.macs / 1e6:.1f}M per image" + bound(budget.macs, estimate.get("macs"), found.macs))
    if found.latency_ms is not None:
        print(f"latency:      {found.latency_ms:.3f} ms per pass of {budget.latency_batch} image(s), measured on this "
              f"device ({found.device}, median of {REPEATS} after {WARMUP} warm-up passes; per-op "
              f"estimate {estimate.get('latency_ms', 0.0):.3f} ms) (budget {budget.latency_ms:g} ms)")
    size = f"{spec.cells} cells" if not learned.space.one_op_per_edge else f"N={spec.cells_per_stage}"
    print(f"network:      {learned.space.name}, {spec.channels} channels, {size}, {spec.num_classes} classes, "
          f"{shape[-1]}x{shape[-1]} input ({dataset}, protocol {protocol})")
    how = (f"exact over {found.architectures:,} architectures" if found.search == "exact"
           else f"beam search, width {found.beam_width}")
    print(f"search:       {how}; {found.checked} built and counted; {found.seconds:.1f}s")
    print(f"from:         epoch {found.learned.epoch} of {found.learned.epochs} of {found.learned.run} "
          f"({found.learned.method}), budget: {budget.describe()}")
    if budget.empty and found.learned.derived is not None and found.learned.derived != str(found.arch):
        print(f"note:         the run's architecture.json holds {found.learned.derived} (method "
              f"{found.learned.method} derives by its own rule); the above is the most probable architecture")
    return 0


#: input shape and classes of each dataset, for counting without loading any data
_DATASET_SHAPES = {"cifar10": (10, 3, 32), "cifar100": (100, 3, 32), "imagenet16-120": (120, 3, 16),
                   "imagenet": (1000, 3, 224), "digits": (10, 1, 8)}


def _dataset_shape(name: str):
    from drnas.data.formats import DatasetInfo

    if name not in _DATASET_SHAPES:
        raise ConfigError(f"unknown dataset {name!r} for counting; choose one of {', '.join(_DATASET_SHAPES)}")
    classes, channels, size = _DATASET_SHAPES[name]
    return DatasetInfo(name, classes, channels, size, (0.5,) * channels, (0.25,) * channels, True, 0)


def main(argv: Sequence[str] | None = None) -> int:
    from drnas.engine.distributed import exit_worker, shutdown

    args = _parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING if quiet else logging.INFO
    handlers = {"search": _run_search, "show": _show, "nb201": _nb201_query, "presets": _presets, "train": _train,
                "arch": _arch, "derive": _derive, "methods": _methods, "sample": _sample,
                "sweep": _sweep}
    try:
        with _logging_to_stderr(level):
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


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


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


if __name__ == "__main__":
    sys.exit(main())
