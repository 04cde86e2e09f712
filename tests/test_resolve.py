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
    assert _search() == with_method(preset("nb201"), "drnas").validate()
    assert _search().method_settings == {"regulariser": "l2"}  # the method's settings, every one, resolved


def test_the_method_comes_from_the_set_else_the_argument_else_the_file_else_the_preset(tmp_path, config_file):
    named = tmp_path / "gdas.toml"
    named.write_text('method = "gdas"\n')
    assert _search().method == preset("nb201").method
    assert _search(config_file=str(named)).method == "gdas"
    assert _search(method="darts", config_file=str(named)).method == "darts"
    assert _search(config_file=str(named), sets={"method": "snas"}).method == "snas"
    assert _search(method="darts", config_file=str(named), sets={"method": "snas"}).method == "snas"  # --set first
    assert _search(method="darts").method == "darts"
    assert _search(method="enas").arch_lr == ENAS_LR == with_method(preset("nb201"), "enas").arch_lr


def test_the_method_settled_first_gets_its_own_defaults_whichever_level_names_it(tmp_path):
    """A method named by --set or the file is the one whose defaults apply over the preset (not the flag's, which
    a later level used to switch away from behind the defaults' back)."""
    named = tmp_path / "pc.toml"
    named.write_text('method = "pc-darts"\n')
    for levels in ({"sets": {"method": "pc-darts"}, "method": "drnas"}, {"config_file": str(named)}):
        config = _search(**levels)
        assert config.method == "pc-darts" and config.arch_lr == 6e-4, levels
        assert config.stages[0].partial_k == 4 and config.stages[0].arch_warmup == 30, levels


def test_total_epochs_rescale_the_stages_under_set():
    config = resolve_search_config(apply_method=with_method, preset="nb201-progressive", epochs=10)
    assert [s.epochs for s in config.stages] == [5, 5]
    config = resolve_search_config(apply_method=with_method, preset="nb201-progressive", epochs=10,
                                   sets={"stages": '[{"epochs": 3}]'})
    assert [s.epochs for s in config.stages] == [3]


def test_a_space_or_dataset_flag_overrides_the_presets_and_the_presets_ops_give_way():
    assert _search(flags={"space": "darts"}).space == "darts"
    assert resolve_search_config(apply_method=with_method, flags={"space": "nb201"}).space == "nb201"
    code = "darts-cifar10-code"  # its ops are DARTS ops without none: another space keeps its own ops
    assert resolve_search_config(apply_method=with_method, preset=code).ops is not None
    for level in ("flags", "sets"):
        moved = resolve_search_config(apply_method=with_method, preset=code, **{level: {"space": "nb201"}})
        assert (moved.space, moved.ops, moved.channels) == ("nb201", None, preset(code).channels), level
    kept = resolve_search_config(apply_method=with_method, preset=code, flags={"space": "nb201"},
                                 sets={"ops": "none,skip_connect,nor_conv_3x3"})
    assert kept.ops == ["none", "skip_connect", "nor_conv_3x3"]
    assert resolve_search_config(apply_method=with_method, preset="demo", flags={"dataset": "cifar10"}).dataset == \
        "cifar10"


def test_the_method_is_applied_by_the_function_handed_in_with_its_settings_from_every_level(tmp_path):
    seen = []

    def apply(config, name, settings):
        seen.append((name, dict(settings)))
        return with_method(config, name, settings)

    file = tmp_path / "gdas.toml"
    file.write_text('[method]\nname = "gdas"\ntau_max = 4.0\ntau_min = 0.2\n')
    config = resolve_search_config(apply_method=apply, config_file=str(file), sets={"method.tau_min": "0.5"})
    assert seen == [("gdas", {"tau_max": 4.0, "tau_min": "0.5"})]  # raw: the method coerces them
    assert config.method_settings == {"tau_max": 4.0, "tau_min": 0.5, "schedule": "linear"}


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
