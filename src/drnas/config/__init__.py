"""Configs of the jobs: the search (:mod:`~drnas.config.search`, its presets in :mod:`~drnas.config.presets`),
retraining (:mod:`~drnas.config.train`, its protocols), the run settings both share
(:mod:`~drnas.config.settings`) and the settings a method declares of its own (:mod:`~drnas.config.options`)."""
from drnas.config.options import describe_settings, make_settings, setting
from drnas.config.presets import SEARCH_PRESETS, PresetRegistry, preset, preset_names, register_preset
from drnas.config.search import (RECOVERY_SETTABLE, RESUME_SETTABLE, ConfigError, SearchConfig, Stage,
                                 apply_overrides, load_config_file, set_total_epochs, with_absolute_paths)
from drnas.config.settings import RunSettings
from drnas.config.train import PROTOCOLS, TrainConfig

__all__ = ["PROTOCOLS", "RECOVERY_SETTABLE", "RESUME_SETTABLE", "SEARCH_PRESETS", "ConfigError", "PresetRegistry",
           "RunSettings", "SearchConfig", "Stage", "TrainConfig", "apply_overrides", "describe_settings",
           "load_config_file", "make_settings", "preset", "preset_names", "register_preset", "set_total_epochs",
           "setting", "with_absolute_paths"]
