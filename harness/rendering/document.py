"""The document model: a title and a list of blocks, rendered to HTML or Markdown.

Every block is a frozen dataclass whose `macro` names the template macro that prints it.
Nothing here knows about statements: `report_document` builds a report from one, and other
commands (`harness rank`) build documents of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Heading:
    macro: ClassVar[str] = "heading"
    text: str
    level: int = 2
    html_only: bool = False  # Markdown leaves it out (e.g. the heading of a figure section)


@dataclass(frozen=True)
class Banner:
    macro: ClassVar[str] = "banner"
    text: str
    kind: str  # "alert", "warn" or "ok": the HTML colour


@dataclass(frozen=True)
class Para:
    macro: ClassVar[str] = "para"
    text: str


@dataclass(frozen=True)
class Facts:
    macro: ClassVar[str] = "facts"
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Cell:
    """A table cell whose exact value travels with it: HTML writes `data-value` (the JSON
    of the number, e.g. the float's repr), so a reader or a test need not parse the text."""

    text: str
    data_value: str | None = None


@dataclass(frozen=True)
class Table:
    macro: ClassVar[str] = "table"
    header: tuple[str, ...]
    rows: tuple[tuple[str | Cell, ...], ...]
    status_col: int | None = None  # HTML colours this column by verdict status
    mono_cols: tuple[int, ...] = ()  # HTML sets these columns in a monospace font
    table_id: str = ""  # HTML id attribute ("" for none)

    def cell_rows(self) -> list[list[Cell]]:
        return [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in self.rows]

    def cell_class(self, col: int, cell: Cell) -> str:
        classes = ["mono"] if col in self.mono_cols else []
        if col == self.status_col:
            classes.append(f"s-{cell.text}")
        return " ".join(classes)


@dataclass(frozen=True)
class Code:
    macro: ClassVar[str] = "code"
    text: str


@dataclass(frozen=True)
class Figure:
    """A drawn figure (inline SVG from `plots`), or only its caption and why it is not
    drawn. Markdown leaves figures out: its tables carry the numbers."""

    macro: ClassVar[str] = "figure"
    caption: str
    svg: str = ""  # trusted markup made by harness.rendering.plots, never user text
    note: str = ""  # why the figure is not drawn (svg empty), or a remark under it


Block = Heading | Banner | Para | Facts | Table | Code | Figure


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]
    meta: tuple[tuple[str, str], ...] = ()  # extra <meta name content> pairs in the HTML head
