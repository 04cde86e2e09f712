"""``drnas proxies``: score architectures with zero-cost proxies, resumably; with a benchmark table, their rank
correlations with its accuracies."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from drnas.cli.job import INTERRUPTED
from drnas.errors import ConfigError


def _architectures(space: Any, spec: str, seed: int) -> list[Any]:
    """``--archs``: a count of random ones, ``all``, or a file listing them."""
    from drnas.analysis.proxies import (
        all_architectures,
        random_architectures,
        read_architectures,
    )
    from drnas.config.limits import read_bounded

    text = spec.strip()
    if text == "all":
        return list(all_architectures(space))
    if text.isdigit():
        return random_architectures(space, int(text), seed)
    path = Path(text).expanduser()
    if not path.exists():
        raise ConfigError(f"--archs {text!r} is neither a number, 'all' nor an existing file: give --archs 100, "
                          "--archs all or --archs FILE (one architecture per line)")
    return read_architectures(space, read_bounded(path, "file_bytes", "a list of architectures"), str(path))


def _progress(total: int, quiet: bool) -> Any:
    from drnas.engine.job import progress_bar

    return progress_bar(not quiet, total, "scoring")


def command(args: argparse.Namespace) -> int:
    """Score the architectures (skipping those ``--out`` already holds), then print the timing and, with
    ``--benchmark``, the correlations."""
    import torch

    from drnas.analysis.proxies import (
        DEFAULT_BATCH,
        SCORES_FILE,
        ProxyScorer,
        ScoreStore,
        evaluation_spec,
        proxy_batch,
        proxy_correlations,
        proxy_names,
    )
    from drnas.bench import BENCHMARKS, open_table
    from drnas.data import load_dataset, streams_folders
    from drnas.engine.distributed import resolve_device
    from drnas.engine.runs import check_writable
    from drnas.spaces import get_space

    space = get_space(args.space)
    names = [n.strip() for n in args.proxies.split(",") if n.strip()] if args.proxies else list(proxy_names())
    batch = DEFAULT_BATCH if args.batch is None else args.batch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    archs = _architectures(space, args.archs, args.seed)
    table, columns = None, []
    if args.benchmark:  # read before the scoring, so that a bad table is refused at once
        table = open_table(space, args.benchmark, lambda note: print(note, file=sys.stderr))
        if table is not None:
            columns = [c for c in BENCHMARKS.get(str(space.benchmark)).columns if any(c in r for r in table.rows.values())]
    out = Path(args.out or f"runs/proxies-{space.name}-{args.dataset}").expanduser()
    check_writable(out / SCORES_FILE, "--out")
    if streams_folders(args.dataset):
        raise ConfigError(f"dataset {args.dataset} is streamed from image folders; the proxies score one batch of an "
                          "in-memory dataset: give --dataset npz --data FILE.npz (or a CIFAR)")
    arrays = load_dataset(args.dataset, args.data)
    spec = evaluation_spec(space, arrays.info, args.channels, args.cells)
    x, y = proxy_batch(arrays, batch, args.seed, device)
    scorer = ProxyScorer(space, spec, x, y, names, args.seed)
    settings = {"space": space.name, "ops": list(space.ops), "dataset": args.dataset,
                "data": str(Path(args.data).expanduser().resolve()) if args.data else None,
                "channels": spec.channels, space.depth_field: getattr(spec, space.depth_field), "batch": len(x),
                "seed": args.seed, "proxies": names, "device": device.type}
    store = ScoreStore(out, settings).open()
    todo = [a for a in archs if str(a) not in store.rows]
    if not args.quiet:
        done = len(archs) - len(todo)
        print(f"scoring {len(todo)} of {len(archs)} architectures ({done} already in {store.path}) with "
              f"{', '.join(names)} on {len(x)} images", file=sys.stderr)
    bar = _progress(len(todo), args.quiet)
    started = time.perf_counter()
    try:
        for i, arch in enumerate(todo, start=1):
            store.add(scorer.score(arch))
            if bar is not None:
                bar.update(1)
            elif not args.quiet and (i % max(1, len(todo) // 10) == 0 or i == len(todo)):
                per = (time.perf_counter() - started) / i
                print(f"scored {i}/{len(todo)} ({per:.2f} s per architecture, about "
                      f"{(len(todo) - i) * per:.0f} s left)", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"drnas: interrupted; the scores so far are in {store.path}: rerun the same command to continue",
              file=sys.stderr)
        return INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
    rows = [store.rows[str(a)] for a in archs]
    seconds = {n: sum(r.seconds.get(n, 0.0) for r in rows) / len(rows) for n in names}
    report: dict[str, Any] = {"scores": str(store.path), "architectures": len(rows), "proxies": names,
                              "settings": store.settings, "seconds_per_architecture": seconds}
    if table is not None:
        report["correlations"] = proxy_correlations(rows, table, columns)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"scores:  {store.path} ({len(rows)} architectures, {len(names)} proxies)")
    print("seconds per architecture: " + ", ".join(f"{n} {s:.3f}" for n, s in seconds.items()))
    if "correlations" in report:
        _print_correlations(report["correlations"], columns)
    return 0


def _print_correlations(correlations: dict[str, dict[str, Any]], columns: list[str]) -> None:
    """Spearman / Kendall of every proxy with every accuracy column, one row per proxy."""
    def cell(value: dict[str, Any]) -> str:
        return " / ".join("  nan" if math.isnan(value[k]) else f"{value[k]:+.3f}" for k in ("spearman", "kendall"))

    n = max((v["n"] for per in correlations.values() for v in per.values()), default=0)
    print(f"rank correlation with the benchmark (Spearman / Kendall, over {n} architectures):")
    width = max([len("proxy")] + [len(p) for p in correlations])
    print("  " + "proxy".ljust(width) + "".join(f"  {c:>17}" for c in columns))
    for proxy, per in correlations.items():
        print("  " + proxy.ljust(width) + "".join(f"  {cell(per[c]):>17}" for c in columns))


__all__ = ["command"]
