"""Zero-cost proxies: each registered proxy against a direct computation written here, params/FLOPs against the
NB201 table, determinism, ``drnas proxies`` end to end with a resume after a crash, and the training-free search
methods (naswot, zc-random) on NB201 and DARTS."""
from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import pattern_images, tiny_config, write_conv_cost_table, write_synthetic_nb201_table
from torch import nn

from drnas import table_search
from drnas.analysis.cost import count_macs, count_parameters
from drnas.analysis.proxies import (
    PROXIES,
    ProxyScorer,
    evaluation_spec,
    get_proxy,
    proxy_batch,
    proxy_names,
    random_architectures,
)
from drnas.analysis.ranks import kendall, spearman
from drnas.cli import main
from drnas.data.formats import dataset_shape
from drnas.engine.job import MEASURED_FIELDS
from drnas.errors import ConfigError
from drnas.method.strategies import with_method
from drnas.search import Search
from drnas.spaces import NetworkSpec, get_space

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"


@pytest.fixture(scope="module")
def tiny():
    """A tiny NB201 network (C=4, N=1) in double precision, and a batch of 12 real images of 4 classes."""
    arrays = pattern_images(64, size=8, classes=4)
    x, y = proxy_batch(arrays, 12, 0, torch.device("cpu"))
    space = get_space("nb201")
    spec = NetworkSpec(channels=4, cells_per_stage=1, in_channels=3, num_classes=4)
    torch.manual_seed(0)
    network = space.build_network(space.parse(ARCH), spec).double().train()
    return network, x.double(), y


def _layers(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _grads(net, x, y):
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    # a layer the loss does not reach (behind a `none` edge) has no gradient: zero
    return [torch.zeros_like(m.weight) if m.weight.grad is None else m.weight.grad for m in _layers(net)]


def _jacobians(net, x):
    x = x.clone().requires_grad_(True)
    net(x).sum().backward()
    return x.grad.reshape(len(x), -1).numpy()


def _grasp(net, x, y):
    # H g by central finite differences of the gradient along g (double precision; a small step, as ReLU kinks
    # make larger ones inexact)
    g = [t.clone() for t in _grads(net, x, y)]
    weights = [m.weight for m in _layers(net)]
    eps = 1e-6
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(eps * d)
    plus = [t.clone() for t in _grads(net, x, y)]
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.sub_(2 * eps * d)
    minus = [t.clone() for t in _grads(net, x, y)]
    with torch.no_grad():
        for w, d in zip(weights, g):
            w.add_(eps * d)
    return sum(float((-w.detach() * (p - m) / (2 * eps)).sum()) for w, p, m in zip(weights, plus, minus))


def _fisher(net, x, y):
    acts = []

    def keep(module, args, out):
        out.retain_grad()
        acts.append((module, out))

    hooks = [m.register_forward_hook(keep) for m in _layers(net)]
    F.cross_entropy(net(x), y).backward()
    for h in hooks:
        h.remove()
    total = 0.0
    for m, a in acts:
        if a.grad is None:
            continue
        prod = (a * a.grad).detach()
        per = prod.sum(dim=(2, 3)) if prod.dim() == 4 else prod
        fan = m.weight.shape[1] * (m.weight.shape[2] * m.weight.shape[3] if m.weight.dim() == 4 else 1)
        total += float(0.5 * (per ** 2).mean(0).sum()) * fan
    return total


def _nwot(net, x, y):
    codes = []
    def keep(module, args, out):
        codes.append((out > 0).flatten(1).numpy())

    hooks = [m.register_forward_hook(keep) for m in net.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    c = np.concatenate(codes, axis=1).astype(np.int64)
    hamming = (c[:, None, :] != c[None, :, :]).sum(-1)
    return float(np.linalg.slogdet((c.shape[1] - hamming).astype(np.float64))[1])


def _jacov(net, x, y):
    v = np.linalg.eigvalsh(np.corrcoef(_jacobians(net, x)))
    return float(-np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5)))


def _epe_nas(net, x, y):
    jac = _jacobians(net, x)
    per = []
    for c in np.unique(y.numpy()):
        rows = jac[y.numpy() == c]
        corr = np.corrcoef(rows) if len(rows) > 1 else np.ones((1, 1))
        per.append(np.log(np.abs(corr) + 1e-5).sum())
    return float(sum(abs(a - b) for a in per for b in per) / len(per))


def _synflow(net, x, y):
    net = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for t in list(net.parameters()) + list(net.buffers()):
            if t.is_floating_point():
                t.copy_(t.abs())
    net(torch.ones(1, *x.shape[1:], dtype=torch.float64)).sum().backward()
    return math.log(sum(float((m.weight * m.weight.grad).abs().sum()) for m in _layers(net) if m.weight.grad is not None))


def _flops(net, x, y):  # MACs by torch's counter, plus NB201's one FLOP per linear bias
    return (count_macs(net, (1, *x.shape[1:])) + sum(m.out_features for m in _layers(net)
                                                     if isinstance(m, nn.Linear) and m.bias is not None)) / 1e6


#: each proxy computed directly (autograd's .grad, numpy, finite differences): the definitions of docs/proxies.md
DIRECT = {
    "grad_norm": lambda n, x, y: sum(float(g.norm()) for g in _grads(n, x, y)),
    "snip": lambda n, x, y: sum(float((g * m.weight).abs().sum()) for g, m in zip(_grads(n, x, y), _layers(n))),
    "plain": lambda n, x, y: sum(float((g * m.weight).sum()) for g, m in zip(_grads(n, x, y), _layers(n))),
    "grasp": _grasp, "fisher": _fisher, "nwot": _nwot, "jacov": _jacov, "epe_nas": _epe_nas, "synflow": _synflow,
    "l2_norm": lambda n, x, y: sum(float(torch.linalg.norm(m.weight.flatten())) for m in _layers(n)),
    "params": lambda n, x, y: count_parameters(n) / 1e6, "flops": _flops,
}


@pytest.mark.parametrize("name", proxy_names())
def test_proxy_matches_a_direct_computation(tiny, name):
    if name not in DIRECT:
        pytest.skip(f"proxy {name} is not a built-in one (a plugin's)")
    network, x, y = tiny
    ours = get_proxy(name).score(copy.deepcopy(network), x, y)
    direct = DIRECT[name](copy.deepcopy(network), x, y)
    assert math.isfinite(ours)
    assert ours == pytest.approx(direct, rel=1e-4 if name == "grasp" else 1e-6, abs=1e-9)
    assert get_proxy(name).paper and PROXIES.docs()[name]


#: cells whose output does not depend on their input (every path through none), or only through a skip
DEAD_CELLS = ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
              "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_a_cell_that_passes_nothing_scores_without_error_and_worst_by_the_jacobian_proxies():
    arrays = pattern_images(32, size=8, classes=4)
    space = get_space("nb201")
    spec = NetworkSpec(channels=4, cells_per_stage=1, in_channels=3, num_classes=4)
    x, y = proxy_batch(arrays, 16, 0, torch.device("cpu"))
    scorer = ProxyScorer(space, spec, x, y, list(proxy_names()), 0)
    live = scorer.score(space.parse(ARCH)).scores
    for text in DEAD_CELLS:
        dead = scorer.score(space.parse(text)).scores
        assert set(dead) == set(proxy_names()) and not any(math.isnan(v) for v in dead.values())
        for name in ("jacov", "epe_nas"):  # all-zero input Jacobians: the worst score, not the best
            assert dead[name] == float("-inf") < live[name]
        assert dead["snip"] == dead["grad_norm"] == 0.0 < live["snip"]


def test_scores_are_deterministic_and_leave_the_random_stream_alone():
    arrays = pattern_images(64, size=8, classes=4)
    space = get_space("nb201")
    spec = NetworkSpec(channels=4, cells_per_stage=1, in_channels=3, num_classes=4)
    archs = random_architectures(space, 3, seed=1)
    assert [str(a) for a in archs] == [str(a) for a in random_architectures(space, 3, seed=1)]
    assert [str(a) for a in random_architectures(space, 2, seed=1)] == [str(a) for a in archs[:2]]

    def scores(names, order, seed=0):
        x, y = proxy_batch(arrays, 16, seed, torch.device("cpu"))
        scorer = ProxyScorer(space, spec, x, y, names, seed)
        return {str(archs[i]): scorer.score(archs[i]).scores for i in order}

    state = torch.random.get_rng_state()
    first = scores(["nwot", "snip", "synflow"], [0, 1, 2])
    assert torch.equal(state, torch.random.get_rng_state())
    again = scores(["synflow", "nwot"], [2, 1, 0])  # other proxies, other order: the same values
    assert all(again[a][n] == first[a][n] for a in again for n in again[a])
    fixed = space.parse(ARCH)
    other = [ProxyScorer(space, spec, *proxy_batch(arrays, 16, seed, torch.device("cpu")), ["snip"], seed)
             .score(fixed).scores["snip"] for seed in (0, 1)]
    assert other[0] != other[1]  # another seed: another batch and other initial weights


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet16-120"])
def test_params_and_flops_equal_the_nb201_table(nb201_csv, dataset):
    from drnas.bench import NB201Table

    table = NB201Table.load(nb201_csv)
    space = get_space("nb201")
    info = dataset_shape(dataset)
    spec = evaluation_spec(space, info)
    assert (spec.channels, spec.cells_per_stage, spec.auxiliary) == (16, 5, False)
    suffix = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet16"}[dataset]
    x = torch.zeros(2, 3, info.image_size, info.image_size)
    y = torch.zeros(2, dtype=torch.long)
    scorer = ProxyScorer(space, spec, x, y, ["params", "flops"])
    archs = ["|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
             "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
             "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    for arch in archs:
        row, scores = table.query(arch), scorer.score(space.parse(arch)).scores
        assert round(scores["params"], 6) == row[f"params_mb_{suffix}"]
        assert round(scores["flops"], 6) == row[f"flops_m_{suffix}"]


@pytest.fixture
def npz(tmp_path):
    arrays = pattern_images(96, size=8, classes=4)
    path = tmp_path / "patterns.npz"
    np.savez(path, x_train=arrays.x_train, y_train=arrays.y_train)
    return path


def _proxies_cli(npz, out, *extra):
    return main(["proxies", "--dataset", "npz", "--data", str(npz), "--channels", "4", "--cells", "1", "--batch", "16",
                 "--out", str(out), "--quiet", "--threads", "1", *extra])


def test_proxies_command_resumes_after_a_crash(npz, tmp_path, capsys):
    table = tmp_path / "table.csv"
    write_synthetic_nb201_table(table)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = ["--archs", "6", "--proxies", "nwot,params,synflow"]
    assert _proxies_cli(npz, whole, *args, "--benchmark", str(table), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    lines = (whole / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 7 and json.loads(lines[0])["settings"]["proxies"] == ["nwot", "params", "synflow"]
    rows = [json.loads(line) for line in lines[1:]]
    accs = [float(next(r for r in table.read_text().splitlines() if r.startswith(row["arch"] + ",")).split(",")[2])
            for row in rows]
    got = report["correlations"]["params"]["cifar10_test_acc"]
    assert got["n"] == 6
    assert got["spearman"] == pytest.approx(spearman([r["scores"]["params"] for r in rows], accs))
    assert got["kendall"] == pytest.approx(kendall([r["scores"]["params"] for r in rows], accs))
    # a crash after 3 architectures, in the middle of writing the 4th line
    cut.mkdir()
    (cut / "scores.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:25])
    assert _proxies_cli(npz, cut, *args) == 0
    resumed = (cut / "scores.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in resumed]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]
    capsys.readouterr()
    assert _proxies_cli(npz, cut, "--archs", "6", "--proxies", "nwot") == 2  # other settings: refused
    err = capsys.readouterr().err
    assert err.startswith("drnas: error:") and "proxies" in err and err.count("\n") == 1


@pytest.mark.parametrize("extra, words", [
    (["--archs", "7x"], "neither a number"),
    (["--archs", "3", "--proxies", "nwot,oracle"], "unknown proxy 'oracle'"),
    (["--archs", "3", "--batch", "0"], "batch"),
    (["--archs", "20000"], "--archs all"),
    (["--archs", "all", "--space", "darts"], "--archs N"),
])
def test_proxies_command_bad_input_is_one_line(npz, tmp_path, capsys, extra, words):
    assert _proxies_cli(npz, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("drnas: error:") and words in err and err.count("\n") == 1


@pytest.mark.parametrize("space, method, settings", [
    ("nb201", "naswot", {"queries": 4, "batch": 16}),
    ("darts", "zc-random", {"queries": 4, "batch": 16, "proxy": "snip"}),
])
def test_training_free_search_runs_resumes_and_derives(tmp_path, space, method, settings):
    data = pattern_images(64, size=8, classes=4)
    table = tmp_path / "table.csv"
    write_synthetic_nb201_table(table)
    config = with_method(tiny_config(space=space, channels=4, cells=2, cells_per_stage=1,
                                     benchmark=str(table) if space == "nb201" else None), method, settings)
    config = dataclasses.replace(config, stages=[dataclasses.replace(config.stages[0], epochs=2)])
    whole = Search(config, tmp_path / "whole", data=data, progress=False).run()
    half = Search(config, tmp_path / "half", data=data, progress=False)
    half.run(max_epochs=1)
    resumed = Search.resume(tmp_path / "half", data=data, progress=False).run()
    assert str(resumed.architecture) == str(whole.architecture)
    strip = [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in whole.metrics]
    assert strip == [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in resumed.metrics]
    last = whole.metrics[-1]
    assert last["queries"] == 4 and last["proxy"] == settings.get("proxy", "nwot")
    assert (last["nb201"] is not None) == (space == "nb201")
    # the pick's score is its proxy's score of the derived architecture, built at the run's size
    x, y = proxy_batch(data, 16, config.seed, torch.device("cpu"))
    spec = NetworkSpec(channels=4, cells=2, cells_per_stage=1, in_channels=3, num_classes=4)
    scorer = ProxyScorer(get_space(space), spec, x, y, [last["proxy"]], config.seed)
    assert scorer.score(whole.architecture).scores[last["proxy"]] == last["best_score"]


def test_training_free_search_refuses_an_unknown_proxy(tmp_path, capsys):
    assert main(["search", "--method", "zc-random", "--preset", "demo", "--set", "method.proxy=oracle",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drnas: error:") and "method.proxy" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def _bounded(tmp_path, space: str, method: str, target: float, **settings):
    """A training-free search of ``space`` under a cost bound: a convolution costs 1 on every edge, the rest 0."""
    table = tmp_path / "costs.csv"
    write_conv_cost_table(table, get_space(space))
    config = with_method(tiny_config(space=space, channels=4, cells=2, cells_per_stage=1,
                                     cost_table=f"{table}:energy_mj", cost_target=target),
                         method, {"queries": 6, "batch": 16, **settings})
    return dataclasses.replace(config, stages=[dataclasses.replace(config.stages[0], epochs=2)])


@pytest.mark.parametrize("space, method, target", [("nb201", "naswot", 2.25), ("darts", "zc-random", 6.25)])
def test_a_bounded_training_free_search_scores_only_architectures_within_the_target(tmp_path, space, method, target):
    data = pattern_images(64, size=8, classes=4)
    config = _bounded(tmp_path, space, method, target)  # at most 2 (NB201) or 6 (DARTS) convolutions
    whole = Search(config, tmp_path / "whole", data=data, progress=False)
    drawn: list[float] = []  # the cost of every proposal, scored or dropped
    propose = whole.strategy.propose

    def recording_propose():
        choice = propose()
        drawn.append(whole._cost(choice))
        return choice

    whole.strategy.propose = recording_propose  # type: ignore[method-assign]
    result = whole.run()
    assert len([c for c in drawn if c <= target]) == 6 and drawn[-1] <= target
    assert result.metrics[-1]["dropped"] == len(drawn) - 6 > 0
    # the answer's cost, counted by hand: its convolutions (a DARTS cell: on the edges it keeps) and the constant
    pick = whole._weights(whole.best[1])
    convs = sum(int(pick[e, o]) for e in range(pick.shape[0]) for o, op in enumerate(whole.space.ops) if "conv" in op)
    assert result.metrics[-1]["arch_cost"] == pytest.approx(convs + 0.25) and convs + 0.25 <= target
    assert json.loads((tmp_path / "whole" / "architecture.json").read_text())["arch_cost"] <= target
    half = Search(config, tmp_path / "half", data=data, progress=False)
    half.run(max_epochs=1)
    resumed = Search.resume(tmp_path / "half", data=data, progress=False).run()
    strip = [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in result.metrics]
    assert strip == [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in resumed.metrics]


def test_a_bound_no_random_draw_meets_gives_up_in_one_line(tmp_path, monkeypatch):
    # DARTS' cells keep 8 edges of each cell; every one must avoid the 4 convolutions to cost under 1
    monkeypatch.setattr(table_search, "MAX_MISSES", 50)
    search = Search(_bounded(tmp_path, "darts", "zc-random", target=0.5), tmp_path / "run",
                    data=pattern_images(64, size=8, classes=4), progress=False)
    with pytest.raises(ConfigError, match=r"^50 architectures drawn in a row all cost more than cost_target=0.5 .*"
                                          r"raise cost_target$"):
        search.run()


@pytest.mark.parametrize("sets, says", [
    (["cost_target=0.1"], "no architecture of nb201 meets cost_target=0.1: the cheapest costs 0.25"),
    (["cost_target=1", "cost_weight=2"], "method naswot keeps its queries within a cost bound"),
    ([], "method naswot keeps its queries within a cost bound"),
])
def test_a_bound_that_cannot_apply_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys, sets, says):
    table = tmp_path / "costs.csv"
    write_conv_cost_table(table, get_space("nb201"))
    extra = [a for s in [f"cost_table={table}:energy_mj", *sets] for a in ("--set", s)]
    assert main(["search", "--method", "naswot", "--preset", "demo", *extra, "--out", str(tmp_path / "run"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drnas: error:") and says in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
