"""``drnas nb201 query``: one architecture's row of a NAS-Bench-201 results table."""
from __future__ import annotations

import argparse
import json


def command(args: argparse.Namespace) -> int:
    """Print the table's row of the architecture (``--json``: as JSON)."""
    from drnas.bench.nb201 import NB201Table
    from drnas.spaces.nb201 import NB201Arch

    arch = NB201Arch.parse(args.arch)
    row = NB201Table.load(args.benchmark).query(arch)
    if args.json:
        print(json.dumps({"arch": str(arch), **row}, indent=2))
    else:
        print(f"arch: {arch}")
        for key, value in row.items():
            print(f"{key:>24}: {value:g}")
    return 0
