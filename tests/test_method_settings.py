"""A method's own settings: declared as a dataclass (``Strategy.Settings``, fields from ``drnas.config.setting``),
set with ``--set method.NAME=VALUE`` or a config file's ``[method]`` table, checked at the boundary, recorded in
config.json, shown by ``drnas methods NAME``, swept by ``--grid method.NAME=...``; and the fields that moved into
the methods' settings, in config files, ``--set`` and the config.json of runs made before."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Optional

import pytest
import torch
import torch.nn.functional as F
from helpers import digits, tiny_config

from drnas.cli import main
from drnas.config import SearchConfig, Stage, apply_overrides, describe_settings, make_settings, setting
from drnas.config.resolve import resolve_search_config
from drnas.engine.runs import RunDir
from drnas.errors import ConfigError
from drnas.method.strategies import METHODS, get_method, method_names, with_method
from drnas.method.strategies.base import Mixing, SoftmaxStrategy, masked_logits, register_method
from drnas.search import Search
from drnas.spaces import get_space
from drnas.sweep.plan import plan_sweep

QUIET = dict(progress=False, log=lambda m: None)


# ------------------------------------------------------------------------------------------ the settings API
@dataclass
class Knobs:
    rate: float = setting(0.5, "a rate", gt=0, le=1)
    count: int = setting(3, "a count", ge=1)
    kind: str = setting("a", "a kind", choices=("a", "b"))
    widths: list[int] = setting([1, 2], "a list")
    cap: float | None = setting(None, "an optional bound", ge=0)


def test_values_are_coerced_from_text_and_numbers_and_the_rest_keep_their_defaults():
    knobs = make_settings(Knobs, {"rate": "0.25", "count": 7.0, "widths": "4,5", "cap": "null"}, "thing t")
    assert knobs == Knobs(rate=0.25, count=7, kind="a", widths=[4, 5], cap=None)
    assert make_settings(Knobs, {}, "thing t") == Knobs()
    assert make_settings(Knobs, {"kind": "b", "cap": 2}, "thing t").cap == 2.0
    assert Knobs().widths is not Knobs().widths  # a mutable default is copied for every instance


@pytest.mark.parametrize("values, says", [
    ({"rate": "0"}, "thing t: rate must be in (0, 1], got 0.0"),
    ({"rate": 1.5}, "thing t: rate must be in (0, 1], got 1.5"),
    ({"count": 0}, "thing t: count must be >= 1, got 0"),
    ({"count": 2.5}, "thing t: count must be an integer, got 2.5"),
    ({"kind": "c"}, "thing t: kind must be one of a, b, got 'c'"),
    ({"rate": "fast"}, "thing t: rate must be a number, got 'fast'"),
    ({"cap": -1}, "thing t: cap must be >= 0, got -1.0"),
    ({"widths": "[1.5]"}, "thing t: widths must be a list of integers"),
    ({"speed": 1}, "thing t has no setting 'speed'; its settings: rate, count, kind, widths, cap"),
])
def test_a_bad_value_or_name_is_one_line_naming_the_setting_and_its_range(values, says):
    with pytest.raises(ConfigError) as info:
        make_settings(Knobs, values, "thing t")
    assert str(info.value).startswith(says) and "\n" not in str(info.value)


def test_describe_settings_gives_name_type_default_range_and_doc():
    assert describe_settings(Knobs) == [
        ("rate", "float", 0.5, "in (0, 1]", "a rate"), ("count", "int", 3, ">= 1", "a count"),
        ("kind", "str", "a", "one of a, b", "a kind"), ("widths", "list[int]", [1, 2], "", "a list"),
        ("cap", "float | None", None, ">= 0", "an optional bound")]
    with pytest.raises(ValueError, match="outside its own range"):
        setting(0, "a rate", gt=0)


# a settings class declared without `from __future__ import annotations`: its types are classes, not text
Plain = dataclasses.make_dataclass("Plain", [("n", int, setting(2, "n", ge=0)),
                                             ("x", Optional[float], setting(None, "x")),
                                             ("on", bool, setting(False, "on"))])


def test_settings_declared_with_real_types_coerce_alike():
    assert make_settings(Plain, {"n": "5", "x": "0.5", "on": "yes"}, "p") == Plain(n=5, x=0.5, on=True)
    assert [row[1] for row in describe_settings(Plain)] == ["int", "float | None", "bool"]


# ------------------------------------------------------------------------------------------ every method's
@pytest.mark.parametrize("method", method_names())
def test_every_methods_settings_are_recorded_whole_and_rebuild_from_config_json(method):
    cls = get_method(method)
    rows = describe_settings(cls.Settings)
    assert all(doc for *_, doc in rows), "every setting says what it is"
    config = with_method(tiny_config(), method)
    assert list(config.method_settings) == [name for name, *_ in rows]
    assert config.method_settings == {name: default for name, _, default, _, _ in rows}
    again = SearchConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again.method_settings == config.method_settings
    assert cls.settings_of(again) == cls.Settings()


def test_the_moved_knobs_drive_their_methods():
    gdas = with_method(tiny_config(), "gdas", {"tau_max": "4", "tau_min": "1", "schedule": "exponential"})
    strategy = get_method("gdas")(get_space("nb201"), gdas)
    strategy.start_epoch(1, 3)
    assert strategy.tau == pytest.approx(2.0)  # halfway, exponentially: 4 * (1/4) ** 0.5
    pc = with_method(tiny_config(stages=[Stage(epochs=10)]), "pc-darts", {"partial_k": 2, "warmup_fraction": 0.5})
    assert pc.stages == [Stage(epochs=10, partial_k=2, arch_warmup=5)]  # the defaults read the settings
    kl = with_method(tiny_config(reg_scale=0.1), "drnas", {"regulariser": "kl"})
    drnas = get_method("drnas")(get_space("nb201"), kl)
    assert drnas.adam_weight_decay == 0.0 and drnas.penalty() is not None
    enas = with_method(tiny_config(), "enas", {"hidden": 8, "candidates": 3})
    strategy = get_method("enas")(get_space("nb201"), enas)
    assert strategy.controller.lstm.hidden_size == 8 and strategy.settings.candidates == 3


# ------------------------------------------------------------------------------------------ a new method's settings
@dataclass
class TemperatureSettings:
    temperature: float = setting(1.0, "divides alpha before the softmax", gt=0)


class TemperatureSoftmax(SoftmaxStrategy):
    """Softmax over alpha / temperature (the method a plugin of the issue writes)."""

    Settings = TemperatureSettings

    def sample(self) -> Mixing:
        return Mixing(F.softmax(masked_logits(self.eta, self.mask) / self.settings.temperature, dim=-1))


@pytest.fixture
def temperature_method(monkeypatch):
    """The method registered for one test (the registry keeps no removal: the entry is taken out afterwards)."""
    monkeypatch.setitem(METHODS._entries, "temperature-softmax", TemperatureSoftmax)
    monkeypatch.setitem(METHODS._docs, "temperature-softmax", "softmax over alpha divided by a temperature")
    TemperatureSoftmax.name = "temperature-softmax"
    yield TemperatureSoftmax


def test_register_method_names_the_class():
    registry_before = dict(METHODS._entries)
    try:
        cls = register_method("named-by-registry", doc="x")(type("Anon", (TemperatureSoftmax,), {}))
        assert cls.name == "named-by-registry" and get_method("named-by-registry") is cls
    finally:
        METHODS._entries.clear()
        METHODS._entries.update(registry_before)
        METHODS._docs.pop("named-by-registry", None)


def test_a_new_methods_setting_is_set_checked_recorded_and_shown(temperature_method, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--preset", "demo", "--method", "temperature-softmax", "--epochs", "2", "--train-images", "128",
            "--quiet", "--out", str(out)]
    assert main([*argv, "--set", "method.temperature=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["drnas: error: method temperature-softmax: temperature must be > 0, got 0.0"]
    assert not out.exists()
    assert main([*argv, "--set", "method.temperature=0.5"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "temperature-softmax" and saved["method_settings"] == {"temperature": 0.5}
    strategy = TemperatureSoftmax(get_space("nb201"), SearchConfig.from_json(RunDir(out).read_fields()))
    with torch.no_grad():
        strategy.eta.copy_(torch.randn_like(strategy.eta))
    assert torch.allclose(strategy.sample().theta, F.softmax(strategy.eta / 0.5, -1))
    capsys.readouterr()
    assert main(["methods", "temperature-softmax"]) == 0
    shown = capsys.readouterr().out
    assert "prunable: yes" in shown and "settings (--set method.SETTING=VALUE" in shown
    assert any(line.split()[:4] == ["temperature", "float", "1.0", ">"] and "divides alpha" in line
               for line in shown.splitlines())


def test_methods_name_shows_a_method_without_settings_and_an_unknown_name_is_one_line(capsys):
    assert main(["methods", "darts"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("darts: DARTS") and "settings: none" in out and "paper: Liu et al." in out
    assert main(["methods", "rsps"]) == 0
    assert "prunable: no (no op strengths: a progressive preset's stages run without pruning" in capsys.readouterr().out
    assert main(["methods", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drnas: error: unknown method 'nope'")


# ------------------------------------------------------------------------------------------ config files
@pytest.mark.parametrize("name, text", [
    ("table.toml", '[method]\nname = "gdas"\ntau_min = 0.5\n'),
    ("object.json", '{"method": {"name": "gdas", "tau_min": 0.5}}'),
    ("saved.json", '{"method": "gdas", "method_settings": {"tau_min": 0.5}}'),
    ("old.toml", 'method = "gdas"\ntau_min = 0.5\ncandidates = 100\nregulariser = "l2"\n'),
])
def test_every_config_file_form_of_a_methods_settings(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    config = resolve_search_config(apply_method=with_method, config_file=str(path))
    assert config.method == "gdas" and config.method_settings == {"tau_max": 10.0, "tau_min": 0.5, "schedule": "linear"}
    over = resolve_search_config(apply_method=with_method, config_file=str(path), sets={"method.tau_min": "0.2"})
    assert over.method_settings["tau_min"] == 0.2  # --set over the file


@pytest.mark.parametrize("sets, says", [
    ({"tau_max": "2"}, "tau_max is a setting of method snas, gdas (--method snas --set method.tau_max=VALUE); "
                       "method drnas has no such setting: drop it"),
    ({"method.tau_max": "2"}, "tau_max is a setting of method snas, gdas"),
    ({"method.regulariser": "l1"}, "method drnas: regulariser must be one of l2, kl, got 'l1'"),
    ({"method_settings": "[1]"}, "method_settings must be an object"),
])
def test_misplaced_or_bad_settings_are_one_line(sets, says):
    with pytest.raises(ConfigError) as info:
        resolve_search_config(apply_method=with_method, sets=sets)
    assert str(info.value).startswith(says) or says in str(info.value), str(info.value)


def test_the_old_fields_at_their_old_defaults_are_dropped_and_others_move_into_the_settings():
    old = {"tau_max": None, "tau_min": None, "candidates": 100, "queries": 100, "regulariser": "l2"}
    assert apply_overrides(SearchConfig(), old).method_settings == {}
    moved = apply_overrides(SearchConfig(method="rsps"), {**old, "candidates": "50"})
    assert moved.method_settings == {"candidates": 50}
    assert get_method("rsps").settings_of(moved).candidates == 50
    kept = apply_overrides(with_method(SearchConfig(), "gdas"), {"tau_min": 0.5})
    assert kept.method_settings == {"tau_max": 10.0, "tau_min": 0.5, "schedule": "linear"}


# ------------------------------------------------------------------------------------------ runs made before
def _old_format(run, **fields) -> None:
    """Rewrite a run's config.json as drnas wrote it before the settings moved: no method_settings, the old
    top-level fields (every one, as config.json held every field)."""
    path = run / "config.json"
    saved = json.loads(path.read_text())
    saved.pop("method_settings")
    saved.update({"tau_max": None, "tau_min": None, "candidates": 100, "queries": 100, "regulariser": "l2", **fields})
    path.write_text(json.dumps(saved, indent=2))


def test_a_run_saved_in_the_old_format_resumes_shows_samples_and_derives(tmp_path, capsys):
    run = tmp_path / "gdas"
    config = with_method(tiny_config(dataset="digits", stages=[Stage(epochs=3)]), "gdas")
    Search(config, run, data=digits(), **QUIET).run(max_epochs=1)
    _old_format(run, tau_max=10.0, tau_min=0.5)  # an old gdas run held its temperatures as config fields
    for argv in (["show", str(run)], ["sample", str(run), "--n", "5"], ["derive", str(run)]):
        assert main(argv) == 0, argv
    assert "|" in capsys.readouterr().out
    resumed = Search.resume(run, data=digits(), **QUIET)
    assert resumed.config.method_settings == {"tau_max": 10.0, "tau_min": 0.5}
    assert (resumed.strategy.settings.tau_max, resumed.strategy.settings.tau_min) == (10.0, 0.5)
    resumed.run()
    assert [m["tau"] for m in resumed.metrics] == [10.0, pytest.approx(5.25), 0.5]


def test_an_old_run_with_a_value_its_method_never_used_says_which_setting_it_is(tmp_path, capsys):
    for name, old in (("kl", {"regulariser": "kl"}), ("tau", {"tau_max": 2.0})):
        config = tiny_config(dataset="digits", stages=[Stage(epochs=2)])
        Search(config, tmp_path / name, data=digits(), **QUIET).run(max_epochs=1)
        _old_format(tmp_path / name, **old)
    assert Search.resume(tmp_path / "kl", data=digits(), **QUIET).strategy.settings.regulariser == "kl"
    with pytest.raises(ConfigError, match="tau_max is a setting of method snas, gdas"):
        Search.resume(tmp_path / "tau", data=digits(), **QUIET)
    assert main(["show", str(tmp_path / "tau")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tau_max is a setting of method snas, gdas" in err[0]


# ------------------------------------------------------------------------------------------ sweeps
def test_a_grid_over_a_method_setting_names_its_runs_and_sets_each(tmp_path):
    plan, _ = plan_sweep(methods="gdas,snas", grid=["method.tau_min=0.2,0.5"], search={"preset": "demo", "epochs": 2},
                         threads=1)
    assert plan.varying == ["method", "method.tau_min"]
    assert [r.name for r in plan.runs] == ["method=gdas,method.tau_min=0.2", "method=gdas,method.tau_min=0.5",
                                           "method=snas,method.tau_min=0.2", "method=snas,method.tau_min=0.5"]
    for run in plan.runs:
        assert run.config["method_settings"]["tau_min"] == float(run.values["method.tau_min"])
    file = tmp_path / "sweep.toml"
    file.write_text('[grid.method]\nname = ["gdas"]\ntau_min = [0.2, 0.5]\n[search]\npreset = "demo"\nepochs = 2\n'
                    '[search.method]\ntau_max = 4.0\n')
    plan, _ = plan_sweep(file=str(file), threads=1)
    assert [r.name for r in plan.runs] == ["method.tau_min=0.2", "method.tau_min=0.5"]
    assert [r.config["method_settings"] for r in plan.runs] == [
        {"tau_max": 4.0, "tau_min": t, "schedule": "linear"} for t in (0.2, 0.5)]


def test_a_sweeps_method_setting_applies_to_the_methods_that_have_it():
    plan, _ = plan_sweep(methods="drnas,rsps", sets=["method.candidates=7", "candidates=7"],
                         search={"preset": "demo", "epochs": 2}, threads=1)
    assert [r.config["method_settings"] for r in plan.runs] == [{"regulariser": "l2"}, {"candidates": 7}]
    with pytest.raises(ConfigError, match="--set method.tau_min: no method of this sweep .drnas, rsps. has a setting"):
        plan_sweep(methods="drnas,rsps", sets=["method.tau_min=0.5"], search={"preset": "demo"}, threads=1)
    with pytest.raises(ConfigError, match="run method=drnas,method.tau_min=0.5: tau_min is a setting of method snas"):
        plan_sweep(methods="drnas,gdas", grid=["method.tau_min=0.5,0.6"], search={"preset": "demo"}, threads=1)
