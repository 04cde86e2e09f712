"""Search spaces, registered by name: ``get_space("nb201")``."""
from .base import Architecture, ArchitectureError, SearchSpace, SupernetSpec, get_space, register_space, space_names
from . import nb201  # noqa: F401  (registers the space)
from .nb201 import NB201Arch

__all__ = ["Architecture", "ArchitectureError", "NB201Arch", "SearchSpace", "SupernetSpec", "get_space",
           "register_space", "space_names"]
