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
