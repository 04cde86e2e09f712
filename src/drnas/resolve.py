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
from .spaces import ArchitectureError, get_space, space_names


def architecture_from_json(data: Any) -> Any:
    """An architecture from parsed JSON: a run's architecture.json, or an architecture's own to_json()."""
    if isinstance(data, dict) and isinstance(data.get("architecture"), dict):
        data = data["architecture"]  # a run directory's architecture.json
    if not isinstance(data, dict):
        raise ArchitectureError("architecture JSON must be an object")
    name = data.get("space")
    if name is None:  # older files: the space by the key its JSON always has
        name = next((n for n in space_names() if get_space(n).json_key in data), None)
    if name not in space_names():
        raise ArchitectureError(f"architecture JSON names an unknown space {name!r}: expected "
                                f"{' or '.join(space_names())}")
    return get_space(name).from_json(data)


def parse_architecture_text(text: str) -> Any:
    text = text.strip()
    if text.startswith("{"):
        try:
            return architecture_from_json(json.loads(text))
        except json.JSONDecodeError as err:
            raise ArchitectureError(f"architecture JSON could not be parsed: {err}") from None
    for name in space_names():
        space = get_space(name)
        if text.startswith(space.text_prefix):
            return space.parse(text)
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
