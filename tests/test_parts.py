"""The parts that compose with a method (parametrised over the part registry) and the recipes, RobustDARTS'
spaces S1-S4, and each part's math against a direct computation on a tiny real problem."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from drnas.cli import main
from drnas.config.resolve import resolve_search_config
from drnas.config.search import ConfigError, Stage
from drnas.engine.job import MEASURED_FIELDS
from drnas.engine.runs import RunDir, finished
from drnas.method.parts import PARTS, RECIPES, Part, Stop, part_names, register_part, with_parts
from drnas.method.parts.early_stop import DartsES, DartsPlus
from drnas.method.parts.gaea import ExponentiatedGradient
from drnas.method.parts.smoothing import AdversarialSettings, AdversarialSmoothing, project
from drnas.method.strategies import METHODS, Mixing, check_method, get_method, with_method
from drnas.search import Search
from drnas.spaces import SupernetSpec, get_space
from drnas.spaces.robust_darts import S1_NORMAL, S1_REDUCE, Noise
from drnas.sweep.report import cell_numbers
from helpers import digits, tiny_config

QUIET = dict(progress=False, log=lambda m: None)
#: the methods every part is tried with: DARTS, the method the robust methods were written for, and DrNAS (GAEA
#: with PC-DARTS runs in the DARTS-space test below)
WITH_METHODS = ("darts", "drnas")


#: settings a part needs in the tests' one-stage searches (skip-dropout's default rates are P-DARTS' three stages,
#: the first of them 0)
TEST_SETTINGS = {"skip-dropout": {"rates": [0.5]}}


def _config(method: str, parts: list[str], space: str = "nb201", epochs: int = 2, **changes):
    base = tiny_config(dataset="digits", stages=[Stage(epochs=epochs, partial_k=1)], batch_size=32, **changes)
    if space != "nb201":
        base = dataclasses.replace(base, space=space, cells=2)
    config = with_method(base, method)
    if "darts-es" in parts:
        config = dataclasses.replace(config, hessian_every=1)
    return with_parts(config, parts, {p: TEST_SETTINGS[p] for p in parts if p in TEST_SETTINGS})


def _fits(method: str, part: str) -> bool:
    config = _config(method, [part])
    try:
        check_method(config, get_space(config.space, config.ops))
    except ConfigError:
        return False
    return True


#: every part with each method it fits: the first one runs, resumes and is compared bit for bit, the others run
#: one epoch (the suite's time)
FITS = {p: [m for m in WITH_METHODS if _fits(m, p)] for p in part_names()}


def _strip(metrics):
    return [{k: v for k, v in m.items() if k not in MEASURED_FIELDS} for m in metrics]


def _same_run(a, b) -> None:
    assert _strip(a.metrics) == _strip(b.metrics) and str(a.architecture) == str(b.architecture)
    ca, cb = RunDir(a.run_dir).load_checkpoint(), RunDir(b.run_dir).load_checkpoint()
    for key in ("net", "relax"):
        assert all(torch.equal(ca[key][k], cb[key][k]) for k in ca[key]), key
    assert ca["arch_optimizer"]["state"].keys() == cb["arch_optimizer"]["state"].keys()


def test_every_part_fits_at_least_one_method_and_every_recipe_names_registered_ones():
    assert all(FITS.values()) and FITS["gaea"] == ["darts"]
    for name in RECIPES:
        recipe = RECIPES.get(name)
        assert recipe.method in METHODS and all(p in PARTS for p in recipe.parts)
        assert recipe.paper and RECIPES.docs()[name] and all(PARTS.docs()[p] for p in recipe.parts)


@pytest.mark.parametrize("part", part_names())
def test_every_part_searches_and_resumes_bit_identically_and_runs_with_every_method_it_fits(part, tmp_path):
    data = digits(64)
    for method in FITS[part][1:]:
        other = Search(_config(method, [part], epochs=1), data=data, **QUIET).run()
        assert other.epochs_done == 1 and other.metrics[-1]["valid_loss"] > 0
    if part == "darts-es":  # its curvature every epoch takes seconds: one epoch of its own method
        assert Search(_config("darts", [part], epochs=1), data=data, **QUIET).run().metrics[-1]["hessian"]
        return
    config = _config(FITS[part][0], [part])
    full = Search(config, tmp_path / "full", data=data, **QUIET).run()
    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert saved["parts"] == [part] and set(saved["part_settings"]) == {part}  # every setting, recorded whole
    assert json.loads((tmp_path / "full" / "architecture.json").read_text())["parts"] == [part]
    Search(config, tmp_path / "half", data=data, **QUIET).run(max_epochs=1)
    _same_run(full, Search.resume(tmp_path / "half", data=data, **QUIET).run())


def test_parts_compose_on_the_darts_space_and_resume_bit_identically(tmp_path):
    """Six parts at once, one of each slot, on PC-DARTS (whose edge weights GAEA also updates) in the DARTS space."""
    parts = ["sdarts-adv", "beta-decay", "zero-one", "aux-skip", "gaea", "darts-plus"]
    config = with_parts(_config("pc-darts", [], space="darts"), parts,
                        {"sdarts-adv": {"steps": 2}, "darts-plus": {"max_skips": 100}})
    data = digits(64)
    full = Search(config, tmp_path / "full", data=data, **QUIET).run()
    assert full.metrics[-1]["aux_skip_beta"] == 0.0 and full.metrics[-1]["beta_decay_weight"] == 50.0 * 1 / 2
    Search(config, tmp_path / "half", data=data, **QUIET).run(max_epochs=1)
    _same_run(full, Search.resume(tmp_path / "half", data=data, **QUIET).run())


# ------------------------------------------------------------------------------------------ early stopping
class _StopAtTwo(Part):
    """A stopping rule as a plugin would register one: after epoch 2, keep the cell of epoch 1."""

    def stop(self, history, cell_ops):
        return Stop("test: epoch 2", 1) if len(history) == 2 else None


@pytest.fixture
def stop_at_two():
    register_part("test-stop-at-two", doc="stops after epoch 2")(_StopAtTwo)
    yield "test-stop-at-two"
    PARTS._entries.pop("test-stop-at-two")
    PARTS._docs.pop("test-stop-at-two")


def test_a_stopped_search_records_why_keeps_the_cell_it_names_and_resumes_to_no_more_epochs(stop_at_two, tmp_path,
                                                                                           capsys):
    config = _config("darts", [stop_at_two], epochs=4)
    data = digits(64)
    result = Search(config, tmp_path / "run", data=data, **QUIET).run()
    assert result.epochs_done == 2 and len(result.metrics) == 2
    last = result.metrics[-1]
    assert last["stopped"]["reason"] == "test: epoch 2" and last["stopped"]["kept_epoch"] == 1
    assert last["arch"] == result.metrics[0]["arch"] == str(result.architecture)
    assert last["stopped"]["arch_at_stop"]
    saved = json.loads((tmp_path / "run" / "architecture.json").read_text())
    assert saved["final"] and saved["stopped"]["epoch"] == 2
    metrics = RunDir(tmp_path / "run").read_metrics()
    assert finished(metrics, 4) and not finished(metrics[:1], 4)
    assert cell_numbers(config.to_json(), metrics)["stopped_epoch"] == 1.0
    again = Search.resume(tmp_path / "run", data=data, **QUIET).run()
    assert again.epochs_done == 2 and str(again.architecture) == str(result.architecture)
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "parts:        test-stop-at-two" in out
    assert "stopped:      after epoch 2: test: epoch 2 (keeps the cell of epoch 1)" in out


def _history(eigenvalues):
    return [{"epoch": i + 1, "hessian": {"eigenvalue": v}} for i, v in enumerate(eigenvalues)]


def test_darts_es_stops_when_the_mean_eigenvalue_grows_past_its_ratio_and_keeps_the_cell_k_epochs_back():
    rule = DartsES(DartsES.Settings(lookback=2, window=2, ratio=0.75), _config("darts", []), None)
    assert rule.stop(_history([1.0, 1.0, 1.0]), []) is None  # too few measurements for a window k epochs back
    assert rule.stop(_history([1.0, 1.0, 1.1, 1.2]), []) is None  # mean(1, 1) / mean(1.1, 1.2) = 0.87
    stop = rule.stop(_history([1.0, 1.0, 2.0, 3.0]), [])  # mean(1, 1) / mean(2, 3) = 0.4
    assert stop is not None and stop.keep_epoch == 2 and "0.400" in stop.reason
    flat = _history([1.0, 1.0, 2.0, 3.0])
    flat[2]["hessian"] = None  # an epoch without a measurement is passed over
    assert rule.stop(flat, []) is None


def test_darts_plus_stops_at_its_skip_count():
    rule = DartsPlus(DartsPlus.Settings(max_skips=2), _config("darts", []), None)
    history = [{"epoch": 7}]
    assert rule.stop(history, ["skip_connect", "nor_conv_3x3", "none"]) is None
    stop = rule.stop(history, ["skip_connect", "nor_conv_3x3", "skip_connect"])
    assert stop == Stop("darts-plus: the derived cell holds 2 skip connections (limit 2)", 7)


# ------------------------------------------------------------------------------------------ the math
def _strategy(method: str, parts=(), space: str = "nb201"):
    config = with_parts(_config(method, [], space=space), list(parts))
    torch.manual_seed(0)
    return get_method(method)(get_space(config.space, config.ops), config)


def test_sdarts_projection_and_random_smoothing_keep_weights_on_the_simplex_with_pruned_ops_at_zero():
    strategy = _strategy("darts", ["sdarts-rs"])
    strategy.mask[0, 1] = False
    theta = F.softmax(torch.randn(strategy.eta.shape), -1).masked_fill(~strategy.mask, 0.0)
    noisy = strategy.mix(Mixing(theta), "weight").theta
    assert torch.allclose(noisy.sum(-1), torch.ones(len(theta))) and noisy[0, 1] == 0 and (noisy >= 0).all()
    assert 0 < (noisy - theta).abs().max() < 0.1  # within a few epsilon of the unperturbed weights
    assert strategy.mix(Mixing(theta), "arch").theta is theta  # only the weight step is perturbed
    start = torch.tensor([[0.5, 0.5, 0.0]])
    assert torch.equal(project(torch.tensor([[-0.2, -0.1, 0.0]]), start, torch.ones(1, 3, dtype=torch.bool)),
                       torch.tensor([[1.0, 0.0, 0.0]]))  # an edge clipped to nothing keeps its strongest op


class _QuadraticEngine:
    """A real tiny objective in place of a network pass: loss(θ) = (Σ A ⊙ θ)², its gradient by autograd."""

    def __init__(self, a: torch.Tensor) -> None:
        self.a = a

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        return (self.a * theta).sum() ** 2

    def gradients(self, mixing, x, y, weights=False):
        theta = mixing.theta.detach().requires_grad_(True)
        loss = self.loss(theta)
        return loss.detach(), torch.tensor(0), [torch.autograd.grad(loss, theta)[0]], []


def test_sdarts_adv_takes_signed_gradient_ascent_steps_projected_to_the_epsilon_ball():
    torch.manual_seed(1)
    theta = F.softmax(torch.randn(6, 5), -1)
    mask = torch.ones(6, 5, dtype=torch.bool)
    engine = _QuadraticEngine(torch.randn(6, 5))
    settings = AdversarialSettings(epsilon=0.05, steps=3, random_start=False)
    attacked = AdversarialSmoothing(settings, _config("darts", []), None).attack(Mixing(theta), mask, engine, (None, None))
    expected = theta.clone()
    for _ in range(3):  # the PGD steps written out with autograd
        x = expected.clone().requires_grad_(True)
        grad = torch.autograd.grad(engine.loss(x), x)[0]
        expected = project(theta + (expected + 2 * 0.05 / 3 * grad.sign() - theta).clamp(-0.05, 0.05), theta, mask)
    assert torch.allclose(attacked, expected)
    assert engine.loss(attacked) > engine.loss(theta)


def test_beta_decay_gradient_is_its_weight_times_the_softmax_over_the_edges():
    strategy = _strategy("darts", ["beta-decay"])
    part = strategy.parts[0]
    part.start_epoch(0, 5)
    assert part.penalty(strategy) is None  # lambda ramps from 0 at the first epoch
    part.start_epoch(4, 5)
    strategy.eta.data = torch.randn(strategy.eta.shape)
    grad = torch.autograd.grad(part.penalty(strategy), strategy.eta)[0]
    # lambda_4 = 50 * 4 / 5, the authors' NB201 schedule (50 * epoch / 100) on 5 epochs
    assert torch.allclose(grad, 40.0 * F.softmax(strategy.eta, -1) / strategy.eta.shape[0], atol=1e-5)


def test_zero_one_gradient_on_sigmoid_weights():
    strategy = _strategy("darts-sigmoid", ["zero-one"])
    strategy.eta.data = torch.randn(strategy.eta.shape)
    grad = torch.autograd.grad(strategy.parts[0].penalty(strategy), strategy.eta)[0]
    s = torch.sigmoid(strategy.eta.detach())
    assert torch.allclose(grad, -10.0 * 2 * (s - 0.5) * s * (1 - s) / s.numel(), atol=1e-6)
    assert torch.equal(strategy.sample().theta, s)  # FairDARTS' independent sigmoids


def test_gaea_step_is_the_exponentiated_gradient_on_the_softmax_weights():
    strategy = _strategy("darts", ["gaea"])
    strategy.eta.data = torch.randn(strategy.eta.shape)
    optimizer = strategy.make_arch_optimizer()
    assert isinstance(optimizer, ExponentiatedGradient)
    a = torch.randn(strategy.eta.shape)
    theta = strategy.probabilities().detach().clone().requires_grad_(True)
    grad_theta = torch.autograd.grad((a * theta).sum() ** 2, theta)[0]  # dL/dtheta, theta a leaf
    optimizer.zero_grad()
    ((a * strategy.probabilities()).sum() ** 2).backward()
    optimizer.step()
    expected = theta.detach() * torch.exp(-0.1 * grad_theta)
    assert torch.allclose(strategy.probabilities(), expected / expected.sum(-1, keepdim=True), atol=1e-6)


def test_aux_skip_adds_a_linearly_decaying_skip_weight_in_every_phase_and_no_gradient():
    strategy = _strategy("darts", ["aux-skip"])
    skip = get_space("nb201").ops.index("skip_connect")
    part = strategy.parts[0]
    for epoch, beta in ((0, 1.0), (2, 0.5), (4, 0.0)):
        part.start_epoch(epoch, 5)
        assert part.beta == pytest.approx(beta)
    part.start_epoch(0, 5)
    theta = strategy.sample().theta
    for phase in ("weight", "arch", "eval"):
        mixed = strategy.mix(Mixing(theta), phase).theta
        assert torch.allclose(mixed - theta, F.one_hot(torch.tensor(skip), theta.shape[1]).float().expand_as(theta))
    grad = torch.autograd.grad(strategy.mix(Mixing(strategy.sample().theta), "arch").theta.sum(), strategy.eta)[0]
    assert torch.allclose(grad, torch.autograd.grad(strategy.sample().theta.sum(), strategy.eta)[0])


# ------------------------------------------------------------------------------------------ the command line
def _resolve(**levels):
    return resolve_search_config(apply_method=with_method, apply_parts=with_parts, preset="demo", **levels)


def test_recipes_with_and_part_settings_resolve_and_add_up():
    config = _resolve(method="sdarts-adv")
    assert config.method == "darts" and config.parts == ["sdarts-adv"]
    assert config.part_settings == {"sdarts-adv": {"epsilon": 0.03, "steps": 7, "random_start": True}}
    config = _resolve(method="darts-es", parts=["beta-decay"], sets={"part.beta-decay.weight": "2"})
    assert config.parts == ["darts-es", "beta-decay"] and config.hessian_every == 1
    assert config.part_settings["beta-decay"] == {"weight": 2.0}
    assert _resolve(method="fair-darts").method == "darts-sigmoid"


@pytest.mark.parametrize("argv,words", [
    (["--method", "drnas", "--with", "gaea"], "softmax-parametrised"),
    (["--method", "gdas", "--with", "sdarts-rs"], "one op per edge"),
    (["--method", "darts", "--with", "sdarts-rs", "--with", "sdarts-adv"], "keep one of them"),
    (["--method", "darts", "--with", "darts-es"], "--set hessian_every=1"),
    (["--method", "darts", "--set", "part.zero-one.weight=1"], "--with zero-one"),
    (["--method", "darts", "--with", "nope"], "unknown part 'nope'"),
    (["--method", "random", "--with", "beta-decay"], "drop --with beta-decay"),
    (["--method", "darts", "--with", "aux-skip", "--set", "ops=none,nor_conv_3x3"], "lack"),
])
def test_parts_that_do_not_fit_are_refused_in_one_line_before_anything_is_written(argv, words, capsys, tmp_path):
    assert main(["search", "--preset", "demo", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drnas: error:") and words in err[0], err
    assert not (tmp_path / "run").exists()


def test_a_sweep_adds_its_parts_and_part_settings_to_every_run_recipes_included():
    from drnas.sweep.plan import plan_sweep

    plan, _ = plan_sweep(methods="darts,sdarts-adv", search={"preset": "demo"},
                         sets=["parts=beta-decay", "part.beta-decay.weight=3"])
    assert [(r.config["method"], r.config["parts"]) for r in plan.runs] == \
        [("darts", ["beta-decay"]), ("darts", ["sdarts-adv", "beta-decay"])]
    assert all(r.config["part_settings"]["beta-decay"] == {"weight": 3.0} for r in plan.runs)
    from drnas.cli.parser import build_parser
    from drnas.cli.sweep import sweep_plan

    args = build_parser().parse_args(["sweep", "--method", "drnas", "--preset", "demo", "--with", "darts-plus",
                                      "--with", "beta-decay"])
    assert sweep_plan(args)[0].runs[0].config["parts"] == ["darts-plus", "beta-decay"]


def test_a_config_files_parts_and_part_tables_add_to_the_recipe_and_flags(tmp_path):
    file = tmp_path / "search.toml"
    file.write_text('parts = ["darts-plus"]\n[part.darts-plus]\nmax_skips = 3\n')
    config = _resolve(method="beta-darts", config_file=str(file), parts=["zero-one"],
                      sets={"part.zero-one.weight": "5"})
    assert config.parts == ["beta-decay", "darts-plus", "zero-one"]
    assert config.part_settings["darts-plus"] == {"max_skips": 3} and config.part_settings["zero-one"] == {"weight": 5.0}
    with pytest.raises(ConfigError, match="part.NAME.FIELD"):
        _resolve(sets={"part.weight": "5"})


def test_drnas_methods_lists_the_recipes_and_parts_and_shows_their_settings(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in [*RECIPES, *PARTS])
    assert main(["methods", "sdarts-adv"]) == 0
    out = capsys.readouterr().out
    assert "runs: --method darts --with sdarts-adv" in out and "part.sdarts-adv.SETTING" in out and "steps" in out


# ------------------------------------------------------------------------------------------ RobustDARTS' spaces
def test_s1_searches_each_edges_own_pair_and_derives_only_from_it():
    space = get_space("darts-s1")
    strategy = _strategy("darts", space="darts-s1")
    allowed = space.allowed_ops()
    assert torch.equal(strategy.mask, allowed) and strategy.num_kept == 2
    strategy.eta.data = torch.randn(strategy.eta.shape)
    genotype = space.derive(strategy.expected_weights().detach())
    pairs = S1_NORMAL + S1_REDUCE
    edges = [(i, j) for i in range(4) for j in range(2 + i)]
    for offset, cell in ((0, genotype.normal), (14, genotype.reduce)):
        for k, (op, source) in enumerate(cell):
            assert op in pairs[offset + edges.index((k // 2, source))]


def test_s2_s4_have_their_ops_and_the_noise_op_passes_nothing_of_its_input():
    assert get_space("darts-s2").ops == ("skip_connect", "sep_conv_3x3")
    assert get_space("darts-s3").ops == ("none", "skip_connect", "sep_conv_3x3")
    assert get_space("darts-s4").ops == ("noise", "sep_conv_3x3")
    with pytest.raises(Exception, match="its own ops"):
        get_space("darts-s2", ["none", "sep_conv_3x3"])
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = Noise(stride=2)(x)
    assert out.shape == (2, 4, 4, 4) and not out.requires_grad
    torch.manual_seed(0)
    first = Noise(1)(x)
    torch.manual_seed(0)
    assert torch.equal(first, Noise(1)(torch.zeros_like(x)))  # the same draw whatever the input


@pytest.mark.parametrize("space", ["darts-s1", "darts-s2", "darts-s3", "darts-s4"])
def test_every_robust_darts_space_searches_and_its_cell_retrains_as_a_darts_genotype(space, tmp_path):
    result = Search(_config("darts", [], space=space, epochs=1), tmp_path, data=digits(64), **QUIET).run()
    genotype = result.architecture
    assert genotype.space == "darts" and str(get_space("darts").parse(str(genotype))) == str(genotype)
    assert {op for op, _ in genotype.normal + genotype.reduce} <= set(get_space(space).ops)
    if space == "darts-s1":  # the masked edges through a budget-constrained derivation and `drnas show`
        assert main(["derive", str(tmp_path), "--max-params", "200k", "--channels", "4", "--cells", "5", "--json"]) == 0
        assert main(["show", str(tmp_path)]) == 0


# ------------------------------------------------------------------------------------------ DARTS-PT
class _OneBatch:
    """A loader of one batch of 10 images per epoch."""

    def epoch(self, index):
        yield torch.zeros(10, 1), torch.zeros(10, dtype=torch.long)

    def __len__(self) -> int:
        return 1


class _KnownSupernet:
    """A search whose supernet's accuracy is known: each edge has one op it needs (``needed``) and the supernet
    is right on a validation image as often as the share of edges whose needed op still has weight."""

    def __init__(self, needed: list[int] | dict[int, int], space: str = "nb201") -> None:
        from drnas.config.search import SearchConfig

        self.space = get_space(space)
        self.strategy = _strategy("darts", space=space)
        self.needed = dict(enumerate(needed)) if isinstance(needed, list) else needed
        self.config, self.epoch, self.steps = SearchConfig(lr_min=0.001), 0, 0
        self.weight_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        self.net = torch.nn.Identity()
        self.valid_loader = self.weight_loader = _OneBatch()

    def evaluate_batch(self, mixing, x, y):
        alive = sum(bool(mixing.theta[e, op] > 0) for e, op in self.needed.items()) / len(self.needed)
        return 0.0, round(alive * len(y))

    def weight_step(self, x, y):
        self.steps += 1
        theta = self.strategy.mix(self.strategy.sample(), "weight").theta
        fixing = next(p for p in self.strategy.parts if hasattr(p, "fixed"))
        assert all(theta[e].tolist() == F.one_hot(torch.tensor(op), theta.shape[1]).float().tolist()
                   for e, op in fixing.fixed.items() if e not in fixing.removed)
        assert all(theta[e].sum() == 0 for e in fixing.removed)


def test_darts_pt_keeps_on_every_edge_the_op_whose_removal_costs_the_most_and_tunes_with_decided_edges_fixed():
    from drnas.analysis.perturbation import perturbation_select
    from drnas.method.parts.selection import PerturbationSettings

    needed = [3, 1, 4, 2, 0, 3]
    search = _KnownSupernet(needed)
    selection = perturbation_select(search, PerturbationSettings(batches=1, tune_steps=2, seed=3))
    ops = get_space("nb201").ops
    assert str(selection.architecture) == str(get_space("nb201").arch_type(tuple(ops[i] for i in needed)))
    assert len(selection.choices) == 6 and search.steps == 12 and not any(hasattr(p, "fixed") for p in search.strategy.parts)
    assert search.weight_optimizer.param_groups[0]["lr"] == 0.001  # tuned at the schedule's last rate


def test_darts_pt_keeps_the_two_inputs_of_each_darts_node_whose_removal_costs_the_most():
    from drnas.analysis.perturbation import perturbation_select
    from drnas.method.parts.selection import PerturbationSettings

    space = get_space("darts")
    # each node of both cells needs two of its input edges (a pseudo-random pair), each with one non-none op
    generator = torch.Generator().manual_seed(5)
    needed = {}
    for group in space.edge_groups():
        for pick in torch.randperm(len(group), generator=generator)[:2].tolist():
            needed[group[pick]] = 1 + int(torch.randint(len(space.ops) - 1, (1,), generator=generator))
    search = _KnownSupernet(needed, space="darts")
    selection = perturbation_select(search, PerturbationSettings(batches=1, tune_steps=1, seed=2))
    names = space.edge_names()
    expected = {(names[e].split()[0], space.ops[op], int(names[e].split("<-")[1])) for e, op in needed.items()}
    arch = selection.architecture
    assert {(cell, op, j) for cell, pairs in (("normal", arch.normal), ("reduce", arch.reduce))
            for op, j in pairs} == expected
    assert len(selection.choices) == 28 and len(selection.nodes) == 8 and search.steps == 28 + 8
    assert all(len(n.inputs) == 2 and all(i.startswith(n.node + "<-") for i in n.inputs) for n in selection.nodes)
    assert sorted(len(n.without) for n in selection.nodes) == sorted(len(g) for g in space.edge_groups())


def test_a_darts_pt_search_selects_what_derive_select_pt_selects_on_the_same_darts_run(tmp_path, capsys):
    """The recipe's selection at the end of the search and ``drnas derive RUN --select pt`` on the plain DARTS run
    of the same seed see the same supernet, data and random state: the same cell (how the DARTS-PT rows of the
    results come from the DARTS runs)."""
    # data by the config, which derive reopens; a weight half of 6 batches, so the order of the fine-tuning pass
    # (one pass: tune_steps 0) matters
    config, logs = _config("darts", [], train_images=384), []
    recipe = Search(with_parts(config, ["darts-pt"], {"darts-pt": {"batches": 6, "tune_steps": 0}}),
                    progress=False, log=logs.append).run()
    Search(config, tmp_path / "darts", **QUIET).run()
    assert main(["derive", str(tmp_path / "darts"), "--select", "pt", "--pt-batches", "6", "--pt-tune-steps", "0",
                 "--json"]) == 0
    derived = json.loads(capsys.readouterr().out)
    assert derived["architecture"] == json.loads(json.dumps(recipe.architecture.to_json()))
    for choice in derived["choices"]:  # every removal measured the same on the way
        without = ", ".join(f"{op} {acc:.2f}%" for op, acc in choice["without"].items())
        assert f"darts-pt: edge {choice['edge']} keeps {choice['op']} (accuracy without each op: {without})" in logs


@pytest.mark.parametrize("space, edges, nodes", [("nb201", 6, 0), ("darts", 28, 8)])
def test_derive_select_pt_on_a_finished_run(tmp_path, capsys, space, edges, nodes):
    run = tmp_path / "run"
    ops = ["none", "skip_connect", "sep_conv_3x3"] if space == "darts" else None  # 3 of DARTS' 8: the suite's time
    Search(_config("darts", [], space=space, epochs=1, ops=ops), run, data=digits(64), **QUIET).run()
    assert main(["derive", str(run), "--select", "pt", "--pt-batches", "1", "--pt-tune-steps", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["selection"] == "pt" and len(out["choices"]) == edges and len(out["nodes"]) == nodes
    assert get_space(space).from_json(out["architecture"])
    assert main(["derive", str(run), "--select", "pt", "--max-params", "1M"]) == 2
    assert "without a budget" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ P-DARTS
def test_stages_of_growing_depth_start_a_new_supernet_and_resume_bit_identically_across_the_change(tmp_path):
    stages = [Stage(epochs=1, cells=1), Stage(epochs=2, ops_kept=3, cells=2, arch_warmup=1)]
    config = dataclasses.replace(_config("darts", []), stages=stages, eta_init_std=1e-3, lr_restart=True)
    config = with_parts(config, ["skip-dropout"], {"skip-dropout": {"rates": [0.0, 0.5]}})  # P-DARTS' dropout too
    data = digits(64)
    search = Search(config, tmp_path / "full", data=data, **QUIET)
    cells = sum(1 for m in search.net.modules() if type(m).__name__ == "NB201Cell")
    assert cells == 3  # N = 1 cell per stage, 3 stages
    full = search.run()
    assert sum(1 for m in search.net.modules() if type(m).__name__ == "NB201Cell") == 2 * cells
    assert search.relax.num_kept == 3 and [m["stage"] for m in full.metrics] == [0, 1, 1]
    # each stage restarts the cosine over its own epochs: 1 epoch at the top, then 2 from the top again
    half_way = config.lr_min + 0.5 * (config.lr - config.lr_min)
    assert [m["lr"] for m in full.metrics] == pytest.approx([config.lr, config.lr, half_way])
    second = json.loads(json.dumps(full.metrics[1]["architecture_parameters"]["eta"]))
    fresh = 1e-3 * torch.randn(search.relax.eta.shape, generator=torch.Generator().manual_seed(0 * 1013 + 1))
    assert torch.allclose(torch.tensor(second), fresh, atol=1e-6)  # new parameters; the arch was warming up
    # the dropout of each stage: 0 in the first; over the second's warm-up epoch 0.5 * 1/2, then 0.5; set on the
    # new supernet's skips
    assert [m["skip_dropout"] for m in full.metrics] == [0.0, 0.25, 0.5]
    assert {tuple(op.drop.values()) for _, op in search.net.mixed_ops()} == {(0.5,)}
    Search(config, tmp_path / "half", data=data, **QUIET).run(max_epochs=1)
    _same_run(full, Search.resume(tmp_path / "half", data=data, **QUIET).run())


def test_the_p_darts_recipe_is_three_stages_of_growing_depth_over_fewer_ops():
    config = resolve_search_config(apply_method=with_method, apply_parts=with_parts, preset="darts-cifar10-proxy",
                                   method="p-darts")
    assert config.method == "darts" and config.parts == ["skip-dropout", "skip-limit"] and config.lr_restart
    assert config.part_settings["skip-dropout"] == {"rates": [0.0, 0.4, 0.7], "decay": 0.2}
    assert [(s.epochs, s.cells, s.ops_kept, s.arch_warmup) for s in config.stages] == \
        [(25, 5, None, 10), (25, 11, 5, 10), (25, 17, 3, 10)]


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_the_skip_limit_takes_the_weakest_skips_away_until_the_first_cell_keeps_two(space):
    from drnas.method.parts.skip_limit import first_cell, limit_skips

    def first_cell_skips(space, weights):
        return first_cell(space, weights).ops().count("skip_connect")

    space = get_space(space)
    skip = space.ops.index("skip_connect")
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(space.num_edges, len(space.ops), generator=generator) * 0.1
    weights[:, skip] = 0.5 + torch.rand(space.num_edges, generator=generator) * 0.4  # skip is every edge's best
    before = space.graph(space.derive(weights))[0].ops().count("skip_connect")
    assert before > 2 and first_cell_skips(space, weights) == before
    limited = limit_skips(space, weights, 2)
    assert first_cell_skips(space, limited) == 2
    taken = (limited != weights).nonzero().tolist()
    assert all(op == skip and limited[e, op] == 0 for e, op in taken)  # only skip weights changed, set to 0
    if space.one_op_per_edge:  # every edge is in the cell: the skips kept are the two strongest
        kept = [e for e in range(space.num_edges) if limited[e, skip] > 0]
        assert len(kept) == 2 and all(weights[e, skip] > weights[t, skip] for e in kept for t, _ in taken)
    else:  # only the normal cell's rows (the first 14) lose skips
        assert all(e < 14 for e, _ in taken)
    assert first_cell_skips(space, limit_skips(space, weights, 0)) == 0
    assert torch.equal(limit_skips(space, weights, before), weights)


def test_a_search_with_the_skip_limit_derives_every_epoch_within_it(tmp_path):
    config = with_parts(dataclasses.replace(_config("darts", []), part_settings={"skip-limit": {"max_skips": 0}}),
                        ["skip-limit"])
    result = Search(config, tmp_path / "run", data=digits(64), **QUIET).run()
    assert all("skip_connect" not in m["arch"] for m in result.metrics)
    assert "skip_connect" not in str(result.architecture)
    with pytest.raises(ConfigError, match="part skip-limit limits the skip_connect edges"):
        check_method(dataclasses.replace(config, ops=["none", "nor_conv_3x3"]), get_space("nb201", ["none", "nor_conv_3x3"]))


# ------------------------------------------------------------------------------------------ P-DARTS' skip dropout
def test_skip_dropout_drops_the_skip_term_in_training_only_drawn_as_dropout_of_the_weighted_term():
    from drnas.method.supernet import MixedOp
    from drnas.spaces.ops import build_op

    torch.manual_seed(0)
    mixed = MixedOp(["skip_connect", "nor_conv_1x1", "none"], 4, op_factory=build_op)
    x, w = torch.randn(8, 4, 5, 5), torch.tensor([0.6, 0.3, 0.1])
    mixed.eval()
    plain = w[0] * x + w[1] * mixed.ops[1](x)
    mixed.drop = {0: 0.5}
    assert torch.equal(mixed(x, w), plain)  # evaluation: nothing dropped
    mixed.train()
    torch.manual_seed(3)
    out = mixed(x, w)
    torch.manual_seed(3)
    expected = F.dropout(w[0] * x, 0.5) + w[1] * mixed.ops[1](x)  # the skip term is drawn first
    assert torch.equal(out, expected)
    dropped = (out - w[1] * mixed.ops[1](x)).abs() < 1e-7
    assert 0.4 < dropped.float().mean() < 0.6  # about half the skip elements gone, the rest scaled by 2


def test_skip_dropout_rate_follows_p_darts_schedule_in_every_stage_and_only_on_identity_skips():
    stages = [Stage(epochs=4, partial_k=1, arch_warmup=2), Stage(epochs=5, partial_k=1, arch_warmup=1)]
    config = with_parts(dataclasses.replace(_config("darts", [], space="darts"), stages=stages), ["skip-dropout"],
                        {"skip-dropout": {"rates": [0.3, 0.6], "decay": 0.5}})
    part = PARTS.get("skip-dropout")(PARTS.get("skip-dropout").settings_of(config), config, get_space("darts"))
    expected = [0.3 * 3 / 4, 0.3 * 2 / 4, 0.3, 0.3 * math.exp(-0.5),               # stage 1: warm-up, then decay
                0.6 * 4 / 5, 0.6, 0.6 * math.exp(-0.5), 0.6 * math.exp(-1.0), 0.6 * math.exp(-1.5)]
    net = get_space("darts").build_supernet(SupernetSpec(channels=8, cells=3, num_classes=10))
    skip = get_space("darts").ops.index("skip_connect")
    for epoch, rate in enumerate(expected):
        part.start_epoch(epoch, config.epochs)
        assert part.rate == pytest.approx(rate) and part.record()["skip_dropout"] == pytest.approx(rate, abs=1e-6)
        part.prepare_network(net)
        for _, mixed in net.mixed_ops():  # a reduction edge's skip is a factorized reduction: never dropped
            assert mixed.drop == ({skip: part.rate} if mixed.stride == 1 else {})


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_skip_dropout_draws_the_same_masks_on_the_fused_and_the_plain_path(space):
    from drnas.fast import fusion

    results = []
    for fused in (False, True):
        torch.manual_seed(0)
        sp = get_space(space)
        net = sp.build_supernet(SupernetSpec(channels=8, cells_per_stage=1, cells=3, partial_k=2, num_classes=3))
        net = (fusion.install(net) if fused else net).double()
        for _, mixed in net.mixed_ops():
            mixed.drop = {sp.ops.index("skip_connect"): 0.5} if mixed.stride == 1 else {}
        x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
        theta = torch.softmax(torch.randn(sum(1 for _ in net.mixed_ops()), len(sp.ops), dtype=torch.float64), -1)
        theta.requires_grad_(True)
        torch.manual_seed(7)
        logits = net(x, theta)
        logits.pow(2).sum().backward()
        results.append([logits.detach(), theta.grad, *(p.grad for p in net.parameters())])
        net.eval()
        results[-1].append(net(x, theta).detach())
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_skip_dropout_keeps_the_cells_eager_and_refuses_what_cannot_run_it(capsys, tmp_path):
    config = _config("darts", ["skip-dropout"])
    assert Search(config, data=digits(64), **QUIET).runner.compile_mode == "none"
    with pytest.raises(ConfigError, match="part skip-dropout draws random numbers inside the cells, which compiled "
                                          "cells cannot follow"):
        Search(dataclasses.replace(config, compile="cells"), data=digits(64), **QUIET)
    for argv, words in [([], "drops nothing in this search: its rate is 0 in each of its 1 stage(s)"),
                        (["--set", "part.skip-dropout.rates=0.3,1.0"], "rates must be one or more numbers in [0, 1)"),
                        (["--set", "part.skip-dropout.rates=0.3", "--set", "ops=[none,nor_conv_3x3]"],
                         "drops skip_connect's output, which the ops of space nb201 lack")]:
        code = main(["search", "--preset", "demo", "--set", 'stages=[{"epochs": 2}]', "--with", "skip-dropout",
                     "--quiet", "--out", str(tmp_path / "r"), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and words in err[0], err
        assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------ the loop's exactness
def test_random_arch_batches_are_drawn_afresh_every_step_and_resume_bit_identically(tmp_path):
    from drnas.data import DeviceLoader

    arrays = digits(64)
    loader = DeviceLoader(arrays.x_train, arrays.y_train, arrays.info, batch_size=16, device="cpu", augment=False,
                          redraw=True)
    labels = [y for _, y in loader.epoch(0)]
    assert len(labels) == 4 and all(len(y) == 16 for y in labels)
    assert [y.tolist() for _, y in loader.epoch(0)] == [y.tolist() for y in labels]  # a function of (seed, epoch)
    assert [y.tolist() for _, y in loader.epoch(0, start=2)] == [y.tolist() for y in labels[2:]]
    images = [x[i].flatten().tolist() for x, _ in loader.epoch(0) for i in range(len(x))]
    assert len({tuple(v) for v in images}) < 64  # batches drawn afresh share images (with replacement over steps)
    assert len({tuple(x.flatten().tolist()) for x, _ in
                DeviceLoader(arrays.x_train, arrays.y_train, arrays.info, batch_size=16, device="cpu",
                             augment=False).epoch(0) for x in x}) == 64  # an epoch: each image once
    config = dataclasses.replace(_config("drnas", []), arch_batches="fresh")
    full = Search(config, tmp_path / "full", data=arrays, **QUIET).run()
    Search(config, tmp_path / "half", data=arrays, **QUIET).run(max_epochs=1)
    _same_run(full, Search.resume(tmp_path / "half", data=arrays, **QUIET).run())
    plain = Search(_config("drnas", []), data=arrays, **QUIET).run()
    assert plain.metrics[-1]["arch_loss"] != full.metrics[-1]["arch_loss"]
    with pytest.raises(ConfigError, match="arch_batches must be epoch"):
        dataclasses.replace(config, arch_batches="each").validate()


@pytest.mark.parametrize("method", ["drnas", "darts", "gdas"])
def test_the_clip_that_counts_the_architecture_gradient_is_the_authors_clip(method, tmp_path):
    arrays = digits(64)
    # a long step (lr 20), so that float32 holds the steps to compare to 1e-4 of their length
    config = dataclasses.replace(_config(method, []), clip_counts_arch=True, grad_clip=0.05, lr=20.0)
    search = Search(config, data=arrays, **QUIET)
    x, y = next(iter(search.weight_loader.epoch(0)))
    start = {k: v.clone() for k, v in search.net.state_dict().items()}
    rng = torch.get_rng_state()
    search.weight_step(x, y)
    ours = {k: v.clone() for k, v in search.net.state_dict().items()}
    params = search.strategy.arch_parameters()
    assert all(p.grad is None for p in params)  # the architecture's gradient only scaled the clip

    def direct(counted: bool) -> dict[str, torch.Tensor]:
        """The authors' step: one backward into the weights and eta, the clip over both, SGD on the weights."""
        search.net.load_state_dict(start)
        search.weight_optimizer = torch.optim.SGD(search.net.parameters(), lr=config.lr, momentum=config.momentum,
                                                  weight_decay=config.weight_decay)
        torch.set_rng_state(rng)
        mixing = search.strategy.sample()
        with search._running(mixing.active), search.runner.plain():  # the option steps on the plain path
            F.cross_entropy(search.train_net(x, *mixing.tensors()), y).backward()
        torch.nn.utils.clip_grad_norm_(list(search.net.parameters()) + (params if counted else []), 0.05)
        for p in params:
            p.grad = None
        search.weight_optimizer.step()
        return {k: v.clone() for k, v in search.net.state_dict().items()}

    def gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        """|step a - step b| / |step a|, over the network's weights."""
        keys = [k for k, _ in search.net.named_parameters()]
        step_a = torch.cat([(a[k] - start[k]).flatten() for k in keys])
        return float((step_a - torch.cat([(b[k] - start[k]).flatten() for k in keys])).norm() / step_a.norm())

    authors, plain = direct(True), direct(False)
    assert gap(ours, authors) < 1e-4, gap(ours, authors)
    if method != "gdas":  # GDAS' straight-through gradient is too small at the start to move the clip's norm
        assert gap(ours, plain) > 4e-4, gap(ours, plain)  # eta's gradient enlarges the norm: the steps are shorter
    full = Search(config, tmp_path / "full", data=arrays, **QUIET).run()
    Search(config, tmp_path / "half", data=arrays, **QUIET).run(max_epochs=1)
    _same_run(full, Search.resume(tmp_path / "half", data=arrays, **QUIET).run())
    assert json.loads((tmp_path / "full" / "config.json").read_text())["clip_counts_arch"] is True
