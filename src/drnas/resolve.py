"""Turn what a user typed after ``--arch`` into an architecture of some space.

Accepted: a registered name (``DrNAS_cifar10``), a run directory (its ``architecture.json``), a file (JSON, or
text holding a genotype or an NB201 string), or the architecture text itself (``Genotype(...)``, ``|op~0|+...``,
or a JSON object). Nothing is evaluated.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .archs import architecture_names, get_architecture
from .spaces import ArchitectureError, DartsGenotype, NB201Arch


def architecture_from_json(data: Any) -> Any:
    """An architecture from parsed JSON: a run's architecture.json, or an architecture's own to_json()."""
    if isinstance(data, dict) and isinstance(data.get("architecture"), dict):
        data = data["architecture"]  # a run directory's architecture.json
    if not isinstance(data, dict):
        raise ArchitectureError("architecture JSON must be an object")
    space = data.get("space")
    if space == "nb201" or (space is None and "arch" in data):
        return NB201Arch.from_json(data)
    if space == "darts" or (space is None and "normal" in data):
        return DartsGenotype.from_json(data)
    raise ArchitectureError(f"architecture JSON names an unknown space {space!r}: expected nb201 or darts")


def parse_architecture_text(text: str) -> Any:
    text = text.strip()
    if text.startswith("{"):
        try:
            return architecture_from_json(json.loads(text))
        except json.JSONDecodeError as err:
            raise ArchitectureError(f"architecture JSON could not be parsed: {err}") from None
    if text.startswith("Genotype"):
        return DartsGenotype.parse(text)
    if text.startswith("|"):
        return NB201Arch.parse(text)
    raise ArchitectureError(f"{text[:60]!r} is not an architecture: give a name ({', '.join(architecture_names())}), "
                            "a run directory, a file, a Genotype(...) text or an NB201 string")


def resolve_architecture(spec: str) -> Any:
    """The architecture ``spec`` refers to (see the module docstring)."""
    if spec in architecture_names():
        return get_architecture(spec).arch
    path = Path(spec).expanduser()
    looks_like_text = spec.lstrip().startswith(("{", "|", "Genotype"))
    if not looks_like_text and path.is_dir():
        file = path / "architecture.json"
        if not file.is_file():
            raise ArchitectureError(f"{path} holds no architecture.json: is it a drnas run directory?")
        return architecture_from_json(json.loads(file.read_text()))
    if not looks_like_text and path.is_file():
        text = path.read_text()
        try:
            return parse_architecture_text(text)
        except ArchitectureError as err:
            raise ArchitectureError(f"{path}: {err}") from None
    if not looks_like_text and ("/" in spec or spec.endswith((".json", ".txt"))):
        raise ArchitectureError(f"architecture file or run directory {path} does not exist")
    return parse_architecture_text(spec)
