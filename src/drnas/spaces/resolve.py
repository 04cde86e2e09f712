"""Turn what a user typed after ``--arch`` into an architecture of some space.

Accepted: a registered name (``DrNAS_cifar10``), a run directory (its ``architecture.json``), a file (JSON, or
text holding a genotype or an NB201 string), or the architecture text itself (``Genotype(...)``, ``|op~0|+...``,
or a JSON object). Nothing is evaluated.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drnas.config.limits import read_bounded
from drnas.errors import DrnasError, shown
from drnas.registry import plugins
from drnas.spaces import ArchitectureError, get_space, space_names
from drnas.spaces.archs import architecture_names, get_architecture


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


#: the largest architecture text or file read (a run's architecture.json with its statistics is a few KB)
MAX_BYTES = 1 << 20


def parse_architecture_text(text: str) -> Any:
    text = text.strip()
    if len(text) > MAX_BYTES:
        raise ArchitectureError(f"architecture text is {len(text)} characters long; an architecture is far shorter")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:  # malformed, nested too deep, numbers too long
            raise ArchitectureError(f"architecture JSON could not be parsed ({type(err).__name__}: "
                                    f"{str(err)[:80]})") from None
        return architecture_from_json(data)
    for name in space_names():
        space = get_space(name)
        if text.startswith(space.text_prefix):
            return space.parse(text)
    raise ArchitectureError(f"{shown(text)} is not an architecture: give a name ({', '.join(architecture_names())}), "
                            "a run directory, a file, a Genotype(...) text or an NB201 string")


def resolve_architecture(spec: str) -> Any:
    """The architecture ``spec`` refers to (see the module docstring)."""
    if spec in architecture_names():
        return get_architecture(spec).arch
    looks_like_text = spec.lstrip().startswith(tuple(["{"] + [get_space(n).text_prefix for n in space_names()]))
    kind = "text" if looks_like_text else _path_kind(spec)
    if kind == "dir":
        path = Path(spec).expanduser()
        file = path / "architecture.json"
        if not file.is_file():
            raise ArchitectureError(f"{shown(str(path))} holds no architecture.json: is it a drnas run directory?")
        _require_run_plugins(path)
        return _from_file(file)
    if kind == "file":
        return _from_file(Path(spec).expanduser())
    if not looks_like_text and ("/" in spec or spec.endswith((".json", ".txt"))):
        raise ArchitectureError(f"architecture file or run directory {shown(spec)} does not exist")
    return parse_architecture_text(spec)


def _require_run_plugins(run: Path) -> None:
    """Import the plugins a run directory's config.json records (its space may be one), before its architecture is
    read; a config.json that cannot be read is left to what reads the run's config."""
    try:
        recorded = json.loads(read_bounded(run / "config.json")).get("plugins")
    except (OSError, ValueError, RecursionError, AttributeError, DrnasError):
        return
    plugins.require(recorded, run)


def _path_kind(spec: str) -> str:
    """``dir``, ``file`` or ``none``: what ``spec`` names on disk (a name too long for a path, or a ``~user``
    that does not exist, names nothing)."""
    try:
        path = Path(spec).expanduser()
        return "dir" if path.is_dir() else "file" if path.is_file() else "none"
    except (OSError, RuntimeError, ValueError):
        return "none"


def _from_file(path: Path) -> Any:
    """An architecture from a file (JSON, a genotype or an NB201 string), read only if it is small."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ArchitectureError(f"{shown(str(path))} is {path.stat().st_size} bytes; an architecture file is a few KB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ArchitectureError(f"{shown(str(path))} could not be read ({type(err).__name__})") from None
    try:
        return parse_architecture_text(text)
    except ArchitectureError as err:
        raise ArchitectureError(f"{shown(str(path))}: {err}") from None
