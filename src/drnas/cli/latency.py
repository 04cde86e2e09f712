"""``drnas latency``: time every op of a space at each edge's shape on this device and write an op-level cost
table (``--out``); ``--check N``: how well its sums predict the measured latency of N random networks."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from drnas.config.limits import check_limit
from drnas.config.search import apply_overrides
from drnas.config.train import PROTOCOLS
from drnas.errors import ConfigError

#: the most timed passes per measurement
MAX_REPEATS = 10_000


def command(args: argparse.Namespace) -> int:
    """Measure the table, print it (``--json``: as JSON), write it to ``--out``, and with ``--check N`` compare
    its predictions with N measured networks."""
    from drnas.analysis.budget import evaluation_network
    from drnas.analysis.cost_table import write_op_table
    from drnas.analysis.latency import check_op_costs, measure_op_costs
    from drnas.data.formats import dataset_shape
    from drnas.engine.distributed import resolve_device
    from drnas.engine.runs import check_writable
    from drnas.spaces import get_space

    check_limit("batch_size", args.batch, "--batch")
    if not 1 <= args.repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be in [1, {MAX_REPEATS:,}] timed passes per measurement, got {args.repeats}")
    check_limit("draws", args.check or None, "--check")
    if args.out is not None:
        check_writable(args.out, "--out")  # before minutes of timing, not after
    space = get_space(args.space)
    info = dataset_shape(args.dataset)
    protocol = args.protocol or space.default_protocol(args.dataset)
    sizes: dict[str, int] = {}
    for flag, value, fields in (("--channels", args.channels, ("channels",)),
                                ("--cells", args.cells, ("cells", "cells_per_stage"))):
        check_limit(space.depth_field if flag == "--cells" else "channels", value, flag)
        sizes.update({f: value for f in fields if value is not None})
    spec, shape = evaluation_network(apply_overrides(PROTOCOLS.get(protocol), sizes), info)
    device = resolve_device(args.device)
    depth = space.depth_format.format(getattr(spec, space.depth_field))
    network = (f"{space.name}, {spec.channels} channels, {depth}, "
               f"{shape[-1]}x{shape[-1]} input ({args.dataset}, protocol {protocol})")
    print(f"timing {len(space.ops)} ops on {space.num_edges} edges of {network} on {device}, batch {args.batch}, "
          f"median of {args.repeats}", file=sys.stderr)

    def op_done(op: str, ms: np.ndarray) -> None:
        print(f"  {op:<16} {' '.join(f'{v:8.3f}' for v in ms)} ms per edge", file=sys.stderr, flush=True)

    costs = measure_op_costs(space, spec, shape, device, args.batch, args.repeats, args.out or "", op_done)
    if args.out is not None:
        write_op_table(args.out, space, [costs])
    check = None
    if args.check:
        def measured(i: int, arch: str, predicted: float, value: float) -> None:
            print(f"  check {i + 1}/{args.check}: predicted {predicted:8.3f} ms, measured {value:8.3f} ms  {arch}",
                  file=sys.stderr, flush=True)

        check = check_op_costs(costs, space, spec, shape, device, args.batch, args.check, args.seed, args.repeats,
                               measured)
    if args.json:
        print(json.dumps({"space": space.name, "ops": list(space.ops), "edges": list(space.edge_names()),
                          "column": costs.column, "matrix": costs.matrix.tolist(), "constant": costs.constant,
                          "device": str(device), "batch": args.batch, "repeats": args.repeats, "network": network,
                          "out": args.out, "check": check.to_json() if check else None}, indent=2))
        return 0
    names = space.edge_names()
    width = max(len(n) for n in names)
    print(f"{'op':<16} " + " ".join(f"{n:>{max(width, 8)}}" for n in names) + f"   ({costs.column}, ms per pass)")
    for o, op in enumerate(space.ops):
        print(f"{op:<16} " + " ".join(f"{float(costs.matrix[e, o]):>{max(width, 8)}.3f}" for e in range(len(names))))
    print(f"constant (stem, reductions, head): {costs.constant:.3f} ms")
    if args.out is not None:
        print(f"wrote {args.out} (column {costs.column}; use it with drnas derive RUN --max-latency-ms X "
              f"--cost-table {args.out})")
    if check is not None:
        print(f"check on {len(check.archs)} random architectures: Spearman {check.spearman:.3f}, Kendall "
              f"{check.kendall:.3f}, mean relative error {100 * check.mean_relative_error:.1f}% "
              f"({check.seconds:.1f}s)")
    return 0
