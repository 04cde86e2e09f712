"""Named search presets: the paper's and the authors' settings, each a function of field overrides.

``drnas presets`` lists them; :func:`preset` returns the :class:`~drnas.config.search.SearchConfig` of one.
"""
from __future__ import annotations

from typing import Any, Callable

from drnas.config.search import SearchConfig, Stage, apply_overrides
from drnas.errors import ConfigError
from drnas.registry import Registry


class PresetRegistry:
    """Named config presets of one kind: functions returning field overrides of ``config_cls``' defaults."""

    def __init__(self, kind: str, config_cls: type) -> None:
        self.kind, self.config_cls = kind, config_cls
        self._presets: Registry[Callable[[], dict[str, Any]]] = Registry(kind, ConfigError)

    def register(self, name: str, doc: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
        return self._presets.register(name, doc=doc)  # type: ignore[return-value]

    def names(self) -> dict[str, str]:
        """Preset name -> one-line description."""
        return self._presets.docs()

    def get(self, name: str) -> Any:
        overrides = self._presets.get(name)()
        return apply_overrides(self.config_cls(), {**overrides, "preset": name})


SEARCH_PRESETS = PresetRegistry("preset", SearchConfig)
register_preset = SEARCH_PRESETS.register
preset_names = SEARCH_PRESETS.names
preset = SEARCH_PRESETS.get


@register_preset("nb201", "NB201 space, 100 epochs, all channels (K=1), arch updates from the first step "
                          "(the authors' non-progressive script, which gave the paper's NB201 numbers)")
def _nb201() -> dict[str, Any]:
    return {"space": "nb201", "stages": [Stage(epochs=100, partial_k=1)]}


@register_preset("nb201-progressive", "NB201 space, progressive: 2 stages of 50 epochs, K=4 then 2, ops 5 then 3, "
                                      "10 warm-up epochs per stage (the authors' progressive script)")
def _nb201_progressive() -> dict[str, Any]:
    return {"space": "nb201", "stages": [Stage(epochs=50, partial_k=4, ops_kept=None, arch_warmup=10),
                                         Stage(epochs=50, partial_k=2, ops_kept=3, arch_warmup=10)]}


@register_preset("nb201-reduced", "NB201 space at a budget a 2-core CPU runs in about 10 minutes and where DARTS "
                                  "collapses: CIFAR-10's first 5,000 training images, 8 channels, 1 cell per stage, "
                                  "60 epochs, the Hessian's eigenvalue every 5 (benchmarks/results: the collapse runs)")
def _nb201_reduced() -> dict[str, Any]:
    return {"space": "nb201", "dataset": "cifar10", "train_images": 5000, "channels": 8, "cells_per_stage": 1,
            "hessian_every": 5, "stages": [Stage(epochs=60, partial_k=1)]}


@register_preset("demo", "offline demo: NB201 space on the embedded digits data, small supernet, about a minute on 2 CPU cores")
def _demo() -> dict[str, Any]:
    return {"space": "nb201", "dataset": "digits", "channels": 8, "cells_per_stage": 1, "batch_size": 64,
            "lr": 0.05, "arch_lr": 3e-3,
            "stages": [Stage(epochs=10, partial_k=2, arch_warmup=2), Stage(epochs=10, partial_k=1, ops_kept=3, arch_warmup=2)]}


# DARTS space (paper §4.1-4.2). Common: SGD momentum 0.9, weight decay 3e-4, clip 5, batch 64, L2 anchor 1e-3.
_DARTS_DIRECT = {"space": "darts", "dataset": "cifar10", "cells": 20, "channels": 36, "batch_size": 64,
                 "lr": 0.1, "lr_min": 0.0, "arch_lr": 6e-4}


@register_preset("darts-cifar10", "DARTS space on CIFAR-10, direct progressive search as the paper states it: 20 cells, "
                                  "36 channels, 2 stages of 25 epochs, K=6 then 3, 8 then 4 ops, 10 warm-up epochs per stage")
def _darts_cifar10() -> dict[str, Any]:
    return {**_DARTS_DIRECT, "stages": [Stage(25, 6, None, 10), Stage(25, 3, 4, 10)]}


@register_preset("darts-cifar10-code", "as darts-cifar10 but as the authors' released code runs it: no 'none' op "
                                       "(7 ops, then 4) and K=6 then 4")
def _darts_cifar10_code() -> dict[str, Any]:
    ops = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    return {**_DARTS_DIRECT, "ops": ops, "stages": [Stage(25, 6, None, 10), Stage(25, 4, 4, 10)]}


@register_preset("darts-cifar10-proxy", "DARTS space on CIFAR-10 without progressive learning (paper's ablation row): "
                                        "8 cells, 16 channels, all channels, 50 epochs, DARTS' proxy settings")
def _darts_cifar10_proxy() -> dict[str, Any]:
    return {"space": "darts", "dataset": "cifar10", "cells": 8, "channels": 16, "batch_size": 64, "lr": 0.025,
            "lr_min": 0.001, "arch_lr": 6e-4, "stages": [Stage(50, 1, None, 0)]}


@register_preset("darts-imagenet", "DARTS space searched directly on ImageNet (paper §4.2): 14 cells, 48 channels, "
                                   "ImageNet stem to 28x28, 10%/2.5% of each class for the weight/arch halves, "
                                   "2 stages of 25 epochs, K=6 then 3, 8 then 4 ops")
def _darts_imagenet() -> dict[str, Any]:
    # Batch, lr and arch lr follow PC-DARTS' ImageNet search (which the paper says it follows): batch 1024 over
    # 8 GPUs, lr 0.5, arch lr 6e-3; scale batch_size and lr together for fewer GPUs.
    return {"space": "darts", "dataset": "imagenet", "cells": 14, "channels": 48, "batch_size": 1024, "lr": 0.5,
            "lr_min": 0.0, "arch_lr": 6e-3, "subset_fractions": [0.1, 0.025], "image_size": 224,
            "stages": [Stage(25, 6, None, 10), Stage(25, 3, 4, 10)]}
