"""A griffe extension (``extensions:`` of the mkdocstrings Python handler) that lets the
package's docstrings render as Markdown without changing them.

* A doctest that starts at the left margin of a docstring (``>>> ...``, its ``...`` lines and
  the expected output, up to a blank line) becomes a fenced ``pycon`` block; in Markdown it
  would be a nest of block quotes. Doctests inside a Google-style section (indented under
  ``Examples:``) are griffe's own business and are left alone.
* Sphinx roles (``:func:`name```, ``:class:`~a.b.C```) become inline code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj|const):`~?([^`]+)`")


def fence_doctests(text: str) -> str:
    """``text`` with every doctest that starts at the left margin in a ``pycon`` fence."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += ["```pycon", *block, "```"]
    return "\n".join(out)


def plain_roles(text: str) -> str:
    """Sphinx cross-reference roles as inline code."""
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class MarkdownDocstrings(griffe.Extension):
    """Rewrites each docstring with :func:`fence_doctests` and :func:`plain_roles`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(fence_doctests(obj.docstring.value))
