"""PNG plots of a search: the expected weight of every op on every edge (DrNAS: the Dirichlet mean), epoch by
epoch, and as a heatmap at the end; the curvature trajectories; the spread of sampled architectures. What the
weights are called, and the file that plots them over the epochs, is the method's (``mean_label``,
``mean_plot`` of its strategy). A search under a cost also has its expected cost per epoch."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from drnas.engine.runs import atomic_write_bytes
from drnas.method.strategies import get_method


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


#: one colour per op, the same in every plot and space (an op not named here takes the next unused tab20 colour)
OP_COLOURS = {
    "none": "#9a9a9a", "skip_connect": "#ff7f0e", "avg_pool_3x3": "#2ca02c", "max_pool_3x3": "#bcbd22",
    "nor_conv_1x1": "#17becf", "nor_conv_3x3": "#1f77b4", "sep_conv_3x3": "#1f77b4", "sep_conv_5x5": "#9467bd",
    "dil_conv_3x3": "#d62728", "dil_conv_5x5": "#8c564b",
}
#: above this many edges the means are drawn as one strip panel per cell type instead of one line panel per edge
LINE_PANELS_UP_TO = 12


def op_colours(ops: Sequence[str]) -> dict[str, str]:
    """The colour of each op of ``ops``: :data:`OP_COLOURS`, then unused tab20 colours in order for other ops."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    spare = [c for c in (to_hex(colormaps["tab20"](i)) for i in range(20)) if c not in OP_COLOURS.values()]
    colours = {}
    for op in ops:
        colours[op] = OP_COLOURS.get(op) or spare[len([o for o in colours if o not in OP_COLOURS]) % len(spare)]
    return colours


def _field(stage: Any, name: str) -> Any:
    return stage.get(name) if isinstance(stage, dict) else getattr(stage, name, None)


def stage_starts(records: Sequence[dict[str, Any]], stages: Sequence[Any] = ()) -> list[tuple[int, int]]:
    """(0-based stage index, first epoch) of every stage the records reach, from their ``stage`` field (or, for
    records without one, from the stages' epoch counts)."""
    starts: list[tuple[int, int]] = []
    if all("stage" in r for r in records):
        for r in records:
            if not starts or r["stage"] != starts[-1][0]:
                starts.append((int(r["stage"]), int(r["epoch"])))
        return starts
    first = 1
    for index, stage in enumerate(stages or [{"epochs": len(records)}]):
        if records and first <= records[-1]["epoch"]:
            starts.append((index, first))
        first += int(_field(stage, "epochs") or 0)
    return starts


def stage_transitions(records: Sequence[dict[str, Any]], stages: Sequence[Any] = (),
                      n_ops: int | None = None) -> list[tuple[float, str]]:
    """Where each stage after the first begins, as (x between its last and first epoch, label): the label names
    the stage 1-based with its channel fraction 1/K and the ops each edge keeps, e.g. ``stage 2: K=2, ops=3``."""
    by_epoch = {r["epoch"]: r for r in records}
    transitions = []
    for index, first in stage_starts(records, stages)[1:]:
        label = f"stage {index + 1}"
        stage = stages[index] if index < len(stages) else None
        kept = (by_epoch.get(first, {}).get("architecture_parameters") or {}).get("kept")
        ops = max(len(k) for k in kept) if kept else _field(stage, "ops_kept") if stage is not None else None
        if stage is not None or ops is not None:
            parts = [f"K={_field(stage, 'partial_k')}"] if stage is not None else []
            parts += [f"ops={ops if ops is not None else n_ops if n_ops is not None else 'all'}"]
            label += ": " + ", ".join(parts)
        transitions.append((first - 0.5, label))
    return transitions


def _warmup_epochs(records: Sequence[dict[str, Any]], stages: Sequence[Any]) -> list[int]:
    """The epochs of the records that were an architecture warm-up (the first ``arch_warmup`` of their stage)."""
    epochs = []
    for index, first in stage_starts(records, stages):
        warmup = int(_field(stages[index], "arch_warmup") or 0) if index < len(stages) else 0
        epochs += [r["epoch"] for r in records if first <= r["epoch"] < first + warmup]
    return epochs


def _pruned_mask(records: Sequence[dict[str, Any]], n_edges: int, n_ops: int) -> Any:
    """(records x edges x ops) booleans: the op was out of the search at that epoch (per the record's ``kept``
    list, or, for records without one, its mean being exactly 0)."""
    import numpy as np

    means = np.array([r["dirichlet_mean"] for r in records], dtype=float).reshape(len(records), n_edges, n_ops)
    pruned = means == 0.0
    for i, r in enumerate(records):
        kept = (r.get("architecture_parameters") or {}).get("kept")
        if kept:
            pruned[i] = True
            for e, ops in enumerate(kept):
                pruned[i, e, list(ops)] = False
    return pruned


def dirichlet_mean_figure(records: Sequence[dict[str, Any]], edge_names: Sequence[str], ops: Sequence[str],
                          config: dict[str, Any] | None = None, run_name: str | None = None) -> Any:
    """The figure of :func:`plot_dirichlet_means` (a matplotlib Figure, not yet saved).

    Up to :data:`LINE_PANELS_UP_TO` edges (NB201's 6): one line panel per edge, one line per op. More (DARTS' 14
    normal + 14 reduction edges): one panel per cell type, one strip per edge, the strip's height shared among the
    ops in proportion to their weight at each epoch. Both: one legend of the op colours, integer (1-based) epochs,
    a dashed line and label where each later stage begins, architecture warm-up epochs shaded, and a pruned op's
    line ended (marked x) at its last epoch in the search (in a strip its band ends there).
    """
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    config = config or {}
    stages = list(config.get("stages") or [])
    method = str(config.get("method", "drnas"))
    label = distribution_label({"method": method})
    epochs = np.array([r["epoch"] for r in records], dtype=float)
    n_edges, n_ops = len(edge_names), len(ops)
    means = np.array([r["dirichlet_mean"] for r in records], dtype=float).reshape(len(records), n_edges, n_ops)
    pruned = _pruned_mask(records, n_edges, n_ops)
    colours = op_colours(ops)
    transitions = stage_transitions(records, stages, n_ops)
    warmup = _warmup_epochs(records, stages)
    lines_mode = n_edges <= LINE_PANELS_UP_TO
    if lines_mode:
        groups = [("", list(range(n_edges)))]
        cols = min(3, n_edges)
        rows = (n_edges + cols - 1) // cols
        width, height = 3.7 * cols + 0.4, 2.3 * rows + 1.5
    else:  # group the edges by their cell type, the first word of names like "normal 2<-0"
        groups = []
        for e, name in enumerate(edge_names):
            cell = name.split(" ", 1)[0] if " " in name else ""
            if not groups or groups[-1][0] != cell:
                groups.append((cell, []))
            groups[-1][1].append(e)
        cols, rows = len(groups), 1
        longest = max(len(g) for _, g in groups)
        width, height = min(15.0, 5.2 * cols + 0.6), min(14.0, 0.27 * longest + 2.2)
    fig = _figure(width, height)
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[1.0] * rows + [0.08 if lines_mode else 0.1])
    markers = len(records) <= 12  # a short run: its epochs as dots (one epoch is one dot, not an invisible line)

    def decorate(ax: Any, top: bool) -> None:
        ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs, even for one
        for epoch in warmup:  # grey behind the lines; hatched over the strips, which fill their panel
            ax.axvspan(epoch - 0.5, epoch + 0.5, lw=0, gid=f"warmup-{epoch}",
                       **({"color": "0.9", "zorder": 0} if lines_mode else
                          {"facecolor": "none", "edgecolor": "white", "hatch": "///", "alpha": 0.6, "zorder": 2.5}))
        for n, (x, text) in enumerate(transitions):
            ax.axvline(x, color="0.25", ls="--", lw=1.0, zorder=3, gid=f"stage-{n + 2}")
            if top:
                ax.text(x, 0.98, f" {text}", transform=ax.get_xaxis_transform(), rotation=90, ha="right", va="top",
                        fontsize=7, color="0.2", zorder=4, gid=f"stage-label-{n + 2}",
                        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75})
        ax.tick_params(labelsize=7)

    if lines_mode:
        # one y range for every panel, from 0 to a little above the largest weight (at least 0.5, at most 1)
        largest = float(np.where(pruned, 0.0, means).max())
        top = min(1.0, max(0.5, np.ceil(largest * 10) / 10 + 0.1))
        for e, name in enumerate(edge_names):
            ax = fig.add_subplot(grid[e // cols, e % cols])
            decorate(ax, top=e // cols == 0)
            for o, op in enumerate(ops):
                values = np.where(pruned[:, e, o], np.nan, means[:, e, o])
                ax.plot(epochs, values, color=colours[op], lw=1.5, marker="o" if markers else None, ms=3, zorder=2)
                # an op pruned at a stage start: an x on its last epoch in the search
                ended = [i for i in range(len(records) - 1) if not pruned[i, e, o] and pruned[i + 1, e, o]]
                ax.plot(epochs[ended], means[ended, e, o], ls="none", marker="x", ms=6, mew=1.5,
                        color=colours[op], zorder=2)
            ax.set_ylim(0, top)
            ax.set_title(f"edge {name}", fontsize=9)
            if e % cols == 0:
                ax.set_ylabel(label, fontsize=8)
            if e + cols >= n_edges:
                ax.set_xlabel("epoch", fontsize=8)
    else:
        gap = 0.14
        x = np.append(epochs - 0.5, epochs[-1] + 0.5)
        for g, (cell, members) in enumerate(groups):
            ax = fig.add_subplot(grid[0, g])
            decorate(ax, top=True)
            for row, e in enumerate(members):
                shares = np.where(pruned[:, e, :], 0.0, means[:, e, :])
                shares = shares / np.maximum(shares.sum(-1, keepdims=True), 1e-12) * (1 - gap)
                bottom = np.full(len(records), row + gap / 2)
                for o, op in enumerate(ops):  # a pruned op's band has zero height from its stage on
                    top = bottom + shares[:, o]
                    ax.fill_between(x, np.append(bottom, bottom[-1]), np.append(top, top[-1]), step="post",
                                    color=colours[op], lw=0, zorder=2)
                    bottom = top
            ax.set_ylim(len(members), 0)
            ax.set_yticks([r + 0.5 for r in range(len(members))],
                          [edge_names[e].split(" ", 1)[-1] for e in members], fontsize=7)
            ax.set_title(f"{cell} cell" if cell else "edges", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            if g == 0:
                ax.set_ylabel("edge (node <- input)", fontsize=8)
    legend_ax = fig.add_subplot(grid[rows, :])
    legend_ax.axis("off")
    handles = [Line2D([], [], color=colours[op], lw=2.5) if lines_mode else Patch(color=colours[op]) for op in ops]
    legend_ax.legend(handles, list(ops), loc="center", ncol=min(n_ops, 5 if lines_mode else 4), fontsize=8,
                     frameon=False, handlelength=2.0, columnspacing=1.5)
    done = int(epochs.max())
    total = config.get("epochs") or sum(int(_field(stage, "epochs") or 0) for stage in stages)
    about = [method, str(config.get("space", "")), str(config.get("dataset", "")),
             f"run {run_name}" if run_name else "", f"epoch {done}/{total}" if total else f"{done} epochs"]
    notes = ([] if lines_mode else [f"each edge's strip split among its ops by {label}"]) + (
        [f"{'grey' if lines_mode else 'hatched'}: architecture warm-up"] if warmup else []) + (
        ["x: an op's last epoch before pruning"] if lines_mode and pruned.any() else [])
    fig.suptitle(f"{label} of every op over the epochs\n" + "  ·  ".join(a for a in about if a)
                 + ("\n" + "; ".join(notes) if notes else ""), fontsize=10)
    return fig


def plot_dirichlet_means(records: Sequence[dict[str, Any]], edge_names: Sequence[str], ops: Sequence[str],
                         path: Path, config: dict[str, Any] | None = None, run_name: str | None = None) -> None:
    """Write :func:`dirichlet_mean_figure` as a PNG file, atomically (nothing when there are no records).
    ``config`` (a run's ``config.json`` content) gives the title's method, space and dataset and the stages;
    ``run_name`` the run's name."""
    if not records:
        return
    _save(dirichlet_mean_figure(records, edge_names, ops, config, run_name), path, dpi=100)


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


def cost_curves(records: Sequence[dict[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """The epochs and values of a search under a cost: ``expected`` (E[cost] under the distribution) and ``arch``
    (the derived cell's table cost), each where its record holds a finite number."""
    def finite(value: Any) -> bool:
        try:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        except OverflowError:  # an integer past float's range, in an edited metrics file
            return False

    curves: dict[str, tuple[list[int], list[float]]] = {}
    for name, field in (("expected", "expected_cost"), ("arch", "arch_cost")):
        points = [(r["epoch"], float(r[field])) for r in records if finite(r.get(field))]
        if points:
            curves[name] = ([e for e, _ in points], [v for _, v in points])
    return curves


def plot_expected_cost(records: Sequence[dict[str, Any]], path: str | Path, column: str | None = None,
                       target: float | None = None) -> None:
    """A search under a cost, epoch by epoch: the expected cost of the learned distribution and the derived
    cell's table cost, with the budget (``cost_target``) as a dashed line; ``column`` names the unit."""
    from matplotlib.ticker import MaxNLocator

    curves = cost_curves(records)
    fig = _figure(5.5, 3.6)
    ax = fig.subplots()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs
    labels = {"expected": "expected cost E[cost]", "arch": "derived cell's cost"}
    for name, (epochs, values) in curves.items():
        ax.plot(epochs, values, lw=1.8, ls="-" if name == "expected" else ":", marker=".", label=labels[name])
    if target is not None:
        ax.axhline(target, color="#d62728", ls="--", lw=1.2, label=f"target {target:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"cost ({column})" if column else "cost")
    ax.set_title("search under a cost")
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
    """What the per-edge numbers of a run's ``architecture.json`` are called: its method's ``mean_label``
    (DrNAS methods learn a Dirichlet, whose mean they are; the others', their expected mixing weights)."""
    return get_method(str(architecture.get("method", "drnas"))).mean_label


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
