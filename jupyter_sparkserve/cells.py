"""The cells bundle: ready-to-run code cells that a magic hands to the notebook front end.

`%sfdeploy` and `%sfsnippets` emit one `display_data` output whose `data` holds, under the
MIME type `application/vnd.sparkserve.cells+json` (`CELLS_MIME_TYPE`), this JSON object:

    {
      "version": 1,
      "id": "3f2a9c1b0d4e-5b7c91aa",
      "summary": "Score iris:1 at http://127.0.0.1:40123 (deployment 3f2a9c1b0d4e): 2 cells.",
      "cells": [
        {
          "cell_type": "code",
          "source": "# Score iris:1 at http://127.0.0.1:40123\\nimport requests\\n...",
          "metadata": {"sparkserve": {"bundle": "3f2a9c1b0d4e-5b7c91aa",
                                      "title": "Score iris:1 at http://127.0.0.1:40123"}}
        },
        {
          "cell_type": "code",
          "source": "%%bash\\n# Score iris:1 with curl\\ncurl -sS -X POST ... \\\\\\n  ...",
          "metadata": {"sparkserve": {"bundle": "3f2a9c1b0d4e-5b7c91aa",
                                      "title": "Score iris:1 with curl"}}
        }
      ]
    }

- `version` (int): the format, 1. A renderer that does not know the version shows the
  summary and inserts nothing.
- `id` (string): unique per emission, never reused, not even when the same magic runs again
  (that emission has a new id, and its cells are meant to be inserted too).
- `summary` (string): one line of plain text saying what the cells do; what the renderer
  shows in the output area.
- `cells` (list, at least one): nbformat 4 code cells without `outputs` and
  `execution_count` (the renderer adds `[]` and `null`). `source` is one string with `\\n`
  line ends; `metadata` is copied into the new cell as it is, so every inserted cell carries
  `metadata.sparkserve.bundle` = the bundle's id (and a human `title`).

The renderer's contract: insert the cells, in order, directly below the cell whose output holds
the bundle, at most once per `id`. Re-rendering the output, reloading the page or reopening
the saved notebook must not insert them again: before inserting, look for a cell of the notebook
whose `metadata.sparkserve.bundle` equals the id, and record the id as inserted (for instance in
the producing cell's metadata, `sparkserve.inserted_bundles`) so that cells the user deleted do
not come back either.

Every cell says what it does with a one-line comment first, or right after the cell magic
that must come first: a `%%bash` cell's is the snippet's title, a `%%writefile FILE` cell's is
the first line of the file it writes (the Kubernetes manifests start by saying what they
are). A shell snippet becomes a `%%bash` cell whose body is the command exactly as written:
what a terminal takes, so the cell's text pastes into one as it is (the body stays JSON,
`$SPARKSERVE_ENDPOINT_TOKEN` is the shell's). Only `combined_cell`, which merges the snippets
into one cell, writes a shell command behind IPython's `!` instead, escaped for it (see
`bang_command`).

Beside the bundle the output carries `text/plain` and `text/markdown` with the summary and
every cell's source: what a front end without the renderer (classic Notebook, nbconvert, a
notebook viewer) shows, so the code can still be copied from there.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from .snippets import Snippet

CELLS_MIME_TYPE = "application/vnd.sparkserve.cells+json"
BUNDLE_VERSION = 1
_DOLLAR_NAME = re.compile(r"\$(?=[\w.])")  # what IPython reads as the start of a `$name`


def cell_source(snippet: Snippet) -> str:
    """The source of the code cell a snippet becomes in an IPython notebook: its title as a
    comment, then the code (a shell command as a `%%bash` cell, as written)."""
    if snippet.language == "shell":
        return f"%%bash\n{comment(snippet)}\n{snippet.code}"
    if snippet.code.startswith("%%"):  # a cell magic comes first: its code has the comment
        return snippet.code
    return f"{comment(snippet)}\n{snippet.code}"


def comment(snippet: Snippet) -> str:
    """The snippet's title as a one-line comment (python's and the shell's alike)."""
    return "# " + " ".join(snippet.title.split())


def bang_command(command: str) -> str:
    """`command` written for IPython's `!`, so that the shell gets it exactly as it is.

    IPython formats a `!` command with its DollarFormatter: `{{`/`}}` stand for braces, and
    `$NAME` is a Python variable unless an odd number of single quotes follows it before the
    next brace, which IPython takes for "inside single quotes" (and there `$$` stays `$$`). So
    braces are doubled, and a `$` before a name is doubled exactly where IPython expands it.
    """
    parts = re.split(r"([{}])", command)  # text, brace, text, ..., text
    return "".join(
        _dollars(part) if index % 2 == 0 else part * 2 for index, part in enumerate(parts)
    )


def _dollars(piece: str) -> str:
    def escape(match: re.Match[str]) -> str:
        return "$$" if piece.count("'", match.start()) % 2 == 0 else "$"

    return _DOLLAR_NAME.sub(escape, piece)


def cells_bundle(snippets: Sequence[Snippet], *, summary: str, key: str) -> dict[str, Any]:
    """The bundle for `snippets`; its id starts with `key` (a deployment id, a model ref)
    followed by a random part, unique per call."""
    if not snippets:
        raise ValueError("A cells bundle needs at least one snippet.")
    bundle_id = f"{key}-{uuid.uuid4().hex[:8]}"
    return {
        "version": BUNDLE_VERSION,
        "id": bundle_id,
        "summary": summary,
        "cells": [
            {
                "cell_type": "code",
                "source": cell_source(snippet),
                "metadata": {"sparkserve": {"bundle": bundle_id, "title": snippet.title}},
            }
            for snippet in snippets
        ],
    }


def display_data(bundle: dict[str, Any]) -> dict[str, Any]:
    """The output's MIME bundle: the cells, and text fallbacks for front ends without the
    renderer."""
    sources = [cell["source"] for cell in bundle["cells"]]
    text = "\n\n".join([bundle["summary"], *sources])
    markdown = "\n\n".join([f"**{bundle['summary']}**", *map(_fenced, sources)])
    return {CELLS_MIME_TYPE: bundle, "text/plain": text, "text/markdown": markdown}


def combined_cell(snippets: Sequence[Snippet]) -> str:
    """All snippets as one cell (for `set_next_input`), each under its title as a comment; a
    `%%bash` cell cannot share a cell, so shell commands go behind IPython's `!` here."""

    def part(snippet: Snippet) -> str:
        if snippet.language == "shell":
            return f"{comment(snippet)}\n!{bang_command(snippet.code)}"
        return cell_source(snippet)

    return "\n\n".join(part(snippet) for snippet in snippets)


def plain_text(snippets: Sequence[Snippet]) -> str:
    """The snippets as written, for a terminal: python to paste into IPython, shell commands
    to paste into a shell."""
    return "\n\n".join(f"# {snippet.title}\n{snippet.code}" for snippet in snippets)


def _fenced(source: str) -> str:
    # A fence longer than any run of backticks in the source cannot end inside it.
    longest = max((len(run) for run in re.findall(r"`+", source)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}python\n{source}\n{fence}"
