"""Presets match the paper/authors' settings; overrides resolve in order; bad configs fail clearly."""
from __future__ import annotations

import json

import pytest

from drnas.config import (ConfigError, SearchConfig, Stage, apply_overrides, load_config_file, preset,
                          preset_names, set_total_epochs)


def test_nb201_preset_is_the_authors_non_progressive_search():
    cfg = preset("nb201")
    assert cfg.stages == [Stage(epochs=100, partial_k=1, ops_kept=None, arch_warmup=0)]
    assert (cfg.batch_size, cfg.lr, cfg.lr_min, cfg.momentum, cfg.weight_decay, cfg.grad_clip) == \
        (64, 0.025, 0.001, 0.9, 3e-4, 5.0)
    assert (cfg.arch_lr, cfg.arch_betas, cfg.reg_scale, cfg.method) == (3e-4, (0.5, 0.999), 1e-3, "drnas")
    assert (cfg.channels, cfg.cells_per_stage, cfg.train_portion, cfg.eta_init_std) == (16, 5, 0.5, 1e-3)


def test_nb201_progressive_preset():
    cfg = preset("nb201-progressive")
    assert cfg.stages == [Stage(50, 4, None, 10), Stage(50, 2, 3, 10)]
    assert cfg.epochs == 100


def test_every_preset_validates():
    for name in preset_names():
        preset(name).validate()
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("nope")


def test_overrides_and_total_epochs():
    cfg = apply_overrides(preset("nb201-progressive"), {"lr": "0.05", "seed": 3, "benchmark": "x.csv"})
    assert cfg.lr == 0.05 and cfg.seed == 3 and cfg.benchmark == "x.csv"
    short = set_total_epochs(cfg, 10)
    assert [s.epochs for s in short.stages] == [5, 5] and [s.arch_warmup for s in short.stages] == [1, 1]
    assert [s.partial_k for s in short.stages] == [4, 2]
    assert set_total_epochs(preset("nb201"), 7).stages[0].epochs == 7
    with pytest.raises(ConfigError):
        set_total_epochs(cfg, 1)


def test_stages_from_json_text_and_round_trip():
    cfg = apply_overrides(SearchConfig(), {"stages": '[{"epochs": 3, "partial_k": 2}, {"epochs": 2, "ops_kept": 2}]'})
    assert cfg.stages == [Stage(3, 2), Stage(2, 1, 2)]
    again = SearchConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg


@pytest.mark.parametrize("overrides,match", [
    ({"nope": 1}, "unknown config field"),
    ({"lr": "fast"}, "must be a number"),
    ({"stages": [{"epochs": 3, "k": 2}]}, "unknown stage field"),
])
def test_bad_overrides(overrides, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(SearchConfig(), overrides)


@pytest.mark.parametrize("changes,match", [
    ({"stages": [Stage(5, 2), Stage(5, 4)]}, "must not grow"),
    ({"stages": [Stage(5, 1, 3)]}, "stage 1: ops_kept"),
    ({"stages": [Stage(5, 3)]}, "must divide channels"),
    ({"stages": [Stage(2, 1, None, 3)]}, "arch_warmup"),
    ({"train_portion": 1.0}, "train_portion"),
    ({"compile": "network"}, "compile must be one of auto, none, cells"),
    ({"stages": []}, "at least one stage"),
])
def test_inconsistent_configs_are_refused(changes, match):
    with pytest.raises(ConfigError, match=match):
        SearchConfig(**changes).validate()


def test_config_files_json_and_toml(tmp_path):
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"lr": 0.1, "stages": [{"epochs": 4, "partial_k": 2}]}))
    t = tmp_path / "c.toml"
    t.write_text('lr = 0.2\nseed = 5\n[[stages]]\nepochs = 3\npartial_k = 4\n')
    assert apply_overrides(SearchConfig(), load_config_file(j)).stages == [Stage(4, 2)]
    cfg = apply_overrides(SearchConfig(), load_config_file(t))
    assert cfg.lr == 0.2 and cfg.seed == 5 and cfg.stages == [Stage(3, 4)]
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{lr: ")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_config_file(bad)


def test_compile_none_is_a_value_not_null():
    assert apply_overrides(SearchConfig(), {"compile": "cells"}).compile == "cells"
    cfg = apply_overrides(SearchConfig(compile="cells"), {"compile": "none"})
    assert cfg.compile == "none" and SearchConfig.from_json(cfg.to_json()).compile == "none"


def test_device_settings_are_checked_alike_for_search_and_training():
    from drnas.train import PROTOCOLS

    for field, bad in (("memory_format", "nhwc"), ("amp", "fp16"), ("cuda_graphs", "always")):
        with pytest.raises(ConfigError, match=f"{field} must be one of"):
            apply_overrides(SearchConfig(), {field: bad}).validate()
        with pytest.raises(ConfigError, match=f"{field} must be one of"):
            apply_overrides(PROTOCOLS.get("darts-cifar"), {"arch": "DARTS_V2", field: bad}).validate()


def test_cudnn_benchmark_is_a_boolean_of_both_job_kinds():
    from drnas.train import PROTOCOLS

    assert apply_overrides(SearchConfig(), {"cudnn_benchmark": "true"}).cudnn_benchmark is True
    assert apply_overrides(PROTOCOLS.get("darts-cifar"), {"cudnn_benchmark": "yes"}).cudnn_benchmark is True
    with pytest.raises(ConfigError, match="cudnn_benchmark must be true or false"):
        apply_overrides(SearchConfig(), {"cudnn_benchmark": "maybe"})
