"""Rendering a signed statement as Markdown and HTML (compatibility module).

The document model, templates and figures live in `harness.rendering`; this module keeps
the two calls the rest of the harness makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.rendering import html as _html
from harness.rendering import markdown as _markdown
from harness.rendering.fmt import md_cell
from harness.rendering.report_document import build, size_bars

__all__ = ["build", "md_cell", "render_html", "render_markdown", "size_bars"]


def render_markdown(statement: dict[str, Any]) -> str:
    """report.md: a function of the statement alone."""
    return _markdown.render_markdown(build(statement))


def render_html(statement: dict[str, Any], run_dir: Path | None = None) -> str:
    """report.html; with `run_dir` (the run directory holding the statement's evidence)
    figures whose numbers lie in evidence files are drawn from them."""
    return _html.render_html(build(statement, run_dir))
