"""The search-method contract: what a strategy owns and what it asks of the engine that runs it.

A strategy (one per method, one file each, registered in :data:`METHODS`) owns the architecture parameters and
decides, every step:

* the **mixing weights** of a forward pass (:meth:`Strategy.sample`): a :class:`Mixing` of shape ``[edges, ops]``
  that carries an autograd graph back to the strategy's parameters (the Dirichlet draw of DrNAS, softmax for
  DARTS, Gumbel-softmax for SNAS, a straight-through one-hot for GDAS...); single-path methods also say which
  op of each edge runs (``Mixing.active``);
* the **architecture step** (:meth:`Strategy.arch_step`): by default the first-order rule, i.e. the engine runs
  the network once and returns dL/dθ, and the strategy's own chain rule carries it to its parameters; with
  ``second_order`` the unrolled step of DARTS (:mod:`drnas.method.strategies.unrolled`); non-gradient methods
  override it (REINFORCE for ENAS) or train no architecture at all (RSPS);
* its **per-epoch hooks** (temperatures), its **regulariser** and how an **architecture is derived**;
* its own **settings** (:attr:`Strategy.Settings`, a dataclass of :func:`~drnas.config.options.setting` fields:
  GDAS' temperatures, PC-DARTS' K...), set with ``--set method.NAME=VALUE`` and shown by ``drnas methods NAME``.

The engine (:class:`drnas.search.Search` and its passes, :class:`drnas.engine.passes.SupernetPasses`) never
names a method: it calls this interface only. A strategy never imports the engine; it receives it as an
:class:`Engine` when it needs a network pass.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, Sequence

import torch
import torch.nn.functional as F

from drnas.config.options import make_settings
from drnas.config.search import MOVED_TO_METHOD, ConfigError, SearchConfig
from drnas.method.parts import Stop, build_parts, check_parts
from drnas.method.relax import Relaxation
from drnas.method.strategies.unrolled import unrolled_mixing_gradients
from drnas.registry import Registry

if TYPE_CHECKING:  # only for annotations: the spaces are a floor above the method, which is handed its space
    from drnas.spaces.base import Architecture, SearchSpace

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Mixing:
    """The mixing weights of one forward pass.

    ``theta`` ``[edges, ops]``: the weight of every op of every edge (pruned ops at 0). ``edge_scale``
    ``[edges]``: a weight per edge that also scales the channels a partial-channel edge bypasses (PC-DARTS'
    edge normalisation), or None. ``active``: per edge, the ops that run (single-path methods), or None for all
    kept ops.
    """

    theta: torch.Tensor
    edge_scale: torch.Tensor | None = None
    active: list[list[int]] | None = None

    def detached(self) -> "Mixing":
        scale = self.edge_scale.detach() if self.edge_scale is not None else None
        return Mixing(self.theta.detach(), scale, self.active)

    def tensors(self) -> list[torch.Tensor]:
        """The tensors a network pass differentiates (theta, then edge_scale if any)."""
        return [self.theta] if self.edge_scale is None else [self.theta, self.edge_scale]


class Engine(Protocol):
    """What a strategy may ask of the loop that runs it (implemented by :class:`drnas.engine.passes.SupernetPasses`,
    which :class:`drnas.search.Search` mixes in)."""

    device: torch.device

    def gradients(self, mixing: Mixing, x: torch.Tensor, y: torch.Tensor, weights: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """One training-mode pass over a batch: loss, correct count, dL/d(mixing.tensors()) and, with
        ``weights``, dL/dw for every weight parameter (else an empty list). Nothing is updated."""

    def weight_parameters(self) -> list[torch.nn.Parameter]:
        """The network weights, in a fixed order."""

    def weight_step_rule(self) -> tuple[float, float, float, list[torch.Tensor | None]]:
        """The weight optimizer's (lr, momentum, weight decay, momentum buffer per weight) right now."""

    def evaluate_batch(self, mixing: Mixing, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """Loss and correct predictions on one batch in eval mode (no gradient, no BatchNorm update)."""

    def validation_batch(self, index: int = 0) -> Batch:
        """A fixed batch of the validation (arch) half."""

    def average_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Average gradients over the processes of a multi-process run."""


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pruned ops (mask False) get -inf logits, so a softmax or a sample gives them weight 0."""
    return logits.float().masked_fill(~mask, float("-inf"))


def gumbel_noise(shape: Sequence[int], device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel noise ``-log(-log U)``, U uniform in (0, 1)."""
    uniform = torch.rand(tuple(shape), device=device, generator=generator)
    tiny = torch.finfo(uniform.dtype).tiny
    return -torch.log(-torch.log(uniform.clamp(tiny, 1.0 - 1e-7)))


def one_hot_mixing(choice: Sequence[int], num_ops: int, device: torch.device) -> Mixing:
    """Weight 1 on one op per edge, which alone runs (a discrete architecture in the supernet)."""
    theta = torch.zeros(len(choice), num_ops)
    theta[torch.arange(len(choice)), torch.tensor(list(choice))] = 1.0
    return discrete_mixing(theta, device)


def discrete_mixing(weights: torch.Tensor, device: torch.device) -> Mixing:
    """A discrete architecture as 0/1 weights ``[edges, ops]`` (an all-zero row: the edge is off); only the
    ops with weight 1 run."""
    active = [row.nonzero().flatten().tolist() for row in weights.cpu()]
    return Mixing(weights.to(device=device, dtype=torch.float32), None, active)


def _stats(t: torch.Tensor) -> dict[str, float]:
    return {"min": float(t.min()), "max": float(t.max()), "mean": float(t.mean()), "std": float(t.std())}


@dataclass
class NoSettings:
    """The settings of a method that has none of its own."""


def stages_text(stages: Sequence[Any], ops_kept: Callable[[Any], int | None]) -> str:
    """``stages`` as the JSON a user types in ``--set 'stages=...'``, each stage's ops_kept replaced by
    ``ops_kept(stage)`` (left out where None), for the fix an error message gives."""
    out = []
    for stage in stages:
        fields = {k: v for k, v in dataclasses.asdict(stage).items()
                  if k != "ops_kept" and not (k == "cells" and v is None)}
        if ops_kept(stage) is not None:
            fields["ops_kept"] = ops_kept(stage)
        out.append(fields)
    return json.dumps(out, separators=(", ", ": "))


class Strategy(Relaxation):
    """Base of every search method. Owns ``eta`` ``[edges, ops]`` (the raw architecture parameters: DrNAS' η,
    DARTS' α) and the mask of ops still in the search (progressive pruning), from :class:`Relaxation`.

    Class attributes say what the engine may do with the method:

    * ``single_path``: only the sampled op of each edge runs (``Mixing.active``); the fast paths that fix the
      set of running ops (compiled cells, CUDA graphs) refuse such methods.
    * ``trains_arch``: whether there is an architecture step at all (RSPS has none).
    * ``prunable``: whether ``scores()`` can rank ops for progressive pruning.
    * ``second_order``: the architecture step is DARTS' unrolled one.
    * ``uses_supernet``: False for methods that query a benchmark table instead of training a network.
    * ``arch_gradient``: the architecture step follows the gradient of an objective (:meth:`arch_step`), which a
      cost penalty can join (:meth:`cost_penalty`); False for REINFORCE-like steps (ENAS).
    * ``softmax_parametrised``: the weights are softmax(logits) (:meth:`simplex_parameters`), which GAEA's
      mirror descent updates.

    The search's **parts** (:mod:`drnas.method.parts`: perturbations, regularisers, an optimizer, stopping rules)
    are built with the strategy from the config and called from here: :meth:`mix` on the mixing weights of each
    phase, their penalties in :meth:`arch_step`, their optimizer in :meth:`make_arch_optimizer`.

    Two more name its expected weights where people read them: ``mean_label`` (plots, ``drnas show``: DrNAS'
    are a Dirichlet mean) and ``mean_plot``, the run's picture of them over the epochs.

    ``Settings``: the dataclass of the method's own hyperparameters (fields declared with
    :func:`~drnas.config.options.setting`; default: none); ``self.settings`` is the instance built from the
    config's ``method_settings``. ``name`` is set by :func:`register_method`.

    A new method writes :meth:`sample`, :meth:`expected_weights` and :meth:`scores` (or subclasses
    :class:`SoftmaxStrategy`, which has all three but the sample); everything else has a default.
    """

    name = "base"
    Settings: ClassVar[type] = NoSettings
    #: the paper the method comes from, as ``drnas methods`` lists it
    paper = ""
    single_path = False
    trains_arch = True
    prunable = True
    second_order = False
    uses_supernet = True
    arch_gradient = True
    softmax_parametrised = False
    #: a search that queries whole architectures and can keep to a cost bound (``cost_target`` by ``cost_table``)
    #: instead of adding a cost penalty to a gradient
    cost_bound = False
    mean_label = "expected weight"
    mean_plot = "op_weights.png"

    def __init__(self, space: "SearchSpace", config: SearchConfig) -> None:
        super().__init__(space.num_edges, len(space.ops), init_std=config.eta_init_std)
        self.config = config
        self.settings = self.settings_of(config)
        self.epoch_fraction = 0.0
        self.parts = build_parts(config, space)
        allowed = getattr(space, "allowed_ops", None)  # a space whose edges search ops of their own (S1)
        if allowed is not None:
            self.restrict(allowed())
        # the cost of every op of every edge [edges, ops] and of the network's fixed parts (float64), set by the
        # job from the config's cost table (:meth:`set_costs`); in the checkpoint with the parameters
        self.register_buffer("cost", None)
        self.register_buffer("cost_constant", None)

    # ------------------------------------------------------------------------------------------ configuration
    @classmethod
    def settings_from(cls, values: Mapping[str, Any]) -> Any:
        """The method's :attr:`Settings` from raw ``values`` (name -> text or number; the others at their
        defaults), coerced and range-checked; an unknown name or a bad value is one :class:`ConfigError` line."""
        declared = {f.name for f in dataclasses.fields(cls.Settings)}
        for name in values:
            if name not in declared and name in MOVED_TO_METHOD:  # a config field of old: say whose setting it is
                owners = [m for m in METHODS if name in {f.name for f in dataclasses.fields(METHODS.get(m).Settings)}]
                if owners:
                    raise ConfigError(f"{name} is a setting of method {', '.join(owners)} (--method {owners[0]} "
                                      f"--set method.{name}=VALUE); method {cls.name} has no such setting: drop it")
        return make_settings(cls.Settings, values, f"method {cls.name}")

    @classmethod
    def settings_of(cls, config: SearchConfig) -> Any:
        """The method's settings in ``config`` (its ``method_settings``)."""
        return cls.settings_from(config.method_settings)

    @classmethod
    def defaults(cls, config: SearchConfig) -> dict[str, Any]:
        """Config fields this method sets over a preset (its paper's hyperparameters), which may depend on its
        settings (:meth:`settings_of`); the user's file, flags and ``--set`` still override them. A method that
        is not ``prunable`` also runs a progressive preset's stages without pruning
        (:func:`~drnas.method.strategies.with_method` leaves out their ``ops_kept``)."""
        return {}

    @classmethod
    def check_config(cls, config: SearchConfig, space: SearchSpace) -> None:
        """Refuse settings that do not apply to this method in ``space`` (one line naming the field and a fix
        the user can type). Runs when the command is parsed, before anything is written
        (:func:`~drnas.method.strategies.check_method`), and again when a search starts."""
        if not cls.prunable and any(s.ops_kept is not None for s in config.stages):
            raise ConfigError(f"method {cls.name} has no op strengths to prune by: give the stages without ops_kept, "
                              f"--set 'stages={stages_text(config.stages, lambda s: None)}'")
        if config.cost_table and cls.cost_bound:
            if config.cost_target is None or config.cost_weight:
                raise ConfigError(f"method {cls.name} keeps its queries within a cost bound, without a gradient for "
                                  f"cost_weight to weigh: give --set cost_target=X (in the table's unit) and no "
                                  f"cost_weight")
        elif config.cost_table and not cls.takes_cost_penalty():
            able = sorted((name for name in METHODS if METHODS.get(name).takes_cost_penalty()),
                          key=lambda name: name != SearchConfig.method)  # the default method first
            raise ConfigError(f"method {cls.name} has no architecture gradient for a cost penalty to join: search under "
                              f"a cost with --method {able[0]} (or {', '.join(able[1:])}), or drop cost_table, "
                              f"cost_weight and cost_target")
        check_parts(cls, config, space)

    @classmethod
    def takes_cost_penalty(cls) -> bool:
        """Whether the method can search under a cost (``cost_table``): it trains a supernet's architecture by a
        gradient step, which the cost penalty joins."""
        return cls.trains_arch and cls.uses_supernet and cls.arch_gradient

    # ------------------------------------------------------------------------------------------ distribution
    def sample(self) -> Mixing:
        """Mixing weights for one training pass, differentiable in the strategy's parameters."""
        raise NotImplementedError(f"method {self.name} must define sample(): the mixing weights of one training "
                                  "pass, a Mixing of [edges, ops]")

    def expected_weights(self) -> torch.Tensor:
        """The deterministic weight of every op of every edge ``[edges, ops]`` (pruned ops at 0; each row sums
        to 1): the distribution's mean, which validation mixes with, ``drnas show`` prints and the space derives
        the architecture from."""
        raise NotImplementedError(f"method {self.name} must define expected_weights(): the mean weight of every "
                                  "op, [edges, ops], pruned ops at 0")

    def scores(self) -> torch.Tensor:
        """The strength of every op of every edge ``[edges, ops]`` that progressive pruning keeps the largest of
        (DrNAS: β; softmax methods: the probabilities). Methods without op strengths set ``prunable = False``."""
        raise NotImplementedError(f"method {self.name} must define scores(): the op strengths [edges, ops] pruning "
                                  "ranks by (or set prunable = False)")

    def eval_mixing(self) -> Mixing:
        """Deterministic mixing weights for validation (default: the expected weights over all kept ops)."""
        return Mixing(self.expected_weights())

    def hessian_logits(self) -> torch.Tensor | None:
        """The architecture parameters the paper's curvature analysis differentiates (Fig. 3), as logits whose
        softmax over the kept ops are the mixing weights; None for methods without such parameters."""
        return None

    def hessian_mixing(self, logits: torch.Tensor) -> Mixing:
        """Dense mixing weights ``softmax(logits)`` over the kept ops (every op runs; any edge weights fixed)."""
        scale = self.eval_mixing().edge_scale
        return Mixing(F.softmax(masked_logits(logits, self.mask), dim=-1), None if scale is None else scale.detach())

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before every epoch (0-based) of ``epochs``: temperature schedules live here (and the parts')."""
        self.epoch_fraction = epoch / max(1, epochs - 1)
        for part in self.parts:
            part.start_epoch(epoch, epochs)

    def prepare_network(self, net: Any) -> None:
        """Before every epoch, after :meth:`start_epoch`: the parts' op-level state of the supernet (P-DARTS' skip
        dropout)."""
        for part in self.parts:
            part.prepare_network(net)

    def mix(self, mixing: Mixing, phase: str, engine: Engine | None = None, batch: Batch | None = None) -> Mixing:
        """The mixing weights of ``phase`` (weight, arch or eval) as the search's parts change them, in their
        order (SDARTS' perturbation of the weight step, DARTS-' auxiliary skip...); ``batch``: the step's."""
        for part in self.parts:
            mixing = part.mix(mixing, phase, self, engine, batch)
        return mixing

    def stop(self, history: Sequence[Mapping[str, Any]], cell_ops: Sequence[str]) -> Stop | None:
        """After an epoch: the first of the parts' stopping rules that ends the search (None: go on)."""
        return next((stop for part in self.parts if (stop := part.stop(history, cell_ops)) is not None), None)

    @torch.no_grad()
    def distribution_record(self) -> dict[str, Any]:
        """The learned distribution in an epoch's metrics line: the expected weights (``dirichlet_mean``, as runs
        have always named them) and their entropy per edge, statistics of eta (and of DrNAS' beta), and the raw
        parameters with the kept ops, whole: what ``drnas sample`` draws from."""
        beta = self.scores().cpu() if hasattr(self, "beta") else None
        mean = self.expected_weights().cpu()
        eta = self.eta.detach().cpu()
        entropy = -(mean.clamp_min(1e-12).log() * mean).sum(-1)
        return {"dirichlet_mean": [[round(v, 6) for v in row] for row in mean.tolist()],
                "entropy": [round(v, 6) for v in entropy.tolist()], "eta": _stats(eta),
                "architecture_parameters": {"eta": eta.tolist(), "kept": self.kept_ops()},
                "beta": _stats(beta) if beta is not None else None}

    def parts_record(self) -> dict[str, Any]:
        """The parts' fields of the epoch's metrics line (their schedules)."""
        return {k: v for part in self.parts for k, v in part.record().items()}

    def simplex_parameters(self) -> list[tuple[torch.nn.Parameter, Callable[[], torch.Tensor]]]:
        """For ``softmax_parametrised`` methods: each architecture parameter with the function returning its
        softmax weights (what GAEA's exponentiated gradient divides by)."""
        raise NotImplementedError(f"method {self.name} has no softmax-parametrised weights")

    def record(self) -> dict[str, Any]:
        """Extra fields of the epoch's metrics line (e.g. the temperature)."""
        return {}

    # ------------------------------------------------------------------------------------------ cost
    def set_costs(self, matrix: torch.Tensor, constant: float) -> None:
        """Search under a cost: ``matrix`` ``[edges, ops]`` holds the cost of every op of every edge (in the
        space's op order) and ``constant`` that of the network's fixed parts, in one unit (e.g. ms)."""
        if tuple(matrix.shape) != tuple(self.eta.shape):
            raise ValueError(f"a cost matrix of shape {tuple(matrix.shape)} for architecture parameters of shape "
                             f"{tuple(self.eta.shape)}")
        self.cost = matrix.detach().to(device=self.eta.device, dtype=torch.float64).clone()
        self.cost_constant = torch.tensor(float(constant), dtype=torch.float64, device=self.eta.device)

    def expected_cost(self) -> torch.Tensor | None:
        """E[cost] under the current distribution: the constant plus Σ over edges and ops of the expected weight
        (:meth:`expected_weights`: DrNAS' Dirichlet mean, the softmax of DARTS-like methods; pruned ops at 0) times
        the op's cost, as a float64 scalar differentiable in the architecture parameters (None: no cost table)."""
        if self.cost is None:
            return None
        return self.cost_constant + (self.expected_weights().double() * self.cost).sum()

    def cost_penalty(self) -> torch.Tensor | None:
        """The term the cost adds to the architecture objective: ``lambda * E[cost]``, or with a ``cost_target``
        ``lambda * max(0, E[cost] - target)`` (lambda: the config's ``cost_weight_in_use``); None without one."""
        weight, target = self.config.cost_weight_in_use, self.config.cost_target
        expected = self.expected_cost() if weight else None
        if expected is None:
            return None
        return weight * (expected if target is None else torch.relu(expected - target))  # no pull at the target

    # ------------------------------------------------------------------------------------------ steps
    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return [self.eta]

    def make_arch_optimizer(self) -> torch.optim.Optimizer | None:
        """Adam on the architecture parameters, with the method's weight decay (None: no architecture step)."""
        cfg = self.config
        for part in self.parts:  # a part may bring its own (GAEA's mirror descent); check_parts allows one
            optimizer = part.arch_optimizer(self)
            if optimizer is not None:
                return optimizer
        return torch.optim.Adam(self.arch_parameters(), lr=cfg.arch_lr, betas=cfg.arch_betas,
                                weight_decay=self.adam_weight_decay)

    @property
    def adam_weight_decay(self) -> float:
        """The L2 regulariser on eta, as Adam weight decay (DARTS' and the authors' DrNAS code alike)."""
        return self.config.reg_scale

    def arch_step(self, engine: Engine, optimizer: torch.optim.Optimizer, arch_batch: Batch,
                  weight_batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One architecture step; returns the arch batch's loss and correct count.

        First order: dL_val/dθ from one network pass, chained to the parameters through the sample. Second
        order: θ's hypergradient of DARTS' unrolled step (eq. 7-8 of Liu et al., 2019) instead. The method's
        :meth:`penalty`, the :meth:`cost_penalty` and the parts' penalties add their own gradients.
        """
        mixing = self.mix(self.sample(), "arch")
        if self.second_order:
            loss, correct, grads = unrolled_mixing_gradients(engine, mixing.detached(), arch_batch, weight_batch)
        else:
            loss, correct, grads, _ = engine.gradients(mixing.detached(), *arch_batch)
        tensors, outer = list(mixing.tensors()), list(grads)
        penalties = [self.penalty(), self.cost_penalty(), *(part.penalty(self) for part in self.parts)]
        for penalty in penalties:  # the regulariser, the cost, the parts': d/d(params) of each
            if penalty is not None:
                tensors.append(penalty)
                outer.append(torch.ones_like(penalty))
        optimizer.zero_grad(set_to_none=True)
        params = self.arch_parameters()
        torch.autograd.backward(tensors, outer, inputs=params)
        engine.average_gradients(params)
        optimizer.step()
        return loss, correct

    # ------------------------------------------------------------------------------------------ derivation
    def derive(self, space: "SearchSpace", engine: Engine | None, epoch: int) -> "Architecture":
        """The architecture this search points at now (default: the space's rule on the expected weights, as
        the parts change them: :meth:`derive_weights`)."""
        with torch.no_grad():
            return space.derive(self.derive_weights(self.expected_weights().cpu(), space))

    def derive_weights(self, weights: torch.Tensor, space: "SearchSpace") -> torch.Tensor:
        """``weights`` as each part changes them before the space derives from them (P-DARTS' skip limit)."""
        for part in self.parts:
            weights = part.derive_weights(weights, space)
        return weights


class SoftmaxStrategy(Strategy):
    """Methods whose strength of op o on edge e is ``softmax(eta_e)_o`` over the kept ops (DARTS' α)."""

    def probabilities(self) -> torch.Tensor:
        return F.softmax(masked_logits(self.eta, self.mask), dim=-1)

    def scores(self) -> torch.Tensor:
        return self.probabilities()

    softmax_parametrised = True

    def hessian_logits(self) -> torch.Tensor:
        return self.eta.detach().float()  # DARTS' alpha, through the softmax

    def simplex_parameters(self) -> list[tuple[torch.nn.Parameter, Callable[[], torch.Tensor]]]:
        return [(self.eta, self.probabilities)]

    def expected_weights(self) -> torch.Tensor:
        return self.probabilities()


class SinglePathStrategy(SoftmaxStrategy):
    """Methods that run one op per edge: validation runs the derived (argmax) cell inside the supernet."""

    single_path = True

    def eval_mixing(self) -> Mixing:
        with torch.no_grad():
            choice = self.expected_weights().argmax(-1).tolist()
        return one_hot_mixing(choice, self.num_ops, self.eta.device)


def best_sampled(space: "SearchSpace", engine: Engine, draw: Callable[[torch.Generator], torch.Tensor],
                 candidates: int, seed: int) -> tuple["Architecture", torch.Tensor, float]:
    """The best of ``candidates`` sampled architectures by supernet accuracy on one fixed validation batch
    each (RSPS' and ENAS' derivation, as NAS-Bench-201's baselines do it). ``draw`` returns one architecture as
    0/1 weights ``[edges, ops]``, drawn from its own generator, so deriving never moves the run's random stream.
    Returns the architecture, its weights and its accuracy (%)."""
    generator = torch.Generator().manual_seed(seed)
    x, y = engine.validation_batch()
    best: tuple[float, torch.Tensor] | None = None
    for _ in range(candidates):
        weights = draw(generator)
        acc = engine.evaluate_batch(discrete_mixing(weights, x.device), x, y)[1] / len(y)
        if best is None or acc > best[0]:
            best = (acc, weights)
    assert best is not None
    return space.derive(best[1]), best[1], 100.0 * best[0]


#: every registered search method: ``METHODS.get("darts")`` is its strategy class
METHODS: Registry[type[Strategy]] = Registry("method")


def register_method(name: str, *, doc: str = "") -> Callable[[type[Strategy]], type[Strategy]]:
    """``@register_method("name", doc=...)`` above a :class:`Strategy` subclass: registers it in :data:`METHODS`
    (a taken name is refused) and sets its ``name`` unless the class sets its own."""
    def add(cls: type[Strategy]) -> type[Strategy]:
        if "name" not in cls.__dict__:
            cls.name = name
        return METHODS.register(name, cls, doc=doc)  # type: ignore[return-value]

    return add


def get_method(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` (a one-line error lists the known ones)."""
    return METHODS.get(name)


def method_names() -> tuple[str, ...]:
    return METHODS.names()
