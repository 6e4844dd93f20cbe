"""A Document as Markdown, for review and diffs: figures (and headings marked html_only)
are left out, the tables carry their numbers; table cells are kept on one line with pipes
escaped."""

from __future__ import annotations

from harness.rendering.document import Document, Figure, Heading
from harness.rendering.templating import environment


def render_markdown(doc: Document) -> str:
    blocks = [
        b
        for b in doc.blocks
        if not isinstance(b, Figure) and not (isinstance(b, Heading) and b.html_only)
    ]
    template = environment().get_template("report.md.j2")
    out = template.render(doc=Document(doc.title, tuple(blocks), doc.meta))
    return out.rstrip("\n") + "\n"
