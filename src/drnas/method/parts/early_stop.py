"""Early stopping: a search that ends when its own signal says the architecture is about to collapse.

* ``darts-plus`` (Liang et al., "DARTS+: Improved Differentiable Architecture Search with Early Stopping", 2019,
  §3.2, criterion 1): stop once the derived (normal) cell holds ``max_skips`` or more skip connections (the
  paper's 2); the search returns that epoch's cell.
* ``darts-es`` (Zela et al., "Understanding and Robustifying Differentiable Architecture Search", ICLR 2020, §5):
  track the dominant eigenvalue λ of the validation loss' Hessian in the architecture parameters (the curvature
  ``hessian_every`` measures); with λ̄(i) the mean of the last ``window`` measurements up to epoch i, stop when
  λ̄(i - k) / λ̄(i) < ``ratio`` (the paper's k = 5, 0.75), and return the cell of epoch i - k.

A stopped run records why and at which epoch (``stopped`` in its last metrics line and in its checkpoint), and a
resume of it continues no further.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from drnas.config.options import setting
from drnas.errors import ConfigError
from drnas.method.parts.base import Part, Stop, register_part


@dataclass
class DartsPlusSettings:
    """DARTS+' criterion 1."""

    max_skips: int = setting(2, "stop once the derived cell holds this many skip connections (the paper's 2)",
                             ge=1, le=100)


@register_part("darts-plus", doc="DARTS+: stop once the derived cell holds 2 skip connections (Liang et al., 2019)")
class DartsPlus(Part):
    paper = "Liang et al., DARTS+: Improved Differentiable Architecture Search with Early Stopping, arXiv 2019"
    Settings = DartsPlusSettings

    def stop(self, history: Sequence[Mapping[str, Any]], cell_ops: Sequence[str]) -> Stop | None:
        skips = sum(op == "skip_connect" for op in cell_ops)
        if skips < self.settings.max_skips:
            return None
        return Stop(f"darts-plus: the derived cell holds {skips} skip connections (limit {self.settings.max_skips})",
                    int(history[-1]["epoch"]))


@dataclass
class DartsESSettings:
    """RobustDARTS' early-stopping rule."""

    lookback: int = setting(5, "k: compare the mean eigenvalue now with that of k epochs before (the paper's 5)",
                            ge=1, le=1000)
    window: int = setting(5, "measurements averaged into each mean eigenvalue (the paper averages over k)", ge=1,
                          le=1000)
    ratio: float = setting(0.75, "stop when mean(i - k) / mean(i) falls below this (the paper's 0.75)", gt=0, lt=1)


@register_part("darts-es", doc="DARTS-ES: stop when the Hessian's dominant eigenvalue grows too fast "
                               "(Zela et al., ICLR 2020)")
class DartsES(Part):
    paper = "Zela et al., Understanding and Robustifying Differentiable Architecture Search, ICLR 2020"
    Settings = DartsESSettings

    @classmethod
    def check(cls, method: Any, config: Any, space: Any) -> None:
        super().check(method, config, space)
        if config.hessian_every != 1:
            raise ConfigError(f"part {cls.name} reads the Hessian's eigenvalue every epoch: --set hessian_every=1")

    def stop(self, history: Sequence[Mapping[str, Any]], cell_ops: Sequence[str]) -> Stop | None:
        values = [(int(m["epoch"]), float(m["hessian"]["eigenvalue"])) for m in history
                  if isinstance(m.get("hessian"), Mapping) and m["hessian"].get("eigenvalue") is not None]
        k, window = self.settings.lookback, self.settings.window
        if len(values) < k + window:
            return None

        def mean(end: int) -> float:  # over the `window` measurements up to index `end` (inclusive)
            return sum(v for _, v in values[end - window + 1:end + 1]) / window

        now, before = mean(len(values) - 1), mean(len(values) - 1 - k)
        if now <= 0 or before / now >= self.settings.ratio:
            return None
        return Stop(f"darts-es: the mean dominant eigenvalue grew from {before:.4g} to {now:.4g} in {k} epochs "
                    f"(ratio {before / now:.3f} < {self.settings.ratio})", values[-1 - k][0])
