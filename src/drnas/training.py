"""Pieces shared by the search loop and retraining: devices, schedules, RNG state, progress, NaN checks."""
from __future__ import annotations

import math
import sys
from typing import Any

import torch

from .errors import DrnasError


class NonFiniteLossError(DrnasError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    from .config import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available: use --device cpu or auto")
    return device


def lr_at(epoch: int, epochs: int, lr: float, lr_min: float = 0.0, schedule: str = "cosine",
          warmup_epochs: int = 0) -> float:
    """Learning rate of a 0-based epoch: linear warm-up, then cosine or linear decay to ``lr_min``."""
    if epoch < warmup_epochs:
        return lr * (epoch + 1) / warmup_epochs
    span = max(1, epochs - warmup_epochs)
    progress = (epoch - warmup_epochs) / span
    if schedule == "cosine":
        return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return lr_min + (lr - lr_min) * (1.0 - progress)
    raise ValueError(f"unknown schedule {schedule!r}: use cosine or linear")


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"rng_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["rng_cpu"].cpu())
    if "rng_cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)


def progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar on stderr, or None when disabled."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def non_finite_error(epoch: int, step: int, last_good: int, run_path: Any, lr: float) -> NonFiniteLossError:
    where = f" in {run_path}" if run_path is not None else ""
    return NonFiniteLossError(
        f"the loss became NaN/inf in epoch {epoch} (step {step}); the last good checkpoint (after epoch "
        f"{last_good}) is intact{where}: lower the learning rate (e.g. --set lr={lr / 2:g}) and resume, or check the data")


def accuracy_counts(logits: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1,)) -> list[torch.Tensor]:
    """Number of samples whose label is among the top-k logits, for each k (device tensors, no sync)."""
    k = min(max(topk), logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hits = top == target.unsqueeze(1)
    return [hits[:, : min(t, k)].any(1).sum() for t in topk]
