"""How additive are published NB201 latencies? The least-squares op-level fit of every device column of a
per-architecture latency table (``drnas derive --cost-table FILE:COLUMN`` fits the same), as JSON on stdout.

    python benchmarks/cost_fit.py [--file ../shared/data/hw/nb201-latency.csv]

Per column: R² of the fit on all architectures (as ``load_costs`` fits it), its RMSE and mean/median relative
error (on pixel3 and raspi4 the mean is dominated by the cells whose output takes no input, which HW-NAS-Bench
times at a few microseconds). Measured 2026-11 on the file of ``../shared/data/hw``: R² from 0.80 (pixel2,
samsung_s7: whole milliseconds in the source) to 1.000 (eyeriss, fpga: additive by construction); counting ops
that reach no output as ``none`` fits worse on every column, so the devices ran the cells as written.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np

from drnas.analysis.cost_table import one_hots, fit_op_costs
from drnas.spaces import get_space

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hw" / "nb201-latency.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default=str(DEFAULT), help="per-architecture table: arch,<device>_ms,...")
    args = parser.parse_args()
    started = time.perf_counter()
    space = get_space("nb201")
    with open(args.file, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, rows = rows[0], rows[1:]
    archs = [space.parse(r[0]) for r in rows]
    choices = one_hots(space, archs)
    out = {}
    for c, column in enumerate(header[1:], start=1):
        values = np.array([float(r[c]) if r[c] else math.nan for r in rows])
        fit = fit_op_costs(space, choices, values, column, args.file).fit
        out[column] = {"r2": round(fit.r2, 4), "rmse_ms": round(fit.rmse, 4),
                       "mean_relative_error": round(fit.mean_relative_error, 4),
                       "median_relative_error": round(fit.median_relative_error, 4),
                       "rows": fit.rows, "skipped": fit.skipped}
    print(json.dumps({"file": args.file, "architectures": len(archs), "columns": out,
                      "seconds": round(time.perf_counter() - started, 2)}, indent=2))


if __name__ == "__main__":
    main()
