"""``epe_nas``: how differently the input Jacobians of each class correlate.

Lopes, Alirezazadeh & Alexandre, EPE-NAS: Efficient Performance Estimation Without Training for Neural
Architecture Search, ICANN 2021. With ``J_i`` the gradient of the sum of the logits with respect to image ``i``
(as in jacov) and ``C_t`` the correlation matrix of the Jacobians of the images of class ``t``, each class scores
``E_t = sum_ij log(|C_t[i, j]| + k)``, ``k = 1e-5``; the network scores ``sum_{t, t'} |E_t - E_t'| / T`` over the
``T`` classes present in the batch (up to 100 classes), and with more classes ``sum_t E_t / n_t``, ``n_t`` the
images of class ``t``.
"""
from __future__ import annotations

import torch
from torch import nn

from drnas.analysis.proxies.base import correlation, input_jacobian, register_proxy

K = 1e-5
#: above this many classes the per-class scores are normalised by their image counts and summed (the paper's rule)
MANY_CLASSES = 100


@register_proxy("epe_nas", doc="spread of the per-class input-Jacobian correlation scores",
                paper="Lopes et al., EPE-NAS: Efficient Performance Estimation Without Training for NAS, ICANN 2021")
def epe_nas(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The EPE-NAS score of the batch; -inf (the worst) for a network whose logits do not depend on its input,
    whose Jacobians are all zero."""
    jacobians = input_jacobian(network, x)
    if not jacobians.any():
        return float("-inf")
    per_class = []
    for label in torch.unique(y).tolist():
        rows = jacobians[y == label]
        e_t = torch.log(correlation(rows).abs() + K).sum()
        per_class.append((e_t, len(rows)))
    if not per_class:
        return float("nan")
    if _num_classes(network, y) > MANY_CLASSES:
        return float(sum(e / n for e, n in per_class))
    scores = torch.stack([e for e, _ in per_class])
    return float((scores[:, None] - scores[None, :]).abs().sum() / len(per_class))


def _num_classes(network: nn.Module, y: torch.Tensor) -> int:
    """The classes the network predicts: its last linear layer's outputs (else the largest label + 1)."""
    linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else int(y.max()) + 1
