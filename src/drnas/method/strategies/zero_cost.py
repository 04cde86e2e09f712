"""Training-free search: the best of N random architectures by a zero-cost proxy, scored on one batch of data at
initialisation (no supernet, no training).

``naswot`` is Mellor et al.'s NASWOT (ICML 2021): the proxy is their ``nwot`` score (the log-determinant of the
agreement of the ReLU codes of a batch of 128 images, their batch). ``zc-random`` is the same search with any
registered proxy (setting ``proxy``; ``drnas proxies`` lists them in docs/proxies.md). The architectures are
drawn uniformly by the space's own rule (one op per NB201 edge; two inputs with one op each per DARTS node), so
any space with a random sampler works. With ``cost_table`` and ``cost_target`` the search keeps within a budget:
a drawn architecture that costs more than the target by the table is dropped unscored, so the answer is the best of
N architectures that meet it (the bounded baseline of hardware-aware search). The proxy itself is computed by the query job
(:mod:`drnas.table_search`), which builds each architecture's network at the run's size; the strategy only
proposes architectures and keeps no state of its own beyond the run's random stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from drnas.config.limits import LIMITS
from drnas.config.options import setting
from drnas.config.search import SearchConfig, Stage
from drnas.method.strategies.base import Strategy, register_method

if TYPE_CHECKING:  # annotations only
    from drnas.spaces.base import SearchSpace


@dataclass
class NaswotSettings:
    """The budget of a training-free search and the batch its proxy is scored on."""

    queries: int = setting(100, "random architectures scored over the whole search (N; spread over its epochs)", ge=1,
                           le=LIMITS["queries"].high)
    batch: int = setting(128, "training images in the one batch every architecture is scored on", ge=2,
                         le=LIMITS["batch_size"].high)


@dataclass
class ZeroCostSettings(NaswotSettings):
    """The budget, the batch and the proxy (any registered one: docs/proxies.md)."""

    proxy: str = setting("synflow", "the zero-cost proxy that ranks the architectures (larger is better)")
    batch: int = setting(32, "training images in the one batch every architecture is scored on", ge=2,
                         le=LIMITS["batch_size"].high)


class ProxySearch(Strategy):
    """Proposes uniformly drawn architectures (as 0/1 weights ``[edges, ops]``, nested lists); the job scores
    each with :attr:`proxy` and keeps the best. The epochs only say how often the run logs and checkpoints."""

    uses_supernet = False
    trains_arch = False
    prunable = False
    cost_bound = True
    Settings = ZeroCostSettings
    #: what ``drnas methods NAME`` says the method evaluates architectures with
    evaluator = ("none, each architecture's network is scored at initialisation by a zero-cost proxy on one batch "
                 "of --data (no --benchmark needed; with one, the pick's table accuracies are logged)")

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return {"stages": [Stage(epochs=10)]}

    def __init__(self, space: SearchSpace, config: SearchConfig) -> None:
        super().__init__(space, config)
        self.space = space

    @property
    def proxy(self) -> str:
        """The registered proxy the architectures are ranked by."""
        return str(self.settings.proxy)

    def expected_weights(self) -> torch.Tensor:
        weights = self.mask.float()
        return weights / weights.sum(-1, keepdim=True)

    def scores(self) -> torch.Tensor:
        return self.expected_weights()

    def propose(self) -> list[list[int]]:
        """One architecture drawn uniformly by the space's rule, from the run's random stream."""
        return self.space.random_weights(self.mask.cpu()).to(torch.int64).tolist()

    def observe(self, choice: Any, reward: float) -> None:
        """Random sampling learns nothing from a score."""

    def make_arch_optimizer(self) -> None:
        return None


@register_method("zc-random", doc="best of N random architectures by any zero-cost proxy (setting proxy; training-free)")
class ZeroCostRandom(ProxySearch):
    """Random search ranked by a zero-cost proxy (Abdelfattah et al., ICLR 2021, compare such proxies)."""

    paper = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (random search ranked by a proxy)"


@register_method("naswot", doc="NASWOT: best of N random architectures by the nwot score (Mellor et al., ICML 2021)")
class Naswot(ProxySearch):
    """Mellor et al.'s search without training: the best of N random architectures by ``nwot``."""

    paper = "Mellor et al., Neural Architecture Search without Training, ICML 2021"
    Settings = NaswotSettings

    @property
    def proxy(self) -> str:
        return "nwot"
