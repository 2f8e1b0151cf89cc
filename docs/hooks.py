"""MkDocs hook: the command-line page from the argparse parser itself, so it cannot drift from the code."""

from __future__ import annotations

import argparse

MARK = "<!-- qklstm-cli -->"


def _sections(parser: argparse.ArgumentParser, name: str, depth: int = 2) -> list[str]:
    """``qklstm NAME --help`` and, below it, every sub-command's (argparse keeps them in a private action
    class; there is no public accessor)."""
    out = [f"{'#' * depth} {name}\n\n```text\n{parser.format_help().rstrip()}\n```\n"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out += _sections(sub, f"{name} {sub_name}", min(depth + 1, 4))
    return out


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARK not in markdown:
        return markdown
    from qklstm.cli import build_parser

    return markdown.replace(MARK, "\n".join(_sections(build_parser(), "qklstm")))
