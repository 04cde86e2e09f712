"""The published combinations of a method and parts, named where methods are (``--method sdarts-adv``) and listed
by ``drnas methods`` with their papers."""
from __future__ import annotations

from drnas.config.search import Stage
from drnas.method.parts.aux_skip import AuxSkip
from drnas.method.parts.base import Recipe, register_recipe
from drnas.method.parts.early_stop import DartsES, DartsPlus
from drnas.method.parts.gaea import GAEA
from drnas.method.parts.regularisers import BetaDecay, ZeroOne
from drnas.method.parts.selection import PerturbationSelection
from drnas.method.parts.skip_limit import SkipLimit
from drnas.method.parts.smoothing import RandomSmoothing

register_recipe("sdarts-rs", Recipe("darts", ("sdarts-rs",), RandomSmoothing.paper),
                doc="DARTS with random smoothing of the weight step (SDARTS-RS)")
register_recipe("sdarts-adv", Recipe("darts", ("sdarts-adv",), RandomSmoothing.paper),
                doc="DARTS with adversarial smoothing of the weight step (SDARTS-ADV)")
register_recipe("beta-darts", Recipe("darts", ("beta-decay",), BetaDecay.paper),
                doc="DARTS with beta-decay regularisation (beta-DARTS)")
register_recipe("fair-darts", Recipe("darts-sigmoid", ("zero-one",), ZeroOne.paper),
                doc="sigmoid mixing weights with the zero-one loss (FairDARTS)")
register_recipe("darts-minus", Recipe("darts", ("aux-skip",), AuxSkip.paper),
                doc="DARTS with a decaying auxiliary skip connection (DARTS-)")
register_recipe("gaea-pc-darts", Recipe("pc-darts", ("gaea",), GAEA.paper),
                doc="PC-DARTS with exponentiated-gradient architecture updates (GAEA PC-DARTS)")
register_recipe("darts-plus", Recipe("darts", ("darts-plus",), DartsPlus.paper),
                doc="DARTS stopped once its cell holds 2 skip connections (DARTS+)")
register_recipe("darts-es", Recipe("darts", ("darts-es",), DartsES.paper, {"hessian_every": 1}),
                doc="DARTS stopped when the Hessian's dominant eigenvalue grows (RobustDARTS' DARTS-ES)")
register_recipe("darts-pt", Recipe("darts", ("darts-pt",), PerturbationSelection.paper),
                doc="DARTS with the architecture selected by perturbation (DARTS-PT)")
#: P-DARTS (Chen et al., "Progressive Differentiable Architecture Search", ICCV 2019, §3.2 and §4.1): three stages
#: of 25 epochs (10 warm-up), 5, 11 and 17 cells, the 8 ops cut to 5 then 3 per edge, for the DARTS space
P_DARTS_STAGES = [Stage(25, 1, None, 10, 5), Stage(25, 1, 5, 10, 11), Stage(25, 1, 3, 10, 17)]
register_recipe("p-darts", Recipe("darts", ("skip-dropout", "skip-limit"), SkipLimit.paper,
                                  {"stages": P_DARTS_STAGES, "lr_restart": True}),
                doc="DARTS with progressive depth, 5 then 11 then 17 cells, search-space approximation, dropout on "
                    "skip connections and at most 2 of them in the normal cell (P-DARTS; the DARTS space)")
