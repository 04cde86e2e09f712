"""``drnas arch``: an architecture with its network's parameters and MACs, its cells drawn, or the named ones."""
from __future__ import annotations

import argparse
import json

from drnas.cli.job import run_dataset
from drnas.config.limits import check_limit
from drnas.config.search import apply_overrides
from drnas.config.train import PROTOCOLS
from drnas.errors import ConfigError


def command(args: argparse.Namespace) -> int:
    """Print the architecture and the size of its evaluation network (``--json``: as JSON); ``--plot``: draw its
    cells; ``--list`` or no architecture: the named architectures."""
    from drnas.analysis.cost import model_report, network_spec
    from drnas.data.formats import dataset_shape, shaped_datasets
    from drnas.engine.runs import check_writable
    from drnas.spaces import get_space
    from drnas.spaces.archs import architecture_names, get_architecture
    from drnas.spaces.resolve import resolve_architecture

    if args.plot is not None:
        from drnas.analysis.diagrams import draw_architecture, picture_format

        if not args.arch:
            raise ConfigError("--plot PATH draws an architecture: give one, e.g. drnas arch DrNAS_cifar10 --plot "
                              "cells.svg (names: drnas arch --list)")
        picture_format(args.plot)  # a bad path is refused before the architecture is read
        check_writable(args.plot, "--plot")
        print(draw_architecture(resolve_architecture(args.arch), args.plot))
        return 0
    if args.list or not args.arch:
        for name in architecture_names():
            entry = get_architecture(name)
            print(f"{name:<16} {entry.arch.space:<6} {entry.source}")
        return 0
    arch = resolve_architecture(args.arch)
    space = get_space(arch.space)
    searched = run_dataset(args.arch)[0]
    args.dataset = args.dataset or (searched if searched in shaped_datasets() else "cifar10")
    config = PROTOCOLS.get(args.protocol or space.default_protocol(args.dataset))
    sizes = {k: getattr(args, k) for k in ("channels", "cells") if getattr(args, k) is not None}
    for name, value in sizes.items():
        check_limit(name, value, f"--{name}")
    config = apply_overrides(config, sizes)
    info = dataset_shape(args.dataset)
    model = space.build_network(arch, network_spec(config, info))
    depth = getattr(config, space.depth_field)
    report = {"space": arch.space, "architecture": arch.to_json(), "text": str(arch), "dataset": args.dataset,
              "channels": config.channels, "cells": depth, **model_report(model, info)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"architecture: {arch}")
    print(f"network:      {arch.space}, {config.channels} channels, {space.depth_format.format(depth)}, "
          f"{info.num_classes} classes, {info.image_size}x{info.image_size} input")
    print(f"parameters:   {report['params_without_aux'] / 1e6:.3f}M without the auxiliary head, "
          f"{report['params'] / 1e6:.3f}M with it")
    print(f"MACs:         {report['macs'] / 1e6:.1f}M per image")
    return 0
