"""Griffe extension: the docstrings' reStructuredText roles as Markdown for mkdocstrings.

The source writes ``:class:`Search```, ``:func:`drnas.fast.fusion.install``` and friends (readable in ``help()``
and editors); on the site they become code text, a ``::``-introduced literal block becomes a fenced code block
and a ``>>>`` doctest block a fenced Python session. The source files are left as they are.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj|ref):`~?([^`]+)`")


def _literal_blocks(text: str) -> str:
    """``Intro::`` followed by an indented block: the block fenced as code (the ``::`` becomes ``:``)."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            indent = len(lines[j]) - len(lines[j].lstrip()) if j < len(lines) else 0
            base = len(line) - len(line.lstrip())
            if j < len(lines) and indent > base:
                stripped = line.rstrip()[:-1]
                out += [stripped if stripped.strip() != ":" else "", "", "```"]
                k = j
                while k < len(lines) and (not lines[k].strip() or len(lines[k]) - len(lines[k].lstrip()) >= indent):
                    k += 1
                while k > j and not lines[k - 1].strip():
                    k -= 1
                out += [ln[indent:] for ln in lines[j:k]] + ["```"]
                i = k
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _doctest_blocks(text: str) -> str:
    """A paragraph that starts with ``>>>`` (a doctest block): fenced as a Python session, directives dropped."""
    paragraphs = text.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        if paragraph.lstrip().startswith(">>>"):
            lines = [re.sub(r"\s+# doctest:.*$", "", line.strip()) for line in paragraph.strip().split("\n")]
            paragraphs[i] = "\n".join(["```pycon", *lines, "```"])
    return "\n\n".join(paragraphs)


def markdown(text: str) -> str:
    return _doctest_blocks(_literal_blocks(_ROLE.sub(r"`\1`", text)))


class RstRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        self.on_object(obj=pkg, loader=loader)  # on_object is called for every object but the package itself
