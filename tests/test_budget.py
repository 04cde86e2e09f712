"""Budget-constrained derivation (``drnas derive``; ``drnas train --arch RUN --max-params ...``) on real tiny
search runs of both spaces."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import torch

from drnas.analysis.budget import Budget, architecture_of, choices, derive_within_budget, parse_milliseconds, parse_size
from drnas.analysis.cost import CostModel, count_macs, count_parameters
from drnas.analysis.learned import LearnedDistribution
from drnas.cli import main
from drnas.config.search import Stage
from drnas.errors import ConfigError
from drnas.engine.runs import RunError
from drnas.search import Search
from drnas.spaces import NB201Arch, NetworkSpec, get_space
from drnas.spaces.nb201 import NB201_OPS
from helpers import pattern_images, tiny_config, own_spaces

QUIET = dict(progress=False, log=lambda m: None)
#: per space, a tiny search whose second stage prunes every edge to fewer ops
SEARCHES = {"nb201": dict(ops_kept=3), "darts": dict(ops_kept=5, space="darts", cells=2, channels=8)}
#: per space, a small evaluation network and its input, so that every count is quick
NETWORKS = {"nb201": (NetworkSpec(channels=4, cells_per_stage=1), (1, 3, 8, 8)),
            "darts": (NetworkSpec(channels=4, cells=5), (1, 3, 8, 8))}
#: the same size through the command line (digits: 1 channel, 8x8)
CLI_SIZE = {"nb201": ["--dataset", "digits", "--channels", "4", "--cells", "1"],
            "darts": ["--dataset", "digits", "--channels", "4", "--cells", "5"]}


@pytest.fixture(autouse=True)
def _one_thread():
    """Every network here is tiny: on shared cores one torch thread is several times faster than the two the
    conftest sets (measured 17 s against 87 s for the brute-force and per-op tests on 2 loaded cores)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """``searched(space)``: the directory of a finished two-epoch search in that space (run once per module)."""
    done = {}

    def run(space: str):
        if space not in done:
            changes = dict(SEARCHES[space])
            stages = [Stage(epochs=1, partial_k=2, arch_warmup=0),
                      Stage(epochs=1, partial_k=1, ops_kept=changes.pop("ops_kept"))]
            path = tmp_path_factory.mktemp("budget") / space
            Search(tiny_config(stages=stages, **changes), path, data=pattern_images(64), **QUIET).run()
            done[space] = path
        return done[space]

    return run


def _exact(space, arch, spec, shape):
    net = space.build_network(arch, spec)
    return count_parameters(net, ("auxiliary",)), count_macs(net, shape)


def _err_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnas: error: "), lines
    return lines[0]


# ------------------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("text,value", [("3.5M", 3_500_000), ("600M", 600_000_000), ("2e6", 2_000_000),
                                        ("1.2G", 1_200_000_000), ("500k", 500_000), ("500K", 500_000),
                                        ("1500000", 1_500_000), (" 0.25m ", 250_000), (".5k", 500), ("1e3k", 10**6)])
def test_sizes_are_parsed_with_suffixes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "3.5X", "-1M", "0", "0.4", "1e400", "nan", "inf", "1_000", "3.5 MB",
                                  "__import__('os')", "2**20", "1" * 50])
def test_bad_sizes_are_one_line_errors_naming_the_flag_and_the_fix(text):
    with pytest.raises(ConfigError) as info:
        parse_size(text, "--max-macs")
    message = str(info.value)
    assert "\n" not in message and message.startswith("--max-macs ") and "e.g. 3.5M" in message


def test_latency_and_its_batch_are_parsed():
    assert parse_milliseconds("2.5") == 2.5 and parse_milliseconds("8ms") == 8.0
    for bad in ("0", "-3", "fast", "1e9"):
        with pytest.raises(ConfigError, match="--max-latency-ms"):
            parse_milliseconds(bad)
    assert Budget.parse(max_latency_ms="5", latency_batch="16") == Budget(latency_ms=5.0, latency_batch=16)
    with pytest.raises(ConfigError, match="give --max-latency-ms too"):
        Budget.parse(latency_batch="4")
    with pytest.raises(ConfigError, match="--latency-batch"):
        Budget.parse(max_latency_ms="5", latency_batch="0")
    assert Budget.parse().empty and not Budget.parse(max_params="1M").empty


# ------------------------------------------------------------------------------------------------ derivation
@pytest.mark.parametrize("space", own_spaces())
def test_without_a_budget_it_is_the_spaces_own_derivation(space, searched):
    learned = LearnedDistribution.from_run(searched(space))
    found = derive_within_budget(learned, Budget(), *NETWORKS[space])
    assert str(found.arch) == str(learned.space.derive(learned.weights)) == learned.derived
    run_file = json.loads((searched(space) / "architecture.json").read_text())
    assert found.arch.to_json() == run_file["architecture"]
    assert (found.params, found.macs) == _exact(learned.space, found.arch, *NETWORKS[space])
    assert found.learned.epoch == 2 and found.checked == 1 and 0 < found.probability <= 1
    if space == "nb201":  # the product over edges of the weights renormalised over the kept ops
        w, kept = learned.weights.double(), learned.allowed
        expected = sum(math.log(w[e, NB201_OPS.index(op)] / w[e][kept[e]].sum()) for e, op in enumerate(found.arch.ops))
        assert found.log_probability == pytest.approx(expected, abs=1e-9)
        assert found.rank == 1 and found.architectures == 3 ** 6 and found.search == "exact"
    else:
        assert found.search == "beam" and found.rank is None


@pytest.mark.parametrize("space", own_spaces())
def test_each_choice_is_a_distribution_over_what_the_derivation_may_pick(space, searched):
    learned = LearnedDistribution.from_run(searched(space))
    found = choices(learned.space, learned.weights, learned.allowed)
    excluded = [learned.space.ops.index(o) for o in learned.space.excluded_from_derivation]
    for choice in found:
        assert np.exp(choice.logp).sum() == pytest.approx(1.0)
        assert all(learned.allowed[e, o] and o not in excluded for picks in choice.picks for e, o in picks)
    assert len(found) == (6 if space == "nb201" else 8)  # NB201: an op per edge; DARTS: two inputs per node


def _restricted(learned):
    """NB201 with 3 ops on the first two edges and the 2 strongest kept ops on the others: 144 cells."""
    allowed = learned.allowed.clone()
    for edge in range(2, 6):
        weakest = learned.weights[edge].masked_fill(~allowed[edge], math.inf).argmin()
        allowed[edge, weakest] = False
    return dataclasses.replace(learned, allowed=allowed)


def test_nb201_search_is_exact_against_brute_force(searched):
    learned = _restricted(LearnedDistribution.from_run(searched("nb201")))
    space, (spec, shape) = learned.space, NETWORKS["nb201"]
    w = learned.weights.double()
    options = [[o for o in range(len(space.ops)) if learned.allowed[e, o]] for e in range(6)]
    every = []  # (log-probability, params, MACs, architecture) of every cell, counted one by one
    for combo in itertools.product(*options):
        arch = NB201Arch(tuple(space.ops[o] for o in combo))
        logp = sum(math.log(w[e, o] / w[e, options[e]].sum()) for e, o in enumerate(combo))
        every.append((logp, *_exact(space, arch, spec, shape), str(arch)))
    assert len(every) == 144
    params = sorted(p for _, p, _, _ in every)
    macs = sorted(m for _, _, m, _ in every)
    costs = CostModel.measure(space, learned.allowed, spec, shape)
    budgets = [Budget(), Budget(params=params[30]), Budget(params=params[100]), Budget(macs=macs[70]),
               Budget(params=params[80], macs=macs[40]), Budget(params=params[0])]
    for budget in budgets:
        fits = [a for a in every if (budget.params is None or a[1] <= budget.params)
                and (budget.macs is None or a[2] <= budget.macs)]
        best = max(fits, key=lambda a: a[0])
        found = derive_within_budget(learned, budget, spec, shape, costs=costs)
        assert (str(found.arch), found.params, found.macs) == (best[3], best[1], best[2]), budget
        assert found.log_probability == pytest.approx(best[0], abs=1e-9)
        assert found.rank == 1 + sum(a[0] > best[0] for a in every) and found.architectures == 144
        assert found.checked == 1  # the per-op sums are exact in this space


@pytest.mark.parametrize("space", own_spaces())
def test_the_per_op_costs_add_up_to_the_exact_count(space, searched):
    learned = LearnedDistribution.from_run(searched(space))
    spec, shape = NETWORKS[space]
    costs = CostModel.measure(learned.space, learned.allowed, spec, shape)
    rng = np.random.default_rng(0)
    for _ in range(4):
        picks = [p for c in choices(learned.space, learned.weights, learned.allowed)
                 for p in c.picks[rng.integers(len(c.picks))]]
        arch = architecture_of(learned.space, learned.weights, picks)
        estimate = costs.base + sum(costs.table[e, o] for e, o in picks)
        assert tuple(int(v) for v in estimate) == _exact(learned.space, arch, spec, shape)


@pytest.mark.parametrize("space", own_spaces())
def test_a_budget_below_the_unconstrained_network_is_respected_by_exact_count(space, searched):
    learned = LearnedDistribution.from_run(searched(space))
    spec, shape = NETWORKS[space]
    free = derive_within_budget(learned, Budget(), spec, shape)
    budget = Budget(params=free.params - 1, macs=free.macs)
    found = derive_within_budget(learned, budget, spec, shape, beam=16)
    params, macs = _exact(learned.space, found.arch, spec, shape)
    assert (params, macs) == (found.params, found.macs) and params < free.params and macs <= free.macs
    assert str(found.arch) != str(free.arch) and found.log_probability <= free.log_probability
    assert found.estimate == {"params": params, "macs": macs}


@pytest.mark.parametrize("space", own_spaces())
def test_an_unsatisfiable_budget_names_the_smallest_network(space, searched):
    learned = LearnedDistribution.from_run(searched(space))
    with pytest.raises(ConfigError, match=r"the smallest achievable network has [0-9.]+k? parameters and "):
        derive_within_budget(learned, Budget(params=1), *NETWORKS[space])


def test_a_candidate_whose_exact_count_breaks_the_budget_gives_way(searched):
    """With per-op costs that say every cell is free, candidates come in order of probability and only the
    exact count decides: the first that fits is returned, never one over the budget."""
    learned = LearnedDistribution.from_run(searched("nb201"))
    spec, shape = NETWORKS["nb201"]
    costs = CostModel.measure(learned.space, learned.allowed, spec, shape)
    blind = dataclasses.replace(costs, base=np.zeros_like(costs.base), table=np.zeros_like(costs.table))
    free = derive_within_budget(learned, Budget(), spec, shape)
    budget = Budget(params=free.params - 1)
    honest = derive_within_budget(learned, budget, spec, shape, costs=costs)
    found = derive_within_budget(learned, budget, spec, shape, costs=blind, max_checks=1000)
    assert str(found.arch) == str(honest.arch) and found.params <= budget.params and found.checked > 1
    assert found.estimate == {"params": 0.0, "macs": 0.0}
    with pytest.raises(ConfigError, match="none of the 1 most probable architectures"):
        derive_within_budget(learned, budget, spec, shape, costs=blind, max_checks=1)


def test_a_latency_budget_is_measured_on_the_device(searched):
    learned = LearnedDistribution.from_run(searched("nb201"))
    spec, shape = NETWORKS["nb201"]
    found = derive_within_budget(learned, Budget(latency_ms=10_000.0, latency_batch=2), spec, shape,
                                 device=torch.device("cpu"))
    assert 0 < found.latency_ms <= 10_000 and found.device == "cpu" and "latency_ms" in found.estimate
    assert found.to_json()["latency"] == {"batch": 2, "device": "cpu", "warmup": 3, "repeats": 10,
                                          "statistic": "median"}
    with pytest.raises(ConfigError, match="ms"):
        derive_within_budget(learned, Budget(latency_ms=1e-6), spec, shape)


def test_an_earlier_epoch_of_the_run(searched):
    first = LearnedDistribution.from_run(searched("nb201"), epoch=1)
    assert first.epoch == 1 and first.derived is None and first.allowed.sum(1).tolist() == [5] * 6
    found = derive_within_budget(first, Budget(), *NETWORKS["nb201"])
    assert str(found.arch) == str(first.space.derive(first.weights)) and found.architectures == 5 ** 6
    with pytest.raises(RunError, match="epoch 9 is not in"):
        LearnedDistribution.from_run(searched("nb201"), epoch=9)


# ------------------------------------------------------------------------------------------------ commands
@pytest.mark.parametrize("space", own_spaces())
def test_derive_command_json(space, searched, capsys):
    run = searched(space)
    free = derive_within_budget(LearnedDistribution.from_run(run), Budget(), *NETWORKS[space])
    limit = free.params - 1
    assert main(["derive", str(run), "--max-params", str(limit), "--max-macs", "1G", "--json", *CLI_SIZE[space]]) == 0
    out = json.loads(capsys.readouterr().out)
    arch = get_space(space).from_json(out["architecture"])
    assert out["text"] == str(arch) and out["params"] <= limit and out["budget"]["max_params"] == limit
    assert out["budget"]["max_macs"] == 10**9 and out["latency_ms"] is None and out["epoch"] == 2
    assert out["probability"] == pytest.approx(math.exp(out["log_probability"]))
    run_arch = json.loads((run / "architecture.json").read_text())["architecture"]
    assert out["run_architecture"] == str(get_space(space).from_json(run_arch))
    spec = NetworkSpec(channels=4, cells=5, cells_per_stage=1, in_channels=1)
    assert (out["params"], out["macs"]) == _exact(get_space(space), arch, spec, (1, 1, 8, 8))
    assert (out["rank"] is not None) == (space == "nb201")


def test_derive_command_without_a_budget_prints_the_runs_architecture(searched, capsys):
    run = searched("nb201")
    assert main(["derive", str(run)]) == 0
    out = capsys.readouterr().out
    arch = json.loads((run / "architecture.json").read_text())["architecture"]["arch"]
    assert out.startswith(f"architecture: {arch}\nprobability:  ") and "rank 1 of 729 without the budget" in out
    # the run searched an npz dataset, whose shape is unknown: the network is counted for CIFAR-10
    assert "nb201, 16 channels, N=5, 10 classes, 32x32 input (cifar10, protocol nb201)" in out
    assert "budget: none" in out
    assert main(["derive", str(run), "--max-latency-ms", "10000", *CLI_SIZE["nb201"]]) == 0
    assert "measured on this device (cpu, median of 10" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["--max-params", "3.5X"], "--max-params '3.5X' is not a count"),
    (["--max-macs", "-1"], "--max-macs '-1' is not a count"),
    (["--max-params", "1"], "the smallest achievable network has"),
    (["--latency-batch", "4"], "give --max-latency-ms too"),
    (["--max-latency-ms", "0"], "--max-latency-ms '0' is not a latency"),
    (["--epoch", "9"], "epoch 9 is not in"),
    (["--channels", "0"], "--channels must be in [1, 512]"),
])
def test_derive_command_errors_are_one_line(argv, needle, searched, capsys):
    assert main(["derive", str(searched("nb201")), *argv]) == 2
    assert needle in _err_line(capsys)


def test_train_within_a_budget_trains_the_derived_architecture(searched, tmp_path, capsys):
    run = searched("nb201")
    spec, shape = NetworkSpec(channels=4, cells_per_stage=1, in_channels=1), (1, 1, 8, 8)
    learned = LearnedDistribution.from_run(run)
    limit = derive_within_budget(learned, Budget(), spec, shape).params - 1
    expected = derive_within_budget(learned, Budget(params=limit), spec, shape)
    out = tmp_path / "train"
    assert main(["train", "--arch", str(run), "--max-params", str(limit), "--dataset", "digits", "--epochs", "1",
                 "--set", "channels=4", "--set", "cells_per_stage=1", "--train-images", "64", "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads((out / "architecture.json").read_text())["architecture"]["arch"] == str(expected.arch)
    assert json.loads((out / "result.json").read_text())["params_without_aux"] == expected.params <= limit
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--max-params", "1M"]) == 2
    assert "drop --max-params" in _err_line(capsys)


@pytest.mark.parametrize("arch", ["DrNAS_nb201",
                                  "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|none~2|"])
def test_a_budget_on_train_needs_a_search_run_directory(arch, capsys):
    assert main(["train", "--arch", arch, "--max-macs", "600M"]) == 2
    assert "--arch must be a search run directory" in _err_line(capsys)
