"""`harness rank --format md|html`: the selection tables as a Document, rendered by the same
templates as the reports (harness.rendering)."""

from __future__ import annotations

from harness.rendering import (
    Banner,
    Block,
    Document,
    Heading,
    Para,
    Table,
    render_html,
    render_markdown,
)
from harness.selection.output import UNOFFICIAL, table_rows, title
from harness.selection.ranking import RankResult, label

TITLE = "Selection: ranking of the signed reports"


def build(result: RankResult) -> Document:
    blocks: list[Block] = [Heading(TITLE, 1)]
    if not result.official:
        blocks.append(Banner(UNOFFICIAL, "alert"))
    else:
        blocks.append(
            Banner(
                f"Official: every ranked report verified with a trusted key "
                f"({result.threshold} trusted signature(s) required)",
                "ok",
            )
        )
    blocks += [Para(f"Note: {n}") for n in result.notes]
    for table in result.tables:
        header, rows = table_rows(table)
        blocks.append(Heading(f"{table.direction} {table.suite_id} {table.suite_version}", 2))
        blocks.append(Para(title(table)))
        cells = tuple(tuple(row) for row in rows)
        blocks.append(
            Table(
                tuple(header),
                cells,
                mono_cols=(0,),
                table_id=f"ranking-{table.suite_id}",
            )
        )
        for note in table.notes:
            blocks.append(Banner(note, "warn"))
    if result.apart:
        blocks.append(Heading("Listed apart (not ranked)", 2))
        blocks.append(
            Table(
                ("report", "applicant / product", "suite", "reason"),
                tuple(
                    (a.record.path, label(a.record),
                     f"{a.record.suite_id} {a.record.suite_version}", a.reason)
                    for a in result.apart
                ),
                mono_cols=(0,),
                table_id="listed-apart",
            )
        )
    if result.unusable:
        blocks.append(Heading("Excluded (do not verify)", 2))
        blocks.append(
            Table(
                ("report", "reason"),
                tuple((u.path, u.reason) for u in result.unusable),
                mono_cols=(0,),
                table_id="excluded",
            )
        )
    if not result.tables:
        blocks.append(Para("Nothing ranked."))
    return Document(TITLE, tuple(blocks))


def render(result: RankResult, fmt: str) -> str:
    document = build(result)
    return render_html(document) if fmt == "html" else render_markdown(document)
