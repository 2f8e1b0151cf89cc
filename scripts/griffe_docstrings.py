"""A griffe extension for the API pages (mkdocs.yml loads it): the docstrings as the code writes them, rendered.

- Doctest blocks (``>>>`` lines and their output) become ``pycon`` code blocks; left as they are, Markdown reads
  each ``>`` as a blockquote and runs the lines together.
- Sphinx roles (``:meth:`X```, ``:class:`X```, ``:func:`X```, ...) become inline code ``X`` (a leading ``~``
  dropped), so no raw role text reaches the page.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:meth|class|func|mod|attr|data|obj|exc|ref):`~?([^`]+)`")


def convert(text: str) -> str:
    """``text`` with its doctest blocks fenced and its Sphinx roles as inline code."""
    out, block, indent = [], [], ""
    for line in ROLE.sub(r"`\1`", text).splitlines() + [""]:
        stripped = line.lstrip()
        if stripped.startswith(">>>") or (block and stripped and not stripped.startswith("```")):
            if not block:
                indent = line[: len(line) - len(stripped)]
            block.append(line[len(indent) :] if line.startswith(indent) else stripped)
            continue
        if block:
            out += [f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```"]
            block = []
        out.append(line)
    return "\n".join(out[:-1])


class DoctestBlocks(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
