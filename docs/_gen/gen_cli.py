"""The CLI reference page, generated from the ``retdm-keras`` argument parsers.

Nothing here is written by hand: every command, option, default and help text comes from
``retdm_keras.cli.build_parser()``, so the page cannot drift from ``retdm-keras --help``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

PAGE = "reference/cli.md"


def build_parser() -> argparse.ArgumentParser:
    """``retdm_keras.cli.build_parser()``, imported the way the ``retdm-keras`` script does."""
    previous = os.environ.get("RETDM_KERAS_LAZY_IMPORT")
    os.environ["RETDM_KERAS_LAZY_IMPORT"] = "1"  # no effect when the package is loaded already
    try:
        from retdm_keras.cli import build_parser as build
    finally:
        if previous is None:
            del os.environ["RETDM_KERAS_LAZY_IMPORT"]
        else:
            os.environ["RETDM_KERAS_LAZY_IMPORT"] = previous
    return build()


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, one-line help, parser)`` of every command, nested ones (``zoo list``) too."""
    sub = _subparsers(parser)
    if sub is None:
        return
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    for name, child in sub.choices.items():
        full = f"{prefix}{name}"
        if _subparsers(child) is None:
            yield full, helps.get(name, ""), child
        else:
            yield full, helps.get(name, ""), child
            yield from commands(child, prefix=full + " ")


_ESCAPES = {"|": "\\|", "*": "\\*", "<": "&lt;", ">": "&gt;"}


def _cell(text: str) -> str:
    """Plain text for a Markdown table cell: one line, Markdown's special characters escaped."""
    return "".join(_ESCAPES.get(c, c) for c in " ".join(text.split()))


def _sentence(text: str) -> str:
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%(" in text:  # argparse's own expansion of %(default)s and friends
        params = dict(vars(action), prog=prog)
        params = {k: getattr(v, "__name__", v) for k, v in params.items()}
        if params.get("choices") is not None:
            params["choices"] = ", ".join(map(str, params["choices"]))
        text = text % params
    return text


def _names(action: argparse.Action) -> str:
    if not action.option_strings:  # a positional argument
        return f"`{action.metavar or action.dest}`"
    if isinstance(action, argparse.BooleanOptionalAction):
        return " / ".join(f"`{s}`" for s in action.option_strings)
    if action.nargs == 0:
        return ", ".join(f"`{s}`" for s in action.option_strings)
    if action.metavar is not None:
        metavar = action.metavar
        value = " ".join(metavar) if isinstance(metavar, tuple) else metavar
    elif action.choices is not None:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        value = action.dest.upper()
        if action.nargs not in (None, 1):
            value = " ".join([value] * action.nargs) if isinstance(action.nargs, int) else value
    return ", ".join(f"`{s} {value}`" for s in action.option_strings)


def _default(action: argparse.Action) -> str:
    default = action.default
    if default is argparse.SUPPRESS or default is None:
        return ""
    if isinstance(action, argparse._StoreTrueAction):
        return "off"
    if isinstance(action, argparse.BooleanOptionalAction):
        return "on" if default else "off"
    if isinstance(default, list | tuple):
        return "`" + " ".join(map(str, default)) + "`"
    return f"`{default}`"


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
            and a.help is not argparse.SUPPRESS
        ]
        if not actions:
            continue
        title = group.title or "options"
        lines += [f"**{title[0].upper() + title[1:]}**", ""]
        lines += ["| option | default | what it does |", "|---|---|---|"]
        for action in actions:
            help_text = _sentence(_cell(_help(action, parser.prog)))
            if action.choices is not None and action.metavar is not None:
                help_text += " One of: " + ", ".join(f"`{c}`" for c in action.choices) + "."
            if action.required and action.option_strings:
                help_text += " **Required.**"
            lines.append(f"| {_names(action)} | {_default(action)} | {help_text} |")
        lines.append("")
    return lines


def render() -> str:
    """The whole page."""
    parser = build_parser()
    prog = parser.prog
    entries = list(commands(parser))
    lines = [
        "# Command-line reference",
        "",
        "<!-- generated from retdm_keras.cli.build_parser() by docs/_gen/gen_cli.py; "
        "do not edit -->",
        "",
        f"{parser.description} `{prog} COMMAND --help` prints the same text as below.",
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
        _options_intro(parser),
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name, help_text, _ in entries:
        lines.append(f"| [`{prog} {name}`](#{_anchor(prog, name)}) | {_cell(help_text)} |")
    lines.append("")
    for name, help_text, child in entries:
        lines += [f"## {prog} {name}", ""]
        if child.description:
            lines += [_cell(child.description), ""]
        elif help_text:
            lines += [_cell(help_text[0].upper() + help_text[1:]) + ".", ""]
        lines += ["```text", child.format_usage().strip(), "```", ""]
        lines += _options_table(child)
    return "\n".join(lines).rstrip() + "\n"


def _options_intro(parser: argparse.ArgumentParser) -> str:
    top = [
        a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
    ]
    parts = [f"{_names(a)}: {_cell(_help(a, parser.prog))}" for a in top]
    return "Options before the command: " + "; ".join(parts) + "."


def _anchor(prog: str, name: str) -> str:
    """The heading id the Markdown ``toc`` extension gives ``## <prog> <name>``."""
    return f"{prog} {name}".replace(" ", "-")
