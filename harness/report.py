"""Rendering a signed statement as Markdown and HTML (placeholder, replaced below)."""

from __future__ import annotations

from typing import Any


def render_markdown(statement: dict[str, Any]) -> str:
    return "# report\n"


def render_html(statement: dict[str, Any]) -> str:
    return "<html></html>\n"
