"""Where the ``plain`` proxy's score comes from on NB201 networks at initialisation.

    python benchmarks/plain_terms.py [--archs 50] [--seed 0] [--batch 32] [--data cifar10/cifar10.npz] [--json out.json]

``plain`` is ``sum dL/dW * W`` over every convolution and linear layer. A convolution followed by BatchNorm in
training mode is scale-invariant (scaling W leaves the loss unchanged), so its term ``dL/dW * W`` is 0 up to float
rounding; what remains is the classifier's term and the terms of the residual blocks' 1x1 shortcut convolutions
(no BatchNorm after them). This script splits each scored architecture's ``plain`` into those three parts, on the
batch and initial weights ``drnas proxies`` uses, and prints the mean absolute value of each part.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
from pathlib import Path

import torch

from drnas.analysis.proxies import ProxyScorer, evaluation_spec, proxy_batch
from drnas.analysis.proxies.base import loss_gradients, weight_layers
from drnas.data import load_dataset
from drnas.spaces import get_space

SHARED = Path(os.environ.get("DRNAS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10.npz"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = get_space("nb201")
    arrays = load_dataset("cifar10", args.data)
    x, y = proxy_batch(arrays, args.batch, args.seed, torch.device("cpu"))
    scorer = ProxyScorer(space, evaluation_spec(space, arrays.info), x, y, ["plain"], args.seed)
    rng = random.Random(args.seed)
    parts: dict[str, list[float]] = {"classifier": [], "shortcut convs (no BatchNorm)": [],
                                     "convs before BatchNorm": [], "plain": []}
    for _ in range(args.archs):
        arch = space.parse("|" + "|+|".join("|".join(f"{rng.choice(space.ops)}~{j}" for j in range(i))
                                             for i in range(1, 4)) + "|")
        net = scorer.network(arch)
        names = {id(m): n for n, m in net.named_modules()}
        sums = dict.fromkeys(parts, 0.0)
        for g, m in zip(loss_gradients(net, x, y), weight_layers(net)):
            term = float((g * m.weight.detach()).double().sum())
            key = ("classifier" if isinstance(m, torch.nn.Linear) else
                   "shortcut convs (no BatchNorm)" if "shortcut" in names[id(m)] else "convs before BatchNorm")
            sums[key] += term
            sums["plain"] += term
        for key, value in sums.items():
            parts[key].append(abs(value))
    result = {key: statistics.mean(values) for key, values in parts.items()}
    for key, value in result.items():
        print(f"{key:<32} mean |term| {value:.3e}")
    if args.json:
        Path(args.json).write_text(json.dumps({"archs": args.archs, "seed": args.seed, "batch": args.batch,
                                               "mean_abs": result, "values": parts}, indent=1) + "\n")


if __name__ == "__main__":
    main()
