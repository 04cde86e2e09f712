"""P-DARTS' dropout on skip connections (Chen et al., "Progressive Differentiable Architecture Search: Bridging the
Depth Gap between Search and Evaluation", ICCV 2019, §3.3, "search space regularization"): while the supernet
trains, each element of every ``skip_connect`` output is zeroed with probability p (the rest scaled by 1/(1-p)), so
that the parameter-free path stops winning early by easing the optimisation; p decays within each stage, so that
the skip connections are judged fairly by its end.

The rate of stage s starts at ``rates[s]`` (P-DARTS on CIFAR-10: 0.0, 0.4, 0.7 for its three stages of 5, 11 and
17 cells; a search with more stages repeats the last rate). At epoch e of a stage of E epochs whose first W train
the weights only (its ``arch_warmup``), the authors' released search script decays it as

    p = rates[s] * (E - e - 1) / E              for e < W,
    p = rates[s] * exp(-decay * (e - W))        for e >= W,    decay = 0.2.

The dropout acts in training mode only (the weight and architecture steps, as in the released script), on the
edges where ``skip_connect`` is the identity (stride 1: a DARTS reduction edge's factorized reduction is left as
it is there). Its masks come from the run's random stream, which checkpoints keep, so a resume repeats them; they
are drawn inside the cells, so the run's cells stay eager (no compiled cells, no CUDA graphs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from drnas.config.options import setting
from drnas.errors import ConfigError
from drnas.method.parts.base import Part, register_part
from drnas.method.parts.skip_limit import SKIP, SkipLimit


@dataclass
class SkipDropoutSettings:
    """The initial dropout rate of each stage and its decay."""

    rates: list[float] = setting([0.0, 0.4, 0.7], "initial dropout rate on skip_connect in each stage (P-DARTS, "
                                                  "CIFAR-10: 0.0, 0.4, 0.7); later stages repeat the last; each in "
                                                  "[0, 1)")
    decay: float = setting(0.2, "exponential decay of the rate per epoch after the stage's warm-up (the released "
                                "script's 0.2)", ge=0, le=100)


def stage_rate(rates: list[float], index: int) -> float:
    return rates[min(index, len(rates) - 1)]


@register_part("skip-dropout", doc="P-DARTS: dropout on every skip connection's output while the supernet trains, "
                                   "its rate decaying within each stage (Chen et al., ICCV 2019)")
class SkipDropout(Part):
    paper = SkipLimit.paper  # both are P-DARTS'
    Settings = SkipDropoutSettings
    slot = "drop an op's output"
    draws_in_cells = True

    @classmethod
    def check(cls, method: Any, config: Any, space: Any) -> None:
        super().check(method, config, space)
        settings = cls.settings_of(config)
        if not settings.rates or not all(0 <= r < 1 for r in settings.rates):
            raise ConfigError(f"part {cls.name}: rates must be one or more numbers in [0, 1), got "
                              f"{settings.rates}: e.g. --set part.{cls.name}.rates=0.3")
        if SKIP not in space.ops:
            raise ConfigError(f"part {cls.name} drops {SKIP}'s output, which the ops of space {space.name} lack: add "
                              f"{SKIP} to the ops, or drop --with {cls.name}")
        used = [stage_rate(settings.rates, i) for i in range(len(config.stages))]
        if not any(used):
            raise ConfigError(f"part {cls.name} drops nothing in this search: its rate is 0 in each of its "
                              f"{len(used)} stage(s) (the default 0.0,0.4,0.7 is P-DARTS' three stages): give "
                              f"--set part.{cls.name}.rates=0.3")

    @property
    def rate(self) -> float:
        """p at the current epoch (see the module docstring)."""
        index, e = self.config.stage_at(min(self.epoch, self.config.epochs - 1))
        start, stage = stage_rate(self.settings.rates, index), self.config.stages[index]
        if e < stage.arch_warmup:
            return start * (stage.epochs - e - 1) / stage.epochs
        return start * math.exp(-self.settings.decay * (e - stage.arch_warmup))

    def prepare_network(self, net: Any) -> None:
        rate = self.rate
        for _, mixed in net.mixed_ops():
            if SKIP in mixed.op_names and mixed.stride == 1:
                mixed.drop = {mixed.op_names.index(SKIP): rate} if rate > 0 else {}

    def record(self) -> dict[str, Any]:
        return {"skip_dropout": round(self.rate, 6)}
