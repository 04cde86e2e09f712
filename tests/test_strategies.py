"""Every search method on both spaces (parametrised over the method registry, as timm's tests run over
``list_models``), and each method's own math on tiny real problems."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from drnas.fast import settings as fastpaths
from drnas.engine.runs import RunDir
from drnas.cli import main
from drnas.config.search import ConfigError, Stage
from drnas.data import load_dataset
from drnas.registry import Registry, RegistryError
from drnas.search import Search
from drnas.spaces import get_space
from drnas.spaces.nb201 import NB201_OPS
from drnas.method.strategies import METHODS, get_method, method_names, with_method
from drnas.method.strategies.base import gumbel_noise, one_hot_mixing
from drnas.method.strategies.unrolled import unrolled_hypergradient
from drnas.engine.job import MEASURED_FIELDS
from helpers import pattern_images, tiny_config, write_synthetic_nb201_table

SPACES = ("nb201", "darts")
QUIET = dict(progress=False, log=lambda m: None)


def _applies(method: str, space: str) -> bool:
    cls = get_method(method)
    return space == "nb201" or (cls.uses_supernet and method != "enas")


CASES = [(m, s) for m in method_names() for s in SPACES if _applies(m, s)]


@pytest.fixture(scope="module")
def digits():
    arrays = load_dataset("digits", None)
    return dataclasses.replace(arrays, x_train=arrays.x_train[:128], y_train=arrays.y_train[:128])


@pytest.fixture(scope="module")
def synthetic_table(tmp_path_factory):
    """A complete NB201 results table with made-up accuracies (:func:`helpers.write_synthetic_nb201_table`)."""
    path = tmp_path_factory.mktemp("table") / "nb201.csv"
    write_synthetic_nb201_table(path)
    return path


def _config(method: str, space: str, table=None, **changes):
    if space == "nb201":
        base = tiny_config(dataset="digits", stages=[Stage(epochs=2, partial_k=1)], batch_size=32)
    else:
        base = tiny_config(space="darts", dataset="digits", cells=2, channels=8, batch_size=32,
                           stages=[Stage(epochs=2, partial_k=1)])
    # quick derivations and table searches: the methods that have these settings get small values
    small = {"candidates": 4, "queries": 12}
    declared = {f.name for f in dataclasses.fields(get_method(method).Settings)}
    config = with_method(base, method, {k: v for k, v in small.items() if k in declared})
    if not get_method(method).uses_supernet:
        config = dataclasses.replace(config, dataset="cifar10", benchmark=str(table), stages=[Stage(epochs=2)])
    return dataclasses.replace(config, **changes)


def _strip(metrics):
    return [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in metrics]


# ------------------------------------------------------------------------------------------ every method x space
@pytest.mark.parametrize("method,space", CASES)
def test_every_method_searches_derives_and_resumes_bit_identically(method, space, digits, synthetic_table, tmp_path):
    config = _config(method, space, synthetic_table)
    full = Search(config, tmp_path / "full", data=digits, **QUIET).run()
    assert full.epochs_done == 2 and len(full.metrics) == 2
    # a valid architecture of the space, which survives its own text and JSON forms
    arch = full.architecture
    parsed = get_space(space).parse(str(arch))
    assert str(parsed) == str(arch) and str(get_space(space).from_json(arch.to_json())) == str(arch)
    saved = json.loads((tmp_path / "full" / "architecture.json").read_text())
    assert saved["architecture"] == arch.to_json()
    # the plot of the weights over the epochs is named for what it shows: a Dirichlet mean only for DrNAS methods
    plot = get_method(method).mean_plot
    assert plot == ("dirichlet_mean.png" if method.startswith("drnas") else "op_weights.png")
    assert (tmp_path / "full" / plot).is_file() == get_method(method).uses_supernet  # the table methods draw none

    Search(config, tmp_path / "parts", data=digits, **QUIET).run(max_epochs=1)
    parts = Search.resume(tmp_path / "parts", data=digits, **QUIET).run()
    assert str(parts.architecture) == str(arch)
    assert _strip(parts.metrics) == _strip(full.metrics)
    a = RunDir(tmp_path / "full").load_checkpoint()
    b = RunDir(tmp_path / "parts").load_checkpoint()
    for key in ("net", "relax", "strategy"):
        if key in a:
            assert a[key].keys() == b[key].keys()
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


def test_the_registry_lists_every_method_of_table_4():
    table_4 = {"drnas", "drnas-2nd", "drnas-point", "darts", "darts-2nd", "snas", "gdas", "dsnas", "pc-darts", "rsps",
               "enas", "random", "reinforce"}
    # and the training-free searches, and FairDARTS' sigmoid relaxation
    assert set(method_names()) == table_4 | {"naswot", "zc-random", "darts-sigmoid"}
    for name in method_names():
        assert get_method(name).name == name and METHODS.docs()[name]


def test_registry_refuses_duplicates_and_lists_known_names():
    registry: Registry[int] = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("a", 2)
    with pytest.raises(RegistryError, match=r"unknown thing 'b'; known: a"):
        registry.get("b")
    with pytest.raises(RegistryError, match="known: .*drnas.*gdas") as refused:
        get_method("nope")
    assert "did you mean" not in str(refused.value)  # nothing near: no guess


def test_an_unknown_name_suggests_the_near_ones_after_the_known_list():
    from drnas.method.parts import PARTS

    assert PARTS.near("pt") == ["darts-pt"]  # one word of the name
    assert PARTS.near("SDARTS_ADV")[0] == "sdarts-adv" and METHODS.near("drnsa")[0] == "drnas"
    with pytest.raises(ConfigError, match=r"^unknown part 'pt'; known: sdarts-rs, .*\(did you mean darts-pt\?\)$"):
        PARTS.get("pt")


# ------------------------------------------------------------------------------------------ the math
def _search(method: str, space: str = "nb201", **changes) -> Search:
    config = dataclasses.replace(with_method(tiny_config(stages=[Stage(epochs=2, partial_k=1)]), method),
                                 **changes)
    if space == "darts":
        config = dataclasses.replace(config, space="darts", cells=2)
    return Search(config, data=pattern_images(128), **QUIET)


DIFFERENTIABLE = [m for m in method_names() if get_method(m).uses_supernet and get_method(m).trains_arch
                  and m != "enas" and not get_method(m).second_order]


@pytest.mark.parametrize("method", DIFFERENTIABLE)
@pytest.mark.parametrize("space", SPACES)
def test_arch_gradient_through_the_engine_equals_plain_autograd(method, space):
    """The engine's split (a network pass gives dL/dθ, the strategy's chain rule carries it to its parameters)
    gives the gradient plain autograd gives through the whole computation, for every differentiable method."""
    search = _search(method, space)
    x, y = next(iter(search.arch_loader.epoch(0)))
    params = search.strategy.arch_parameters()

    torch.manual_seed(3)
    mixing = search.strategy.sample()
    _, _, grads, _ = search.gradients(mixing.detached(), x, y)
    split = torch.autograd.grad(mixing.tensors(), params, grads, allow_unused=True)

    torch.manual_seed(3)
    mixing = search.strategy.sample()
    with search._running(mixing.active):
        for p in search.net.parameters():
            p.requires_grad_(False)
        loss = F.cross_entropy(search.net(search.runner.input(x), mixing.theta,
                                          mixing.edge_scale), y)
        for p in search.net.parameters():
            p.requires_grad_(True)
    plain = torch.autograd.grad(loss, params, allow_unused=True)
    for a, b in zip(split, plain):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-7), (a, b)
            assert a.abs().sum() > 0


def test_gumbel_max_draws_follow_the_softmax():
    """GDAS' and DSNAS' hard samples (argmax of logits + Gumbel noise) are draws from softmax(logits)."""
    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5, 2.0]])
    generator = torch.Generator().manual_seed(0)
    n = 40000
    draws = (logits + gumbel_noise((n, 5), torch.device("cpu"), generator)).argmax(-1)
    freq = torch.bincount(draws, minlength=5).float() / n
    p = torch.softmax(logits[0], -1)
    assert torch.allclose(freq, p, atol=4 * math.sqrt(0.25 / n)), (freq, p)


def test_gdas_runs_exactly_one_op_per_edge_and_still_gets_a_gradient():
    search = _search("gdas")
    calls: dict[int, list[int]] = {}
    hooks = []
    for _, mixed in search.net.mixed_ops():
        for index, op in enumerate(mixed.ops):
            hooks.append(op.register_forward_hook(
                lambda m, i, o, key=id(mixed), index=index: calls.setdefault(key, []).append(index)))
    x, y = next(iter(search.arch_loader.epoch(0)))
    with fastpaths.using(fastpaths.PLAIN):  # the plain path calls each op module, which the hooks count
        search.arch_step(x, y)
    for hook in hooks:
        hook.remove()
    # every mixed op ran one op (or none, when the drawn op is the zero op)
    assert calls and all(len(ops) == 1 for ops in calls.values())
    assert len(calls) <= len(list(search.net.mixed_ops()))
    assert search.strategy.eta.grad is not None and search.strategy.eta.grad.abs().sum() > 0


@pytest.mark.parametrize("weights", [False, True])
def test_a_draw_that_cuts_every_path_gives_zero_gradients(weights):
    """Single-path draws of `none` on every edge into a cell's output leave the loss independent of θ (about 1%
    of GDAS steps on NB201): the pass returns zero gradients instead of failing."""
    search = _search("gdas")
    x, y = next(iter(search.arch_loader.epoch(0)))
    mixing = one_hot_mixing([NB201_OPS.index("none")] * 6, len(NB201_OPS), x.device)
    loss, _, (grad,), _ = search.gradients(mixing, x, y, weights=weights)
    assert torch.isfinite(loss) and torch.equal(grad, torch.zeros_like(grad))


def test_dsnas_gradient_is_the_search_gradient():
    """dL/dα_k = dL/dZ_s (1[k = s] - p_k) for the op s that ran on each edge (DSNAS eq. 10-12)."""
    search = _search("dsnas")
    x, y = next(iter(search.arch_loader.epoch(0)))
    torch.manual_seed(5)
    mixing = search.strategy.sample()
    _, _, (grad_theta,), _ = search.gradients(mixing.detached(), x, y)
    got = torch.autograd.grad(mixing.theta, search.strategy.eta, grad_theta)[0]
    p = torch.softmax(search.strategy.eta.detach(), -1)
    chosen = torch.tensor([a[0] for a in mixing.active])
    g_s = grad_theta.gather(1, chosen.unsqueeze(1))
    expected = g_s * (F.one_hot(chosen, p.shape[1]).float() - p)
    assert torch.allclose(got, expected, atol=1e-7)


def test_unrolled_hypergradient_matches_the_exact_one_on_a_tiny_bilevel_problem():
    """DARTS' second-order step with its finite-difference Hessian-vector product against the exact
    d/dθ L_val(w - ξ(m·buf + ∇_w L_train(w, θ) + wd·w), θ) by double backpropagation, in float64."""
    torch.manual_seed(0)
    dtype = torch.float64
    xt, yt = torch.randn(16, 3, dtype=dtype), torch.randn(16, dtype=dtype)
    xv, yv = torch.randn(16, 3, dtype=dtype), torch.randn(16, dtype=dtype)
    w = torch.randn(3, 4, dtype=dtype, requires_grad=True)
    theta = torch.softmax(torch.randn(4, dtype=dtype), 0).requires_grad_(True)
    buf = torch.randn(3, 4, dtype=dtype)
    lr, momentum, wd = 0.1, 0.9, 3e-4

    def loss(weights, th, x, y):
        return ((torch.tanh(x @ weights) @ th - y) ** 2).mean()

    def grads(x, y, of):
        value = loss(w, theta, x, y)
        return list(torch.autograd.grad(value, of))

    w_before = w.detach().clone()
    got = unrolled_hypergradient(
        [w], lambda: grads(xt, yt, [w]),
        lambda: (grads(xv, yv, [theta]), grads(xv, yv, [w])),
        lambda: grads(xt, yt, [theta]), lr, momentum, wd, [buf])[0]

    g_train = torch.autograd.grad(loss(w, theta, xt, yt), w, create_graph=True)[0]
    unrolled = w - lr * (momentum * buf + g_train + wd * w)
    exact = torch.autograd.grad(loss(unrolled, theta, xv, yv), theta)[0]
    first_order = grads(xv, yv, [theta])[0]
    assert torch.allclose(got, exact, rtol=1e-4, atol=1e-8), (got, exact)
    assert not torch.allclose(first_order, exact, rtol=1e-3)  # the second-order term matters here
    assert torch.equal(w.detach(), w_before)  # the weights are restored exactly


@pytest.mark.parametrize("method", ["darts-2nd", "drnas-2nd"])
def test_second_order_step_leaves_the_weights_as_they_were(method):
    search = _search(method)
    before = [p.detach().clone() for p in search.net.parameters()]
    eta = search.strategy.eta.detach().clone()
    (xa, ya), (xw, yw) = next(iter(search.arch_loader.epoch(0))), next(iter(search.weight_loader.epoch(0)))
    search.weight_step(xw, yw)  # a momentum buffer to unroll with
    after_weight_step = [p.detach().clone() for p in search.net.parameters()]
    search.arch_step(xa, ya, (xw, yw))
    assert all(torch.equal(a, p) for a, p in zip(after_weight_step, search.net.parameters()))
    assert not torch.equal(eta, search.strategy.eta) and not all(
        torch.equal(a, b) for a, b in zip(before, after_weight_step))


@pytest.mark.parametrize("method", ["rsps", "random"])
def test_random_methods_never_update_architecture_parameters(method, digits, synthetic_table, tmp_path):
    config = _config(method, "nb201", synthetic_table)
    search = Search(config, tmp_path / "run", data=digits, **QUIET)
    eta = search.strategy.eta.detach().clone()
    search.run()
    assert search.arch_optimizer is None and torch.equal(eta, search.strategy.eta.detach())


def test_reinforce_learns_the_table_and_answers_its_best_query(synthetic_table, tmp_path):
    config = _config("reinforce", "nb201", synthetic_table, arch_lr=0.05)
    config = dataclasses.replace(config, method_settings={**config.method_settings, "queries": 400})
    search = Search(config, tmp_path / "run", **QUIET)
    eta = search.strategy.eta.detach().clone()
    result = search.run()
    rewards = [m["mean_query_valid_acc"] for m in result.metrics]
    assert rewards[-1] > rewards[0] + 2  # the policy moved towards convolutions
    assert not torch.equal(eta, search.strategy.eta.detach())
    assert result.metrics[-1]["best_valid_acc"] == max(m["best_valid_acc"] for m in result.metrics)
    assert result.metrics[-1]["nb201"]["cifar10_valid_acc"] == pytest.approx(result.metrics[-1]["best_valid_acc"])


def test_pc_darts_edge_weights_are_a_softmax_per_node():
    search = _search("pc-darts", "darts")
    weights = search.strategy.edge_weights()
    for group in search.space.edge_groups():
        assert float(weights[group].sum().detach()) == pytest.approx(1.0)
    assert search.net.partial_k == 4 and search.config.stages[0].arch_warmup == 1


@pytest.mark.parametrize("method", [m for m in method_names() if get_method(m).uses_supernet])
def test_fused_edges_equal_edge_by_edge_for_every_method(method):
    """The fast paths (edge fusion, the joined shuffle, fast pooling) compute what the plain cell computes, for
    every method's mixing weights (single-path, edge-scaled and dense alike)."""
    torch.set_default_dtype(torch.float64)
    try:
        search = _search(method)
    finally:
        torch.set_default_dtype(torch.float32)
    search.net.eval()
    x, y = next(iter(search.valid_loader.epoch(0)))
    x = search.runner.input(x.double())
    torch.manual_seed(1)
    with torch.no_grad():
        mixing = search.strategy.sample()
    outputs = []
    for paths in (fastpaths.DEFAULT, fastpaths.PLAIN):
        with fastpaths.using(paths), search._running(mixing.active), torch.no_grad():
            outputs.append(search.net(x, mixing.theta.double(), None if mixing.edge_scale is None
                                      else mixing.edge_scale.double()))
    assert torch.allclose(outputs[0], outputs[1], rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------------------------------ command line
def test_methods_command_lists_every_method(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in method_names():
        assert f"  {name} " in out


@pytest.mark.parametrize("argv,message", [
    (["--method", "nope"], "unknown method 'nope'; known: "),
    (["--set", "relaxation=softmax"], "relaxation is no config field any more: the relaxation comes with the method"),
    (["--method", "gdas", "--set", "compile=cells"], "compiled cells cannot follow"),
    (["--method", "darts", "--set", "regulariser=kl"], "regulariser is a setting of method drnas"),
    (["--method", "darts", "--set", "method.regulariser=kl"], "--method drnas --set method.regulariser=VALUE"),
    (["--method", "gdas", "--set", "method.tau_min=0"], "method gdas: tau_min must be > 0, got 0.0"),
    (["--method", "gdas", "--set", "method.warmth=1"], "method gdas has no setting 'warmth'; its settings: tau_max"),
    (["--method", "random"], "give --benchmark FILE"),
    (["--method", "rsps", "--set", 'stages=[{"epochs": 1}, {"epochs": 1, "ops_kept": 3}]'],
     """no op strengths to prune by: give the stages without ops_kept, --set 'stages=[{"epochs": 1, "partial_k": 1"""),
])
def test_method_misuse_is_one_line(argv, message, capsys, tmp_path):
    preset = [] if "--preset" in argv else ["--preset", "demo"]
    code = main(["search", *preset, "--epochs", "2", "--quiet", "--out", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("drnas: error: ") and message in err[0], err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_method_flag_applies_the_method_defaults_under_the_users_settings(tmp_path, capsys):
    code = main(["search", "--preset", "demo", "--method", "gdas", "--epochs", "2", "--train-images", "128",
                 "--set", "method.tau_min=0.5", "--quiet", "--out", str(tmp_path / "run")])
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "gdas"
    assert config["method_settings"] == {"tau_max": 10.0, "tau_min": 0.5, "schedule": "linear"}
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["tau"] for m in lines] == [10.0, 0.5]
    assert "architecture: |" in capsys.readouterr().out
    with pytest.raises(ConfigError):
        Search(dataclasses.replace(tiny_config(), method="gdas", compile="cells"), data=pattern_images(64), **QUIET)
