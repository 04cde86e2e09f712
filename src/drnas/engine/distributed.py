"""Many processes, one search: ``torch.distributed`` as launched by ``torchrun``.

A process started by torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables in its
environment) joins the process group: NCCL when it trains on a GPU (``cuda:LOCAL_RANK``), gloo on the CPU. A
plain ``python``/``drnas`` process is world size 1 and never touches ``torch.distributed``; the same code runs
either way.

What is shared and how (see also the README): each global batch is split across the ranks; the network
weights are averaged by DistributedDataParallel; the architecture gradient is averaged by an all-reduce after
every architecture step, so eta stays identical on every rank. Each rank draws its own Dirichlet sample, so
the averaged gradient is a lower-variance estimate of the gradient of the expected loss (eq. 4) than one
sample gives. Only rank 0 writes files.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, NoReturn

import torch
import torch.distributed as dist

from drnas.errors import ConfigError

#: How long a collective may wait for a missing rank before the group gives up (a hang becomes an error).
DEFAULT_TIMEOUT_S = 1800


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available: use --device cpu or auto")
    return device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job; world size 1 means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def launch_rank() -> int:
    """This process's rank as torchrun launched it (0 outside torchrun), known before the group is joined."""
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def init_distributed(device_name: str, timeout_s: int = DEFAULT_TIMEOUT_S) -> tuple[DistContext, torch.device]:
    """Join torchrun's process group (once per process) and pick this rank's device."""
    if not launched_by_torchrun():
        return DistContext(), resolve_device(device_name)
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local)
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"rank {rank} wants {device} but this machine has {torch.cuda.device_count()} GPUs: "
                              "use --nproc_per_node at most the number of GPUs")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank, world, local), device


def shutdown() -> bool:
    """Destroy this process's group, if it joined one; says whether it had."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        return True
    return False


def exit_worker(code: int) -> NoReturn:
    """End a torchrun worker: destroy its process group, flush what it printed and leave without interpreter
    teardown.

    Why: a gloo group that DistributedDataParallel has used keeps its worker threads after
    ``destroy_process_group`` (torch 2.13). When one of them drops its last finished collective while Python is
    finalizing, it must take the GIL, CPython ends the thread, and the process aborts with "terminate called
    without an active exception" (SIGABRT), 1 launch in 3 to 6 on 2 cores; torchrun then kills the other
    ranks, which may still be writing. Nothing is left to do by then (files are written and closed), so skipping
    the teardown loses nothing and removes the race.
    """
    shutdown()
    exit_without_teardown(code)


def exit_without_teardown(code: int) -> NoReturn:
    """Flush what was printed and end the process with ``code`` now, without interpreter teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken pipe: nothing more can reach it anyway
    logging.shutdown()
    os._exit(code)


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum over ranks, in place (a no-op for world size 1)."""
    if ctx.enabled and ctx.world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def _all_reduce_mean_(tensors: list[torch.Tensor], ctx: DistContext) -> None:
    """Replace each tensor by its mean over ranks, with one flat all-reduce."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def average_gradients(parameters: Iterable[torch.nn.Parameter], ctx: DistContext) -> None:
    """Average ``.grad`` over ranks; parameters without a gradient are skipped."""
    if ctx.enabled and ctx.world_size > 1:
        _all_reduce_mean_([p.grad for p in parameters if p.grad is not None], ctx)


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` for world size 1)."""
    if not (ctx.enabled and ctx.world_size > 1):
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.enabled and ctx.world_size > 1:
        dist.barrier()


def wrap_ddp(module: torch.nn.Module, ctx: DistContext, device: torch.device, find_unused: bool = False) -> torch.nn.Module:
    """DistributedDataParallel around ``module`` when in a process group, else ``module`` itself.

    ``find_unused``: set when some parameters get no gradient in a step (pruned ops), so DDP does not wait for
    them. Buffers (BN running statistics) stay per rank during an epoch; :func:`average_buffers` joins them.
    """
    if not ctx.enabled:
        return module
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    options: dict[str, Any] = {"find_unused_parameters": find_unused}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        options["forward_sync_buffers"] = False  # newer PyTorch: same meaning as broadcast_buffers=False
    else:
        options["broadcast_buffers"] = False
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None, **options)


@torch.no_grad()
def average_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (BN running statistics) over ranks, so every rank evaluates and saves the
    same network."""
    if ctx.enabled and ctx.world_size > 1:
        _all_reduce_mean_([b for b in module.buffers() if b.is_floating_point()], ctx)


def check_batch_split(batch_size: int, ctx: DistContext) -> None:
    """The global batch must split evenly over the ranks."""
    if batch_size % ctx.world_size:
        raise ConfigError(f"batch_size {batch_size} does not split over {ctx.world_size} processes: use a multiple "
                          f"of {ctx.world_size}")


def convert_sync_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Batch statistics over all ranks (``sync_bn``); PyTorch implements it for GPUs only."""
    if device.type != "cuda":
        raise ConfigError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm has no CPU implementation): "
                          "drop --set sync_bn=true on the CPU")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
