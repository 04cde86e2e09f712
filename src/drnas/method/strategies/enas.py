"""ENAS (Pham et al., ICML 2018): an LSTM controller samples one op per edge in turn; the shared weights are
trained on its samples (single path), and the controller by REINFORCE with the supernet's accuracy on an arch
batch as the reward, a moving-average baseline and an entropy bonus. Controller settings follow ENAS' micro
search (hidden size 32 here for the 6-edge NB201 cell, sampling temperature 5, tanh constant 2.5, entropy
weight 1e-4, Adam lr 1e-3 as NAS-Bench-201's ENAS baseline); the baseline decay 0.99 is ENAS' default. The
architecture is the best of ``candidates`` controller samples by supernet accuracy on one validation batch.
All of these but the Adam step are settings of the method."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from drnas.config.options import setting
from drnas.config.search import ConfigError, SearchConfig
from drnas.method.strategies.base import Mixing, Strategy, best_sampled, one_hot_mixing, register_method
from drnas.method.strategies.rsps import SampledDerivation

if TYPE_CHECKING:  # annotations only
    from drnas.spaces.base import SearchSpace


@dataclass
class ENASSettings(SampledDerivation):
    """ENAS' controller (its micro search's values) and the derivation's number of samples."""

    hidden: int = setting(32, "the controller LSTM's hidden size", ge=1)
    temperature: float = setting(5.0, "the controller's logits are divided by it before the tanh", gt=0)
    tanh_constant: float = setting(2.5, "the controller's logits are C * tanh(logits / temperature)", gt=0)
    entropy_weight: float = setting(1e-4, "weight of the entropy bonus in the REINFORCE objective", ge=0)
    baseline_decay: float = setting(0.99, "decay of the reward's moving-average baseline", ge=0, lt=1)


class Controller(nn.Module):
    """An LSTM cell that reads the previous edge's op and emits the next edge's op distribution, its logits
    ``tanh_constant * tanh(logits / temperature)``."""

    def __init__(self, num_edges: int, num_ops: int, hidden: int = 32, temperature: float = 5.0,
                 tanh_constant: float = 2.5) -> None:
        super().__init__()
        self.num_edges = num_edges
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.Embedding(num_ops, hidden)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.head = nn.Linear(hidden, num_ops)

    def forward(self, mask: torch.Tensor, generator: torch.Generator | None = None, greedy: bool = False
                ) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
        """(choice per edge, summed log-probability, summed entropy, per-edge probabilities)."""
        inputs, state = self.start, None
        choices, log_probs, entropies, probs = [], [], [], []
        for edge in range(self.num_edges):
            h, c = self.lstm(inputs, state)
            state = (h, c)
            logits = self.tanh_constant * torch.tanh(self.head(h)[0] / self.temperature)
            logits = logits.masked_fill(~mask[edge], float("-inf"))
            p = torch.softmax(logits, -1)
            if greedy:
                op = int(p.argmax())
            else:
                op = int(torch.multinomial(p.detach().cpu(), 1, generator=generator))
            log_p = torch.log_softmax(logits, -1)
            choices.append(op)
            log_probs.append(log_p[op])
            entropies.append(-(p * log_p.nan_to_num(0.0)).sum())
            probs.append(p)
            inputs = self.embed(torch.tensor([op], device=h.device))
        return choices, torch.stack(log_probs).sum(), torch.stack(entropies).sum(), torch.stack(probs)


@register_method("enas", doc="ENAS: LSTM controller trained by REINFORCE on supernet accuracy (Pham et al., ICML 2018)")
class ENAS(Strategy):
    """Controller-sampled single-path training; REINFORCE architecture step."""

    name = "enas"
    paper = "Pham et al., Efficient Neural Architecture Search via Parameter Sharing, ICML 2018"
    single_path = True
    prunable = False
    arch_gradient = False  # REINFORCE: the controller follows a reward, no objective's gradient a cost could join
    Settings = ENASSettings

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        return {"arch_lr": 1e-3, "arch_betas": (0.0, 0.999), "reg_scale": 0.0}

    @classmethod
    def check_config(cls, config: SearchConfig, space: SearchSpace) -> None:
        super().check_config(config, space)
        if not space.one_op_per_edge:
            raise ConfigError("method enas samples one op per edge, which fits the NB201 cell only (a DARTS cell "
                              "also picks two inputs per node): use --space nb201 (in the DARTS space, rsps or gdas "
                              "sample cells instead)")

    def __init__(self, space: Any, config: SearchConfig) -> None:
        super().__init__(space, config)
        s = self.settings
        self.controller = Controller(space.num_edges, len(space.ops), s.hidden, s.temperature, s.tanh_constant)
        self.register_buffer("baseline", torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("best", torch.zeros(space.num_edges, dtype=torch.long))

    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.controller.parameters())

    def expected_weights(self) -> torch.Tensor:
        """Per edge, the controller's op probabilities along its most likely architecture."""
        with torch.no_grad():
            return self.controller(self.mask, greedy=True)[3].float()

    def scores(self) -> torch.Tensor:
        return self.expected_weights()

    def sample(self) -> Mixing:
        with torch.no_grad():
            choice = self.controller(self.mask)[0]
        return one_hot_mixing(choice, self.num_ops, self.eta.device)

    def eval_mixing(self) -> Mixing:
        return one_hot_mixing(self.best.tolist(), self.num_ops, self.eta.device)

    def arch_step(self, engine: Any, optimizer: torch.optim.Optimizer, arch_batch: Any, weight_batch: Any
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """REINFORCE: reward = the sampled architecture's accuracy on the arch batch (eval mode)."""
        choice, log_prob, entropy, _ = self.controller(self.mask)
        x, y = arch_batch
        loss, correct = engine.evaluate_batch(one_hot_mixing(choice, self.num_ops, x.device), x, y)
        reward, decay = correct / len(y), self.settings.baseline_decay
        with torch.no_grad():
            first = int(self.steps) == 0
            self.baseline.copy_(torch.tensor(reward) if first else
                                decay * self.baseline + (1 - decay) * reward)
            self.steps.add_(1)
        objective = -(reward - self.baseline.item()) * log_prob - self.settings.entropy_weight * entropy
        optimizer.zero_grad(set_to_none=True)
        objective.backward(inputs=self.arch_parameters())
        engine.average_gradients(self.arch_parameters())
        optimizer.step()
        device = x.device
        return torch.tensor(loss, device=device), torch.tensor(correct, device=device)

    def derive(self, space: Any, engine: Any, epoch: int) -> Any:
        if engine is None:
            weights = torch.zeros(self.num_edges, self.num_ops)
            weights[torch.arange(self.num_edges), self.best.cpu()] = 1.0
            return space.derive(weights)
        def draw(generator: torch.Generator) -> torch.Tensor:
            choice = self.controller(self.mask, generator=generator)[0]
            return one_hot_mixing(choice, self.num_ops, torch.device("cpu")).theta

        with torch.no_grad():
            arch, weights, _ = best_sampled(space, engine, draw, self.settings.candidates,
                                            self.config.seed * 1000003 + epoch)
        self.best.copy_(weights.argmax(-1))
        return arch
