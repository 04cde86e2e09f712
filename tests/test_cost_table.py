"""Cost tables (:mod:`drnas.analysis.cost_table`): the least-squares op-level fit, the two CSV formats, ``drnas
latency`` and ``drnas derive --cost-table``; and the rank correlations of :mod:`drnas.analysis.ranks`."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from drnas.analysis.cost_table import OpCosts, fit_op_costs, load_costs, one_hot, op_table_text, write_op_table
from drnas.analysis.learned import LearnedDistribution
from drnas.analysis.ranks import kendall, spearman
from drnas.cli import main
from drnas.config.search import Stage
from drnas.errors import ConfigError
from drnas.search import Search
from drnas.spaces import NB201Arch, get_space
from drnas.spaces.nb201 import NB201_OPS
from conftest import SHARED
from helpers import pattern_images, tiny_config, own_spaces

LATENCY_FILE = SHARED / "hw" / "nb201-latency.csv"
#: the networks of the command-line tests: small enough to time in a second
TINY = ["--dataset", "digits", "--channels", "4", "--cells", "1"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished two-epoch NB201 search whose second stage keeps 3 ops per edge."""
    path = tmp_path_factory.mktemp("costs") / "run"
    stages = [Stage(epochs=1, partial_k=2, arch_warmup=0), Stage(epochs=1, partial_k=1, ops_kept=3)]
    Search(tiny_config(stages=stages), path, data=pattern_images(64), progress=False, log=lambda m: None).run()
    return path


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drnas: error: ") and "Traceback" not in err[0], err
    return err[0]


def _random_costs(space, seed: int = 0, column: str = "cost") -> OpCosts:
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.rand(space.num_edges, len(space.ops), generator=generator, dtype=torch.float64) * 10
    return OpCosts(column, matrix, 3.25, "synthetic")


# ------------------------------------------------------------------------------------------------ ranks
@pytest.mark.parametrize("n,ties", [(2, False), (7, True), (50, False), (300, True), (2000, True)])
def test_rank_correlations_equal_scipys(n, ties):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    if ties:
        x, y = np.round(x), np.round(2 * y)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert kendall(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert spearman(x, x) == pytest.approx(1.0) and kendall(x, -x) == pytest.approx(-1.0)
    assert math.isnan(spearman(np.ones(n), y)) and math.isnan(kendall([1.0], [2.0]))


# ------------------------------------------------------------------------------------------------ the fit
def test_the_fit_recovers_an_additive_nb201_table_exactly():
    space = get_space("nb201")
    truth = _random_costs(space)
    archs = [NB201Arch(ops) for ops in itertools.product(NB201_OPS, repeat=6)]
    values = [truth.of_architecture(space, a) for a in archs]
    values[7] = math.nan  # a missing cost: skipped and counted
    fitted = fit_op_costs(space, archs, values, "cost", "synthetic")
    assert fitted.fit.r2 == pytest.approx(1.0, abs=1e-12) and fitted.fit.rows == len(archs) - 1
    assert fitted.fit.skipped == 1 and fitted.fit.parameters == 1 + 6 * 4 and fitted.fit.rmse < 1e-9
    # `none` (the first op) is each edge's reference: the others are fitted relative to it
    assert torch.allclose(fitted.matrix, truth.matrix - truth.matrix[:, :1], atol=1e-9)
    assert fitted.constant == pytest.approx(truth.constant + float(truth.matrix[:, 0].sum()))
    for arch in archs[::997]:
        assert fitted.of_architecture(space, arch) == pytest.approx(truth.of_architecture(space, arch))


@pytest.mark.parametrize("space_name", own_spaces())
def test_the_fit_predicts_every_space_exactly_from_random_architectures(space_name):
    space = get_space(space_name)
    truth = _random_costs(space, seed=1)
    generator = torch.Generator().manual_seed(0)
    allowed = torch.ones(space.num_edges, len(space.ops), dtype=torch.bool)
    onehots = torch.stack([space.random_weights(allowed, generator) for _ in range(400)]).double()
    values = [float(truth.predict(w)) for w in onehots]
    fitted = fit_op_costs(space, onehots.numpy(), values)
    assert fitted.fit.r2 == pytest.approx(1.0, abs=1e-10)
    predicted = torch.stack([fitted.predict(w) for w in onehots])
    assert torch.allclose(predicted, torch.tensor(values, dtype=torch.float64), atol=1e-8)


def test_an_op_never_seen_on_an_edge_cannot_be_fitted():
    space = get_space("nb201")
    archs = [NB201Arch(ops) for ops in itertools.product(NB201_OPS[:4], repeat=6)]  # no avg_pool_3x3 anywhere
    with pytest.raises(ConfigError, match="no architecture with a cost value has avg_pool_3x3 on edge 1<-0"):
        fit_op_costs(space, archs, np.ones(len(archs)))
    # a space without that op fits them
    fitted = fit_op_costs(get_space("nb201", NB201_OPS[:4]), archs, np.arange(len(archs), dtype=float))
    assert fitted.matrix.shape == (6, 4)


def test_the_penalty_is_differentiable_in_the_weights():
    space = get_space("nb201")
    costs = _random_costs(space)
    weights = torch.softmax(torch.randn(6, 5), -1).requires_grad_()
    value = costs.predict(weights)
    value.backward()
    assert value.dtype == torch.float32 and torch.allclose(weights.grad, costs.matrix.float())
    assert value.item() == pytest.approx(costs.constant + float((weights.detach().double() * costs.matrix).sum()))
    with pytest.raises(ValueError, match="weights of shape"):
        costs.predict(torch.zeros(5, 6))


# ------------------------------------------------------------------------------------------------ files
@pytest.mark.parametrize("space_name", own_spaces())
def test_the_op_level_table_reads_back_exactly(space_name, tmp_path):
    space = get_space(space_name)
    first, second = _random_costs(space, 2, "a_ms"), _random_costs(space, 3, "energy_mj")
    path = tmp_path / "table.csv"
    write_op_table(path, space, [first, second])
    assert path.read_text().startswith("edge,op,a_ms,energy_mj\n") and "\n*,*,3.25,3.25\n" in path.read_text()
    for costs in (first, second):
        loaded = load_costs(f"{path}:{costs.column}", space)
        assert torch.equal(loaded.matrix, costs.matrix) and loaded.constant == costs.constant
        assert loaded.column == costs.column and loaded.source == str(path) and loaded.fit is None
    with pytest.raises(ConfigError, match=r"has 2 cost columns \(a_ms, energy_mj\): name one"):
        load_costs(str(path), space)


def test_a_table_of_more_ops_serves_a_space_of_fewer(tmp_path):
    full, fewer = get_space("nb201"), get_space("nb201", ["nor_conv_3x3", "skip_connect"])
    costs = _random_costs(full)
    path = tmp_path / "t.csv"
    write_op_table(path, full, [costs])
    loaded = load_costs(str(path), fewer)
    assert torch.equal(loaded.matrix, costs.matrix[:, [3, 1]])
    arch = NB201Arch(("nor_conv_3x3",) * 3 + ("skip_connect",) * 3)
    assert loaded.of_architecture(fewer, arch) == pytest.approx(costs.of_architecture(full, arch))
    assert one_hot(fewer, arch).sum() == 6


@pytest.mark.skipif(not LATENCY_FILE.is_file(), reason=f"the NB201 latency file {LATENCY_FILE} is absent")
def test_the_nb201_latency_file_fits_per_op():
    space = get_space("nb201")
    costs = load_costs(f"{LATENCY_FILE}:pixel3_ms", space)
    print(f"pixel3_ms: {costs.describe()}, rmse {costs.fit.rmse:.3f} ms")
    # measured 0.894: HW-NAS-Bench prunes the ops of a cell that reach no output, which no additive model sees
    assert costs.fit.r2 > 0.85 and costs.fit.rows == 15625 and costs.fit.skipped == 0
    assert costs.column == "pixel3_ms" and costs.unit == "ms" and torch.all(costs.matrix[:, 3] > costs.matrix[:, 2])


def _files(tmp_path: Path) -> dict[str, str]:
    """Bad cost tables, each with the words its one-line error must hold."""
    nb201, darts = get_space("nb201"), get_space("darts")
    good = op_table_text(nb201, [_random_costs(nb201, column="x_ms")])
    cases = {
        "binary": (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
        "nul": (b"edge,op,x_ms\n1<-0,none\x00,1\n", "holds NUL bytes"),
        "quote": (b'edge,op,x_ms\n1<-0,"none,1\n', "is not a CSV table"),
        "header": (b"name,value\na,1\n", "a cost table starts with edge,op"),
        "ragged": (good.replace("1<-0,none,", "1<-0,none,1,", 1).encode(), "line 2: 4 values for the 3 columns"),
        "darts": (op_table_text(darts, [_random_costs(darts)]).encode(), "is not an edge of the nb201 space"),
        "missing": ("\n".join(good.splitlines()[:-3] + good.splitlines()[-1:]).encode(), "lacks 2 (edge, op) costs"),
        "constant": ("\n".join(good.splitlines()[:-1]).encode(), "has no *,* row"),
        "twice": ((good + good.splitlines()[3] + "\n").encode(), "is listed twice"),
        "text": (good.replace(",none,", ",none,fast", 1).encode(), "is not a number"),
        "arch": (b"arch,x_ms\nnot-an-arch,1\n", "line 2: not an architecture of the nb201 space"),
        "empty": (b"", "is empty"),
    }
    out = {}
    for name, (data, needle) in cases.items():
        (tmp_path / f"{name}.csv").write_bytes(data)
        out[str(tmp_path / f"{name}.csv")] = needle
    out[str(tmp_path / "absent.csv")] = "does not exist"
    out[str(tmp_path)] = "is not a regular file"
    out[str(tmp_path / "header.csv") + ":value"] = "a cost table starts with edge,op"
    (tmp_path / "two.csv").write_text(good.replace("edge,op,x_ms", "edge,op,y_ms", 1))
    out[str(tmp_path / "two.csv") + ":x_ms"] = "has no cost column 'x_ms': it has y_ms"
    return out


def test_bad_cost_tables_are_one_line_errors(run_dir, tmp_path, capsys):
    for spec, needle in _files(tmp_path).items():
        assert main(["derive", str(run_dir), "--max-latency-ms", "5", "--cost-table", spec, *TINY]) == 2, spec
        line = _err_line(capsys)
        assert needle in line, (spec, line)


@pytest.mark.parametrize("argv,needle", [
    (["--max-cost", "3"], "--max-cost bounds a column of a cost table: give --cost-table"),
    (["--cost-table", "t.csv"], "--cost-table prices one bound"),
    (["--cost-table", "t.csv", "--max-cost", "1", "--max-latency-ms", "2"], "--cost-table prices one bound"),
    (["--cost-table", "t.csv", "--max-latency-ms", "2", "--latency-batch", "4"], "leave --latency-batch out"),
    (["--cost-table", "t.csv:energy_mj", "--max-latency-ms", "2"], "is not a *_ms column: bound it with --max-cost"),
    (["--cost-table", "t.csv", "--max-cost", "-1"], "--max-cost '-1' is not a cost bound"),
    (["--cost-table", "t.csv", "--max-cost", "0.001"], "energy_mj by the cost table (each on its own)"),
])
def test_cost_flags_are_checked(argv, needle, run_dir, tmp_path, monkeypatch, capsys):
    space = get_space("nb201")
    write_op_table(tmp_path / "t.csv", space, [_random_costs(space, column="energy_mj")])
    monkeypatch.chdir(tmp_path)
    assert main(["derive", str(run_dir), *argv, *TINY]) == 2
    assert needle in _err_line(capsys)


# ------------------------------------------------------------------------------------------------ commands
def test_latency_command_writes_a_table_that_loads_back(tmp_path, capsys):
    out = tmp_path / "deep" / "cpu.csv"
    assert main(["latency", "--space", "nb201", "--batch", "2", "--repeats", "2", *TINY, "--out", str(out),
                 "--check", "3", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    costs = load_costs(str(out), get_space("nb201"))
    assert costs.column == report["column"] == "cpu_2_ms" and costs.matrix.tolist() == report["matrix"]
    assert costs.constant == report["constant"] > 0 and torch.all(costs.matrix[:, 0] == 0)  # `none` never runs
    assert bool(torch.all(costs.matrix[:, 1:] > 0))
    check = report["check"]
    assert check["architectures"] == 3 and len(check["rows"]) == 3 and -1 <= check["spearman"] <= 1
    assert all(row["measured_ms"] > 0 and row["predicted_ms"] > 0 for row in check["rows"])
    assert captured.err.count("ms per edge") == 5 and "check 3/3" in captured.err  # a progress line per op
    assert main(["latency", "--out", str(tmp_path), *TINY]) == 2
    assert "is a directory" in _err_line(capsys)
    assert main(["latency", "--repeats", "0", *TINY]) == 2
    assert "--repeats must be in" in _err_line(capsys)


def _brute_force(learned: LearnedDistribution, costs: OpCosts, bound: float) -> NB201Arch:
    """The most probable architecture of the run whose table cost is within ``bound``, by enumeration."""
    space, best = learned.space, None
    options = [torch.nonzero(learned.allowed[e]).flatten().tolist() for e in range(space.num_edges)]
    for choice in itertools.product(*options):
        arch = NB201Arch(tuple(space.ops[o] for o in choice))
        if costs.of_architecture(space, arch) <= bound:
            logp = sum(math.log(learned.weights[e, o] / learned.weights[e, options[e]].sum())
                       for e, o in enumerate(choice))
            best = max(best or (logp, arch), (logp, arch), key=lambda pair: pair[0])
    assert best is not None
    return best[1]


@pytest.mark.parametrize("kind", ["op-level --max-cost", "per-architecture --max-latency-ms"])
def test_derive_with_a_cost_table_picks_the_best_architecture_within_the_bound(kind, run_dir, tmp_path, capsys):
    space, learned = get_space("nb201"), LearnedDistribution.from_run(run_dir)
    truth = _random_costs(space, seed=5, column="energy_mj" if "op-level" in kind else "dev_ms")
    path = tmp_path / "table.csv"
    if "op-level" in kind:
        write_op_table(path, space, [truth])
        flag = "--max-cost"
    else:  # one row per architecture, fitted back per op
        archs = map(NB201Arch, itertools.product(NB201_OPS, repeat=6))
        rows = [f"{a},{truth.of_architecture(space, a)!r}" for a in archs]
        path.write_text("arch,dev_ms\n" + "\n".join(rows) + "\n")
        flag = "--max-latency-ms"
    free = learned.space.derive(learned.weights * learned.allowed)
    bound = round(truth.of_architecture(space, free) - 0.5, 3)  # the unconstrained choice does not fit
    assert main(["derive", str(run_dir), flag, str(bound), "--cost-table", str(path), "--json", *TINY]) == 0
    out = json.loads(capsys.readouterr().out)
    arch = NB201Arch.parse(out["text"])
    value = out["cost"] if "op-level" in kind else out["latency_ms"]
    assert value == pytest.approx(truth.of_architecture(space, arch)) and value <= bound
    assert arch == _brute_force(learned, truth, bound) and arch != free
    assert out["cost_table"]["column"] == truth.column and out["budget"]["cost_table"].startswith(truth.column)
    assert (out["cost_table"]["fit"] is None) == ("op-level" in kind)
    assert main(["derive", str(run_dir), flag, str(bound), "--cost-table", str(path), *TINY]) == 0
    text = capsys.readouterr().out
    assert "by the cost table" in text and "measured" not in text


def test_a_per_architecture_table_prices_by_its_own_values(run_dir, tmp_path, capsys):
    """The fit ranks the candidates; the architecture returned is checked against the table's own value."""
    space, learned = get_space("nb201"), LearnedDistribution.from_run(run_dir)
    truth = _random_costs(space, seed=6, column="dev_ms")
    free = learned.space.derive(learned.weights * learned.allowed)
    bump = {str(free): 5.0}  # not additive: the fit cannot follow it, the table's value can
    archs = list(map(NB201Arch, itertools.product(NB201_OPS, repeat=6)))
    path = tmp_path / "table.csv"
    path.write_text("arch,dev_ms\n" + "".join(f"{a},{truth.of_architecture(space, a) + bump.get(str(a), 0.0)!r}\n"
                                              for a in archs))
    costs = load_costs(str(path), space)
    assert costs.of_architecture(space, free) == pytest.approx(truth.of_architecture(space, free) + 5.0)
    assert costs.fit.r2 < 1.0 and float(costs.predict(one_hot(space, free))) < truth.of_architecture(space, free) + 1
    bound = truth.of_architecture(space, free) + 0.05  # the fitted sum of `free` fits; its table value does not
    assert main(["derive", str(run_dir), "--max-latency-ms", f"{bound:.4f}", "--cost-table", str(path), "--json",
                 *TINY]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] != str(free) and out["checked"] >= 2 and out["latency_ms"] <= bound
    assert out["latency_ms"] == pytest.approx(costs.of_architecture(space, NB201Arch.parse(out["text"])))
