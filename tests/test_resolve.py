"""The one precedence of config values (drnas.config.resolve): preset < the method's own hyperparameters < config
file < flags < --set, each level overriding the one below."""
from __future__ import annotations

import json

import pytest

from drnas.config.presets import preset
from drnas.config.resolve import parse_sets, resolve_search_config, resolve_train_config
from drnas.config.train import PROTOCOLS
from drnas.errors import ConfigError
from drnas.method.strategies import with_method

#: arch_lr at each level: nb201's preset, then method enas' own, then the file, the flags and --set
PRESET_LR, ENAS_LR, FILE_LR, FLAG_LR, SET_LR = 3e-4, 1e-3, 0.01, 0.02, 0.03


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"arch_lr": FILE_LR, "seed": 5}))
    return str(path)


def _search(**levels):
    return resolve_search_config(apply_method=with_method, preset="nb201", **levels)


def test_each_level_of_a_search_config_overrides_the_one_below(config_file):
    levels = {"method": "enas", "config_file": config_file, "flags": {"arch_lr": FLAG_LR},
              "sets": {"arch_lr": str(SET_LR)}}
    expected = [SET_LR, FLAG_LR, FILE_LR, ENAS_LR, PRESET_LR]  # every level, then the top one left out, ...
    for top, lr in zip(["sets", "flags", "config_file", "method", None], expected):
        assert _search(**levels).arch_lr == lr, top
        levels.pop(top, None)
    assert _search() == preset("nb201").validate()


def test_the_method_comes_from_the_argument_else_the_set_else_the_file_else_the_preset(tmp_path, config_file):
    named = tmp_path / "gdas.toml"
    named.write_text('method = "gdas"\n')
    assert _search().method == preset("nb201").method
    assert _search(config_file=str(named)).method == "gdas"
    assert _search(config_file=str(named), sets={"method": "snas"}).method == "snas"
    assert _search(method="darts", config_file=str(named), sets={"method": "snas"}).method == "snas"  # --set last
    assert _search(method="darts").method == "darts"
    assert _search(method="enas").arch_lr == ENAS_LR == with_method(preset("nb201"), "enas").arch_lr


def test_total_epochs_rescale_the_stages_under_set():
    config = resolve_search_config(apply_method=with_method, preset="nb201-progressive", epochs=10)
    assert [s.epochs for s in config.stages] == [5, 5]
    config = resolve_search_config(apply_method=with_method, preset="nb201-progressive", epochs=10,
                                   sets={"stages": '[{"epochs": 3}]'})
    assert [s.epochs for s in config.stages] == [3]


def test_a_space_flag_must_agree_with_a_named_preset():
    with pytest.raises(ConfigError, match="--space darts contradicts preset nb201"):
        _search(flags={"space": "darts"})
    assert resolve_search_config(apply_method=with_method, flags={"space": "nb201"}).space == "nb201"


def test_the_method_is_applied_by_the_function_handed_in():
    seen = []

    def apply(config, name):
        seen.append(name)
        return with_method(config, name)

    resolve_search_config(apply_method=apply, method="darts")
    assert seen == ["darts"]


def test_each_level_of_a_training_config_overrides_the_one_below(tmp_path):
    file = tmp_path / "train.toml"
    file.write_text("lr = 0.2\nepochs = 7\n")
    arch = {"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"}
    full = resolve_train_config(protocol="nb201", config_file=str(file), flags={**arch, "lr": 0.3},
                                sets={"lr": "0.4"})
    assert (full.lr, full.epochs, full.batch_size) == (0.4, 7, PROTOCOLS.get("nb201").batch_size)
    assert resolve_train_config(protocol="nb201", config_file=str(file), flags={**arch, "lr": 0.3}).lr == 0.3
    assert resolve_train_config(protocol="nb201", config_file=str(file), flags=arch).lr == 0.2
    assert resolve_train_config(protocol="nb201", flags=arch).lr == PROTOCOLS.get("nb201").lr
    with pytest.raises(ConfigError, match="no architecture"):
        resolve_train_config(protocol="nb201")


def test_parse_sets():
    assert parse_sets(["lr = 0.05", "seed=1", "lr=0.1", "stages=[{\"epochs\": 2}]"]) == \
        {"lr": "0.1", "seed": "1", "stages": '[{"epochs": 2}]'}
    with pytest.raises(ConfigError, match="must look like FIELD=VALUE"):
        parse_sets(["lr"])
