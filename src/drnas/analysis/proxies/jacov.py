"""``jacov``: how little the input Jacobians of a batch's images correlate.

Mellor, Turner, Storkey & Crowley, Neural Architecture Search without Training, arXiv:2006.04647 v1 (2020): with
``J_i`` the gradient of the sum of the logits with respect to image ``i`` and ``lambda`` the eigenvalues of the
correlation matrix of the ``J_i``, the score is ``-sum (log(lambda + k) + 1 / (lambda + k))``, ``k = 1e-5``
(larger: less correlated Jacobians).
"""
from __future__ import annotations

import torch
from torch import nn

from drnas.analysis.proxies.base import correlation, input_jacobian, register_proxy

#: keeps the logarithm and the reciprocal finite for zero eigenvalues (the paper's k)
K = 1e-5


@register_proxy("jacov", doc="-sum(log(l+k) + 1/(l+k)) over eigenvalues l of the input Jacobians' correlations",
                paper="Mellor et al., Neural Architecture Search without Training, arXiv:2006.04647 v1, 2020")
def jacov(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The Jacobian covariance score of the batch; -inf (the worst) for a network whose logits do not depend on
    its input (a cell whose every path goes through ``none``), whose Jacobians are all zero."""
    jacobians = input_jacobian(network, x)
    if not jacobians.any():
        return float("-inf")
    eigenvalues = torch.linalg.eigvalsh(correlation(jacobians))
    return float(-(torch.log(eigenvalues + K) + 1.0 / (eigenvalues + K)).sum())
