"""Search spaces, registered by name: ``get_space("nb201")``."""
from drnas.spaces.base import (Architecture, ArchitectureError, CellEdge, CellGraph, CellNode, NetworkSpec, OneOpPerEdgeSpace, SearchSpace, SupernetSpec, get_space, register_space,
                   space_names)
from drnas.spaces import darts, nb201, robust_darts  # noqa: F401  (register the spaces)
from drnas.spaces.darts import DartsGenotype
from drnas.spaces.nb201 import NB201Arch

__all__ = ["Architecture", "ArchitectureError", "CellEdge", "CellGraph", "CellNode", "DartsGenotype", "NB201Arch", "NetworkSpec", "OneOpPerEdgeSpace", "SearchSpace", "SupernetSpec", "get_space",
           "register_space", "space_names"]
