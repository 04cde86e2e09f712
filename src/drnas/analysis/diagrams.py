"""Pictures of architectures and of runs: the analysis layer over the spaces and the plots.

A cell is drawn from the labelled graph its space gives (:meth:`drnas.spaces.SearchSpace.graph`), so nothing
here knows a space: graphviz's ``dot`` lays it out when it is installed (the DOT text is written here and ``dot``
runs as a subprocess with a timeout), and a small layered layout drawn with matplotlib does otherwise. A picture
holds every cell of an architecture (DARTS: the normal cell above the reduction cell) or the ones asked for.

:func:`run_pictures` writes every picture of a run directory (``drnas show RUN --plots``): the cells of the
derived architecture (SVG and PNG), the heatmap of the learned distribution, and the plots over the epochs that
the run's metrics allow.
"""
from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

from drnas.analysis.learned import read_architecture
from drnas.analysis.plots import (
    _figure,
    cost_curves,
    distribution_heatmap,
    figure_bytes,
    plot_dirichlet_means,
    plot_expected_cost,
    plot_hessian_trajectories,
)
from drnas.config.search import ConfigError, split_cost_spec
from drnas.engine.runs import RunDir, RunError, atomic_write_bytes
from drnas.errors import shown
from drnas.method.strategies import get_method
from drnas.spaces import CellGraph, get_space
from drnas.spaces.resolve import architecture_from_json

#: how a picture is drawn: ``auto`` uses graphviz when its ``dot`` is on PATH, matplotlib otherwise
BACKENDS = ("auto", "graphviz", "matplotlib")
#: the picture formats, by file extension
FORMATS = ("svg", "png")
#: seconds ``dot`` may take for a cell picture (it takes milliseconds): a hung binary cannot stop a search
DOT_TIMEOUT_S = 30
#: fill colour of a node by its role, the same for both backends
ROLE_COLOURS = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}


def cell_graphs(arch: Any, cells: Sequence[str] | None = None) -> list[CellGraph]:
    """The cells of ``arch`` as its space draws them; ``cells`` picks some by name (e.g. ``["normal"]``)."""
    graphs = list(get_space(arch.space).graph(arch))
    if not cells:
        return graphs
    names = [g.name for g in graphs]
    unknown = [c for c in cells if c not in names]
    if unknown:
        raise ConfigError(f"a {arch.space} architecture has no cell {shown(unknown[0])}: its cells are "
                          f"{', '.join(names)}")
    return [g for g in graphs if g.name in cells]


def picture_format(path: str | Path) -> str:
    """The format a picture path asks for (``svg`` or ``png``); a directory or another extension is an error."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{shown(str(path))} is a directory: give a file path ending in .svg or .png")
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"cannot tell the picture format of {shown(str(path))}: give a path ending in .svg or .png")
    return fmt


# ------------------------------------------------------------------------------------------------ graphviz
def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def to_dot(graphs: Sequence[CellGraph]) -> str:
    """The DOT text of the cells, left to right, each in a captioned cluster; ``none`` edges dashed and grey."""
    # dot puts a later cluster above an earlier one: emitted in reverse, the first cell is on top
    lines = ["digraph cells {", '  rankdir=LR; newrank=true; fontname="Helvetica"; fontsize=14;',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=12, penwidth=1.2];',
             '  edge [fontname="Helvetica", fontsize=10, arrowsize=0.7];']
    for graph in reversed(graphs):
        lines.append(f"  subgraph {_quoted('cluster_' + graph.name)} {{")
        lines.append(f"    label={_quoted(graph.title)}; labelloc=t; color=gray70;")
        for node in graph.nodes:
            colour = ROLE_COLOURS.get(node.role, ROLE_COLOURS["node"])
            lines.append(f"    {_quoted(graph.name + ':' + node.name)} [label={_quoted(node.name)}, "
                         f"fillcolor={_quoted(colour)}];")
        for edge in graph.edges:
            style = [f"label={_quoted(edge.op)}"] if edge.op else []
            if edge.zero:
                style += ["style=dashed", 'color="gray55"', 'fontcolor="gray40"']
            elif not edge.op:
                style += ['color="gray45"']
            lines.append(f"    {_quoted(graph.name + ':' + edge.source)} -> {_quoted(graph.name + ':' + edge.target)}"
                         f" [{', '.join(style)}];")
        lines.append("  }")
    # the inputs of every cell in one column, in the cells' order from the top (in a left-to-right layout, dot
    # stacks the nodes of an invisible chain within a rank from the bottom up, so the chain runs backwards)
    inputs = [_quoted(g.name + ":" + n.name) for g in graphs for n in g.nodes if n.role == "input"]
    if len(inputs) > 1:
        lines.append(f"  {{ rank=same; {'; '.join(inputs)}; }}")
        lines.append(f"  {' -> '.join(reversed(inputs))} [style=invis];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_binary() -> str | None:
    """Graphviz's ``dot`` on PATH, or None."""
    return shutil.which("dot")


def _graphviz(graphs: Sequence[CellGraph], fmt: str, dpi: int) -> bytes:
    binary = dot_binary()
    if binary is None:
        raise ConfigError("graphviz's dot is not on PATH: install graphviz, or draw with backend 'matplotlib'")
    args = [binary, f"-T{fmt}"] + ([f"-Gdpi={dpi}"] if fmt == "png" else [])
    try:
        done = subprocess.run(args, input=to_dot(graphs).encode(), capture_output=True, timeout=DOT_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"graphviz's dot failed ({type(err).__name__}): draw with backend 'matplotlib'") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[:1]
        raise ConfigError(f"graphviz's dot failed (exit {done.returncode}{': ' + detail[0][:120] if detail else ''}): "
                          "draw with backend 'matplotlib'")
    return done.stdout


# ------------------------------------------------------------------------------------------------ matplotlib
#: data units between ranks (x) and between nodes of one rank (y), a node box's size, inches per data unit
_DX, _DY, _BOX_W, _BOX_H, _INCH = 3.0, 1.3, 1.0, 0.46, 0.7
#: where along an edge (0: source, 1: target) its label may sit, in the order tried
_LABEL_SPOTS = (0.6, 0.45, 0.72, 0.35, 0.52, 0.66, 0.28)
#: an edge label's font size (points), and its width per character and height in data units (about, for spacing)
_LABEL_PT = 7.5
_CHAR_W, _LABEL_H = 0.6 * _LABEL_PT / 72 / _INCH, 1.4 * _LABEL_PT / 72 / _INCH


def _layout(graph: CellGraph) -> dict[str, tuple[float, float]]:
    """Layered positions: a node's rank is its longest path from a node without inputs (so every edge points
    right), and the nodes of one rank are stacked, centred, in the graph's order."""
    rank = {node.name: 0 for node in graph.nodes}
    for _ in graph.nodes:  # longest paths in a DAG: at most one pass per node
        for edge in graph.edges:
            rank[edge.target] = max(rank[edge.target], rank[edge.source] + 1)
    by_rank: dict[int, list[str]] = {}
    for node in graph.nodes:
        by_rank.setdefault(rank[node.name], []).append(node.name)
    return {name: (r * _DX, ((len(names) - 1) / 2 - i) * _DY)
            for r, names in by_rank.items() for i, name in enumerate(names)}


Box = tuple[float, float, float, float]


def _label_box(x: float, y: float, angle: float, text: str) -> Box:
    """The upright bounding box (x0, y0, x1, y1, data units) of an edge label rotated by ``angle`` radians."""
    length, height = _CHAR_W * len(text), _LABEL_H
    half_w = (abs(length * math.cos(angle)) + abs(height * math.sin(angle))) / 2
    half_h = (abs(length * math.sin(angle)) + abs(height * math.cos(angle))) / 2
    return x - half_w, y - half_h, x + half_w, y + half_h


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _label_spot(curve: tuple[float, ...], text: str, placed: list[Box], avoid: list[Box]) -> tuple[float, float, float]:
    """Where along a quadratic Bezier ``curve`` (x0, y0, cx, cy, x1, y1) its label goes: the first of a few spots
    whose box overlaps no label placed so far and no node, else the least crowded one. Returns x, y, angle."""
    x0, y0, cx, cy, x1, y1 = curve
    best: tuple[float, tuple[float, float, float]] | None = None
    for t in _LABEL_SPOTS:
        x = (1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t ** 2 * x1
        y = (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t ** 2 * y1
        angle = math.atan2(2 * (1 - t) * (cy - y0) + 2 * t * (y1 - cy), 2 * (1 - t) * (cx - x0) + 2 * t * (x1 - cx))
        box = _label_box(x, y, angle, text)
        crowding = sum(_overlap(box, other) for other in placed + avoid)
        if best is None or crowding < best[0]:
            best = (crowding, (x, y, angle))
        if crowding == 0:
            break
    assert best is not None
    return best[1]


def _draw_cell(ax: Any, graph: CellGraph) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    where = _layout(graph)
    boxes = {}
    for node in graph.nodes:
        x, y = where[node.name]
        box = FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0,rounding_size=0.12",
                             facecolor=ROLE_COLOURS.get(node.role, ROLE_COLOURS["node"]), edgecolor="0.25", lw=1.0,
                             zorder=3)
        ax.add_patch(box)
        ax.text(x, y, node.name, ha="center", va="center", fontsize=10, zorder=4)
        boxes[node.name] = box
    node_boxes = [(x - _BOX_W / 2, y - _BOX_H / 2, x + _BOX_W / 2, y + _BOX_H / 2) for x, y in where.values()]
    seen: dict[tuple[str, str], int] = {}
    long_edges = 0
    placed: list[Box] = []
    for edge in graph.edges:
        (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
        parallel = seen.get((edge.source, edge.target), 0)
        seen[(edge.source, edge.target)] = parallel + 1
        rad = 0.0
        if round((x1 - x0) / _DX) > 1:  # past other ranks: bend around their nodes, alternately up and down
            rad = 0.28 if long_edges % 2 == 0 else -0.28
            long_edges += 1
        rad += 0.22 * parallel * (1 if parallel % 2 else -1)
        colour = "0.6" if edge.zero else "0.45" if not edge.op else "0.15"
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), patchA=boxes[edge.source], patchB=boxes[edge.target],
                                     connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=11,
                                     color=colour, lw=1.0, linestyle="--" if edge.zero else "-", zorder=2))
        if edge.op:  # along the edge, where it crowds no other label
            control = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)  # arc3's control point
            x, y, angle = _label_spot((x0, y0, *control, x1, y1), edge.op, placed, node_boxes)
            placed.append(_label_box(x, y, angle, edge.op))
            ax.text(x, y, edge.op, ha="center", va="center", fontsize=_LABEL_PT, rotation_mode="anchor",
                    rotation=math.degrees(angle), color="0.35" if edge.zero else "0.1", zorder=5,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85))
    xs = [p[0] for p in where.values()]
    ys = [p[1] for p in where.values()]
    ax.set_xlim(min(xs) - _BOX_W, max(xs) + _BOX_W)
    ax.set_ylim(min(ys) - 1.2 * _DY, max(ys) + 1.2 * _DY)
    ax.set_aspect("equal")
    ax.set_title(graph.title, fontsize=11)
    ax.axis("off")


def _matplotlib(graphs: Sequence[CellGraph], fmt: str, dpi: int) -> bytes:
    """The cells stacked top to bottom, each on its own layered layout, at one scale."""
    layouts = [_layout(g) for g in graphs]
    width = max(max(p[0] for p in lay.values()) for lay in layouts) + 2 * _BOX_W
    heights = [max(p[1] for p in lay.values()) - min(p[1] for p in lay.values()) + 2.4 * _DY for lay in layouts]
    fig = _figure(_INCH * width + 0.3, _INCH * sum(heights) + 0.4 * len(graphs))
    axes = fig.subplots(len(graphs), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, graph in zip(axes, graphs):
        _draw_cell(ax, graph)
    return figure_bytes(fig, fmt, dpi)


# ------------------------------------------------------------------------------------------------ pictures
def render(arch: Any, fmt: str = "svg", backend: str = "auto", cells: Sequence[str] | None = None,
           dpi: int = 110) -> bytes:
    """A picture of the cells of ``arch`` as the bytes of an ``svg`` or ``png`` file. ``backend``: ``graphviz``,
    ``matplotlib``, or ``auto`` (graphviz when ``dot`` is installed and works, matplotlib otherwise)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown diagram backend {shown(backend)}: use one of {', '.join(BACKENDS)}")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown picture format {shown(fmt)}: use svg or png")
    graphs = cell_graphs(arch, cells)
    if backend == "graphviz" or (backend == "auto" and dot_binary() is not None):
        try:
            return _graphviz(graphs, fmt, dpi)
        except ConfigError:
            if backend == "graphviz":
                raise
    return _matplotlib(graphs, fmt, dpi)


def draw_architecture(arch: Any, path: str | Path, backend: str = "auto", cells: Sequence[str] | None = None) -> Path:
    """Write the picture of ``arch``'s cells to ``path`` (its extension, .svg or .png, sets the format), atomically."""
    path = Path(path)
    atomic_write_bytes(path, render(arch, picture_format(path), backend, cells))
    return path


def _has_distribution(architecture: dict[str, Any]) -> bool:
    """Whether an ``architecture.json`` holds a search's learned distribution (a training run's does not)."""
    edges = architecture.get("edges")
    return bool(edges) and "ops" in architecture and all("mean" in e and "kept" in e for e in edges)


def search_images(architecture: dict[str, Any], backend: str = "auto") -> list[tuple[str, bytes]]:
    """(tag, PNG bytes) of a search's pictures from its ``architecture.json`` content: the heatmap of the learned
    distribution and the cells of the derived architecture (what TensorBoard shows at the end of a search)."""
    images = []
    if _has_distribution(architecture):
        images.append(("architecture/heatmap", distribution_heatmap(architecture)))
    images.append(("architecture/cells", render(architecture_from_json(architecture), "png", backend)))
    return images


def run_pictures(run_dir: str | Path, out_dir: str | Path | None = None, backend: str = "auto") -> list[Path]:
    """Write every picture of a run directory into ``out_dir`` (default ``RUN/plots``) and return their paths: the
    cells of its architecture (``cells.svg``, ``cells.png``), the heatmap of the learned distribution per edge and
    op (``heatmap.png``), the expected weights over the epochs (the method's ``mean_plot``: ``dirichlet_mean.png``
    for DrNAS, ``op_weights.png`` for the others), the curvature (``hessian.png``) and the expected cost of a
    search under a cost (``cost.png``) when its metrics hold them.
    Each file is written atomically."""
    run = RunDir(run_dir)
    run.require()
    out = Path(out_dir) if out_dir else run.path / "plots"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--plots {shown(str(out))} is a file: give a directory (default {run.path / 'plots'})")
    architecture = read_architecture(run)
    if architecture is None:
        raise RunError(f"{run.path} has no architecture.json yet (no epoch has finished): run or resume it first")
    arch = architecture_from_json(architecture)
    written = []
    for fmt in FORMATS:
        path = out / f"cells.{fmt}"
        atomic_write_bytes(path, render(arch, fmt, backend))
        written.append(path)
    if _has_distribution(architecture):
        atomic_write_bytes(out / "heatmap.png", distribution_heatmap(architecture))
        written.append(out / "heatmap.png")
    metrics, config = run.read_metrics(), run.read_config()
    method = str(config.get("method", "drnas"))
    with_means = [r for r in metrics if r.get("dirichlet_mean")]
    if with_means and _has_distribution(architecture):
        path = out / get_method(method).mean_plot
        plot_dirichlet_means(with_means, [e["edge"] for e in architecture["edges"]], architecture["ops"], path,
                             config, run.path.resolve().name)
        written.append(path)
    if any(r.get("hessian") for r in metrics):
        plot_hessian_trajectories([(method, metrics)], out / "hessian.png")
        written.append(out / "hessian.png")
    if cost_curves(metrics):  # a search under a cost: its expected cost per epoch, against the target
        target, spec = config.get("cost_target"), config.get("cost_table")
        column = split_cost_spec(spec)[1] if isinstance(spec, str) and spec else None
        target = target if isinstance(target, (int, float)) and not isinstance(target, bool) else None
        plot_expected_cost(metrics, out / "cost.png", column, target)
        written.append(out / "cost.png")
    return written
