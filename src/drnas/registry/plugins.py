"""Plugins: importable modules that add methods, spaces, ops, datasets, benchmarks, presets, training protocols or
named architectures to drnas' registries by being imported.

They are found three ways, all loaded before a command parses its arguments:

* installed packages declaring the entry-point group ``drnas.plugins`` (the value names the module);
* ``DRNAS_PLUGINS=mod1,mod2`` in the environment;
* ``--plugin MODULE`` (repeatable) on any subcommand.

A run records the plugins loaded when it started (module and version) in its ``config.json``; whatever reopens it
(:meth:`drnas.engine.runs.RunDir.read_config`: ``--resume``, ``show``, ``sample``, ``derive``, ``arch RUN``...)
imports them again with :func:`require`, and a sweep hands them to each of its runs. A plugin cannot replace a
name that is taken (a built-in's or another plugin's): the registry refuses it, and so does :func:`load`.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from drnas.errors import DrnasError
from drnas.registry import Registry, RegistryError

#: the entry-point group installed plugins declare: ``[project.entry-points."drnas.plugins"] NAME = "module"``
ENTRY_POINT_GROUP = "drnas.plugins"
#: comma-separated plugin modules to load in every drnas process (sweep runs and torchrun ranks inherit it)
ENVIRONMENT = "DRNAS_PLUGINS"


#: this package's import name: its own modules are never plugins
_PACKAGE = __name__.split(".")[0]


class PluginError(DrnasError):
    """A plugin that cannot be imported, or that registers a taken name."""


@dataclass
class Plugin:
    """A loaded plugin: its ``module``, ``version`` (its ``__version__``, else its distribution's; None if neither),
    where it was found (``source``), what it registered (registry kind -> names), and whether it was asked for
    (``explicit``: an entry point, ``DRNAS_PLUGINS``, ``--plugin``, :func:`load`) rather than imported because a run
    that was reopened recorded it; new runs record the plugins asked for (and those whose names they use)."""

    module: str
    version: str | None
    source: str
    registered: dict[str, list[str]] = field(default_factory=dict)
    explicit: bool = True

    def record(self) -> dict[str, Any]:
        """What a run's ``config.json`` keeps of it."""
        return {"module": self.module, "version": self.version}


_loaded: dict[str, Plugin] = {}


def loaded() -> list[Plugin]:
    """The plugins loaded in this process, in loading order."""
    return list(_loaded.values())


def records() -> list[dict[str, Any]]:
    """The plugins asked for in this process, as a run records them (``[{"module", "version"}]``)."""
    return [plugin.record() for plugin in _loaded.values() if plugin.explicit]


def run_records(used: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """The plugins a run records: the loaded ones, and the modules outside drnas (and the standard library) that
    define what the run builds on (``used``: its method class, space, op factories, dataset reader) where they were
    imported directly rather than loaded as plugins, so that the run reopens without a flag. A script's own
    (``__main__``) cannot be imported again: a warning says so."""
    out = records()
    names = [r["module"] for r in out]
    for obj in used:
        module = obj.__module__ if hasattr(obj, "__qualname__") else type(obj).__module__
        top = (module or "").split(".")[0]
        if not module or top == _PACKAGE or top in sys.stdlib_module_names or top in ("torch", "numpy") \
                or any(module == n or module.startswith(n + ".") for n in names):
            continue
        if module == "__main__":
            name = getattr(obj, "__qualname__", type(obj).__qualname__)
            logging.getLogger("drnas").warning(
                f"warning: {name} is defined in the script itself (__main__), which reopening the run cannot import: "
                "move it into a module and load that with drnas.registry.plugins.load(MODULE) or --plugin MODULE")
            continue
        out.append({"module": module, "version": _version(sys.modules.get(module), module)})
        names.append(module)
    return out


def _snapshot() -> dict[int, tuple[Registry[Any], set[str]]]:
    return {id(r): (r, set(r.names())) for r in Registry.instances}


def _owner(kind: str | None, name: str | None) -> str:
    for plugin in _loaded.values():
        if name in plugin.registered.get(kind or "", []):
            return f"plugin {plugin.module}"
    return "drnas itself"


def _version(module: Any, name: str) -> str | None:
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    top = name.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def load(module: str, source: str = "--plugin", *, needed_by: str | None = None) -> Plugin:
    """Import plugin ``module`` (once per process) and note what it registered; ``source`` says where it was named
    (shown by ``drnas plugins``), ``needed_by`` the run that records it (named in the error; the plugin is then not
    ``explicit``). A module that cannot be imported or that registers a taken name is a :class:`PluginError`."""
    module = module.strip()
    if module in _loaded:
        _loaded[module].explicit = _loaded[module].explicit or needed_by is None
        return _loaded[module]
    who = f"plugin {module!r}" + (f", which {needed_by} was made with," if needed_by else "")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise PluginError(f"{who} is not a module name: give an importable name such as my_plugin or pkg.plugins")
    # the built-ins register first, so that what the plugin adds is told apart from them
    importlib.import_module(_PACKAGE)
    before = _snapshot()
    try:
        imported = importlib.import_module(module)
    except RegistryError as err:
        raise PluginError(f"{who} registers {err.kind} {err.name!r}, a name {_owner(err.kind, err.name)} already "
                          f"holds: register it under another name") from None
    except ModuleNotFoundError as err:
        missing = err.name or module
        if module == missing or module.startswith(missing + "."):
            raise PluginError(f"{who} cannot be imported (no module named {missing!r}): install it (pip install ...) or "
                              f"put its folder on PYTHONPATH") from None
        raise PluginError(f"{who} failed to import: it needs {missing!r}, which is not installed") from None
    except Exception as err:  # a plugin's own bug: one line naming it, not drnas' traceback
        raise PluginError(f"{who} failed to import ({type(err).__name__}: {str(err)[:200]})") from None
    registered = {}
    for registry, names in _snapshot().values():
        new = [n for n in registry.names() if n not in before.get(id(registry), (None, set()))[1]]
        if new:
            registered[registry.kind] = new
    plugin = Plugin(module, _version(imported, module), source, registered, explicit=needed_by is None)
    _loaded[module] = plugin
    return plugin


def from_environment(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The modules ``DRNAS_PLUGINS`` names."""
    return [m.strip() for m in environ.get(ENVIRONMENT, "").split(",") if m.strip()]


def load_entry_points() -> list[Plugin]:
    """Load every installed plugin (entry-point group ``drnas.plugins``)."""
    plugins = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry.dist, "name", None)
        source = f"entry point {entry.name!r}" + (f" of {dist}" if dist else "")
        plugins.append(load(entry.value.split(":")[0], source))
    return plugins


def load_all(flags: Iterable[str] = (), environ: Mapping[str, str] = os.environ) -> list[Plugin]:
    """Load the installed plugins, then ``DRNAS_PLUGINS``, then ``--plugin`` ones (``flags``)."""
    plugins = load_entry_points()
    plugins += [load(m, ENVIRONMENT) for m in from_environment(environ)]
    plugins += [load(m, "--plugin") for m in flags]
    return plugins


def require(recorded: Any, run: Any) -> None:
    """Import the plugins a run recorded (``config.json``'s ``plugins``) before its config is read back;
    ``run`` names it in the error."""
    if recorded is None:
        return
    if not isinstance(recorded, list) or not all(isinstance(p, Mapping) and isinstance(p.get("module"), str)
                                                  for p in recorded):
        raise PluginError(f"run {run}: config.json's plugins must be a list of {{module, version}} objects: restore "
                          "the file")
    for item in recorded:
        plugin = load(item["module"], f"run {run}", needed_by=f"run {run}")
        wanted = item.get("version")
        if wanted and plugin.version and wanted != plugin.version:
            logging.getLogger("drnas").warning(f"note: run {run} was made with plugin {plugin.module} {wanted}; "
                                               f"{plugin.version} is loaded")


def flag_values(argv: Sequence[str]) -> list[str]:
    """The ``--plugin`` values of a command line, read before it is parsed (parsing needs the plugins' names)."""
    values, args = [], list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--plugin" and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith("--plugin="):
            values.append(arg.split("=", 1)[1])
    return values


__all__ = ["ENTRY_POINT_GROUP", "ENVIRONMENT", "Plugin", "PluginError", "flag_values", "from_environment", "load",
           "load_all", "load_entry_points", "loaded", "records", "require", "run_records"]
