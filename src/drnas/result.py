"""What a finished (or stopped) search hands back, whichever job ran it (:class:`drnas.search.Search`, or the
:class:`drnas.table_search.TableSearch` of the benchmark-query methods)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from drnas.spaces import Architecture


@dataclass
class SearchResult:
    """What a finished (or stopped) search produced."""

    architecture: Architecture
    eta: torch.Tensor
    beta: torch.Tensor
    expected_weights: torch.Tensor
    epochs_done: int
    metrics: list[dict[str, Any]]
    run_dir: Path | None
