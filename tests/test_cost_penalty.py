"""Search under a cost (issue 33): the expected cost of the learned distribution, lambda * E[cost] or lambda *
max(0, E[cost] - target), joins the architecture objective of every differentiable method; the gradient against
autograd of a direct computation, the target form's shape, a tiny search that a cost steers, resume bit for bit,
and the refusals of what cannot work."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from helpers import pattern_images, tiny_config, write_conv_cost_table

from drnas.analysis.diagrams import run_pictures
from drnas.cli import main
from drnas.config.presets import preset
from drnas.config.search import (
    ConfigError,
    SearchConfig,
    Stage,
    apply_overrides,
    with_absolute_paths,
)
from drnas.engine.job import MEASURED_FIELDS
from drnas.engine.runs import RunDir, RunError
from drnas.method.strategies import METHODS, get_method, with_method
from drnas.method.strategies.base import SoftmaxStrategy
from drnas.method.strategies.drnas import DrNAS
from drnas.search import Search
from drnas.spaces import get_space

QUIET = dict(progress=False, log=lambda m: None)
DATA = pattern_images(128)
#: every method whose architecture step is a gradient on a supernet: the ones a cost can steer
DIFFERENTIABLE = [name for name in METHODS if get_method(name).takes_cost_penalty()]
#: the others, refused at parse time
NOT_DIFFERENTIABLE = [name for name in METHODS
                      if not get_method(name).takes_cost_penalty() and not get_method(name).cost_bound]


def _costs(space, seed: int = 0) -> tuple[torch.Tensor, float]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(space.num_edges, len(space.ops), generator=generator, dtype=torch.float64) * 3, 0.75


def _direct_expected_weights(strategy, eta: torch.Tensor) -> torch.Tensor:
    """The expected weights written out from eta in float64, pruned ops at 0: DrNAS' Dirichlet mean
    (beta = ELU(eta) + 1, eq. 6), the normalised sigmoids of darts-sigmoid, or the softmax of the DARTS-like methods
    (alpha)."""
    if isinstance(strategy, DrNAS):
        beta = (F.elu(eta) + 1.0) * strategy.mask
        return beta / beta.sum(-1, keepdim=True)
    if strategy.name == "darts-sigmoid":  # FairDARTS' independent sigmoids, each edge's divided by their sum
        weights = torch.sigmoid(eta) * strategy.mask
        return weights / weights.sum(-1, keepdim=True)
    assert isinstance(strategy, SoftmaxStrategy), f"write the expected weights of {strategy.name} here"
    return torch.softmax(eta.masked_fill(~strategy.mask, float("-inf")), -1)


@pytest.mark.parametrize("target", [None, 1.5, 1e6])
@pytest.mark.parametrize("method", DIFFERENTIABLE)
def test_the_penalty_and_its_gradient_equal_a_direct_computation(method, target):
    space = get_space("nb201")
    config = with_method(apply_overrides(preset("demo"), {"cost_table": "t.csv", "cost_weight": 0.7,
                                                          "cost_target": target}), method).validate()
    torch.manual_seed(0)
    strategy = get_method(method)(space, config)
    with torch.no_grad():
        strategy.eta.normal_(0, 1)  # away from the uniform start, some eta < 0 (ELU's other branch)
    strategy.prune(4)  # pruned ops count 0
    matrix, constant = _costs(space)
    strategy.set_costs(matrix, constant)
    penalty = strategy.cost_penalty()
    (grad,) = torch.autograd.grad(penalty, strategy.eta)

    eta = strategy.eta.detach().double().requires_grad_()
    expected = constant + sum(float(matrix[e, o]) * _direct_expected_weights(strategy, eta)[e, o]
                              for e in range(space.num_edges) for o in range(len(space.ops)))
    direct = 0.7 * (expected if target is None else torch.clamp(expected - target, min=0.0))
    (direct_grad,) = torch.autograd.grad(direct, eta)
    assert float(strategy.expected_cost().detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert float(penalty.detach()) == pytest.approx(float(direct.detach()), rel=1e-6, abs=1e-12)
    assert torch.allclose(grad.double(), direct_grad, rtol=1e-4, atol=1e-7)
    assert (grad[~strategy.mask] == 0).all()
    if target == 1e6:  # far under the budget: no penalty, no gradient
        assert penalty.item() == 0 and not grad.any()
    else:
        assert grad.abs().sum() > 0


def test_the_target_form_is_zero_below_the_target_and_linear_above():
    space = get_space("nb201")
    config = apply_overrides(preset("demo"), {"cost_table": "t.csv", "cost_weight": 2.0})
    strategy = get_method("darts")(space, config)
    strategy.set_costs(*_costs(space))
    expected = strategy.expected_cost()
    (expected_grad,) = torch.autograd.grad(expected, strategy.eta)
    for excess in (-3.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 3.0):  # E[cost] - target
        strategy.config = dataclasses.replace(config, cost_target=expected.item() - excess)
        penalty = strategy.cost_penalty()
        (grad,) = torch.autograd.grad(penalty, strategy.eta)
        if excess <= 0:  # within the budget: nothing, and no pull
            assert penalty.item() == 0 and not grad.any()
        else:  # over it: lambda times the excess, and lambda times the gradient of E[cost]
            assert penalty.item() == pytest.approx(2.0 * excess, rel=1e-9)
            assert torch.allclose(grad, 2.0 * expected_grad)
    # only a target: lambda = 1 / target, so 100% over the budget weighs one nat
    strategy.config = dataclasses.replace(config, cost_weight=0.0, cost_target=expected.item() / 2)
    assert strategy.config.cost_weight_in_use == pytest.approx(2 / expected.item())
    assert strategy.cost_penalty().item() == pytest.approx(1.0)
    # no weight, no target: the expected cost is logged, nothing is added
    strategy.config = dataclasses.replace(config, cost_weight=0.0, cost_target=None)
    assert strategy.cost_penalty() is None and strategy.expected_cost() is not None


@pytest.mark.parametrize("method", ["drnas", "darts-2nd"])
def test_the_arch_step_adds_the_penalty_gradient_first_and_second_order(method, tmp_path):
    """The architecture step's gradient with a cost is the one without plus the penalty's (same draw, same batch)."""
    config = with_method(tiny_config(stages=[Stage(epochs=1)], channels=4), method)
    search = Search(config, None, data=DATA, **QUIET)
    matrix, constant = _costs(search.space)
    search.strategy.set_costs(matrix, constant)
    x, y = next(iter(search.arch_loader.epoch(0)))
    grads = []
    for weight in (0.0, 3.0):
        search.strategy.config = dataclasses.replace(config, cost_table="t.csv", cost_weight=weight)
        torch.manual_seed(1)
        eta = search.strategy.eta.detach().clone()
        search.arch_step(x, y)
        grads.append(search.strategy.eta.grad.clone())
        with torch.no_grad():
            search.strategy.eta.copy_(eta)
    (penalty_grad,) = torch.autograd.grad(search.strategy.cost_penalty(), search.strategy.eta)
    assert torch.allclose(grads[1] - grads[0], penalty_grad, atol=1e-6)
    assert penalty_grad.abs().sum() > 0


def _cost_config(table, **changes) -> SearchConfig:
    return tiny_config(stages=[Stage(epochs=3, partial_k=1)], channels=4, arch_lr=0.03,
                       cost_table=f"{table}:energy_mj", **changes)


def test_a_tiny_search_under_a_tight_target_ends_within_it(tmp_path):
    table = tmp_path / "costs.csv"
    write_conv_cost_table(table, get_space("nb201"))
    free = Search(_cost_config(table), tmp_path / "free", data=DATA, **QUIET).run()  # logged, no penalty
    lines: list[str] = []
    tight = Search(_cost_config(table, cost_weight=20.0, cost_target=1.0), tmp_path / "tight", data=DATA,
                   progress=False, log=lines.append).run()
    free_cost, tight_cost = free.metrics[-1]["arch_cost"], tight.metrics[-1]["arch_cost"]
    assert tight_cost <= 1.0 and tight_cost < free_cost  # within the budget (fixed parts 0.25, a conv 1)
    expected = [m["expected_cost"] for m in tight.metrics]
    assert expected == sorted(expected, reverse=True) and expected[-1] < free.metrics[-1]["expected_cost"]
    assert any(f"energy_mj expected {expected[-1]:.4g} arch {tight_cost:.4g}" in line for line in lines)
    saved = json.loads((tmp_path / "tight" / "config.json").read_text())
    assert saved["cost_table"] == f"{table.resolve()}:energy_mj" and saved["cost_target"] == 1.0
    assert (tmp_path / "tight" / "plots" / "cost.png") in run_pictures(tmp_path / "tight")
    # a config.json from before these fields still resumes (their defaults: no cost)
    for key in ("cost_table", "cost_weight", "cost_target"):
        saved.pop(key)
    (tmp_path / "tight" / "config.json").write_text(json.dumps(saved))
    with pytest.raises(RunError, match="no longer names"):  # ... but this run's checkpoint holds costs
        Search.resume(tmp_path / "tight", data=DATA, **QUIET)


def test_a_darts_space_search_logs_its_expected_cost(tmp_path):
    """DARTS' cells pick two inputs per node, which an (edge, op) table cannot price: the expected cost is logged
    and steers the search, the derived cell's cost is null."""
    table = tmp_path / "costs.csv"
    write_conv_cost_table(table, get_space("darts"))
    config = tiny_config(space="darts", cells=2, channels=4, stages=[Stage(epochs=1)], cost_weight=1.0,
                         cost_table=f"{table}:energy_mj")
    (record,) = Search(with_method(config, "darts"), tmp_path / "run", data=DATA, **QUIET).run().metrics
    ops = get_space("darts").ops
    start = 0.25 + 28 * sum("conv" in op for op in ops) / len(ops)  # the uniform start
    assert 0.25 < record["expected_cost"] < start and record["arch_cost"] is None


def _strip(metrics):
    return [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in metrics]


def test_a_stopped_and_resumed_search_under_a_cost_is_bit_identical(tmp_path):
    table = tmp_path / "costs.csv"
    write_conv_cost_table(table, get_space("nb201"))
    config = _cost_config(table, cost_weight=0.5)
    full = Search(config, tmp_path / "full", data=DATA, **QUIET).run()
    Search(config, tmp_path / "run", data=DATA, **QUIET).run(max_epochs=1)
    resumed = Search.resume(tmp_path / "run", data=DATA, **QUIET)
    resumed.run()
    assert _strip(RunDir(tmp_path / "run").read_metrics()) == _strip(full.metrics)
    a, b = RunDir(tmp_path / "full").load_checkpoint(), RunDir(tmp_path / "run").load_checkpoint()
    assert a["relax"].keys() == b["relax"].keys() and {"cost", "cost_constant"} <= set(a["relax"])
    assert all(torch.equal(a["relax"][k], b["relax"][k]) for k in a["relax"])
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])
    # a table that changed between the stop and the resume: refused in one line, the run untouched
    Search(config, tmp_path / "changed", data=DATA, **QUIET).run(max_epochs=1)
    table.write_text(table.read_text().replace("*,*,0.25", "*,*,0.5"))
    with pytest.raises(RunError, match="holds other costs than when this run started") as info:
        Search.resume(tmp_path / "changed", data=DATA, **QUIET)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("overrides, says", [
    ({"cost_weight": 1.0}, "cost_weight needs a cost table"),
    ({"cost_target": 5.0}, "cost_target needs a cost table"),
    ({"cost_table": "t.csv", "cost_weight": -1.0}, "cost_weight must be in [0, 1e6]"),
    ({"cost_table": "t.csv", "cost_weight": 1e7}, "cost_weight must be in [0, 1e6]"),
    ({"cost_table": "t.csv", "cost_target": 0.0}, "cost_target must be in (0, 1e12]"),
    ({"cost_table": "t.csv", "cost_target": "nan"}, "cost_target must be a finite number"),
])
def test_bad_cost_settings_are_one_line(overrides, says):
    with pytest.raises(ConfigError) as info:
        apply_overrides(preset("demo"), overrides).validate()
    assert says in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("method", NOT_DIFFERENTIABLE)
def test_a_method_without_an_architecture_gradient_is_refused_at_parse_time(method, tmp_path, capsys):
    code = main(["search", "--preset", "demo", "--method", method, "--set", f"cost_table={tmp_path / 't.csv'}",
                 "--set", "cost_weight=1", "--out", str(tmp_path / "run")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and f"method {method} has no architecture gradient" in err[0]
    assert not (tmp_path / "run").exists()


def test_the_fields_come_from_set_and_files_and_the_table_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = apply_overrides(preset("demo"), {"cost_table": "hw/lat.csv:pixel3_ms", "cost_weight": "0.5",
                                              "cost_target": "4"}).validate()
    assert (config.cost_weight, config.cost_target) == (0.5, 4.0)
    assert with_absolute_paths(config).cost_table == f"{tmp_path / 'hw' / 'lat.csv'}:pixel3_ms"
    assert with_absolute_paths(dataclasses.replace(config, cost_table="t.csv")).cost_table == str(tmp_path / "t.csv")
    assert SearchConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("content, says", [(None, "does not exist"), ("edge,op,a,b\n", "has 2 cost columns"),
                                           ("edge,op,ms\n*,*,1\n", "lacks 30 (edge, op) costs")])
def test_a_bad_cost_table_is_one_line_before_anything_is_written(content, says, tmp_path, capsys):
    table = tmp_path / "costs.csv"
    if content is not None:
        table.write_text(content)
    code = main(["search", "--preset", "demo", "--set", f"cost_table={table}", "--out", str(tmp_path / "run")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("drnas: error:") and says in err[0], err
    assert not (tmp_path / "run").exists()
