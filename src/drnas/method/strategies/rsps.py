"""Random search with parameter sharing (Li & Talwalkar, UAI 2019): every weight step trains one
architecture drawn uniformly from the space (the space's own rule: one op per NB201 edge; two inputs per node
with one op each in the DARTS space), whose ops alone run; there are no architecture parameters. The
architecture is the best of ``candidates`` (default 100) uniformly drawn ones by supernet accuracy on one fixed
validation batch each, the way NAS-Bench-201's RSPS baseline picks it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from drnas.config.limits import LIMITS
from drnas.config.options import setting
from drnas.method.strategies.base import Mixing, Strategy, best_sampled, discrete_mixing, register_method


@dataclass
class SampledDerivation:
    """How RSPS (and ENAS) derive: the best of ``candidates`` sampled architectures on the supernet."""

    candidates: int = setting(100, "architectures sampled and ranked by supernet accuracy on one validation batch "
                                   "each to derive the result", ge=1, le=LIMITS["candidates"].high)


def uniform_choice(mask: torch.Tensor, generator: torch.Generator | None = None) -> list[int]:
    """One kept op per edge, uniformly."""
    return torch.multinomial(mask.float().cpu(), 1, generator=generator).squeeze(-1).tolist()


@register_method("rsps", doc="random sampling with parameter sharing, best of N by supernet accuracy (Li & Talwalkar, UAI 2019)")
class RSPS(Strategy):
    """Uniform single-path training; derivation by sampling and ranking on the supernet."""

    name = "rsps"
    paper = "Li & Talwalkar, Random Search and Reproducibility for Neural Architecture Search, UAI 2019"
    single_path = True
    trains_arch = False
    prunable = False
    Settings = SampledDerivation

    def __init__(self, space: Any, config: Any) -> None:
        super().__init__(space, config)
        self.space = space
        # the architecture derived last (0/1 weights); until then the uniform distribution
        self.register_buffer("best", self.expected_weights().detach().clone())
        self.register_buffer("ranked", torch.zeros((), dtype=torch.bool))

    def scores(self) -> torch.Tensor:
        return self.mask.float()

    def expected_weights(self) -> torch.Tensor:
        """The uniform distribution over the kept ops."""
        weights = self.mask.float()
        return weights / weights.sum(-1, keepdim=True)

    def sample(self) -> Mixing:
        return discrete_mixing(self.space.random_weights(self.mask), self.eta.device)

    def eval_mixing(self) -> Mixing:
        return discrete_mixing(self.best, self.eta.device) if bool(self.ranked) else Mixing(self.best.clone())

    def make_arch_optimizer(self) -> None:
        return None

    def derive(self, space: Any, engine: Any, epoch: int) -> Any:
        if engine is not None:
            _, weights, _ = best_sampled(space, engine, lambda g: space.random_weights(self.mask, g),
                                         self.settings.candidates, self.config.seed * 1000003 + epoch)
            self.best.copy_(weights)
            self.ranked.fill_(True)
        return space.derive(self.best.cpu())
