"""Imports every built-in method so that it registers itself (one line per method file)."""
from drnas.method.strategies import (  # noqa: F401
    darts,
    darts_sigmoid,
    drnas,
    dsnas,
    enas,
    gdas,
    pc_darts,
    rsps,
    snas,
    table,
    zero_cost,
)
