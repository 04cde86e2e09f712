"""PNG plots of a search: the Dirichlet mean of every op on every edge, epoch by epoch."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .runs import atomic_write_bytes


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure drawn off-screen (no display, no global pyplot state)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), constrained_layout=True)


def _save(fig: Any, path: str | Path, dpi: int = 100) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    atomic_write_bytes(Path(path), buffer.getvalue())


def sampled_accuracies(row: dict[str, Any], column: str) -> list[float]:
    """The benchmark accuracy of every draw of one ``drnas sample`` row (an architecture counted as often as it
    was drawn), sorted; draws the table has no value for are left out."""
    return sorted(acc for entry in row["architectures"] for acc in [entry[column]] * entry["count"] if acc is not None)


def plot_dirichlet_means(records: Sequence[dict[str, Any]], edge_names: Sequence[str], ops: Sequence[str],
                         path: Path) -> None:
    """One panel per edge, one line per op, Dirichlet mean (``beta / sum(beta)``) against epoch."""
    if not records:
        return
    epochs = [r["epoch"] for r in records]
    cols = min(3, len(edge_names))
    rows = (len(edge_names) + cols - 1) // cols
    fig = _figure(4.2 * cols, 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for e, name in enumerate(edge_names):
        ax = axes[e // cols][e % cols]
        for o, op in enumerate(ops):
            # a pruned op has mean exactly 0 from its stage on: end its line there instead of drawing 0
            values = [r["dirichlet_mean"][e][o] or float("nan") for r in records]
            ax.plot(epochs, values, label=op, lw=1.5)
        ax.set_title(f"edge {name}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("Dirichlet mean", fontsize=8)
        ax.tick_params(labelsize=7)
    for e in range(len(edge_names), rows * cols):
        axes[e // cols][e % cols].axis("off")
    axes[0][0].legend(fontsize=7, loc="upper left")
    _save(fig, path, dpi=90)


def hessian_trajectories(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> dict[str, dict[str, list[float]]]:
    """Per label (e.g. the method), over its runs (seeds): the epochs with a curvature record and the mean, min
    and max of the largest Hessian eigenvalue there (the DrNAS paper's Fig. 3)."""
    grouped: dict[str, dict[int, list[float]]] = {}
    for label, records in runs:
        for record in records:
            if record.get("hessian"):
                grouped.setdefault(label, {}).setdefault(record["epoch"], []).append(record["hessian"]["eigenvalue"])
    return {label: {"epoch": sorted(by_epoch), "mean": [sum(v) / len(v) for _, v in sorted(by_epoch.items())],
                    "min": [min(v) for _, v in sorted(by_epoch.items())],
                    "max": [max(v) for _, v in sorted(by_epoch.items())],
                    "runs": [len(v) for _, v in sorted(by_epoch.items())]}
            for label, by_epoch in grouped.items()}


def plot_hessian_trajectories(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], path: Path) -> None:
    """Fig. 3: the largest eigenvalue of the validation Hessian against epoch, one line (mean over runs) and band
    (min to max) per label."""
    curves = hessian_trajectories(runs)
    fig = _figure(5.5, 3.6)
    ax = fig.subplots()
    for label, curve in curves.items():
        line = ax.plot(curve["epoch"], curve["mean"], lw=1.8, label=f"{label} ({max(curve['runs'])} runs)")[0]
        ax.fill_between(curve["epoch"], curve["min"], curve["max"], color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("largest Hessian eigenvalue")
    ax.set_title("validation-loss curvature in the architecture parameters")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_sampled_accuracy(rows: Sequence[dict[str, Any]], column: str, path: str | Path) -> None:
    """The authors' figure: per epoch, the min, median and max benchmark accuracy of architectures drawn from
    the learned distribution (``drnas sample --all-epochs``), narrowing as the search converges."""
    epochs, low, mid, high = [], [], [], []
    for row in rows:
        accs = sampled_accuracies(row, column)
        if accs:
            epochs.append(row["epoch"])
            low.append(accs[0])
            mid.append(accs[len(accs) // 2])
            high.append(accs[-1])
    fig = _figure(5.5, 3.6)
    ax = fig.subplots()
    ax.fill_between(epochs, low, high, alpha=0.25, lw=0, label="min to max")
    ax.plot(epochs, mid, lw=1.8, label="median")
    ax.set_xlabel("epoch")
    ax.set_ylabel(column)
    ax.set_title(f"architectures sampled from the learned distribution ({rows[0]['draws'] if rows else 0} per epoch)")
    ax.legend(fontsize=8)
    _save(fig, path)
