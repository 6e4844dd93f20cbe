"""Rendering: HTML and Markdown from one document model, jinja2 templates and matplotlib
figures. It reads the signed statement only (and, for figures whose numbers lie in evidence
files, those files when they are subjects of the statement with a matching sha256).

The generic entry, for any command that wants a report-styled page (e.g. `harness rank`):

    from harness.rendering import Banner, Cell, Document, Heading, Para, Table
    from harness.rendering import render_html, render_markdown

    doc = Document(
        "D07 ranking",
        (
            Heading("D07 ranking", 1),
            Banner("2 reports failed verification", "alert"),  # "alert" | "warn" | "ok"
            Table(
                ("Rank", "Applicant", "Verdict"),
                (("1", "ACME", "PASS"), ("2", "Other", Cell("FAIL", data_value='"FAIL"'))),
                status_col=2,  # HTML colours this column by PASS/FAIL/INCONCLUSIVE/...
                mono_cols=(0,),
                table_id="ranking",
            ),
        ),
    )
    page, text = render_html(doc), render_markdown(doc)

Blocks: Heading(text, level, html_only), Banner(text, kind), Para(text), Facts(pairs),
Table(header, rows of str or Cell, status_col, mono_cols, table_id), Code(text),
Figure(caption, svg, note) (figures and html_only headings are HTML only). Text is escaped
by the templates (autoescape); Markdown cells keep to one line with `|` escaped.

A run's reports: `report_document.build(statement, run_dir=None)` is the Document,
`rendered_files` both texts, `write_rendered` rewrites them atomically and
`check_rendered(run_dir, statement)` is what `harness verify` runs on them.
"""

from harness.rendering.check import check_rendered, rendered_files, write_rendered
from harness.rendering.document import (
    Banner,
    Block,
    Cell,
    Code,
    Document,
    Facts,
    Figure,
    Heading,
    Para,
    Table,
)
from harness.rendering.html import render_html
from harness.rendering.markdown import render_markdown
from harness.rendering.report_document import build as report_document

__all__ = [
    "Banner",
    "Block",
    "Cell",
    "Code",
    "Document",
    "Facts",
    "Figure",
    "Heading",
    "Para",
    "Table",
    "check_rendered",
    "render_html",
    "render_markdown",
    "rendered_files",
    "report_document",
    "write_rendered",
]
