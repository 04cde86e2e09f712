"""Rank correlations between two lists of scores: how well one ordering (a proxy's, a cost table's prediction)
agrees with another (accuracy, measured latency).

:func:`spearman` is the Pearson correlation of the ranks (ties get their average rank); :func:`kendall` is
Kendall's tau-b (ties in either list corrected for), in O(n log n) by counting discordant pairs with a merge
sort, so that all 15,625 NB201 cells rank in well under a second. Both agree with ``scipy.stats.spearmanr`` and
``scipy.stats.kendalltau`` (the tests compare them); scipy is not a dependency of the package.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The two lists as float arrays, checked to be of one length; pairs where either value is NaN are left out."""
    a, b = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"rank correlation of lists of different lengths ({a.size} and {b.size})")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the mean of the ranks they span."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    sorted_values = a[order]
    # start of each run of equal values, and the run each sorted position belongs to
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    run = np.cumsum(np.r_[True, sorted_values[1:] != sorted_values[:-1]]) - 1
    ends = np.r_[starts[1:], a.size]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(a.size)
    ranks[order] = mean_rank[run]
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (NaN pairs left out; NaN when fewer than 2 pairs remain or
    either list is constant)."""
    a, b = _pairs(x, y)
    if a.size < 2:
        return math.nan
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum()) / denominator if denominator > 0 else math.nan


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Pairs of equal values in a sorted array."""
    if sorted_values.size == 0:
        return 0
    _, counts = np.unique(sorted_values, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _swaps(values: np.ndarray) -> int:
    """Inversions of ``values`` (pairs i < j with values[i] > values[j]), counted by a bottom-up merge sort."""
    a = values.copy()
    n, swaps, width = a.size, 0, 1
    while width < n:
        for lo in range(0, n - width, 2 * width):
            mid, hi = lo + width, min(lo + 2 * width, n)
            left, right = a[lo:mid], a[mid:hi]
            # each right element jumps over the left elements strictly greater than it
            swaps += int((left.size - np.searchsorted(left, right, side="right")).sum())
            a[lo:hi] = np.sort(np.concatenate([left, right]), kind="mergesort")
        width *= 2
    return swaps


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of ``x`` and ``y`` (NaN pairs left out; NaN when fewer than 2 pairs remain or either list
    is constant)."""
    a, b = _pairs(x, y)
    n = a.size
    if n < 2:
        return math.nan
    order = np.lexsort((b, a))  # by x, ties by y
    a, b = a[order], b[order]
    pairs = n * (n - 1) // 2
    tied_x = _tied_pairs(a)
    # pairs tied in both: runs of equal (x, y)
    same = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    counts = np.diff(np.r_[np.flatnonzero(same), n])
    tied_xy = int((counts * (counts - 1) // 2).sum())
    discordant = _swaps(b)  # ties in x are sorted by y, so they add no inversions
    tied_y = _tied_pairs(np.sort(b))
    concordant_minus_discordant = pairs - tied_x - tied_y + tied_xy - 2 * discordant
    denominator = math.sqrt(float(pairs - tied_x) * float(pairs - tied_y))
    return concordant_minus_discordant / denominator if denominator > 0 else math.nan


__all__ = ["average_ranks", "kendall", "spearman"]
