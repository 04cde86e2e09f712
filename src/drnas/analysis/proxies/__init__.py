"""Zero-cost proxies: scores of an untrained network that predict how well it will train, for any registered space.

Each proxy is one module registered by name (``get_proxy("nwot")``, ``proxy_names()``; a plugin adds one with
:func:`register_proxy`) and cites its paper; :mod:`drnas.analysis.proxies.score` builds an architecture's
evaluation network at initialisation and scores it on one batch of real training images, deterministically for
a seed; :mod:`drnas.analysis.proxies.store` keeps the scores of ``drnas proxies`` so that it resumes.
"""
from drnas.analysis.proxies.base import PROXIES, Proxy, get_proxy, proxy_names, register_proxy
from drnas.analysis.proxies import (  # noqa: F401  (each registers its proxy; registration order is listing order)
    epe_nas, fisher, flops, grad_norm, grasp, jacov, l2_norm, nwot, params, plain, snip, synflow)
from drnas.analysis.proxies.score import (DEFAULT_BATCH, ProxyScorer, Scores, all_architectures, evaluation_spec,
                                          proxy_batch, proxy_correlations, random_architectures,
                                          read_architectures)
from drnas.analysis.proxies.store import SCORES_FILE, ScoreStore

__all__ = ["DEFAULT_BATCH", "PROXIES", "SCORES_FILE", "Proxy", "ProxyScorer", "ScoreStore", "Scores",
           "all_architectures", "evaluation_spec", "get_proxy", "proxy_batch", "proxy_correlations", "proxy_names",
           "random_architectures", "read_architectures", "register_proxy"]
