"""DARTS- (Chu et al., "DARTS-: Robustly Stepping out of Performance Collapse Without Indicators", ICLR 2021, §3):
an auxiliary skip connection beside every edge's mixed op, weighted by β that decays linearly from ``start`` to 0
over the search, so that skip connections stop winning by easing the supernet's optimisation (the residual
advantage the paper blames for DARTS' collapse) and, at the end, the supernet is the plain one.

Every edge's output becomes Σ_o θ_o · op_o(x) + β · skip(x). With the edge's own ``skip_connect`` as skip(x), that
is the mixed op run at θ + β · e_skip, which this part passes to the weight step, the architecture step (β adds no
gradient) and validation alike. On a normal edge skip(x) is x, as in the paper; on a reduction edge of the DARTS
space it is the edge's factorized reduction, which the paper's auxiliary path has its own weights for.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from drnas.config.options import setting
from drnas.errors import ConfigError
from drnas.method.parts.base import Part, register_part

SKIP = "skip_connect"


@dataclass
class AuxSkipSettings:
    """DARTS-' auxiliary skip weight."""

    start: float = setting(1.0, "beta at the first epoch (the paper's 1); it decays linearly to 0 at the last",
                           ge=0, le=10)


@register_part("aux-skip", doc="DARTS-: an auxiliary skip connection on every edge, its weight decaying "
                               "linearly to 0 (Chu et al., ICLR 2021)")
class AuxSkip(Part):
    paper = "Chu et al., DARTS-: Robustly Stepping out of Performance Collapse Without Indicators, ICLR 2021"
    Settings = AuxSkipSettings
    slot = "add a path to every edge"
    multi_path_only = True

    def __init__(self, settings: Any, config: Any, space: Any) -> None:
        super().__init__(settings, config, space)
        self.skip = list(space.ops).index(SKIP)

    @classmethod
    def check(cls, method: Any, config: Any, space: Any) -> None:
        super().check(method, config, space)
        if SKIP not in space.ops:
            raise ConfigError(f"part {cls.name} runs every edge's {SKIP}, which the ops of space {space.name} lack: "
                              f"add {SKIP} to the ops, or drop --with {cls.name}")
        if any(stage.ops_kept is not None for stage in config.stages):
            raise ConfigError(f"part {cls.name} needs {SKIP} on every edge to the end, which progressive pruning may "
                              f"remove: give the stages without ops_kept")

    @property
    def beta(self) -> float:
        """β_t: ``start`` at the first epoch, 0 at the last."""
        return self.settings.start * (1.0 - self.epoch / max(1, self.epochs - 1))

    def mix(self, mixing: Any, phase: str, strategy: Any, engine: Any = None, batch: Any = None) -> Any:
        if not self.beta:
            return mixing
        boost = mixing.theta.new_zeros(mixing.theta.shape)
        boost[:, self.skip] = self.beta
        return dataclasses.replace(mixing, theta=mixing.theta + boost)

    def record(self) -> dict[str, Any]:
        return {"aux_skip_beta": self.beta}
