"""The run settings that a search and a retraining share: where and how fast a job runs, and what it reports.

They decide how a step runs, not what it computes (beyond float rounding; ``amp`` aside): the speed layer
(:mod:`drnas.fast`) reads them, and ``--resume`` may change most of them (``RESUME_SETTABLE``).
"""
from __future__ import annotations

from dataclasses import dataclass

AMP_SETTINGS = ("off", "bf16")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")
GRAPH_SETTINGS = ("auto", "on", "off")
#: values of ``SearchConfig.compile``: ``none`` runs cells eagerly, ``cells`` runs each search cell through
#: ``torch.compile``, ``auto`` picks one of the two (:func:`drnas.fast.accel.resolve_compile`)
COMPILE_MODES = ("auto", "none", "cells")
#: values of ``SearchConfig.fast_paths``: ``plain`` turns every speed path off
FAST_PATH_SETTINGS = ("default", "plain")


@dataclass
class RunSettings:
    """Fields of every job's config: the device and process, the speed settings, the metrics writers."""

    device: str = "auto"
    threads: int | None = None
    sync_bn: bool = False
    memory_format: str = "auto"
    amp: str = "off"  # "bf16": autocast the network (less memory; not faster on measured supernets, see drnas.fast.accel)
    cuda_graphs: str = "auto"  # replay each step as a CUDA graph: auto = on a GPU in a single process
    cudnn_benchmark: bool = False  # on a GPU, let cuDNN time its algorithms (faster DARTS steps; see the README)
    keep_freed_memory: bool = True  # on a CPU under glibc: reuse freed memory, no page faults (drnas.fast.host_memory)
    tensorboard: bool = False  # also write the metrics (and a search's pictures) for TensorBoard to RUN/tensorboard/
    wandb: bool = False  # also send the metrics (and at the end the pictures) to Weights & Biases (drnas[wandb])
