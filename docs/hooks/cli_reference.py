"""MkDocs hook: the CLI reference page (``cli.md``), written at build time from
``drnas.cli.parser.build_parser()``.

The page is generated, never stored, so it cannot drift from the parser: every subcommand (nested ones
included) with its usage line, description and a table of its arguments. ``python docs/hooks/cli_reference.py``
prints the same Markdown.
"""
from __future__ import annotations

import argparse
import html
import re

#: where the generated page sits in the site (mkdocs.yml's nav names it)
PAGE = "cli.md"
#: width of the usage lines, independent of the terminal that runs the build
WIDTH = 100

_MARKDOWN_SPECIAL = re.compile(r"([\\*_\[\]|])")


def _text(text: str) -> str:
    """Help text for a table cell: `code` spans kept, everything else escaped (HTML, Markdown, pipes)."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: treat it all as plain text
        parts = [text]
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append("`" + part.replace("|", "\\|") + "`")
        else:
            out.append(_MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(part, quote=False)))
    return "".join(out)


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(parser.prog, width=WIDTH)


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = _formatter(parser)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand, in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = _formatter(parser)
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            value = (formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
                     if action.nargs != 0 else "")
        else:
            name, value = formatter._get_default_metavar_for_positional(action), ""
        help_text = formatter._expand_help(action) if action.help else ""
        notes = []
        if action.required and action.option_strings:
            notes.append("required")
        if action.option_strings and action.nargs != 0 and action.default not in (None, [], argparse.SUPPRESS):
            notes.append(f"default: `{action.default}`")
        if isinstance(action, argparse._AppendAction) and "repeatable" not in help_text:
            notes.append("repeatable")
        cell = _text(help_text) + (f" ({'; '.join(notes)})" if notes else "")
        rows.append(f"| `{name}` | {'`' + value + '`' if value else ''} | {cell} |")
    return rows


def _section(parser: argparse.ArgumentParser, name: str, summary: str, level: int) -> list[str]:
    lines = [f"{'#' * level} `{name}`", ""]
    if summary:
        lines += [_text(summary[:1].upper() + summary[1:]) + ".", ""]
    if parser.description and parser.description != summary:
        lines += [_text(parser.description), ""]
    lines += ["```text", _usage(parser), "```", ""]
    rows = _argument_rows(parser)
    if rows:
        lines += ["| argument | value | meaning |", "| --- | --- | --- |", *rows, ""]
    for sub_name, sub_summary, sub in _subcommands(parser):
        lines += _section(sub, f"{name} {sub_name}", sub_summary, level + 1)
    return lines


def cli_markdown(parser: argparse.ArgumentParser) -> str:
    """The reference page for ``parser`` and all its subcommands."""
    commands = ", ".join(f"[`{name}`](#{parser.prog}-{name})" for name, _, _ in _subcommands(parser))
    lines = ["# CLI reference", "",
             f"Generated from the argument parser when the documentation is built; `{parser.prog} COMMAND -h` "
             "prints the same help in a terminal (`-h` works on every command). Every `drnas train --set` / `drnas search --set` field is a "
             "field of `TrainConfig` / `SearchConfig` ([Python API](api/index.md)).", "",
             f"Commands: {commands}.", ""]
    top = _section(parser, parser.prog, "", 2)
    return "\n".join(lines + top)


def drnas_parser() -> argparse.ArgumentParser:
    from drnas.cli.parser import build_parser

    return build_parser()


def on_files(files, config):  # noqa: ANN001, ANN201 - MkDocs hook signature
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=cli_markdown(drnas_parser())))
    return files


if __name__ == "__main__":
    print(cli_markdown(drnas_parser()))
