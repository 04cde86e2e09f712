"""``drnas methods``, ``drnas presets``, ``drnas plugins`` and ``drnas datasets``: the registered names, each with
its one-line description."""
from __future__ import annotations

import argparse


def methods(args: argparse.Namespace) -> int:
    """The search methods (``--method NAME``), the recipes (published combinations of a method with parts) and
    the parts (``--with NAME``), each with its paper; with a name, that method, recipe or part and its settings."""
    from drnas.method.parts import PARTS, RECIPES
    from drnas.method.strategies import METHODS, method_names

    name = getattr(args, "name", None)
    if name:
        lines = (recipe_details(name) if name in RECIPES and name not in METHODS
                 else part_details(name) if name in PARTS and name not in METHODS else method_details(name))
        print("\n".join(lines))
        return 0
    print("search methods (drnas search --method NAME; drnas methods NAME shows one and its settings):")
    for name in method_names():
        print(f"  {name:<14} {METHODS.docs()[name]}")
    print("recipes (--method NAME: a method with parts, as published):")
    for name in RECIPES:
        recipe = RECIPES.get(name)
        print(f"  {name:<14} {RECIPES.docs()[name]}: --method {recipe.method} "
              + " ".join(f"--with {p}" for p in recipe.parts))
    print("parts (drnas search --method METHOD --with PART; drnas methods PART shows its settings):")
    for name in PARTS:
        print(f"  {name:<14} {PARTS.docs()[name]}")
    return 0


def recipe_details(name: str) -> list[str]:
    """What ``drnas methods RECIPE`` prints: the recipe's method and parts, its paper and the parts' settings."""
    from drnas.method.parts import RECIPES

    recipe = RECIPES.get(name)
    lines = [f"{name}: {RECIPES.docs()[name]}", f"paper: {recipe.paper}",
             f"runs: --method {recipe.method} " + " ".join(f"--with {p}" for p in recipe.parts)
             + "".join(f" --set {k}={v}" for k, v in recipe.fields.items())]
    for part in recipe.parts:
        lines += ["", *part_details(part)]
    return lines


def part_details(name: str) -> list[str]:
    """What ``drnas methods PART`` prints: the part's description, paper and settings."""
    from drnas.method.parts import PARTS

    part = PARTS.get(name)
    lines = [f"part {name}: {PARTS.docs()[name]}", f"paper: {part.paper}"]
    return lines + _settings_table(part.Settings, f"--set part.{name}.SETTING=VALUE")


def method_details(name: str) -> list[str]:
    """What ``drnas methods NAME`` prints: the method's description and paper, what it does with the supernet
    (the class attributes the engine reads), and its own settings as a table. An unknown name is one error line."""
    from drnas.method.strategies import METHODS, get_method

    method = get_method(name)
    yes = {True: "yes", False: "no"}
    lines = [f"{name}: {METHODS.docs()[name]}"]
    if method.paper:
        lines.append(f"paper: {method.paper}")
    if not method.uses_supernet:
        lines.append("supernet: " + getattr(method, "evaluator",
                                            "none, it queries a benchmark table (--benchmark FILE, --space nb201)"))
    lines += [f"single path: {yes[method.single_path]}" + (" (only the sampled op of each edge runs; compiled cells "
                                                           "and CUDA graphs are off)" if method.single_path else ""),
              f"trains the architecture: {yes[method.trains_arch]}" + (" (second-order, unrolled step)"
                                                                     if method.second_order else ""),
              f"prunable: {yes[method.prunable]}" + (" (progressive stages keep the ops_kept strongest ops)"
                                                     if method.prunable else
                                                     " (no op strengths: a progressive preset's stages run without "
                                                     "pruning, their ops_kept left out)")]
    return lines + _settings_table(method.Settings, "--set method.SETTING=VALUE; a config file's [method] table")


def _settings_table(settings: type, how: str) -> list[str]:
    """The rows of a settings dataclass as a table, under a line saying ``how`` they are set."""
    from drnas.config.options import describe_settings

    rows = describe_settings(settings)
    if not rows:
        return ["settings: none"]
    table = [("setting", "type", "default", "range", "what it is")]
    table += [(n, t, str(d), r or "any", doc) for n, t, d, r, doc in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return [f"settings ({how}):",
            *("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4] for row in table)]


def plugins(args: argparse.Namespace) -> int:
    """The loaded plugins: version, where each was found, and what it registered."""
    from drnas.registry.plugins import ENTRY_POINT_GROUP, ENVIRONMENT, loaded

    found = loaded()
    if not found:
        print(f"no plugins loaded: install a package with a {ENTRY_POINT_GROUP} entry point, or name a module with "
              f"--plugin MODULE or {ENVIRONMENT}=MODULE")
        return 0
    for plugin in found:
        print(f"{plugin.module} {plugin.version or '(no version)'}  [{plugin.source}]")
        for kind, names in plugin.registered.items():
            print(f"  {kind}: {', '.join(names)}")
        if not plugin.registered:
            print("  (registered nothing)")
    return 0


def datasets(args: argparse.Namespace) -> int:
    """The datasets (``--dataset NAME``), a plugin's included: classes, channels, image size, augmentation, what
    ``--data`` must hold, and the doc line of each."""
    from drnas.data.formats import DATASETS

    print("datasets (drnas search / train --dataset NAME --data PATH):")
    for name in DATASETS:
        entry, doc = DATASETS.get(name), DATASETS.docs()[name]
        info = entry.info
        if info is None:
            shape = "classes, channels, size and augmentation from the file"
        else:
            classes = f"{info.num_classes} classes" if info.num_classes > 0 else "a class per folder"
            shape = (f"{classes}, {info.channels} channel{'s' * (info.channels != 1)}, {info.image_size}x"
                     f"{info.image_size}, augmentation: {info.augmentation()}")
        print(f"  {name:<16} {shape}")
        print(f"  {'':<16} --data: {entry.needs or 'none (embedded)'}")
        if doc:
            print(f"  {'':<16} {doc}")
    print("augmentation settings (search and train): --set hflip=true|false, --set crop_padding=N; image folders: "
          "--set image_size=N (unset: the dataset's own)")
    return 0


def presets(args: argparse.Namespace) -> int:
    """The search presets (``--preset NAME``) and the training protocols (``--protocol NAME``)."""
    from drnas.config.presets import preset_names
    from drnas.config.train import PROTOCOLS

    print("search presets (drnas search --preset NAME):")
    for name, doc in preset_names().items():
        print(f"  {name:<20} {doc}")
    print("training protocols (drnas train --protocol NAME):")
    for name, doc in PROTOCOLS.names().items():
        print(f"  {name:<20} {doc}")
    return 0
