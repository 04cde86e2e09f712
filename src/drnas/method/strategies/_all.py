"""Imports every built-in method so that it registers itself (one line per method file)."""
from drnas.method.strategies import darts, drnas, dsnas, enas, gdas, pc_darts, rsps, snas, table, zero_cost  # noqa: F401
