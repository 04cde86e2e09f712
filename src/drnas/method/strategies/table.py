"""The two benchmark-query methods of the DrNAS paper's Table 4 on NAS-Bench-201: the results table is the
evaluator, no network is trained. Each query draws one architecture, reads its validation accuracy on the
search dataset from the table, and the best one by that accuracy is the answer (as NAS-Bench-201 runs its
Random and REINFORCE baselines). The NAS-Bench-201 paper bounds these by simulated training time (the summed
training time of the queried architectures); a table without time columns cannot say that time, so the budget
here is the number of queries (the setting ``queries``), and the simulated time is reported when the table has a
``<dataset>_train_time`` column."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from drnas.config.limits import LIMITS
from drnas.config.options import setting
from drnas.config.search import ConfigError, SearchConfig, Stage
from drnas.method.strategies.base import Strategy, register_method
from drnas.method.strategies.rsps import uniform_choice

if TYPE_CHECKING:  # annotations only
    from drnas.spaces.base import SearchSpace


@dataclass
class TableSettings:
    """The budget of a benchmark-query search."""

    queries: int = setting(100, "benchmark-table queries over the whole search (spread over its epochs)", ge=1,
                           le=LIMITS["queries"].high)


class TableStrategy(Strategy):
    """A method that proposes architectures and is told their table accuracy. The epochs only say how often
    the run logs and checkpoints (its defaults: one stage of 10, which any preset's stages give way to)."""

    uses_supernet = False
    trains_arch = False
    prunable = False
    Settings = TableSettings
    #: the datasets the NAS-Bench-201 table has a validation accuracy for, which a query ranks by
    datasets = ("cifar10", "cifar100", "imagenet16-120")

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return {"stages": [Stage(epochs=10)]}

    @classmethod
    def check_config(cls, config: SearchConfig, space: SearchSpace) -> None:
        super().check_config(config, space)
        needs = []  # every flag the command lacks, in one line
        if space.benchmark != "NAS-Bench-201":
            needs.append(f"--space nb201 (the table holds no {config.space} architecture)")
        if not config.benchmark:
            needs.append("--benchmark FILE (an NB201 results CSV)")
        if config.dataset not in cls.datasets:
            needs.append(f"--dataset {cls.datasets[0]} (the table ranks by validation accuracy, which it has for "
                         f"{', '.join(cls.datasets)})")
        if needs:
            raise ConfigError(f"method {cls.name} evaluates architectures by looking them up in the NAS-Bench-201 "
                              f"table: give {', '.join(needs)}")

    def scores(self) -> torch.Tensor:
        return self.expected_weights()

    def propose(self) -> list[int]:
        raise NotImplementedError

    def observe(self, choice: list[int], reward: float) -> None:
        """The proposed architecture's validation accuracy (0..1)."""


@register_method("random", doc="random search over the NB201 table (benchmark query; Bergstra & Bengio, JMLR 2012)")
class RandomSearch(TableStrategy):
    """Uniformly drawn architectures, the best by table validation accuracy."""

    name = "random"
    paper = "Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 2012 (NAS-Bench-201 baseline)"

    def expected_weights(self) -> torch.Tensor:
        weights = self.mask.float()
        return weights / weights.sum(-1, keepdim=True)

    def propose(self) -> list[int]:
        return uniform_choice(self.mask)

    def make_arch_optimizer(self) -> None:
        return None


@dataclass
class ReinforceSettings(TableSettings):
    """The query budget and the policy's reward baseline."""

    baseline_decay: float = setting(0.9, "decay of the reward's moving-average baseline", ge=0, lt=1)


@register_method("reinforce", doc="REINFORCE on the NB201 table: a categorical policy per edge (Williams, 1992)")
class Reinforce(TableStrategy):
    """A policy softmax(η_e) per edge, trained by REINFORCE with the table's validation accuracy as reward and
    a moving-average baseline (decay 0.9); Adam lr 1e-3, the value NAS-Bench-201's REINFORCE script is run with."""

    name = "reinforce"
    paper = "Williams, Simple Statistical Gradient-Following Algorithms, Machine Learning 1992 (NAS-Bench-201 baseline)"
    trains_arch = True
    Settings = ReinforceSettings

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return {**super().defaults(config), "arch_lr": 1e-3, "arch_betas": (0.9, 0.999), "reg_scale": 0.0}

    def __init__(self, space: Any, config: SearchConfig) -> None:
        super().__init__(space, config)
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.optimizer: torch.optim.Optimizer | None = None

    def expected_weights(self) -> torch.Tensor:
        return torch.softmax(self.eta.float().masked_fill(~self.mask, float("-inf")), -1)

    def propose(self) -> list[int]:
        with torch.no_grad():
            return torch.multinomial(self.expected_weights().cpu(), 1).squeeze(-1).tolist()

    def observe(self, choice: list[int], reward: float) -> None:
        assert self.optimizer is not None, "the job sets the policy's optimizer"
        with torch.no_grad():
            first = int(self.steps) == 0
            decay = self.settings.baseline_decay
            self.baseline.copy_(torch.tensor(reward) if first else decay * self.baseline + (1 - decay) * reward)
            self.steps.add_(1)
        log_p = torch.log(self.expected_weights())
        log_prob = log_p[torch.arange(self.num_edges), torch.tensor(choice)].sum()
        self.optimizer.zero_grad(set_to_none=True)
        (-(reward - float(self.baseline)) * log_prob).backward(inputs=[self.eta])
        self.optimizer.step()
