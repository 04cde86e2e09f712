"""Device-side batching of in-memory datasets (:class:`DeviceLoader`), and the batch arithmetic it shares with the
JPEG-folder loader: batch bounds, the per-epoch generator, and each rank's share of a global batch.

Images stay uint8 in memory (NHWC on the host, NCHW on the training device); augmentation and normalisation run
batched on the device, with every random choice drawn from a CPU generator seeded by (seed, epoch), so that a run
can be resumed bit-exactly and the global RNG (used by the search for Dirichlet sampling) is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from drnas.data.info import DataError, DatasetInfo


def batch_bounds(n: int, batch_size: int, drop_last: bool) -> list[tuple[int, int]]:
    """[lo, hi) of each batch; with ``drop_last`` and ``n < batch_size`` one batch of all ``n``, never none."""
    if drop_last and n < batch_size:
        return [(0, n)]
    count = n // batch_size if drop_last else -(-n // batch_size)
    return [(i * batch_size, min(n, (i + 1) * batch_size)) for i in range(count)]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch's shuffle and batch-level draws, seeded by (seed, epoch)."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 1_000_003 + int(epoch)) % (1 << 63))
    return gen


def check_shard(rank: int, world_size: int) -> None:
    """Refuse a rank outside its world (a one-line :class:`DataError`)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(f"rank {rank} is not in a world of {world_size} processes")


def local_slice(batch: int, rank: int, world_size: int) -> slice:
    """The contiguous share of a global batch of ``batch`` items that belongs to ``rank``."""
    return slice(batch * rank // world_size, batch * (rank + 1) // world_size)


class DeviceLoader:
    """Batches from uint8 images kept as one tensor on the training device; augmentation runs there, batched.

    Moving the whole uint8 set to the device once avoids per-step host transfers and
    DataLoader workers; the small per-batch random parameters (permutation, crop
    offsets, flips, cutout centres) come from a CPU generator seeded by (seed, epoch),
    so ``epoch(e)`` is a pure function of (seed, e) and the global RNG is untouched.

    ``x`` is uint8 NHWC (an NCHW tensor is also accepted when its shape is unambiguous).
    With ``drop_last`` and fewer images than ``batch_size``, one batch of all images is
    still yielded, never zero batches. ``redraw``: every batch is drawn afresh from all images (the first of a
    new permutation, as a fresh ``iter()`` of a shuffling DataLoader gives), so batches may share images.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor | list[int],
        info: DatasetInfo,
        *,
        batch_size: int,
        device: torch.device | str,
        augment: bool,
        cutout: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        redraw: bool = False,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch size {batch_size} must be at least 1")
        check_shard(rank, world_size)
        if cutout < 0:
            raise DataError(f"cutout {cutout} must be >= 0 (0 disables it)")
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            x = x.copy()  # torch cannot wrap a read-only array without a warning
        xt = torch.as_tensor(x)
        if xt.dtype != torch.uint8 or xt.dim() != 4:
            raise DataError(f"images must be a uint8 4-D NHWC array, got {xt.dtype} {tuple(xt.shape)}")
        s, c = info.image_size, info.channels
        if tuple(xt.shape[1:]) == (s, s, c):
            xt = xt.permute(0, 3, 1, 2)
        elif tuple(xt.shape[1:]) != (c, s, s):
            raise DataError(
                f"images have shape {tuple(xt.shape)} but {info.name} is {s}x{s}x{c}; pass NHWC images of that size"
            )
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).reshape(-1)
        if len(yt) != len(xt):
            raise DataError(f"{len(xt)} images but {len(yt)} labels; they must match one to one")
        if len(xt) == 0:
            raise DataError("no images to batch; check the dataset and the train/arch split")
        self.device = torch.device(device)
        self.x = xt.contiguous().to(self.device)
        self.y = yt.to(dtype=torch.int64, device=self.device)
        self.info = info
        self.batch_size = int(batch_size)
        self.augment = bool(augment)
        self.cutout = int(cutout)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.redraw = bool(redraw)
        self.rank, self.world_size = rank, world_size
        self._mean = torch.tensor(info.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(info.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self._bounds())

    def _bounds(self) -> list[tuple[int, int]]:
        return batch_bounds(len(self.x), self.batch_size, self.drop_last)

    def epoch(self, epoch: int, *, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float32 normalised NCHW images, int64 labels) for one epoch.

        With ``world_size`` > 1 every rank gets its contiguous share of each global batch (augmented exactly
        as a single process would augment it), so the ranks see disjoint images that together make the epoch.

        ``start`` skips the first batches (for resuming mid-epoch) while drawing their
        random parameters, so the remaining batches match an uninterrupted epoch.
        """
        gen = epoch_generator(self.seed, epoch)
        n = len(self.x)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        s, p, aug = self.info.image_size, self.info.crop_padding, self.augment
        for i, (lo, hi) in enumerate(self._bounds()):
            idx = torch.randperm(n, generator=gen)[:hi - lo] if self.redraw else order[lo:hi]
            b = len(idx)
            # Draw every random parameter for this batch before deciding to skip it.
            if aug:
                dy = torch.randint(0, 2 * p + 1, (b,), generator=gen)
                dx = torch.randint(0, 2 * p + 1, (b,), generator=gen)
                flip = torch.randint(0, 2, (b,), generator=gen).bool() if self.info.hflip else None
                if self.cutout > 0:
                    cy = torch.randint(0, s, (b,), generator=gen)
                    cx = torch.randint(0, s, (b,), generator=gen)
            if i < start:
                continue
            if self.world_size > 1:  # this rank's share of the global batch, with the same augmentation
                part = local_slice(b, self.rank, self.world_size)
                if part.start == part.stop:
                    continue
                idx, dy, dx = idx[part], (dy[part] if aug else None), (dx[part] if aug else None)
                if aug and flip is not None:
                    flip = flip[part]
                if aug and self.cutout > 0:
                    cy, cx = cy[part], cx[part]
            idx_d = idx.to(self.device)
            xb = self.x[idx_d]
            yb = self.y[idx_d]
            if aug:
                xb = self._crop_flip(xb, dy, dx, flip)
            out = xb.float().div_(255.0).sub_(self._mean).div_(self._std)
            if aug and self.cutout > 0:
                out = self._cutout(out, cy, cx)
            yield out, yb

    def _crop_flip(
        self, xb: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor | None
    ) -> torch.Tensor:
        """Zero-pad, random-crop and optionally mirror a uint8 NCHW batch in one gather."""
        b, c, s, _ = xb.shape
        p = self.info.crop_padding
        padded = F.pad(xb, (p, p, p, p)) if p > 0 else xb
        ar = torch.arange(s)
        rows = dy[:, None] + ar[None, :]  # (b, s) row in the padded image
        cols = ar[None, :].expand(b, s)
        if flip is not None:  # mirror of the crop: column j reads crop column s-1-j
            cols = torch.where(flip[:, None], (s - 1) - cols, cols)
        cols = dx[:, None] + cols
        dev = xb.device
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(c, device=dev)[None, :, None, None]
        return padded[bi, ci, rows.to(dev)[:, None, :, None], cols.to(dev)[:, None, None, :]]

    def _cutout(self, out: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
        """Zero a cutout square per image after normalisation, as DeVries & Taylor's code does."""
        s, half = self.info.image_size, self.cutout // 2
        ar = torch.arange(s)
        in_y = (ar[None, :] >= (cy - half).clamp(0, s)[:, None]) & (ar[None, :] < (cy + half).clamp(0, s)[:, None])
        in_x = (ar[None, :] >= (cx - half).clamp(0, s)[:, None]) & (ar[None, :] < (cx + half).clamp(0, s)[:, None])
        mask = (in_y[:, :, None] & in_x[:, None, :]).to(out.device)
        return out.masked_fill_(mask[:, None], 0.0)
