"""Parts: additions that compose with any search method they fit (see :mod:`drnas.method.parts.base`), one file
each, and the recipes that name the published combinations."""
from drnas.method.parts.base import (PARTS, RECIPES, Part, Recipe, Stop, build_parts, check_parts, drawing_in_cells,
                                     part_names, register_part, register_recipe, with_parts)
from drnas.method.parts import smoothing, regularisers, aux_skip, gaea, early_stop, selection, skip_limit, skip_dropout  # noqa: F401,E402,I001  (register, in this order)
from drnas.method.parts import recipes  # noqa: F401,E402  (registers the recipes)

__all__ = ["PARTS", "RECIPES", "Part", "Recipe", "Stop", "build_parts", "check_parts", "drawing_in_cells", "part_names",
           "register_part", "register_recipe", "with_parts"]
