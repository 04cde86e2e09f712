"""The plot of a search's expected weights over the epochs (``dirichlet_mean.png`` for DrNAS, ``op_weights.png``
for methods without a Dirichlet) on tiny real runs: one legend of the op colours, integer 1-based epochs, stage
transitions marked and labelled, pruned ops ended, NB201 as line panels and DARTS as one strip panel per cell
type, at a bounded size."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drnas.config.search import Stage
from drnas.analysis.plots import dirichlet_mean_figure, op_colours, plot_dirichlet_means, stage_transitions
from drnas.search import Search
from drnas.spaces import get_space
from drnas.method.strategies import with_method
from helpers import digits, tiny_config

QUIET = {"progress": False, "log": lambda m: None}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny searches on the embedded digits: NB201 progressive (2 stages, a warm-up epoch, pruned to 3 ops),
    DARTS progressive (pruned to 4 ops) and a one-epoch softmax (DARTS-method) NB201 search."""
    root = tmp_path_factory.mktemp("plots")
    data = digits(64)
    configs = {
        "nb201": tiny_config(dataset="digits", channels=4, batch_size=32,
                             stages=[Stage(epochs=2, partial_k=2, arch_warmup=1), Stage(epochs=1, ops_kept=3)]),
        "darts": tiny_config(space="darts", dataset="digits", cells=2, channels=4, batch_size=32,
                             stages=[Stage(epochs=1, partial_k=2), Stage(epochs=1, partial_k=1, ops_kept=4)]),
        "one": with_method(tiny_config(dataset="digits", channels=4, batch_size=32, stages=[Stage(epochs=1)]),
                           "darts"),
    }
    for name, config in configs.items():
        Search(config, root / name, data=data, **QUIET).run()
    return {name: root / name for name in configs}


def _figure_of(run: Path):
    config = json.loads((run / "config.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    space = get_space(config["space"])
    return dirichlet_mean_figure(records, space.edge_names(), space.ops, config, run.name), records, space


def _panels(fig):
    return [ax for ax in fig.axes if ax.axison]


def _legend(fig, ops):
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    assert len(legends) == 1  # one legend for the whole figure
    (legend,) = legends
    assert [t.get_text() for t in legend.get_texts()] == list(ops)
    return legend


def _check_integer_epochs(ax, epochs):
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert low < min(epochs) and max(epochs) < high


def _stage_lines(ax):
    return {line.get_gid(): list(line.get_xdata()) for line in ax.get_lines()
            if (line.get_gid() or "").startswith("stage-")}


def _stage_labels(ax):
    return [(t.get_position()[0], t.get_text().strip()) for t in ax.texts
            if (t.get_gid() or "").startswith("stage-label-")]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
        return image.size


def test_nb201_line_panels_with_stage_transition_and_pruned_ops(runs, tmp_path):
    fig, records, space = _figure_of(runs["nb201"])
    assert [r["epoch"] for r in records] == [1, 2, 3] and [r["stage"] for r in records] == [0, 0, 1]
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == [f"edge {name}" for name in space.edge_names()]
    legend = _legend(fig, space.ops)
    colours = op_colours(space.ops)
    assert [h.get_color() for h in legend.legend_handles] == [colours[op] for op in space.ops]
    title = fig._suptitle.get_text()
    assert "Dirichlet mean" in title and "drnas" in title and "nb201" in title and "epoch 3/3" in title
    for n, ax in enumerate(panels):
        _check_integer_epochs(ax, [1, 2, 3])
        # stage 2 (1-based) begins at epoch 3: a dashed line between epochs 2 and 3, labelled in the top row
        assert _stage_lines(ax) == {"stage-2": [2.5, 2.5]}
        assert _stage_labels(ax) == ([(2.5, "stage 2: K=1, ops=3")] if n < 3 else [])
        assert any(p.get_gid() == "warmup-1" for p in ax.patches)  # stage 1's warm-up epoch shaded
        # one line per op, in the op's colour; a pruned op's line ends (NaN) at the stage where it was pruned
        op_lines = [line for line in ax.get_lines() if line.get_linestyle() == "-"][:len(space.ops)]
        assert [line.get_color() for line in op_lines] == [colours[op] for op in space.ops]
        at_epoch_3 = np.array([line.get_ydata()[2] for line in op_lines], dtype=float)
        assert np.isfinite(at_epoch_3).sum() == 3
        assert all(np.isfinite(line.get_ydata()[:2]).all() for line in op_lines)
    plot_dirichlet_means(records, space.edge_names(), space.ops, tmp_path / "nb201.png",
                         json.loads((runs["nb201"] / "config.json").read_text()), "nb201")
    width, height = _png_size(tmp_path / "nb201.png")
    assert max(width, height) <= 1600 and min(width, height) >= 400


def test_darts_one_strip_panel_per_cell_type(runs):
    fig, records, space = _figure_of(runs["darts"])
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == ["normal cell", "reduce cell"]
    for ax in panels:
        assert [t.get_text() for t in ax.get_yticklabels()] == [name.split(" ")[1] for name in space.edge_names()[:14]]
        _check_integer_epochs(ax, [1, 2])
        assert _stage_lines(ax) == {"stage-2": [1.5, 1.5]}
        assert _stage_labels(ax) == [(1.5, "stage 2: K=1, ops=4")]
        # a band per edge and op, in the op's colour; after pruning only 4 ops per edge have any height
        bands = ax.collections
        assert len(bands) == 14 * len(space.ops)
        heights = np.array([np.ptp(band.get_paths()[0].vertices[:, 1]) if band.get_paths() else 0.0
                            for band in bands])
        assert (heights > 0).all()  # every op had weight in stage 1
    _legend(fig, space.ops)
    plot_dirichlet_means(records, space.edge_names(), space.ops, runs["darts"] / "again.png",
                         json.loads((runs["darts"] / "config.json").read_text()), "darts")
    width, height = _png_size(runs["darts"] / "again.png")
    assert max(width, height) <= 1600  # the old layout: 1134 x 2520 px for 28 panels


def test_pruned_ops_end_in_the_darts_strips(runs):
    fig, records, space = _figure_of(runs["darts"])
    normal = _panels(fig)[0]
    kept = records[-1]["architecture_parameters"]["kept"]
    for e in range(14):
        for o in range(len(space.ops)):
            band = normal.collections[e * len(space.ops) + o]
            vertices = band.get_paths()[0].vertices
            # the band's thickness at the right end of epoch 2 (x = 2.5) is 0 exactly for the ops pruned there
            thickness = np.ptp(vertices[np.isclose(vertices[:, 0], 2.5), 1])
            assert (thickness > 1e-9) == (o in kept[e])


def test_one_epoch_softmax_run_says_expected_weight(runs):
    fig, records, space = _figure_of(runs["one"])
    assert len(records) == 1
    title = fig._suptitle.get_text()
    assert "expected weight" in title and "Dirichlet" not in title and "darts" in title and "epoch 1/1" in title
    for ax in _panels(fig):
        low, high = ax.get_xlim()
        assert [t for t in ax.get_xticks() if low <= t <= high] == [1]
        assert _stage_lines(ax) == {} and ax.get_ylabel() in ("", "expected weight")
        assert all(len(line.get_xdata()) in (0, 1) for line in ax.get_lines())  # one dot per op
    _legend(fig, space.ops)
    # the search itself wrote it, under the name of what it shows
    assert (runs["one"] / "op_weights.png").is_file() and not (runs["one"] / "dirichlet_mean.png").exists()
    _png_size(runs["one"] / "op_weights.png")
    assert (runs["nb201"] / "dirichlet_mean.png").is_file() and not (runs["nb201"] / "op_weights.png").exists()


def test_stage_transitions_from_the_records_or_the_config(runs):
    config = json.loads((runs["nb201"] / "config.json").read_text())
    records = [json.loads(line) for line in (runs["nb201"] / "metrics.jsonl").read_text().splitlines()]
    assert stage_transitions(records, config["stages"]) == [(2.5, "stage 2: K=1, ops=3")]
    # records without a stage field or kept lists (an older run): the config's stage lengths and ops_kept
    bare = [{k: v for k, v in r.items() if k not in ("stage", "architecture_parameters")} for r in records]
    assert stage_transitions(bare, config["stages"]) == [(2.5, "stage 2: K=1, ops=3")]
    assert stage_transitions(bare[:2], config["stages"]) == []  # not reached yet
    assert stage_transitions(records, []) == [(2.5, "stage 2: ops=3")]  # no config: what the records say
