"""A/B timing of the working tree against an earlier commit, alternating their steps in one process.

    python benchmarks/compare_revs.py REV [--only NAMES] [--rounds N] [--set FIELD=VALUE ...]

For refactors that must not cost speed: the package as of ``REV`` (``git archive``) is imported a second time
under another name next to the working tree's ``drnas``, both build the same search (same preset, overrides,
seed and data), and their steps alternate (REV, tree, REV, tree, ...) as in ``compare.py``. Prints the ratio
of the median seconds per iteration, rev/tree (above 1: the tree is faster), with the range of the per-round
ratios. Search cases only (those of ``run.py`` that both versions know); each version builds a method case's
method and parts (``nb201-gdas``, ``nb201-sdarts-adv``, ``nb201-darts+skip-dropout``) itself.

Each version draws from its own copy of the global RNG state, so both run the same steps on the same random
numbers: after the timed rounds their weights, eta and optimizer states are compared, and the line says whether
they are identical bit for bit (a refactor must keep them so) or how far apart they are.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import io
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np
import torch
from compare import alternate
from run import CASES, build_search, machine, method_case, parse_overrides

ROOT = Path(__file__).resolve().parent.parent


def import_revision(rev: str, where: Path) -> ModuleType:
    """The package ``drnas`` as of ``rev``, imported as ``drnas_<sha>`` (its absolute imports renamed)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", sha, "src/drnas"], cwd=ROOT, check=True, capture_output=True).stdout
    name = f"drnas_{sha}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                target = where / name / Path(member.name).relative_to("src/drnas")
                target.parent.mkdir(parents=True, exist_ok=True)
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if target.suffix == ".py":  # `from drnas.x import y`, `import drnas.x`, `from drnas import x`
                    data = re.sub(rb"\b(from|import) drnas\b", rb"\1 " + name.encode(), data)
                target.write_bytes(data)
    sys.path.insert(0, str(where))
    return importlib.import_module(name)


def search_steps(pkg: ModuleType, name: str, rounds: int, overrides: dict[str, str]
                 ) -> tuple[Any, Callable[[int], None]]:
    """One of run.py's search cases built with ``pkg``; returns the search and ``step(i)``, which runs on the
    search's own RNG stream."""
    data_mod = importlib.import_module(pkg.__name__ + ".data")
    n = 2 * 64 * (2 * rounds + 4)
    rng = np.random.default_rng(0)
    info = data_mod.DatasetInfo("cifar10", 10, 3, 32, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), True, 4)
    data = data_mod.ImageArrays(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
                                None, None, info)
    search = build_search(name, overrides, "cpu", data, pkg)
    batches = list(zip(search.weight_loader.epoch(0), search.arch_loader.epoch(0)))
    stream = [torch.get_rng_state()]

    def step(i: int) -> None:
        (xw, yw), (xa, ya) = batches[i % len(batches)]
        torch.set_rng_state(stream[0])
        search.arch_step(xa, ya, (xw, yw))
        search.weight_step(xw, yw)
        stream[0] = torch.get_rng_state()

    return search, step


def state_difference(a: Any, b: Any) -> float:
    """The largest absolute difference between two searches' weights, eta and optimizer states (0.0: identical
    bit for bit; inf: their structure differs)."""
    def tensors(search: Any) -> list[torch.Tensor]:
        found = [*search.net.state_dict().values(), search.relax.eta.detach()]
        for optimizer in (search.weight_optimizer, search.arch_optimizer):
            if optimizer is not None:
                found += [v for state in optimizer.state_dict()["state"].values() for v in state.values()
                          if torch.is_tensor(v)]
        return found
    left, right = tensors(a), tensors(b)
    if len(left) != len(right) or any(x.shape != y.shape or x.dtype != y.dtype for x, y in zip(left, right)):
        return float("inf")
    return max(float((x.double() - y.double()).abs().max()) if x.numel() else 0.0 for x, y in zip(left, right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev", help="the commit to compare the working tree with")
    parser.add_argument("--only", default="nb201-prog-s1,nb201-prog-s2,nb201", help="comma-separated search cases")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per version")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--json", help="write every step's seconds here")
    args = parser.parse_args()
    overrides = parse_overrides(args.set, parser)
    import drnas

    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as where:
        old = import_revision(args.rev, Path(where))
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; s/iter of {old.__name__} / tree")
        for name in args.only.split(","):
            if name.startswith("nb201-") and "+" in name:  # nb201-METHOD+PART+...
                method_case(name[len("nb201-"):])
            if name not in CASES or name == "train-cifar":
                known = ", ".join(c for c in CASES if c != "train-cifar")
                parser.error(f"unknown search case {name!r}; cases: {known}")
            (old_search, old_step), (tree_search, tree_step) = (search_steps(old, name, args.rounds, overrides),
                                                                search_steps(drnas, name, args.rounds, overrides))
            steps = {True: old_step, False: tree_step}
            times = alternate({True: lambda r, step=steps[True]: functools.partial(step, r),
                               False: lambda r, step=steps[False]: functools.partial(step, r)}, args.rounds)
            off = state_difference(old_search, tree_search)
            results[name] = {"rev": times[True], "tree": times[False], "max_state_difference": off}
            rev, tree = statistics.median(times[True]), statistics.median(times[False])
            paired = sorted(a / b for a, b in zip(times[True], times[False]))
            same = "identical" if off == 0.0 else f"differ by up to {off:.3g}"
            print(f"{name:<15} rev {rev:8.3f}  tree {tree:8.3f}  rev/tree {rev / tree:5.2f}"
                  f"  (per round {paired[0]:.2f}-{paired[-1]:.2f}, {len(paired)} rounds); states {same}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "overrides": overrides, "rev": old.__name__,
                                               "seconds": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
