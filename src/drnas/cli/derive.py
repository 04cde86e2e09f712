"""``drnas derive``: the most probable architecture of a search run within a parameter/MAC/latency budget."""
from __future__ import annotations

import argparse
import json

from drnas.cli.parser import BUDGET_FLAGS
from drnas.config.limits import check_limit
from drnas.config.search import apply_overrides
from drnas.config.train import PROTOCOLS
from drnas.errors import ConfigError


def _select_pt(args: argparse.Namespace) -> int:
    """``--select pt``: DARTS-PT's selection on the run's supernet, reopened from its checkpoint with its data."""
    from drnas.analysis.perturbation import perturbation_select
    from drnas.config.options import make_settings
    from drnas.method.parts.selection import PerturbationSelection
    from drnas.method.strategies import get_method
    from drnas.search import Search

    given = [flag for flag, value in (("--max-params", args.max_params), ("--max-macs", args.max_macs),
                                      ("--max-latency-ms", args.max_latency_ms), ("--max-cost", args.max_cost),
                                      ("--epoch", args.epoch)) if value is not None]
    if given:
        raise ConfigError(f"--select pt selects on the run's last supernet, without a budget: drop {given[0]}")
    values = {k: v for k, v in (("batches", args.pt_batches), ("tune_steps", args.pt_tune_steps)) if v is not None}
    settings = make_settings(PerturbationSelection.Settings, values, "--select pt")
    search = Search.resume(args.run_dir, progress=False, log=lambda m: None)
    method = get_method(search.config.method)
    if method.single_path or not method.uses_supernet:
        raise ConfigError(f"--select pt removes one op of an edge from a supernet that runs them all; method "
                          f"{method.name} trains no such supernet: derive its run by its weights")
    selection = perturbation_select(search, settings)
    if args.json:
        print(json.dumps(selection.to_json(), indent=2))
        return 0
    print(f"architecture: {selection.architecture}")
    for choice in selection.choices:
        without = ", ".join(f"{op} {acc:.2f}%" for op, acc in choice.without.items())
        print(f"  {choice.edge}: {choice.op} (supernet accuracy without each op: {without})")
    for node in selection.nodes:
        without = ", ".join(f"{edge} {acc:.2f}%" for edge, acc in node.without.items())
        print(f"  {node.node}: inputs {', '.join(node.inputs)} (supernet accuracy without each input: {without})")
    return 0


def command(args: argparse.Namespace) -> int:
    """Derive within the budget at the network size of the protocol (and --channels, --cells) and print the
    architecture, its counts, and how it was found (``--json``: as JSON)."""
    from drnas.analysis.budget import Budget, derive_within_budget, evaluation_network, format_size
    from drnas.analysis.cost import REPEATS, WARMUP
    from drnas.analysis.cost_table import load_costs
    from drnas.analysis.learned import LearnedDistribution
    from drnas.data.formats import dataset_shape, shaped_datasets
    from drnas.engine.distributed import resolve_device

    if args.select == "pt":
        return _select_pt(args)
    budget = Budget.parse(*(getattr(args, name) for name in BUDGET_FLAGS), max_cost=args.max_cost)
    if args.cost_table is not None and (budget.latency_ms is None) == (budget.cost is None):
        raise ConfigError("--cost-table prices one bound: give either --max-latency-ms MS (a *_ms column) or "
                          "--max-cost X (any column)")
    if args.cost_table is not None and args.latency_batch is not None:
        raise ConfigError("--latency-batch sets the batch of a measured latency; a --cost-table column has its own "
                          "(its device and batch): leave --latency-batch out")
    learned = LearnedDistribution.from_run(args.run_dir, args.epoch)
    space = learned.space
    table = load_costs(args.cost_table, space) if args.cost_table is not None else None
    if table is not None and budget.latency_ms is not None and table.unit != "ms":
        raise ConfigError(f"--max-latency-ms bounds milliseconds, but column {table.column} of {table.source} is not "
                          f"a *_ms column: bound it with --max-cost X")
    dataset = args.dataset or (learned.dataset if learned.dataset in shaped_datasets() else "cifar10")
    info = dataset_shape(dataset)
    protocol = args.protocol or space.default_protocol(dataset)
    sizes: dict[str, int] = {}
    for flag, value, fields in (("--channels", args.channels, ("channels",)),
                                ("--cells", args.cells, ("cells", "cells_per_stage"))):
        check_limit(space.depth_field if flag == "--cells" else "channels", value, flag)
        sizes.update({f: value for f in fields if value is not None})  # --cells: DARTS' cells, NB201's N
    spec, shape = evaluation_network(apply_overrides(PROTOCOLS.get(protocol), sizes), info)
    device = resolve_device(args.device) if budget.latency_ms is not None and table is None else None
    found = derive_within_budget(learned, budget, spec, shape, beam=args.beam, device=device, table=table)
    budget = found.budget  # with the table it was priced by
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
    if found.latency_ms is not None and table is not None:
        print(f"latency:      {found.latency_ms:.3f} ms by the cost table ({table.describe()}) (budget "
              f"{budget.latency_ms:g} ms)")
    elif found.latency_ms is not None:
        print(f"latency:      {found.latency_ms:.3f} ms per pass of {budget.latency_batch} image(s), measured on this "
              f"device ({found.device}, median of {REPEATS} after {WARMUP} warm-up passes; per-op "
              f"estimate {estimate.get('latency_ms', 0.0):.3f} ms) (budget {budget.latency_ms:g} ms)")
    if found.cost is not None and table is not None:
        print(f"cost:         {found.cost:.4g} {table.column} by the cost table ({table.describe()}) (budget "
              f"{budget.cost:g})")
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
