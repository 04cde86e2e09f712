"""The plan of a sweep (``drnas sweep``): the grid's axes, one run per grid point with its resolved search config,
and the slots to run them in; what the flags and a sweep file (``--file``) resolve to.

Every grid point's config is resolved as ``drnas search`` resolves one (:mod:`drnas.config.resolve`), with the
point's values over the sweep's own options, and checked before anything starts: a bad value is one error naming
the run. The plan is saved as the sweep directory's ``sweep.json`` (:class:`Plan`), which a resume runs on.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from drnas.config.limits import LIMITS
from drnas.config.resolve import SETTING_PREFIX, parse_sets, resolve_search_config
from drnas.config.search import (
    MOVED_TO_METHOD,
    SearchConfig,
    Stage,
    apply_overrides,
    coerce_field,
    load_config_file,
    set_total_epochs,
    with_absolute_paths,
)
from drnas.data.formats import dataset_entry
from drnas.errors import ConfigError, DrnasError, shown
from drnas.method.parts import with_parts
from drnas.method.strategies import base_method, check_method, get_method, with_method
from drnas.registry import plugins
from drnas.spaces import get_space

#: fields of every stage that a grid may set for all stages at once (Table 1 sweeps ``partial_k``)
STAGE_FIELDS = ("partial_k", "ops_kept", "arch_warmup")
#: grid axes that are not config fields: the total epochs (stages rescaled, as ``--epochs`` does)
SPECIAL_AXES = ("epochs",)
#: the options of ``drnas search`` a sweep passes on to every run, from its flags or its file's [search] table
SEARCH_OPTIONS = ("preset", "config", "space", "download", "epochs", "batch_size", "train_images", "device",
                  "benchmark")
#: the keys of a sweep file
FILE_KEYS = ("grid", "data", "search", "out", "jobs", "threads", "ray")
PLAN_VERSION = 1


class SweepError(DrnasError, ValueError):
    """A sweep that cannot start or continue; the message says why and what to do."""


# ------------------------------------------------------------------------------------------------- the grid
def parse_seeds(text: str) -> list[int]:
    """``0-3`` -> [0, 1, 2, 3]; ``0,2,5`` and mixes such as ``0-2,7`` work too."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = part.split("-", 1)
                first, last = int(low), int(high)
                if first < 0 or last < first or last - first >= 10_000:
                    raise ValueError
                seeds.extend(range(first, last + 1))
            else:
                seeds.append(int(part))
                if seeds[-1] < 0:
                    raise ValueError
        except ValueError:
            raise ConfigError(f"--seeds {shown(text)}: give seeds as a range and/or a list, e.g. 0-3 or 0,1,5") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {shown(text)} names a seed twice")
    return seeds


def parse_list(text: str) -> list[str]:
    """``"drnas, darts"`` -> ["drnas", "darts"]; a value given twice is an error."""
    values = [v.strip() for v in str(text).split(",") if v.strip()]
    if len(set(values)) != len(values):
        raise ConfigError(f"{shown(text)} names a value twice")
    return values


def parse_grid(items: Iterable[str]) -> dict[str, list[str]]:
    """``["partial_k=1,2,4", "lr=0.1,0.2"]`` -> {"partial_k": ["1", "2", "4"], "lr": [...]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {shown(item)} must look like FIELD=V1,V2,...")
        key, values = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice: list all its values in one --grid {key}=V1,V2")
        grid[key] = parse_list(values)
        if not grid[key]:
            raise ConfigError(f"--grid {key}= lists no values")
    return grid


def setting_name(key: str) -> str | None:
    """The method setting a ``--set`` key or grid axis names (``method.NAME``, or a field of old that moved into
    the methods' settings, ``tau_max``...); None for a config field."""
    key = key.strip()
    if key.startswith(SETTING_PREFIX):
        return key[len(SETTING_PREFIX):].strip()
    return key if key in MOVED_TO_METHOD else None


def declared_settings(method: str) -> set[str]:
    """The names of method ``method``'s own settings (``drnas methods NAME``)."""
    return {f.name for f in dataclasses.fields(get_method(base_method(method)).Settings)}


def check_axis(name: str) -> None:
    """A grid axis must be a search config field, a method setting (``method.NAME``), a stage field or the total
    epochs."""
    known = {f.name for f in dataclasses.fields(SearchConfig)} | set(STAGE_FIELDS) | set(SPECIAL_AXES)
    if name not in known and not setting_name(name):
        raise ConfigError(f"cannot sweep over {name!r}: sweep a search config field (`drnas search --set` names "
                          f"them), a method's setting (method.NAME: `drnas methods METHOD` lists them), a stage "
                          f"field ({', '.join(STAGE_FIELDS)}) or epochs")
    if name in ("stages", "device", "threads", "preset", "data", "method_settings"):
        raise ConfigError(f"cannot sweep over {name}: set it once for the sweep (data: --data DATASET=PATH per "
                          "dataset; stages: sweep epochs or a stage field)")


#: the most runs one sweep plans (drnas.config.limits), counted before any combination is made
MAX_RUNS = LIMITS["sweep_runs"].high


def grid_points(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the last axis varying fastest (axes with one value included)."""
    for name in axes:
        check_axis(name)
        if not axes[name]:
            raise ConfigError(f"grid axis {name} has no values: give at least one (e.g. --grid {name}=V1,V2), or "
                              "leave the axis out")
    total = math.prod(len(values) for values in axes.values())
    if total > MAX_RUNS:
        sizes = " x ".join(f"{len(v)} {n}" for n, v in axes.items() if len(v) > 1)
        raise ConfigError(f"the grid has {total} runs ({sizes}); a sweep plans at most {MAX_RUNS}: split it into "
                          "smaller sweeps")
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


def run_name(values: Mapping[str, Any], varying: Sequence[str]) -> str:
    """A run's directory name from the values that vary, e.g. ``method=darts,seed=2``."""
    parts = [f"{k}={values[k]}" for k in varying] or ["run"]
    name = ",".join(parts)
    bad = [ch for ch in name if ch in "/\\\0" or not ch.isprintable()]
    if bad or name in (".", ".."):
        raise ConfigError(f"grid value {shown(name)} cannot name a directory: leave out {shown(''.join(bad))}")
    return name


def with_axis_values(config: SearchConfig, values: Mapping[str, Any]) -> SearchConfig:
    """``config`` with the stage-wide axes (every stage's partial_k, ...) and the total epochs applied; the other
    axes are config fields, applied before (``--set`` precedence) by whoever resolves the config."""
    if "epochs" in values:
        config = set_total_epochs(config, int(values["epochs"]))
    stage_values = {k: values[k] for k in STAGE_FIELDS if k in values}
    if stage_values:
        stages = [apply_overrides(stage, stage_values) for stage in config.stages]
        if "ops_kept" in stage_values and stages:  # pruning starts with the second stage: the first keeps all ops
            stages[0] = dataclasses.replace(stages[0], ops_kept=None)
        config = dataclasses.replace(config, stages=[Stage(**dataclasses.asdict(s)) for s in stages])
    return config.validate()


def data_paths(flags: Sequence[str], from_file: Any, datasets: Sequence[str] | None) -> dict[str | None, str]:
    """The data of each dataset (``None``: of every dataset) from ``--data PATH`` or ``--data DATASET=PATH``
    (``flags``), over the sweep file's [data] table or path (``from_file``)."""
    data: dict[str | None, str] = dict(from_file) if isinstance(from_file, dict) else {None: str(from_file)}
    for item in flags:
        key, _, path = item.partition("=") if "=" in item and not os.path.exists(item) else ("", "", item)
        data[key or None] = path
    unknown = [k for k in data if k is not None and datasets is not None and k not in datasets]
    if unknown:
        raise ConfigError(f"--data names dataset(s) {', '.join(unknown)} that --dataset does not list")
    return data


def default_jobs(cores: int | None = None) -> int:
    """Parallel runs on this machine: one per core on small machines (a NAS supernet step at reduced sizes uses
    one core well and more poorly), one per 4 cores on large ones."""
    cores = cores or os.cpu_count() or 1
    return cores if cores <= 4 else max(1, cores // 4)


# ------------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class PlannedRun:
    name: str
    values: dict[str, Any]  # the value of every axis at this grid point
    config: dict[str, Any]  # the resolved search config (SearchConfig.to_json)

    @property
    def epochs(self) -> int:
        return sum(int(s["epochs"]) for s in self.config["stages"])


@dataclass
class Plan:
    runs: list[PlannedRun]
    varying: list[str]          # axes with more than one value (they name the runs and group the summary)
    axes: dict[str, list[Any]]  # every axis as given
    jobs: int = 1
    threads: int = 1
    ray: str | None = None
    command: list[str] = field(default_factory=list)
    plugins: list[dict[str, Any]] = field(default_factory=list)  # the plugins loaded when it was planned (records)

    @property
    def gpus_per_run(self) -> float:
        """GPUs a Ray task of this plan asks for: one when the runs' device is CUDA."""
        return 1.0 if any(str(r.config.get("device", "")).startswith("cuda") for r in self.runs) else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, "varying": self.varying, "axes": self.axes, "jobs": self.jobs,
                "threads": self.threads, "ray": self.ray, "command": self.command, "plugins": self.plugins,
                "runs": [{"name": r.name, "values": r.values, "config": r.config} for r in self.runs]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Plan":
        if data.get("version") != PLAN_VERSION:
            raise SweepError(f"sweep.json has plan version {data.get('version')!r}; this drnas reads {PLAN_VERSION}")
        runs = [PlannedRun(r["name"], dict(r["values"]), dict(r["config"])) for r in data["runs"]]
        return cls(runs, list(data["varying"]), dict(data["axes"]), int(data["jobs"]), int(data["threads"]),
                   data.get("ray"), list(data.get("command", [])), list(data.get("plugins", [])))


def plan_sweep(*, file: str | None = None, methods: str | None = None, seeds: str | None = None,
               datasets: str | None = None, grid: Sequence[str] = (), data: Sequence[str] = (),
               search: Mapping[str, Any] | None = None, sets: Sequence[str] = (), jobs: int | None = None,
               threads: int | None = None, ray: str | None = None, out: str | None = None,
               command: Sequence[str] = ()) -> tuple[Plan, str | None]:
    """The plan of a new sweep and its directory (None: not given), from the options of ``drnas sweep`` as text
    (``methods`` "drnas,darts", ``seeds`` "0-3", ``grid`` ["FIELD=V1,V2"], ``data`` ["[DATASET=]PATH"], ``sets``
    ["FIELD=VALUE"]) over the sweep ``file``. ``search``: the :data:`SEARCH_OPTIONS` given as flags (None or
    False: not given; the file's [search] table then sets them). Each run's config is resolved and checked."""
    spec = load_config_file(file) if file else {}
    unknown = set(spec) - set(FILE_KEYS)
    if unknown:
        raise ConfigError(f"sweep file {file}: unknown key(s) {', '.join(sorted(unknown))}; it takes [grid], "
                          "[data], [search] and out, jobs, threads, ray")
    axes = _axes(spec.get("grid", {}), methods, seeds, datasets, grid)
    paths = data_paths(data, spec.get("data", {}), axes.get("dataset"))
    from_file = dict(spec.get("search", {}))
    for name in SEARCH_OPTIONS:  # checked even where a flag overrides it: the file is wrong either way
        if name in from_file:
            _check_file_option(file, name, from_file[name])
    given = dict(search or {})
    options = {name: given.get(name) if given.get(name) not in (None, False) else from_file.pop(name, given.get(name))
               for name in SEARCH_OPTIONS}
    for name in SEARCH_OPTIONS:
        from_file.pop(name, None)
    if isinstance(from_file.get("method"), Mapping):  # a [search.method] table: the method's settings
        table = dict(from_file.pop("method"))
        from_file.update({f"{SETTING_PREFIX}{k}": v for k, v in table.items() if k != "name"})
        if "name" in table:
            from_file["method"] = table["name"]
    file_sets = {k.strip(): (json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else str(v)).strip()
                 for k, v in from_file.items()}  # the rest of [search]: --set under the command line's own
    sweep_sets = {**file_sets, **parse_sets(sets)}
    _check_sweep_settings(sweep_sets, [str(m) for m in axes["method"]])
    points = grid_points(axes)
    jobs = max(1, min(int(jobs or spec.get("jobs") or default_jobs()), len(points)))
    threads = int(threads or spec.get("threads") or max(1, (os.cpu_count() or 1) // jobs))
    varying = [k for k, v in axes.items() if len(v) > 1]
    runs, names = [], set()
    for point in points:
        name = run_name(point, varying)
        try:
            config = _point_config(point, options, paths, sweep_sets)
        except ConfigError as err:
            raise ConfigError(f"run {name}: {err}") from None
        if name in names:
            raise ConfigError(f"two grid points are both named {name}: give each value once")
        names.add(name)
        config = dataclasses.replace(with_absolute_paths(config), threads=threads)
        runs.append(PlannedRun(name, {k: _plain(v) for k, v in point.items()}, config.to_json()))
    plan = Plan(runs, varying, {k: [_plain(v) for v in vs] for k, vs in axes.items()}, jobs, threads,
                ray or spec.get("ray"), list(command), plugins.records())
    return plan, out or spec.get("out")


def _check_file_option(file: str | None, name: str, value: Any) -> None:
    """A sweep file's ``[search]`` option of the type its flag takes."""
    kind, word = {"epochs": (int, "a whole number"), "batch_size": (int, "a whole number"),
                  "train_images": (int, "a whole number"), "download": (bool, "true or false")}.get(name, (str, "text"))
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"sweep file {file}: [search] {name} must be {word}, got {shown(value)}")
    if kind is int and value < 1:
        raise ConfigError(f"sweep file {file}: [search] {name} must be >= 1, got {shown(value)}")


def _axes(file_grid: Mapping[str, Any], methods: str | None, seeds: str | None, datasets: str | None,
          grid: Sequence[str]) -> dict[str, list[Any]]:
    """The grid's axes: method and seed always (default drnas, 0), then dataset, then the file's [grid] axes and
    ``--grid``'s; a flag replaces the file's axis of the same name."""
    file_grid = dict(file_grid)
    if isinstance(file_grid.get("method"), Mapping):  # [grid.method]: its name the methods, its other keys settings
        table = dict(file_grid.pop("method"))
        file_grid.update({f"{SETTING_PREFIX}{k}": v for k, v in table.items() if k != "name"})
        if "name" in table:
            file_grid["method"] = table["name"]
    from_file = {k.replace("-", "_"): v if isinstance(v, list) else [v] for k, v in file_grid.items()}
    if "seeds" in from_file:
        from_file["seed"] = [s for v in from_file.pop("seeds") for s in parse_seeds(str(v))]
    file_methods, file_seeds = from_file.pop("method", None), from_file.pop("seed", [0])
    file_datasets = from_file.pop("dataset", None)
    axes: dict[str, list[Any]] = {"method": parse_list(methods) if methods else file_methods or ["drnas"],
                                  "seed": parse_seeds(seeds) if seeds else [int(v) for v in file_seeds]}
    chosen = parse_list(datasets) if datasets else file_datasets
    if chosen:
        axes["dataset"] = list(chosen)
    axes.update(from_file)
    axes.update(parse_grid(grid))
    return axes


def _point_config(point: Mapping[str, Any], options: Mapping[str, Any], paths: Mapping[str | None, str],
                  sets: Mapping[str, str]) -> SearchConfig:
    """The search config of one grid point: its method, seed and dataset as flags, its other config fields and
    method settings as ``--set`` over ``sets`` (the sweep's; of its method settings those the point's method
    declares), its stage fields and total epochs last; checked against its method and space."""
    dataset = point.get("dataset")
    flags = {"space": options["space"], "dataset": dataset,
             "data": paths.get(dataset, paths.get(None)) if paths else None, "seed": coerce_field(SearchConfig, "seed", point["seed"]),
             "device": options["device"], "benchmark": options["benchmark"], "batch_size": options["batch_size"],
             "train_images": options["train_images"]}
    flags = {k: v for k, v in flags.items() if v is not None}
    if options["download"]:
        flags["download"] = True
    direct = {k.strip(): str(v).strip() for k, v in point.items()
              if k not in ("method", "seed", "dataset", *SPECIAL_AXES, *STAGE_FIELDS)}
    declared = declared_settings(str(point["method"]))
    sets = {k: v for k, v in sets.items() if setting_name(k) is None or setting_name(k) in declared}
    config = resolve_search_config(apply_method=with_method, preset=options["preset"], method=str(point["method"]),
                                   config_file=options["config"], flags=flags, sets={**sets, **direct},
                                   epochs=options["epochs"], apply_parts=with_parts)
    config = with_axis_values(config, point)
    check_method(config, get_space(config.space, config.ops))
    dataset_entry(config.dataset)  # an unknown dataset fails here, before any run is written
    return config


def _check_sweep_settings(sets: Mapping[str, str], methods: Sequence[str]) -> None:
    """A method setting the whole sweep sets (``--set method.NAME=V``) applies to the runs whose method declares
    it, so that one sweep can compare methods with settings of their own; one no method of the sweep declares is
    an error."""
    for key in sets:
        name = setting_name(key)
        if name is not None and not any(name in declared_settings(m) for m in methods):
            raise ConfigError(f"--set {key}: no method of this sweep ({', '.join(methods)}) has a setting {name!r} "
                              "(`drnas methods METHOD` lists each method's settings)")


def _plain(value: Any) -> Any:
    """A grid value as JSON keeps it: numbers, text, booleans and null as they are, anything else as text."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


__all__ = ["FILE_KEYS", "PLAN_VERSION", "SEARCH_OPTIONS", "SPECIAL_AXES", "STAGE_FIELDS", "Plan", "PlannedRun",
           "SweepError", "check_axis", "data_paths", "default_jobs", "grid_points", "parse_grid", "parse_list",
           "parse_seeds", "plan_sweep", "run_name", "with_axis_values"]
