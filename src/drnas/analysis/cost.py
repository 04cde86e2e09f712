"""Parameter and multiply-accumulate counts of a network, the way NAS papers report them."""
from __future__ import annotations

import torch
from torch import nn

from drnas.fast.settings import PLAIN, using


def count_parameters(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    """Number of parameters, leaving out those whose name contains any of ``exclude``."""
    return sum(p.numel() for name, p in model.named_parameters() if not any(e in name for e in exclude))


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one eval-mode forward pass (convolutions and linear layers).

    Pooling is not counted. Uses ``torch.utils.flop_counter`` (which counts 2 FLOPs per MAC) on a zero input on the model's device.
    """
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with using(PLAIN), FlopCounterMode(display=False) as counter:  # fast paths can count differently
            model(torch.zeros(input_shape, device=parameter.device, dtype=parameter.dtype))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
