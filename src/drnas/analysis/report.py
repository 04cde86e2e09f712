"""The summary of a run, read from its directory: what ``drnas search``/``drnas train`` print at the end and
``drnas show RUN`` prints for a run.

Made from the files alone (``config.json``, ``metrics.jsonl``, ``architecture.json``, ``result.json``), so a run
that was interrupted and resumed, or one read later on another machine, reports the same.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drnas.config.limits import read_bounded
from drnas.engine.job import format_duration
from drnas.engine.runs import RunDir
from drnas.errors import DrnasError
from drnas.spaces.resolve import architecture_from_json

#: the files of a run directory listed first, in this order (the rest follow by name)
_FILE_ORDER = ("config.json", "metrics.jsonl", "metrics.csv", "architecture.json", "result.json", "checkpoint.pt",
               "dirichlet_mean.png", "op_weights.png", "tensorboard", "wandb.json", "wandb")


def _architecture_text(run: RunDir, metrics: list[dict[str, Any]]) -> str:
    """The architecture in its space's own notation (an NB201 string, ``Genotype(...)``)."""
    for path in (run.architecture, run.path / "result.json"):
        try:
            return str(architecture_from_json(json.loads(read_bounded(path, what="a run's result file"))))
        except (OSError, ValueError, RecursionError, DrnasError):
            continue
    return str(metrics[-1].get("arch", "-")) if metrics else "- (no epoch finished yet)"


def _total_epochs(config: dict[str, Any]) -> int | None:
    if "stages" in config:
        return sum(int(s["epochs"]) for s in config["stages"])
    return config.get("epochs")


def _best(metrics: list[dict[str, Any]], key: str) -> tuple[float, int] | None:
    values = [(float(m[key]), int(m["epoch"])) for m in metrics if m.get(key) is not None]
    return max(values, key=lambda v: v[0]) if values else None


def _accuracy_line(label: str, metrics: list[dict[str, Any]], key: str) -> str | None:
    best = _best(metrics, key)
    if best is None:
        return None
    final = metrics[-1].get(key)
    final_text = f"final {final:.2f}%, " if final is not None else ""
    return f"{label:<14}{final_text}best {best[0]:.2f}% (epoch {best[1]})"


def _files(run: RunDir) -> str:
    names = {p.name: p.name + ("/" if p.is_dir() else "") for p in run.path.iterdir() if not p.name.startswith(".")}
    ordered = [names.pop(n) for n in _FILE_ORDER if n in names]
    return ", ".join(ordered + [names[n] for n in sorted(names)])


def run_summary(path: str | Path) -> list[str]:
    """The lines of a run's summary: architecture, final/best accuracies (and NB201 accuracies when the search had
    a table), epochs, wall time, peak memory, the directory and its files."""
    run = RunDir(path)
    run.require()
    config = run.read_config()
    metrics = run.read_metrics()
    kind = config.get("kind", "search")
    lines = [f"architecture: {_architecture_text(run, metrics)}"]
    last = metrics[-1] if metrics else {}
    if kind == "train":
        lines += [line for line in (_accuracy_line("test top1:", metrics, "top1"),
                                    _accuracy_line("test top5:", metrics, "top5")) if line]
        result = run.path / "result.json"
        if result.is_file():
            try:
                r = json.loads(read_bounded(result, what="a run's result.json"))
                with_aux = (f" ({r['params'] / 1e6:.3f}M with the auxiliary head)"
                            if r["params"] != r["params_without_aux"] else "")
                lines.append(f"{'parameters:':<14}{r['params_without_aux'] / 1e6:.3f}M{with_aux}")
                lines.append(f"{'MACs:':<14}{r['macs'] / 1e6:.1f}M per image")
            except (OSError, ValueError, KeyError, TypeError, RecursionError, DrnasError):
                pass
    elif "valid_acc" in last:
        line = _accuracy_line("valid acc:", metrics, "valid_acc")
        if line:
            lines.append(line + " (supernet, on the validation half)")
    elif last.get("best_valid_acc") is not None:  # a benchmark-query search
        lines.append(f"{'valid acc:':<14}{last['best_valid_acc']:.2f}% (the table's, best of {last['queries']} "
                     "queries)")
    if last.get("nb201"):
        lines.append(f"{'nb201:':<14}" + "  ".join(f"{k}={v:.2f}" for k, v in last["nb201"].items()))
    total = _total_epochs(config)
    state = ("finished" if total is not None and len(metrics) >= total
             else f"not finished: continue with `drnas {kind} --resume {run.path}`")
    lines.append(f"{'progress:':<14}{len(metrics)}/{total} epochs ({state})")
    if metrics:
        elapsed = last.get("elapsed_seconds")
        if elapsed is None:  # runs written before the records kept it: the epochs' own time
            elapsed = sum(float(m.get("seconds") or 0.0) for m in metrics)
        lines.append(f"{'wall time:':<14}{format_duration(float(elapsed))}")
        host = [m["peak_memory_mb"] for m in metrics if m.get("peak_memory_mb") is not None]
        cuda = [m["cuda_peak_memory_mb"] for m in metrics if m.get("cuda_peak_memory_mb") is not None]
        memory = ([f"{max(host):,.0f} MiB resident (host)"] if host else []) + \
            ([f"{max(cuda):,.0f} MiB CUDA allocated"] if cuda else [])
        if memory:
            lines.append(f"{'peak memory:':<14}" + ", ".join(memory))
    lines.append(f"{'run:':<14}{run.path} ({'training' if kind == 'train' else 'search'})")
    lines.append(f"{'files:':<14}{_files(run)}")
    return lines
