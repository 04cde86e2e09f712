"""A TensorBoard view of a run (``tensorboard=true``, ``--tensorboard``): its metrics as scalars, in ``RUN/tensorboard/``;
one of the run's metrics writers (:mod:`drnas.engine.writers`).

``metrics.jsonl`` stays the record of the run; the event files are derived from it. A writer starts by rewriting
them from the records the job holds (on a resume, those of its checkpoint), so an event file never holds an
epoch twice, nor one the run's history lost; then each record is added as it is appended to ``metrics.jsonl``.
Only the process that writes the run (rank 0) opens a writer. TensorBoard is an optional extra:
``pip install 'drnas[tensorboard]'``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

from drnas.engine.writers import MetricsWriter, flatten
from drnas.errors import ConfigError

INSTALL_HINT = "pip install 'drnas[tensorboard]'"


def require_tensorboard() -> None:
    """Raise a one-line :class:`ConfigError` saying how to install TensorBoard when it is missing (checked when a
    job starts, before any epoch)."""
    try:
        import tensorboard  # noqa: F401  (torch's writer needs the package itself)
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(f"tensorboard=true (--tensorboard) needs the tensorboard package, which is not installed: "
                          f"{INSTALL_HINT}") from None


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """Every number of a metrics record by tag, as :func:`drnas.engine.writers.flatten` names its columns
    (``nb201/cifar10_test_acc``, ``hessian/eigenvalue``); strings, booleans, nulls and the epoch (the step) are
    left out."""
    return {tag: float(value) for tag, value in flatten(record).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and tag != "epoch"}


class MetricsBoard(MetricsWriter):
    """The event files of one run directory, rewritten from ``records`` when opened."""

    def __init__(self, directory: str | Path, records: Sequence[Mapping[str, Any]]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        directory = Path(directory)
        old = sorted(directory.glob("events.out.tfevents.*")) if directory.is_dir() else []
        for path in old:
            path.unlink()
        # purge_step: a TensorBoard already showing the old files drops what it read from step 1 on
        self.writer = SummaryWriter(str(directory), purge_step=1 if old else None)
        for record in records:
            self.add_record(record, flush=False)
        self.writer.flush()

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        for record in records:
            self.add_record(record, flush=False)
        self.writer.flush()

    def write_images(self, images: Sequence[tuple[str, bytes]], step: int) -> None:
        for tag, png in images:
            self.add_png(tag, png, step)

    def add_record(self, record: Mapping[str, Any], flush: bool = True) -> None:
        """The scalars of one metrics record at its epoch."""
        step = int(record["epoch"])
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, step)
        if flush:
            self.writer.flush()

    def add_png(self, tag: str, png: bytes, step: int) -> None:
        """A PNG picture (e.g. a cell diagram) as an image at ``step``."""
        import numpy as np
        from matplotlib.image import imread

        pixels = np.asarray(imread(io.BytesIO(png), format="png"))
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        if pixels.dtype != np.uint8:  # matplotlib reads a PNG as floats in [0, 1]
            pixels = (pixels * 255).round().astype(np.uint8)
        self.writer.add_image(tag, pixels[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
