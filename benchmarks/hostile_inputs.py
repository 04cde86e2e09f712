"""Rerun the hostile-input campaign's categories against the installed drnas: each case is one command run in a
subprocess with a time limit and a memory cap, classified as

- ``one-line``: exit 2 with exactly one ``drnas: error:`` line on stderr (the wanted answer to bad input);
- ``ok``: exit 0 (an input that is fine, e.g. a bound's largest value);
- ``traceback``, ``runaway`` (past the time limit or the memory cap) or ``other`` (any other exit or output).

Usage: ``python benchmarks/hostile_inputs.py [--json OUT] [--timeout 30] [--memory-gb 4]``; prints one line per
case and a JSON summary. Cases that need the project's data (../shared/data) are skipped without it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent
NB201 = HERE.parent / "shared" / "data" / "nb201" / "nb201.csv"
BIG = "9" * 5000
GENOTYPE = "Genotype(normal=[], normal_concat=range(100000000000000000000), reduce=[], reduce_concat=[])"
NB201_BIG = f"|none~{BIG}|+|none~0|none~1|+|none~0|none~1|none~2|"
DRNAS_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEMO = ["search", "--preset", "demo", "--epochs", "2", "--train-images", "64", "--threads", "1", "--quiet"]


def run(argv: list[str], timeout: float, memory: int, cwd: Path) -> dict:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "drnas", *argv], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=limit, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return {"outcome": "runaway", "seconds": timeout, "stderr": "(timed out)"}
    seconds = round(time.perf_counter() - started, 2)
    err = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("warning")]
    if "Traceback" in done.stderr:
        outcome = "runaway" if "MemoryError" in done.stderr else "traceback"
    elif done.returncode == 2 and len(err) == 1 and err[0].startswith("drnas: error: "):
        outcome = "one-line"
    elif done.returncode == 0:
        outcome = "ok"
    else:
        outcome = "other"
    return {"outcome": outcome, "seconds": seconds, "stderr": (err[-1] if err else "")[:200]}


def prepare(work: Path) -> dict[str, Path]:
    """Two finished demo runs, damaged copies of the first, and hostile data files."""
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "drnas", *DEMO, "--seed", "1" if name == "b" else "0", "--out",
                        str(work / name)], check=True, capture_output=True)
    paths: dict[str, Path] = {}
    records = [json.loads(line) for line in (work / "a" / "metrics.jsonl").read_text().splitlines()]

    def damaged(name: str, file: str, content: bytes | None) -> None:
        copy = work / name
        shutil.copytree(work / "a", copy, ignore=shutil.ignore_patterns(".lock"))
        target = copy / file
        target.unlink()
        if content is None:
            os.mkfifo(target)
        elif content == b"<dir>":
            target.mkdir()
        else:
            target.write_bytes(content)
        paths[name] = copy

    def with_last(change: dict) -> bytes:
        last = {**records[-1], **change}
        return ("\n".join(json.dumps(r) for r in [*records[:-1], last]) + "\n").encode()

    params = records[-1]["architecture_parameters"]
    damaged("eta-shape", "metrics.jsonl", with_last({"architecture_parameters": {**params, "eta": [[0.0, 1.0]]}}))
    damaged("kept-range", "metrics.jsonl", with_last({"architecture_parameters": {**params, "kept": [[99]] * 6}}))
    damaged("eta-nan", "metrics.jsonl", with_last({"architecture_parameters": {
        **params, "eta": [[float("nan")] * len(params["eta"][0])] * len(params["eta"])}}))
    damaged("epoch-digits", "metrics.jsonl", b'{"epoch": ' + BIG.encode() + b"}\n")
    damaged("deep", "metrics.jsonl", b"[" * 100_000 + b"\n")
    damaged("metrics-dir", "metrics.jsonl", b"<dir>")
    damaged("metrics-fifo", "metrics.jsonl", None)
    damaged("config-fifo", "config.json", None)
    damaged("no-kind", "config.json", json.dumps({k: v for k, v in json.loads(
        (work / "a" / "config.json").read_text()).items() if k != "kind"}).encode())
    damaged("foreign", "checkpoint.pt", (work / "b" / "checkpoint.pt").read_bytes())
    damaged("truncated-ckpt", "checkpoint.pt", (work / "b" / "checkpoint.pt").read_bytes()[:5000])
    (work / "one-char.csv").write_text("x" * 200_000)
    (work / "latin.csv").write_bytes(b"arch,cifar10_test_acc\n\xe9\xe9,1\n")
    header = {"descr": "|u1", "fortran_order": False, "shape": (10 ** 6, 4096, 4096, 3)}
    buffer = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    with zipfile.ZipFile(work / "claims.npz", "w") as z:
        z.writestr("x_train.npy", buffer.getvalue())
        z.writestr("y_train.npy", b"")
    zeros = np.zeros((150_000_000,), np.float32)  # 0.6 GB of zeros, compressed to under 1 MB
    np.savez_compressed(work / "zeros.npz", x_train=zeros, y_train=np.zeros(1, np.int64))
    (work / "empty-grid.toml").write_text("[grid]\nlr = []\n")
    (work / "many.toml").write_text('[search]\nepochs = "many"\n[grid]\nseed = [0]\n')
    return paths


def cases(work: Path) -> list[tuple[str, str, list[str]]]:
    """(category, name, argv) of every case."""
    runs = ["eta-shape", "kept-range", "eta-nan", "epoch-digits", "deep", "metrics-dir", "metrics-fifo", "config-fifo"]
    table = ["--benchmark", str(NB201)] if NB201.is_file() else []
    return [
        ("big numbers", "genotype range", ["arch", GENOTYPE]),
        ("big numbers", "train genotype range", ["train", "--arch", GENOTYPE, "--dataset", "digits", "--out", "t1"]),
        ("big numbers", "nb201 index digits", ["arch", NB201_BIG]),
        ("big numbers", "nb201 query digits", ["nb201", "query", NB201_BIG, *table] if table else ["arch", NB201_BIG]),
        ("big numbers", "train nb201 digits", ["train", "--arch", NB201_BIG, "--dataset", "digits", "--out", "t2"]),
        ("big numbers", "seed digits", [*DEMO, "--seed", BIG, "--out", "s0"]),
        ("big numbers", "sample seed", ["sample", str(work / "a"), "--seed", str(2 ** 80)]),
        ("sizes", "channels 0", ["arch", "DrNAS_cifar10", "--channels", "0"]),
        ("sizes", "channels 1e8", ["arch", "DrNAS_cifar10", "--channels", "100000000"]),
        ("sizes", "derive channels 1e8", ["derive", str(work / "a"), "--channels", "100000000"]),
        ("sizes", "cells_per_stage 1e6", [*DEMO, "--set", "cells_per_stage=1000000", "--out", "s1"]),
        ("sizes", "epochs 1e20", [*DEMO[:3], "--epochs", "99999999999999999999", "--out", "s2"]),
        ("sizes", "stage epochs 1e308", [*DEMO, "--set", 'stages=[{"epochs": 1e308}]', "--out", "s3"]),
        ("sizes", "two grids of 10,000", ["sweep", "--preset", "demo", "--grid",
                                          "lr=" + ",".join(f"{0.001 * (1 + i)}" for i in range(10_000)),
                                          "--grid", "seed=" + ",".join(map(str, range(10_000))), "--out", "w1"]),
        ("sizes", "20,000 seeds", ["sweep", "--preset", "demo", "--grid",
                                   "seed=" + ",".join(map(str, range(20_000))), "--out", "w2"]),
        ("sizes", "sample n 1e12", ["sample", str(work / "a"), "--n", "1000000000000"]),
        ("sizes", "npz header claims 5e13 bytes", [*DEMO[:2], "demo", "--dataset", "npz", "--data",
                                                   str(work / "claims.npz"), "--out", "s4"]),
        ("sizes", "npz 0.6 GB of zeros", [*DEMO[:2], "demo", "--dataset", "npz", "--data", str(work / "zeros.npz"),
                                          "--out", "s5"]),
        *[("run files", f"show {name}", ["show", str(work / name)]) for name in runs],
        *[("run files", f"sample {name}", ["sample", str(work / name), "--n", "5"]) for name in runs],
        *[("run files", f"derive {name}", ["derive", str(work / name)]) for name in runs],
        ("run files", "csv of one character", ["nb201", "query", DRNAS_CELL, "--benchmark",
                                               str(work / "one-char.csv")]),
        ("run files", "csv not UTF-8", ["nb201", "query", DRNAS_CELL, "--benchmark", str(work / "latin.csv")]),
        ("run files", "cost table a device", [*DEMO, "--set", "cost_table=/dev/zero", "--out", "s6"]),
        ("run files", "cost table of one character", [*DEMO, "--set", f"cost_table={work / 'one-char.csv'}",
                                                      "--out", "s7"]),
        ("sizes", "proxies --archs 1e20", ["proxies", "--space", "nb201", "--dataset", "digits", "--archs",
                                           "99999999999999999999", "--out", "p1"]),
        ("sizes", "latency --batch 1e8", ["latency", "--space", "nb201", "--batch", "100000000", "--out", "l.csv"]),
        ("foreign checkpoints", "checkpoint of another run", ["search", "--resume", str(work / "foreign")]),
        ("foreign checkpoints", "truncated checkpoint", ["search", "--resume", str(work / "truncated-ckpt")]),
        ("late checks", "export to /proc", ["train", "--arch", "DrNAS_nb201", "--dataset", "digits", "--epochs", "1",
                                            "--export", "/proc/x.pt2", "--out", "t3"]),
        ("late checks", "plots to /proc", ["show", str(work / "a"), "--plots", "/proc/x"]),
        ("late checks", "empty grid", ["sweep", "--file", str(work / "empty-grid.toml"), "--out", "w3"]),
        ("late checks", "epochs many under --epochs", ["sweep", "--file", str(work / "many.toml"), "--epochs", "2",
                                                       "--out", "w4"]),
        ("late checks", "config.json without kind", ["search", "--resume", str(work / "no-kind")]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--memory-gb", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(work)
        results = []
        for category, name, argv in cases(work):
            result = {"category": category, "case": name,
                      **run(argv, args.timeout, int(args.memory_gb * 2 ** 30), work)}
            results.append(result)
            print(f"{result['outcome']:<10} {result['seconds']:>6}s  {category}: {name}  {result['stderr'][:120]}",
                  flush=True)
    totals = {k: sum(r["outcome"] == k for r in results) for k in ("one-line", "ok", "traceback", "runaway", "other")}
    summary = {"drnas": subprocess.run([sys.executable, "-m", "drnas", "--version"], capture_output=True,
                                       text=True).stdout.strip(), "totals": totals, "results": results}
    print(json.dumps(totals))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
