"""A Document as one self-contained HTML file: inline CSS and SVG, no scripts, no external
references, a generator meta naming the harness, jinja2 and matplotlib versions."""

from __future__ import annotations

from harness.rendering.document import Document
from harness.rendering.templating import environment, generator


def render_html(doc: Document) -> str:
    template = environment().get_template("report.html.j2")
    return template.render(doc=doc, generator=generator())
