"""What a part is: an addition to any search method that fits it (a perturbation of the mixing weights, a
regulariser, an architecture optimizer, an early-stopping rule), and the registries of parts and recipes.

A part is one file, registered in :data:`PARTS` with its paper's defaults as its ``Settings`` (``--set
part.NAME.FIELD=VALUE``). The strategy and the loop call its hooks; a part never imports a strategy (the
strategies import the parts) and sees the strategy, the mixing weights and the engine by their interfaces only:

* :meth:`Part.mix` changes the mixing weights of one ``phase``: ``"weight"`` (the weight step), ``"arch"`` (the
  architecture step, inside its autograd graph) or ``"eval"`` (validation);
* :meth:`Part.penalty` adds a term to the architecture objective;
* :meth:`Part.arch_optimizer` replaces the method's architecture optimizer;
* :meth:`Part.start_epoch` moves a schedule;
* :meth:`Part.stop` ends a search early, saying why and which epoch's architecture it keeps.
* :meth:`Part.derive_weights` changes the weights an architecture is derived from (P-DARTS' skip limit);
* :meth:`Part.prepare_network` sets the supernet's op-level state for an epoch (P-DARTS' skip dropout).

A **recipe** (:data:`RECIPES`) is a published combination, a method with parts (``sdarts-adv`` = darts with the
sdarts-adv part), named where methods are named (``--method sdarts-adv``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch

from drnas.config.options import make_settings, settings_json
from drnas.config.search import SearchConfig
from drnas.errors import ConfigError
from drnas.registry import Registry

#: the phases whose mixing weights a part may change
PHASES = ("weight", "arch", "eval")


@dataclass
class NoPartSettings:
    """The settings of a part that has none."""


@dataclass(frozen=True)
class Stop:
    """An early stop: ``reason`` in words, and ``keep_epoch``, the 1-based epoch whose derived architecture the
    search returns (the last one unless the rule looks back, as DARTS-ES does)."""

    reason: str
    keep_epoch: int


class Part:
    """Base of every part. ``slot``: parts that fill the same slot cannot go together (two perturbations of the
    weight step, two architecture optimizers, two mixings that add a path). ``multi_path_only``: the part changes
    continuous mixing weights, which single-path methods (GDAS, DSNAS...) do not have. ``selects``: the search ends
    with the part's selection of the architecture (DARTS-PT)."""

    name = "base"
    paper = ""
    Settings: ClassVar[type] = NoPartSettings
    slot: ClassVar[str | None] = None
    multi_path_only: ClassVar[bool] = False
    #: the part selects the architecture at the end of the search (DARTS-PT)
    selects: ClassVar[bool] = False
    #: the part draws random numbers inside the cells' forward (dropout masks), which compiled cells and CUDA
    #: graphs would draw from other streams: the run keeps its cells eager
    draws_in_cells: ClassVar[bool] = False

    def __init__(self, settings: Any, config: SearchConfig, space: Any) -> None:
        self.settings, self.config = settings, config
        self.epoch, self.epochs = 0, config.epochs

    @classmethod
    def settings_of(cls, config: SearchConfig) -> Any:
        return make_settings(cls.Settings, config.part_settings.get(cls.name, {}), f"part {cls.name}")

    @classmethod
    def check(cls, method: Any, config: SearchConfig, space: Any) -> None:
        """Refuse a method (a strategy class), space or config the part cannot go with, in one line with a fix."""
        if cls.multi_path_only and method.single_path:
            raise ConfigError(f"part {cls.name} changes continuous mixing weights, which method {method.name} (one op "
                              f"per edge) does not have: use it with a multi-path method (darts, drnas, snas, ...)")
        if not method.uses_supernet or not method.trains_arch:
            raise ConfigError(f"part {cls.name} joins a supernet search with an architecture step, which method "
                              f"{method.name} has not: drop --with {cls.name}")

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch, self.epochs = epoch, epochs

    def mix(self, mixing: Any, phase: str, strategy: Any, engine: Any = None, batch: Any = None) -> Any:
        """The mixing weights of ``phase`` with this part's change (default: none)."""
        return mixing

    def penalty(self, strategy: Any) -> torch.Tensor | None:
        """A term added to the architecture objective, differentiable in the strategy's parameters."""
        return None

    def arch_optimizer(self, strategy: Any) -> torch.optim.Optimizer | None:
        """An optimizer replacing the method's on the architecture parameters (None: the method's)."""
        return None

    def stop(self, history: Sequence[Mapping[str, Any]], cell_ops: Sequence[str]) -> Stop | None:
        """After an epoch: stop the search? ``history``: every epoch's metrics record so far, the last one
        included; ``cell_ops``: the op of every edge of the first cell of the derived architecture (the normal
        cell of a DARTS genotype)."""
        return None

    def derive_weights(self, weights: torch.Tensor, space: Any) -> torch.Tensor:
        """The ``[edges, ops]`` weights the space derives the architecture from, with this part's change
        (default: none)."""
        return weights

    def prepare_network(self, net: Any) -> None:
        """Before every epoch, after :meth:`start_epoch`: set op-level state of the supernet that runs the epoch
        (the stage's; by its ``mixed_ops()``), e.g. the dropout of an op's output (default: nothing)."""

    def record(self) -> dict[str, Any]:
        """Fields of the epoch's metrics line (a schedule's value)."""
        return {}


#: every registered part: ``PARTS.get("sdarts-adv")`` is its class
PARTS: Registry[type[Part]] = Registry("part", ConfigError)


def register_part(name: str, *, doc: str = "") -> Callable[[type[Part]], type[Part]]:
    """``@register_part("name", doc=...)`` above a :class:`Part` subclass."""
    def add(cls: type[Part]) -> type[Part]:
        cls.name = name
        return PARTS.register(name, cls, doc=doc)  # type: ignore[return-value]

    return add


def part_names() -> tuple[str, ...]:
    return PARTS.names()


@dataclass(frozen=True)
class Recipe:
    """A published combination: ``method`` with ``parts`` (and settings of theirs, part -> field -> value, and
    config fields the recipe needs, e.g. DARTS-ES' curvature every epoch)."""

    method: str
    parts: tuple[str, ...]
    paper: str
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


#: the published combinations, by name (named where methods are: ``--method sdarts-adv``)
RECIPES: Registry[Recipe] = Registry("recipe", ConfigError)


def register_recipe(name: str, recipe: Recipe, doc: str) -> None:
    RECIPES.register(name, recipe, doc=doc)


def with_parts(config: SearchConfig, names: Sequence[str] = (), settings: Mapping[str, Mapping[str, Any]] | None = None
               ) -> SearchConfig:
    """``config`` with the parts ``names`` added (after those it has, each once) and the raw ``settings`` (part ->
    field -> value) over those it holds; every part's settings are then built and recorded whole in
    ``part_settings`` (an unknown part, field or value is one :class:`ConfigError` line)."""
    parts = list(dict.fromkeys([*config.parts, *names]))
    raw = {name: dict(values) for name, values in config.part_settings.items()}
    for name, values in (settings or {}).items():
        raw.setdefault(name, {}).update(values)
    stray = sorted(set(raw) - set(parts))
    if stray:
        raise ConfigError(f"settings for part {stray[0]}, which this search does not use: add --with {stray[0]}, or "
                          f"drop its part.{stray[0]}.* settings")
    built = {}
    for name in parts:
        cls = PARTS.get(name)
        built[name] = settings_json(make_settings(cls.Settings, raw.get(name, {}), f"part {name}"))
    return dataclasses.replace(config, parts=parts, part_settings=built)


def check_parts(method: Any, config: SearchConfig, space: Any) -> None:
    """Refuse, in one line, parts that do not fit the method or the space, or that fill the same slot."""
    taken: dict[str, str] = {}
    for name in config.parts:
        cls = PARTS.get(name)
        cls.settings_of(config)
        cls.check(method, config, space)
        if cls.slot is not None:
            if cls.slot in taken:
                raise ConfigError(f"parts {taken[cls.slot]} and {name} both {cls.slot}: keep one of them")
            taken[cls.slot] = name


def drawing_in_cells(config: SearchConfig) -> str | None:
    """Why the cells of a search with ``config`` must stay eager (a part drawing random numbers in them), or None."""
    drawing = [name for name in config.parts if PARTS.get(name).draws_in_cells]
    return f"part {drawing[0]} draws random numbers inside the cells" if drawing else None


def build_parts(config: SearchConfig, space: Any) -> list[Part]:
    """The parts of ``config`` for a search in ``space``, each with its settings, in the order given."""
    out = []
    for name in config.parts:
        cls = PARTS.get(name)
        out.append(cls(cls.settings_of(config), config, space))
    return out
