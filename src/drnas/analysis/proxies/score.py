"""The scoring driver: architectures of any registered space, each built as its evaluation network at
initialisation, scored by registered proxies on one batch of real training images.

Everything a score depends on is fixed by (architecture, network size, batch, seed): the network's weights are
drawn from a generator seeded by ``seed`` alone (the same initial weights for the same architecture, whatever
was scored before it; the caller's random stream is left as it was), the batch is the first batch of the
training images shuffled and augmented with ``seed`` (:func:`proxy_batch`), and every proxy scores its own copy
of the freshly built network.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from drnas.analysis.cost import network_spec
from drnas.analysis.proxies.base import Proxy, get_proxy
from drnas.config.limits import check_limit
from drnas.config.search import apply_overrides
from drnas.config.train import PROTOCOLS
from drnas.data import DatasetInfo, DeviceLoader, ImageArrays
from drnas.errors import ConfigError
from drnas.spaces import ArchitectureError, NetworkSpec, SearchSpace

#: the batch NASLib's published NB201 scores were made with, as they show it: jacov is close to minus the batch size
#: (decorrelated Jacobians give eigenvalues near 1) and nwot grows with it; see docs/proxies.md
DEFAULT_BATCH = 32


def evaluation_spec(space: SearchSpace, info: DatasetInfo, channels: int | None = None,
                    depth: int | None = None) -> NetworkSpec:
    """The evaluation network of ``space`` for ``info``'s images: the size of the space's default training
    protocol (NB201: C=16, N=5, as NAS-Bench-201 trained it; DARTS: 36 channels, 20 cells), or ``channels`` and
    ``depth`` (the space's depth field: cells per stage or cells), without an auxiliary head."""
    config = PROTOCOLS.get(space.default_protocol(info.name))
    sizes = {k: v for k, v in (("channels", channels), (space.depth_field, depth)) if v is not None}
    for name, value in sizes.items():
        check_limit(name, value, f"--{name.replace('_', '-')}")
    config = apply_overrides(config, {**sizes, "auxiliary_weight": 0.0})
    return network_spec(config, info)


def proxy_batch(arrays: ImageArrays, batch: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of ``batch`` training images (all of them when there are fewer), drawn and augmented (the
    dataset's crop and flip) as the first batch of an epoch shuffled with ``seed``, normalised; on ``device``."""
    check_limit("batch_size", batch, "the proxies' batch")
    n = len(arrays.x_train)
    if n < 2:
        raise ConfigError(f"the proxies need a batch of at least 2 training images, but the data has {n}: give "
                          "more images (--data)")
    loader = DeviceLoader(arrays.x_train, arrays.y_train, arrays.info, batch_size=min(batch, n), device=device,
                          augment=True, seed=seed)
    x, y = next(iter(loader.epoch(0)))
    return x, y


@dataclass
class Scores:
    """The scores of one architecture: proxy -> value, and proxy -> seconds it took."""

    arch: str
    scores: dict[str, float]
    seconds: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ProxyScorer:
    """Scores architectures of ``space`` with the proxies ``names`` on the batch ``(x, y)``.

    >>> scorer = ProxyScorer(space, spec, x, y, ["nwot", "synflow"], seed=0)   # doctest: +SKIP
    >>> scorer.score(space.parse("|nor_conv_3x3~0|+|...|")).scores              # doctest: +SKIP
    """

    def __init__(self, space: SearchSpace, spec: NetworkSpec, x: torch.Tensor, y: torch.Tensor,
                 names: Sequence[str], seed: int = 0) -> None:
        if not names:
            raise ConfigError("no proxy to score with: give --proxies NAME[,NAME...]")
        twice = sorted({n for n in names if list(names).count(n) > 1})
        if twice:
            raise ConfigError(f"proxy {twice[0]!r} is listed twice: list each once")
        self.proxies: list[Proxy] = [get_proxy(name) for name in names]
        self.space, self.spec, self.x, self.y, self.seed = space, spec, x, y, int(seed)

    def network(self, arch: Any) -> nn.Module:
        """``arch``'s evaluation network with the initial weights of ``seed``, in training mode, on the batch's
        device; the global random stream is left as it was."""
        with torch.random.fork_rng(devices=[]):  # built on the CPU: only its generator is used
            torch.manual_seed(self.seed)
            network = self.space.build_network(arch, self.spec)
        return network.to(self.x.device).train()

    def score(self, arch: Any) -> Scores:
        """Every proxy's score of ``arch`` (each on its own copy of the network) and its seconds."""
        pristine = self.network(arch)
        scores, seconds = {}, {}
        for proxy in self.proxies:
            started = time.perf_counter()
            network = copy.deepcopy(pristine)
            scores[proxy.name] = float(proxy.score(network, self.x, self.y))
            seconds[proxy.name] = round(time.perf_counter() - started, 4)
        return Scores(str(arch), scores, seconds)


# ------------------------------------------------------------------------------------------------ which architectures
def all_architectures(space: SearchSpace) -> Iterator[Any]:
    """Every architecture of a space with one op per edge, in the order of op indices (the last edge fastest)."""
    if not space.one_op_per_edge:
        raise ConfigError(f"space {space.name} picks edges as well as ops and has far too many architectures to "
                          "score them all: give --archs N (N random ones) or --archs FILE")
    ops = len(space.ops)
    for index in range(ops ** space.num_edges):
        weights = torch.zeros(space.num_edges, ops)
        for edge in reversed(range(space.num_edges)):
            index, op = divmod(index, ops)
            weights[edge, op] = 1.0
        yield space.derive(weights)


def random_architectures(space: SearchSpace, n: int, seed: int) -> list[Any]:
    """``n`` distinct architectures drawn uniformly (the space's rule) from a generator seeded by ``seed``; the
    first ``m`` of ``n`` are those of ``m``, so that more can be scored later. More than the space holds: an error."""
    check_limit("queries", n, "--archs N")
    if space.one_op_per_edge and n > len(space.ops) ** space.num_edges:
        raise ConfigError(f"space {space.name} has {len(space.ops) ** space.num_edges:,} architectures, fewer than "
                          f"--archs {n:,}: give --archs all")
    generator = torch.Generator().manual_seed(seed)
    allowed = torch.ones(space.num_edges, len(space.ops), dtype=torch.bool)
    seen: dict[str, Any] = {}
    for _ in range(100 * n):
        if len(seen) == n:
            break
        arch = space.derive(space.random_weights(allowed, generator))
        seen.setdefault(str(arch), arch)
    return list(seen.values())


def read_architectures(space: SearchSpace, text: str, source: str) -> list[Any]:
    """The architectures listed in ``text`` (a file's contents): one per line (blank lines and ``#`` comments
    skipped), or a CSV whose header has an ``arch`` column; each once, in file order."""
    import csv
    import io

    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    if first.split(",")[0].strip() == "arch" or ",arch," in f",{first.strip()},":
        try:
            column = [row.get("arch") or "" for row in csv.DictReader(io.StringIO(text))]
        except csv.Error as err:
            raise ConfigError(f"{source} is not a CSV table ({err}): give one architecture per line") from None
        entries = [(i + 2, value) for i, value in enumerate(column)]
    else:
        entries = [(i + 1, line.split("#")[0].strip()) for i, line in enumerate(lines)]
    seen: dict[str, Any] = {}
    for line, value in entries:
        if not value.strip():
            continue
        try:
            arch = space.parse(value)
        except ArchitectureError as err:
            raise ConfigError(f"{source}, line {line}: {err}") from None
        seen.setdefault(str(arch), arch)
    if not seen:
        raise ConfigError(f"{source} lists no architecture: give one {space.name} architecture per line")
    return list(seen.values())


# ------------------------------------------------------------------------------------------------ against a benchmark
def proxy_correlations(rows: Sequence[Scores], table: Any, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per proxy and accuracy column of ``table`` (an NB201 results table): Spearman's rho and Kendall's tau-b
    of the proxy's scores with the column over the architectures of ``rows`` the table has a value for, and how
    many that is (``n``)."""
    from drnas.analysis.ranks import kendall, spearman

    found = [(row, table.rows.get(row.arch)) for row in rows]
    found = [(row, accuracies) for row, accuracies in found if accuracies is not None]
    names = list(dict.fromkeys(name for row, _ in found for name in row.scores))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out[name] = {}
        for column in columns:
            pairs = [(row.scores[name], acc[column]) for row, acc in found if name in row.scores and column in acc]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            out[name][column] = {"spearman": spearman(xs, ys), "kendall": kendall(xs, ys), "n": len(pairs)}
    return out


__all__ = ["DEFAULT_BATCH", "ProxyScorer", "Scores", "all_architectures", "evaluation_spec", "proxy_batch",
           "proxy_correlations", "random_architectures", "read_architectures"]
