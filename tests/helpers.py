"""Tiny real datasets and configs for search tests."""
from __future__ import annotations

import dataclasses

import numpy as np

from drnas.config.search import SearchConfig, Stage
from drnas.data import DatasetInfo, ImageArrays, load_dataset


def pattern_images(n: int = 256, size: int = 8, classes: int = 4, seed: int = 0) -> ImageArrays:
    """Random images with a class-dependent bright quadrant: learnable, but not trivially."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 120, (n, size, size, 3)).astype(np.uint8)
    half = size // 2
    for c in range(classes):
        r, col = divmod(c, 2)
        x[y == c, r * half:(r + 1) * half, col * half:(col + 1) * half, :] += 120
    info = DatasetInfo("patterns", classes, 3, size, (0.4, 0.4, 0.4), (0.25, 0.25, 0.25), False, 1)  # a flip would swap classes
    return ImageArrays(x, y.astype(np.int64), None, None, info)


def tiny_config(**changes) -> SearchConfig:
    base = dict(space="nb201", dataset="npz", channels=8, cells_per_stage=1, batch_size=32, lr=0.05,
                arch_lr=3e-3, seed=0, device="cpu",
                stages=[Stage(epochs=2, partial_k=2, arch_warmup=1), Stage(epochs=2, partial_k=1, ops_kept=3)])
    base.update(changes)
    return SearchConfig(**base)


def own_spaces() -> tuple[str, ...]:
    """The spaces with code of their own: not the variants that run another's with other ops (RobustDARTS' S1-S4
    run the DARTS space's; tests/test_parts.py covers them)."""
    from drnas.spaces import get_space, space_names

    return tuple(name for name in space_names() if getattr(get_space(name), "variant_of", None) is None)


def digits(n: int = 128) -> ImageArrays:
    """The first ``n`` training images of the embedded digits dataset (8x8 grey, 10 classes; no download)."""
    arrays = load_dataset("digits", None)
    return dataclasses.replace(arrays, x_train=arrays.x_train[:n], y_train=arrays.y_train[:n])


def write_synthetic_nb201_table(path) -> None:
    """A complete NB201 results table with made-up accuracies (convolutions score, none/pooling do not), so the
    benchmark-query methods run against all 15,625 cells without the real table."""
    import itertools

    from drnas.spaces.nb201 import NB201_OPS, NB201Arch

    score = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0, "avg_pool_3x3": 0.5}
    lines = ["arch,cifar10_valid_acc,cifar10_test_acc,cifar100_valid_acc,cifar100_test_acc"]
    for ops in itertools.product(NB201_OPS, repeat=6):
        acc = 50.0 + sum(score[o] * (1 + 0.1 * i) for i, o in enumerate(ops))
        lines.append(f"{NB201Arch(ops)},{acc:.4f},{acc + 1:.4f},{acc - 20:.4f},{acc - 19:.4f}")
    path.write_text("\n".join(lines) + "\n")


def write_conv_cost_table(path, space) -> None:
    """An op-level cost table (``edge,op,<column>``, the constant on the ``*,*`` row): a convolution costs 1 (the
    unit) on every edge, the other ops nothing, the network's fixed parts 0.25."""
    lines = ["edge,op,energy_mj"]
    for edge in space.edge_names():
        lines += [f"{edge},{op},{1.0 if 'conv' in op else 0.0}" for op in space.ops]
    lines.append("*,*,0.25")
    path.write_text("\n".join(lines) + "\n")
