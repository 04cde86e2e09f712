"""``drnas methods`` and ``drnas presets``: the registered names, each with its one-line description."""
from __future__ import annotations

import argparse


def methods(args: argparse.Namespace) -> int:
    """The search methods (``--method NAME``) and their papers."""
    from drnas.method.strategies import METHODS, method_names

    print("search methods (drnas search --method NAME):")
    for name in method_names():
        print(f"  {name:<12} {METHODS.docs()[name]}")
    return 0


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
