"""``drnas derive``: the most probable architecture of a search run within a parameter/MAC/latency budget."""
from __future__ import annotations

import argparse
import json

from drnas.cli.parser import BUDGET_FLAGS
from drnas.config.limits import check_limit
from drnas.config.search import apply_overrides
from drnas.config.train import PROTOCOLS


def command(args: argparse.Namespace) -> int:
    """Derive within the budget at the network size of the protocol (and --channels, --cells) and print the
    architecture, its counts, and how it was found (``--json``: as JSON)."""
    from drnas.analysis.budget import Budget, derive_within_budget, evaluation_network, format_size
    from drnas.analysis.cost import REPEATS, WARMUP
    from drnas.analysis.learned import LearnedDistribution
    from drnas.data.formats import dataset_shape, shaped_datasets
    from drnas.engine.distributed import resolve_device

    budget = Budget.parse(*(getattr(args, name) for name in BUDGET_FLAGS))
    learned = LearnedDistribution.from_run(args.run_dir, args.epoch)
    space = learned.space
    dataset = args.dataset or (learned.dataset if learned.dataset in shaped_datasets() else "cifar10")
    info = dataset_shape(dataset)
    protocol = args.protocol or space.default_protocol(dataset)
    sizes: dict[str, int] = {}
    for flag, value, fields in (("--channels", args.channels, ("channels",)),
                                ("--cells", args.cells, ("cells", "cells_per_stage"))):
        check_limit(space.depth_field if flag == "--cells" else "channels", value, flag)
        sizes.update({f: value for f in fields if value is not None})  # --cells: DARTS' cells, NB201's N
    spec, shape = evaluation_network(apply_overrides(PROTOCOLS.get(protocol), sizes), info)
    device = resolve_device(args.device) if budget.latency_ms is not None else None
    found = derive_within_budget(learned, budget, spec, shape, beam=args.beam, device=device)
    if args.json:
        print(json.dumps({**found.to_json(), "dataset": dataset, "protocol": protocol}, indent=2))
        return 0
    estimate = found.estimate or {}

    def bound(limit: float | None, estimated: float | None, exact: float) -> str:
        notes = [f"budget {format_size(limit)}"] if limit is not None else []
        if estimated is not None and estimated != exact:  # the per-op sum missed: both numbers are shown
            notes.append(f"per-op estimate {format_size(estimated)}")
        return f" ({'; '.join(notes)})" if notes else ""

    rank = f"; rank {found.rank:,} of {found.architectures:,} without the budget" if found.rank else ""
    print(f"architecture: {found.arch}")
    print(f"probability:  {found.probability:.4g} (log {found.log_probability:.3f}){rank}")
    print(f"parameters:   {found.params / 1e6:.3f}M without the auxiliary head"
          + bound(budget.params, estimate.get("params"), found.params))
    print(f"MACs:         {found.macs / 1e6:.1f}M per image" + bound(budget.macs, estimate.get("macs"), found.macs))
    if found.latency_ms is not None:
        print(f"latency:      {found.latency_ms:.3f} ms per pass of {budget.latency_batch} image(s), measured on this "
              f"device ({found.device}, median of {REPEATS} after {WARMUP} warm-up passes; per-op "
              f"estimate {estimate.get('latency_ms', 0.0):.3f} ms) (budget {budget.latency_ms:g} ms)")
    print(f"network:      {space.name}, {spec.channels} channels, "
          f"{space.depth_format.format(getattr(spec, space.depth_field))}, {spec.num_classes} classes, "
          f"{shape[-1]}x{shape[-1]} input ({dataset}, protocol {protocol})")
    how = (f"exact over {found.architectures:,} architectures" if found.search == "exact"
           else f"beam search, width {found.beam_width}")
    print(f"search:       {how}; {found.checked} built and counted; {found.seconds:.1f}s")
    print(f"from:         epoch {found.learned.epoch} of {found.learned.epochs} of {found.learned.run} "
          f"({found.learned.method}), budget: {budget.describe()}")
    if budget.empty and found.learned.derived is not None and found.learned.derived != str(found.arch):
        print(f"note:         the run's architecture.json holds {found.learned.derived} (method "
              f"{found.learned.method} derives by its own rule); the above is the most probable architecture")
    return 0
