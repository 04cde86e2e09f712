"""Our zero-cost proxies against NASLib's published NB201 scores (NAS-Bench-Suite-Zero), on CIFAR-10.

    python benchmarks/proxies_vs_reference.py [--limit 200] [--seed 0] [--batch 32] [--proxies nwot,synflow]
        [--reference zc/nb201-zero-cost.csv] [--nb201 nb201/nb201.csv] [--data cifar10/cifar10.npz] [--json out.json]

For the CIFAR-10 rows of the reference file (all 724, or a seeded subset of ``--limit``), scores every
architecture with our proxies (its NB201 evaluation network at initialisation, one batch of our CIFAR-10 copy,
``drnas proxies``' defaults) and prints per proxy: Spearman with NB201 CIFAR-10 test accuracy
(``cifar10_test_acc``) of our scores, of NASLib's scores on the same rows, the published value over all 724 rows
(zc/PROVENANCE.md), the Spearman rank correlation between our scores and NASLib's, and our seconds per
architecture. Data paths default to the shared reference folder (``DRNAS_TEST_DATA`` or ../shared/data).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import time
from pathlib import Path

import torch

from drnas.analysis.proxies import (
    DEFAULT_BATCH,
    ProxyScorer,
    evaluation_spec,
    proxy_batch,
    proxy_names,
)
from drnas.analysis.ranks import kendall, spearman
from drnas.bench import NB201Table
from drnas.data import load_dataset
from drnas.spaces import get_space

SHARED = Path(os.environ.get("DRNAS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
#: Spearman with NB201 CIFAR-10 test accuracy over the reference's 724 CIFAR-10 rows (zc/PROVENANCE.md)
PUBLISHED = {"nwot": 0.80, "synflow": 0.78, "params": 0.77, "flops": 0.75, "l2_norm": 0.74, "jacov": 0.73,
             "snip": 0.65, "grad_norm": 0.65, "epe_nas": 0.64, "grasp": 0.57, "fisher": 0.55, "plain": -0.25}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default=str(SHARED / "zc" / "nb201-zero-cost.csv"))
    parser.add_argument("--nb201", default=str(SHARED / "nb201" / "nb201.csv"))
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10.npz"))
    parser.add_argument("--limit", type=int, help="a seeded subset of this many architectures (default: all 724)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset, the batch and the initial weights")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--proxies", default=",".join(proxy_names()))
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n in args.proxies.split(",") if n]
    with open(args.reference, newline="") as handle:
        reference = [row for row in csv.DictReader(handle) if row["dataset"] == "cifar10"]
    if args.limit is not None and args.limit < len(reference):
        reference = random.Random(args.seed).sample(reference, args.limit)
    table = NB201Table.load(args.nb201)
    space = get_space("nb201")
    arrays = load_dataset("cifar10", args.data)
    x, y = proxy_batch(arrays, args.batch, args.seed, torch.device("cpu"))
    scorer = ProxyScorer(space, evaluation_spec(space, arrays.info), x, y, names, args.seed)
    ours: dict[str, list[float]] = {n: [] for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    accuracy, started = [], time.perf_counter()
    for i, row in enumerate(reference, start=1):
        arch = space.parse(row["arch"])
        scores = scorer.score(arch)
        for n in names:
            ours[n].append(scores.scores[n])
            seconds[n].append(scores.seconds[n])
        accuracy.append(table.query(arch)["cifar10_test_acc"])
        if i % max(1, len(reference) // 10) == 0:
            print(f"{i}/{len(reference)} architectures, {time.perf_counter() - started:.0f} s", flush=True)
    results = {}
    for n in names:
        naslib = [float(row[n]) for row in reference]
        results[n] = {"spearman_test_acc": spearman(ours[n], accuracy),
                      "kendall_test_acc": kendall(ours[n], accuracy),
                      "naslib_spearman_test_acc_same_rows": spearman(naslib, accuracy),
                      "published_spearman_test_acc": PUBLISHED.get(n),
                      "spearman_with_naslib": spearman(ours[n], naslib),
                      "seconds_per_architecture": statistics.mean(seconds[n])}
    print(f"{'proxy':<10} {'ours':>7} {'NASLib':>7} {'published':>9} {'ours~NASLib':>11} {'s/arch':>7}"
          f"   (Spearman with cifar10_test_acc over {len(reference)} architectures, batch {len(x)})")
    for n, r in results.items():
        published = "" if r["published_spearman_test_acc"] is None else f"{r['published_spearman_test_acc']:.2f}"
        print(f"{n:<10} {r['spearman_test_acc']:>7.3f} {r['naslib_spearman_test_acc_same_rows']:>7.3f} "
              f"{published:>9} {r['spearman_with_naslib']:>11.3f} {r['seconds_per_architecture']:>7.3f}")
    if args.json:
        report = {"architectures": len(reference), "limit": args.limit, "seed": args.seed, "batch": len(x),
                  "threads": torch.get_num_threads(), "data": args.data, "proxies": results,
                  "seconds": round(time.perf_counter() - started, 1),
                  "scores": {row["arch"]: {n: ours[n][i] for n in names} for i, row in enumerate(reference)}}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
