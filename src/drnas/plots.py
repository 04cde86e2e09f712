"""PNG plots of a search: the Dirichlet mean of every op on every edge, epoch by epoch, and as a heatmap at the
end; the curvature trajectories; the spread of sampled architectures."""
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


def figure_bytes(fig: Any, fmt: str = "png", dpi: int = 100) -> bytes:
    """The figure as a PNG or SVG file's bytes; an SVG keeps its text as text (searchable, and smaller)."""
    import io

    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


def _save(fig: Any, path: str | Path, dpi: int = 100, fmt: str = "png") -> None:
    """Write the figure to ``path`` atomically (a temporary file renamed over it: never half a picture)."""
    atomic_write_bytes(Path(path), figure_bytes(fig, fmt, dpi))


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


def distribution_label(architecture: dict[str, Any]) -> str:
    """What the per-edge numbers of a run's ``architecture.json`` are: DrNAS methods learn a Dirichlet, whose
    mean they are; the other methods' are their expected mixing weights."""
    return "Dirichlet mean" if str(architecture.get("method", "drnas")).startswith("drnas") else "expected weight"


def distribution_heatmap(architecture: dict[str, Any], fmt: str = "png", dpi: int = 100) -> bytes:
    """A heatmap of the learned distribution of a run's ``architecture.json`` (its ``ops`` and, per edge, ``mean``
    and ``kept``): one row per edge, one column per op, the value written in each cell; pruned ops are hatched."""
    import numpy as np
    from matplotlib.patches import Rectangle

    ops, edges = list(architecture["ops"]), list(architecture["edges"])
    values = np.array([[float(v) for v in edge["mean"]] for edge in edges]).reshape(len(edges), len(ops))
    pruned = np.array([[op not in edge["kept"] for op in ops] for edge in edges]).reshape(values.shape)
    fig = _figure(1.0 + 0.95 * len(ops), 1.4 + 0.32 * len(edges))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_array(values, pruned), cmap="viridis", vmin=0.0, vmax=max(1e-9, values.max()),
                      aspect="auto")
    for (e, o), value in np.ndenumerate(values):
        if pruned[e, o]:
            ax.add_patch(Rectangle((o - 0.5, e - 0.5), 1, 1, facecolor="0.92", edgecolor="0.55", hatch="///", lw=0,
                                   gid=f"pruned-{e}-{o}"))  # the SVG names each cell: edge e, op o
        else:
            dark = value < 0.6 * values.max()
            ax.text(o, e, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black",
                    gid=f"value-{e}-{o}")
    ax.set_xticks(range(len(ops)), ops, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(edges)), [edge["edge"] for edge in edges], fontsize=8)
    label = distribution_label(architecture)
    ax.set_title(f"{label} per edge and op (pruned ops hatched)", fontsize=9)
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    return figure_bytes(fig, fmt, dpi)


def plot_distribution_heatmap(architecture: dict[str, Any], path: str | Path) -> None:
    """:func:`distribution_heatmap` as a PNG file, written atomically."""
    atomic_write_bytes(Path(path), distribution_heatmap(architecture))
