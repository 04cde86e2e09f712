"""Pictures: cell diagrams of every space and named architecture (graphviz and the matplotlib fallback), the heatmap
of a run's learned distribution, ``drnas show RUN --plots`` and ``drnas arch NAME --plot PATH``."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from drnas.analysis import diagrams
from drnas.spaces.archs import architecture_names, get_architecture
from drnas.cli import main
from drnas.config.search import ConfigError, Stage
from drnas.analysis.plots import distribution_heatmap, distribution_label
from drnas.spaces.resolve import architecture_from_json
from drnas.search import Search
from drnas.spaces import get_space
from helpers import digits, tiny_config, own_spaces

QUIET = dict(progress=False, log=lambda m: None)
PNG = b"\x89PNG\r\n\x1a\n"
HAS_DOT = shutil.which("dot") is not None
BACKENDS = [pytest.param("graphviz", marks=pytest.mark.skipif(not HAS_DOT, reason="graphviz's dot is not installed")),
            "matplotlib"]


def _derived(space_name: str, seed: int = 0):
    """An architecture of the space, derived from random weights by the space's own rule."""
    space = get_space(space_name)
    weights = torch.rand(space.num_edges, len(space.ops), generator=torch.Generator().manual_seed(seed))
    return space.derive(weights)


def _check_png(data: bytes) -> None:
    assert data[:8] == PNG and len(data) > 1000


def _svg_text(data: bytes) -> str:
    root = ET.fromstring(data)  # well-formed XML (graphviz's DOCTYPE is not fetched)
    assert root.tag.endswith("svg")
    return " ".join(root.itertext())


def _check_svg(data: bytes, arch) -> None:
    text = _svg_text(data)
    for graph in get_space(arch.space).graph(arch):
        assert graph.title in text
        for op in graph.ops():
            assert op in text, (op, graph.name)


def _run_dir_tmp_files(path: Path) -> list[Path]:
    return sorted(path.rglob(".*.tmp"))


# ------------------------------------------------------------------------------------------------ the graphs
@pytest.mark.parametrize("space_name", own_spaces())
def test_every_space_draws_its_architecture_as_labelled_cells(space_name):
    space = get_space(space_name)
    arch = _derived(space_name)
    graphs = space.graph(arch)
    assert graphs and len({g.name for g in graphs}) == len(graphs)
    for graph in graphs:
        names = [n.name for n in graph.nodes]
        assert len(set(names)) == len(names)
        assert {n.role for n in graph.nodes} <= {"input", "node", "output"}
        assert any(n.role == "input" for n in graph.nodes) and any(n.role == "output" for n in graph.nodes)
        for edge in graph.edges:
            assert edge.source in names and edge.target in names
            assert edge.op == "" or edge.op in space.ops
            assert edge.zero == (edge.op == "none")
    # every op of the architecture's text is on some edge
    labelled = [op for g in graphs for op in g.ops()]
    assert all(op in str(arch) for op in labelled)


def test_nb201_graph_is_the_cell_with_every_edge_and_none_marked():
    from drnas.spaces import NB201Arch

    arch = NB201Arch.parse("|none~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|")
    (graph,) = get_space("nb201").graph(arch)
    assert [(e.source, e.target, e.op, e.zero) for e in graph.edges] == [
        ("0", "1", "none", True), ("0", "2", "avg_pool_3x3", False), ("1", "2", "skip_connect", False),
        ("0", "3", "nor_conv_1x1", False), ("1", "3", "none", True), ("2", "3", "nor_conv_3x3", False)]
    dot = diagrams.to_dot([graph])
    assert dot.count("style=dashed") == 2 and '"cell:0" -> "cell:1" [label="none"' in dot


def test_darts_graph_has_inputs_nodes_and_the_concatenated_output():
    arch = get_architecture("DrNAS_cifar10").arch
    normal, reduce = get_space("darts").graph(arch)
    assert (normal.name, normal.title, reduce.name, reduce.title) == ("normal", "normal cell", "reduce", "reduction cell")
    assert [n.name for n in normal.nodes] == ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]
    ops = [(e.source, e.target, e.op) for e in normal.edges if e.op]
    assert ops[:3] == [("c_{k-2}", "0", "sep_conv_3x3"), ("c_{k-1}", "0", "sep_conv_5x5"), ("c_{k-1}", "1", "sep_conv_3x3")]
    assert ops[3] == ("0", "1", "sep_conv_3x3")  # genotype input 2 is intermediate node 0
    assert [(e.source, e.target) for e in normal.edges if not e.op] == [(str(i), "c_{k}") for i in range(4)]
    assert normal.ops() == [op for op, _ in arch.normal] and reduce.ops() == [op for op, _ in arch.reduce]


# ------------------------------------------------------------------------------------------------ pictures
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", architecture_names())
def test_every_named_architecture_draws_as_svg_and_png(name, backend, tmp_path):
    arch = get_architecture(name).arch
    svg = diagrams.draw_architecture(arch, tmp_path / "cells.svg", backend=backend)
    png = diagrams.draw_architecture(arch, tmp_path / "cells.png", backend=backend)
    _check_svg(svg.read_bytes(), arch)
    _check_png(png.read_bytes())
    assert not _run_dir_tmp_files(tmp_path)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("space_name", own_spaces())
def test_every_space_draws_derived_architectures(space_name, backend):
    for seed in range(3):
        arch = _derived(space_name, seed)
        _check_svg(diagrams.render(arch, "svg", backend), arch)
        _check_png(diagrams.render(arch, "png", backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_cell_can_be_drawn_alone(backend):
    arch = get_architecture("DrNAS_cifar10").arch
    text = _svg_text(diagrams.render(arch, "svg", backend, cells=["normal"]))
    assert "normal cell" in text and "reduction cell" not in text
    assert "max_pool_3x3" not in text  # only the reduction cell has it
    with pytest.raises(ConfigError, match="has no cell 'nope': its cells are normal, reduce"):
        diagrams.render(arch, "svg", backend, cells=["nope"])


def test_without_dot_auto_draws_with_matplotlib_and_graphviz_says_how_to_fix(monkeypatch):
    arch = get_architecture("DrNAS_nb201").arch
    monkeypatch.setattr(diagrams, "dot_binary", lambda: None)
    _check_svg(diagrams.render(arch, "svg", "auto"), arch)
    with pytest.raises(ConfigError, match="dot is not on PATH: install graphviz, or draw with backend 'matplotlib'"):
        diagrams.render(arch, "svg", "graphviz")


def test_a_failing_dot_falls_back_to_matplotlib(monkeypatch, tmp_path):
    broken = tmp_path / "dot"
    broken.write_text("#!/bin/sh\necho 'Error: broken' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(diagrams, "dot_binary", lambda: str(broken))
    arch = get_architecture("DARTS_V2").arch
    _check_svg(diagrams.render(arch, "svg", "auto"), arch)
    with pytest.raises(ConfigError, match=r"dot failed \(exit 3: Error: broken\)"):
        diagrams.render(arch, "png", "graphviz")


def test_bad_backend_format_and_path_are_one_line_errors(tmp_path):
    arch = get_architecture("DrNAS_nb201").arch
    with pytest.raises(ConfigError, match="unknown diagram backend 'tikz'"):
        diagrams.render(arch, "svg", "tikz")
    with pytest.raises(ConfigError, match="unknown picture format 'pdf'"):
        diagrams.render(arch, "pdf")
    with pytest.raises(ConfigError, match="is a directory: give a file path ending in .svg or .png"):
        diagrams.draw_architecture(arch, tmp_path)
    with pytest.raises(ConfigError, match="give a path ending in .svg or .png"):
        diagrams.draw_architecture(arch, tmp_path / "cells.pdf")


def test_dot_text_quotes_what_it_writes():
    from drnas.spaces import CellEdge, CellGraph, CellNode

    graph = CellGraph("c", 'a "quoted" \\ title', (CellNode('x"y', "input"), CellNode("z", "output")),
                      (CellEdge('x"y', "z", "op"),))
    dot = diagrams.to_dot([graph])
    assert 'label="a \\"quoted\\" \\\\ title"' in dot and '"c:x\\"y" -> "c:z" [label="op"]' in dot


# ------------------------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real tiny searches on the embedded digits data: NB201 with a pruning stage and the curvature logged, and
    DARTS (2 cells) with another method."""
    from drnas.method.strategies import with_method

    root = tmp_path_factory.mktemp("pictures")
    data = digits()
    nb201 = tiny_config(dataset="digits", hessian_every=2,
                        stages=[Stage(epochs=1, partial_k=2), Stage(epochs=1, partial_k=1, ops_kept=3)])
    Search(nb201, root / "nb201", data=data, **QUIET).run()
    darts = with_method(tiny_config(space="darts", dataset="digits", cells=2, stages=[Stage(epochs=1)]), "darts")
    Search(darts, root / "darts", data=data, **QUIET).run()
    return {"nb201": root / "nb201", "darts": root / "darts"}


def _architecture(run: Path) -> dict:
    return json.loads((run / "architecture.json").read_text())


@pytest.mark.parametrize("space_name", own_spaces())
def test_show_plots_writes_every_picture_of_a_run(space_name, runs, capsys):
    run = runs[space_name]
    assert main(["show", str(run), "--plots"]) == 0
    printed = capsys.readouterr().out.split()
    # the weights over the epochs, named for what they are: the NB201 run is DrNAS', the DARTS run the DARTS method's
    weights = "dirichlet_mean.png" if space_name == "nb201" else "op_weights.png"
    expected = ["cells.svg", "cells.png", "heatmap.png", weights]
    if space_name == "nb201":
        expected.append("hessian.png")  # the NB201 run logged the curvature
    assert printed == [str(run / "plots" / name) for name in expected]
    arch = architecture_from_json(_architecture(run))
    _check_svg((run / "plots" / "cells.svg").read_bytes(), arch)
    for name in expected[1:]:
        _check_png((run / "plots" / name).read_bytes())
    assert not _run_dir_tmp_files(run)


def test_show_plots_into_a_directory_of_choice(runs, tmp_path, capsys):
    out = tmp_path / "made" / "here"
    assert main(["show", str(runs["nb201"]), "--plots", str(out)]) == 0
    assert capsys.readouterr().out.split()[0] == str(out / "cells.svg")
    assert sorted(p.name for p in out.iterdir()) == ["cells.png", "cells.svg", "dirichlet_mean.png", "heatmap.png",
                                                     "hessian.png"]


@pytest.mark.parametrize("space_name", own_spaces())
def test_heatmap_of_the_learned_distribution(space_name, runs):
    architecture = _architecture(runs[space_name])
    _check_png(distribution_heatmap(architecture))
    svg = _svg_text(distribution_heatmap(architecture, fmt="svg"))
    for op in architecture["ops"]:
        assert op in svg
    for edge in architecture["edges"]:
        assert edge["edge"] in svg
    label = distribution_label(architecture)
    assert label == ("Dirichlet mean" if space_name == "nb201" else "expected weight") and label in svg


def test_heatmap_hatches_pruned_ops_and_writes_no_number_there():
    architecture = {"ops": ["a", "b", "c"], "edges": [
        {"edge": "1<-0", "mean": [0.7, 0.3, 0.0], "kept": ["a", "b"]},
        {"edge": "2<-0", "mean": [0.125, 0.0, 0.875], "kept": ["a", "c"]}]}
    root = ET.fromstring(distribution_heatmap(architecture, fmt="svg"))
    named = {element.get("id"): element for element in root.iter() if element.get("id", "")[:6] in ("pruned", "value-")}
    assert sorted(named) == ["pruned-0-2", "pruned-1-1", "value-0-0", "value-0-1", "value-1-0", "value-1-2"]
    assert [" ".join(named[f"value-{cell}"].itertext()).strip() for cell in ("0-0", "0-1", "1-0", "1-2")] == \
        ["0.70", "0.30", "0.12", "0.88"]
    assert all("url(#h" in ET.tostring(named[cell]).decode() for cell in ("pruned-0-2", "pruned-1-1"))  # hatched


def test_show_plots_of_a_training_run_draws_its_cells(tmp_path, capsys):
    from drnas.train import PROTOCOLS, Trainer
    from drnas.config.search import apply_overrides

    config = apply_overrides(PROTOCOLS.get("nb201"), {"arch": "DrNAS_nb201", "dataset": "digits", "epochs": 1,
                                                      "batch_size": 32, "channels": 4, "cells_per_stage": 1,
                                                      "device": "cpu"})
    Trainer(config, tmp_path / "train", data=digits(96), **QUIET).run()
    assert main(["show", str(tmp_path / "train"), "--plots"]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["cells.svg", "cells.png"]


# ------------------------------------------------------------------------------------------------ the CLI
def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("drnas: error:"), err
    return err[0]


@pytest.mark.parametrize("name", architecture_names())
def test_arch_plot_draws_a_named_architecture(name, tmp_path, capsys):
    path = tmp_path / f"{name}.svg"
    assert main(["arch", name, "--plot", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    _check_svg(path.read_bytes(), get_architecture(name).arch)


def test_arch_plot_draws_a_written_genotype_and_a_run(runs, tmp_path, capsys):
    text = str(get_architecture("DARTS_V2").arch)
    assert main(["arch", text, "--plot", str(tmp_path / "v2.png")]) == 0
    _check_png((tmp_path / "v2.png").read_bytes())
    assert main(["arch", str(runs["darts"]), "--plot", str(tmp_path / "run.svg")]) == 0
    _check_svg((tmp_path / "run.svg").read_bytes(), architecture_from_json(_architecture(runs["darts"])))
    capsys.readouterr()
    assert main(["arch", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in architecture_names())


@pytest.mark.parametrize("argv,needle", [
    (["arch", "DrNAS_nb201", "--plot", "{tmp}"], "is a directory: give a file path ending in .svg or .png"),
    (["arch", "DrNAS_nb201", "--plot", "{tmp}/cells.pdf"], "give a path ending in .svg or .png"),
    (["arch", "DrNAS_nb201", "--plot", "{tmp}/cells"], "give a path ending in .svg or .png"),
    (["arch", "--plot", "{tmp}/cells.svg"], "--plot PATH draws an architecture: give one"),
    (["arch", "NoSuchNet", "--plot", "{tmp}/cells.svg"], "is not an architecture"),
    (["show", "{tmp}/missing", "--plots"], "does not exist"),
    (["show", "{run}", "--plots", "{run}/config.json"], "is a file: give a directory"),
    (["show", "{empty}", "--plots"], "has no architecture.json yet"),
])
def test_picture_commands_fail_with_one_line(argv, needle, runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"kind": "search"}))
    values = {"{tmp}": str(tmp_path), "{run}": str(runs["nb201"]), "{empty}": str(empty)}
    for key, value in values.items():
        argv = [a.replace(key, value) for a in argv]
    assert main(argv) == 2
    assert needle in _one_error_line(capsys)
    assert not (tmp_path / "cells.svg").exists() and not (empty / "plots").exists()
