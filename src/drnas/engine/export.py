"""Export of a trained network for inference: ``torch.export`` (.pt2), TorchScript (.pt) or ONNX (.onnx).

The exported network leaves out the auxiliary head, which only serves training, and runs in the standard
memory layout; the file is written atomically.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path
from typing import Any, Callable, ContextManager

import torch

from drnas.data.info import DatasetInfo
from drnas.errors import ConfigError, DrnasError, shown


class ExportError(DrnasError, RuntimeError):
    """An export that cannot be done here (e.g. a missing optional package)."""


#: export formats by file suffix (``export_model``'s ``fmt`` names them when the suffix is another)
EXPORT_SUFFIXES = {".pt2": "torch.export", ".pt": "torchscript", ".onnx": "onnx"}
EXPORT_FORMATS = ("torch.export", "torchscript", "onnx")


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """The format ``export_model`` writes ``path`` in: ``fmt`` if given, else by suffix; one-line errors."""
    if fmt is not None:
        if fmt not in EXPORT_FORMATS:
            raise ConfigError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {shown(fmt)}")
        return fmt
    suffix = Path(path).suffix
    if suffix not in EXPORT_SUFFIXES:
        raise ConfigError(f"cannot tell the export format of {shown(str(path))}: end the path in .pt2 (torch.export), "
                          ".pt (TorchScript) or .onnx (ONNX)")
    return EXPORT_SUFFIXES[suffix]


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``model`` without its auxiliary head (every submodule named ``*auxiliary*``, which
    only adds a training loss), in the standard memory layout; the trained model is left as it is."""
    net = copy.deepcopy(model).eval()
    for parent in list(net.modules()):
        for name, _ in list(parent.named_children()):
            if "auxiliary" in name:
                setattr(parent, name, None)
    return net.to(memory_format=torch.contiguous_format)


def export_model(model: torch.nn.Module, info: DatasetInfo, path: str | Path, fmt: str | None = None,
                 plain: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> Path:
    """Write ``model`` for inference (logits of normalised images; any batch size): ``torch.export`` saves an
    ExportedProgram (``torch.export.load(path).module()``), ``torchscript`` a traced module (``torch.jit.load``),
    ``onnx`` an ONNX graph (needs ``drnas[export]``). The auxiliary head is left out (:func:`inference_copy`);
    the graph is traced inside ``plain()`` (a job's ``runner.plain``: standard nodes, no speed path)."""
    path = Path(path)
    fmt = export_format(path, fmt)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ExportError("ONNX export needs the onnx package: pip install 'drnas[export]'") from None
    net = inference_copy(model)
    device = next(net.parameters()).device
    shape = (info.channels, info.image_size, info.image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings(), plain():  # plain ops: a graph of standard nodes
            warnings.simplefilter("ignore")  # torch.jit and the TorchScript-based ONNX exporter warn about deprecation
            if fmt == "torch.export":
                # batch 2, not 1: torch.export specialises dimensions of size 0 and 1 to constants
                batch = torch.export.Dim("batch", min=1)
                program = torch.export.export(net, (torch.zeros(2, *shape, device=device),),
                                              dynamic_shapes=({0: batch},))
                with open(tmp, "wb") as file:
                    torch.export.save(program, file)
            elif fmt == "torchscript":
                torch.jit.trace(net, torch.zeros(1, *shape, device=device)).save(str(tmp))
            else:
                torch.onnx.export(net, (torch.zeros(1, *shape, device=device),), str(tmp), dynamo=False,
                                  input_names=["images"], output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
