"""Run under torchrun by tests/test_distributed.py: a tiny search (or a tiny failure) in every rank.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_worker.py MODE OUT [EPOCHS]
MODE: run (fresh search in OUT for EPOCHS epochs), resume (continue OUT for EPOCHS more), fail (rank 1 raises),
ddp (a few DistributedDataParallel steps on a linear layer, then the library's way out of a worker).
Every rank saves what it ends with to OUT/rank{R}.pt so the test can compare ranks.
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import pattern_images, tiny_config  # noqa: E402

from drnas.engine.distributed import exit_worker, init_distributed, wrap_ddp  # noqa: E402
from drnas.search import Search  # noqa: E402


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else None
    rank = int(os.environ["RANK"])
    if mode == "ddp":
        ddp_steps_then_exit()
        return
    data = pattern_images(256)
    quiet = dict(data=data, progress=False, log=lambda m: None)
    if mode == "resume":
        search = Search.resume(out, **quiet)
    elif mode == "clip":  # the clip that counts eta's gradient (clip_counts_arch), small enough to act every step
        search = Search(tiny_config(clip_counts_arch=True, grad_clip=0.05), out, **quiet)
    else:
        search = Search(tiny_config(), out, **quiet)
    if mode == "fail":
        search.run(max_epochs=1)
        if rank == 1:
            raise RuntimeError("rank 1 fails on purpose")
        search.run()  # rank 0 now waits in a collective for rank 1, until torchrun stops the job
        return
    # which images of the weight half this rank's loader hands out in epoch 0: a copy of the loader Search
    # built, with each image's label replaced by its index
    probe = copy.copy(search.weight_loader)
    probe.y = torch.arange(len(probe.y), device=probe.y.device)
    seen = torch.cat([y for _, y in probe.epoch(0)])
    search.run(max_epochs=epochs)
    reduced = search._reduced(torch.tensor([rank + 1.0]))  # metrics are summed over ranks before logging
    torch.save({"reduced": reduced, "eta": search.relax.eta.detach().clone(), "net": search.net.state_dict(),
                "arch": str(search.derive()), "epoch": search.epoch, "seen_batches": len(search.weight_loader),
                "seen": seen, "world": search.dist.world_size}, out / f"rank{rank}.pt")
    exit_worker(0)


def ddp_steps_then_exit() -> None:
    """The shortest run that left gloo threads alive into interpreter teardown (and aborted one run in 3-4)."""
    ctx, device = init_distributed("cpu")
    model = wrap_ddp(torch.nn.Linear(64, 64), ctx, device)
    for _ in range(3):
        model(torch.randn(8, 64)).sum().backward()
    exit_worker(0)


if __name__ == "__main__":
    main()
