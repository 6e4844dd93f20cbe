"""The rendered reports of a run directory: what the signed statement renders, the check
that the files are exactly that, and rewriting them.

report.md and report.html must be the bytes the statement renders here. A report.html whose
generator meta names other versions of the harness, jinja2 or matplotlib cannot be re-made
byte for byte here, so nothing it shows can be vouched for and it fails too (a page that
claims another generator could otherwise show any figures); `harness render` rewrites both
from the signed statement. Whether report.html drew the figures that need evidence files is
read from its own `harness-figures` meta, so it is re-rendered the same way (from the
statement alone, or with the run directory's digest-checked evidence).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from harness import environment
from harness.errors import VerificationFailed
from harness.rendering.fmt import as_dict
from harness.rendering.html import render_html
from harness.rendering.markdown import render_markdown
from harness.rendering.report_document import (
    FIGURES_META,
    FROM_STATEMENT,
    build,
)
from harness.rendering.templating import generator, versions

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
REPAIR = "`harness render RUN_DIR` rewrites it from the signed statement"


def rendered_files(statement: dict[str, Any], run_dir: Path | None) -> dict[str, str]:
    """{file name: text} of both reports; with `run_dir`, figures drawn from its evidence."""
    return {
        MARKDOWN_FILE: render_markdown(build(statement)),
        HTML_FILE: render_html(build(statement, run_dir)),
    }


def write_rendered(run_dir: Path, statement: dict[str, Any]) -> list[Path]:
    """Rewrite both reports from the signed statement: each is written to a temporary file
    beside it and renamed into place only when both are written."""
    texts = rendered_files(statement, run_dir)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, body in texts.items():
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=run_dir)
            staged.append((Path(temporary), run_dir / name))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(body)
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return [final for _, final in staged]


class _Head(HTMLParser):
    """The <meta name content> pairs of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta" and a.get("name") is not None:
            self.meta.setdefault(str(a["name"]), str(a.get("content") or ""))


def _other_source(statement: dict[str, Any]) -> str:
    """ ", and the statement was issued by other harness code (...)" when the signed
    source digest is not this harness's: why a re-rendered report can differ."""
    issued = as_dict(as_dict(statement.get("predicate")).get("harness")).get("source_sha256")
    here = environment.source_digest()
    if issued == here:
        return ""
    return (
        f"; the statement was issued by other harness code (source {str(issued)[:12]}, "
        f"here {here[:12]})"
    )


def _differs(path: Path, statement: dict[str, Any]) -> VerificationFailed:
    return VerificationFailed(
        f"{path}: differs from the report the signed statement renders{_other_source(statement)}"
        f" (delete it; {REPAIR})"
    )


def _check_markdown(path: Path, statement: dict[str, Any]) -> None:
    if path.read_bytes() != render_markdown(build(statement)).encode("utf-8"):
        raise _differs(path, statement)


def _other_versions(recorded: str) -> list[str]:
    """ "matplotlib X, here Y" for each component the generator string names differently."""
    found = dict(re.findall(r"(\S+) (\S+?)(?:;|$)", recorded))
    return [
        f"{name} {found.get(name, '(not named)')}, here {mine}"
        for name, mine in versions().items()
        if found.get(name) != mine
    ]


def _check_html(path: Path, run_dir: Path, statement: dict[str, Any]) -> None:
    """report.html must be the bytes this harness renders from the statement. One that names
    another harness, jinja2 or matplotlib cannot be re-made here, so nothing it shows can be
    vouched for: it fails (the signed statement and the evidence may still be sound)."""
    data = path.read_bytes()
    parsed = _Head()
    try:
        parsed.feed(data.decode("utf-8"))
        parsed.close()
    except UnicodeDecodeError:
        raise VerificationFailed(f"{path}: not UTF-8 text") from None
    recorded = parsed.meta.get("generator")
    if recorded is None:
        raise VerificationFailed(f"{path}: no generator meta; it is not a report the harness wrote")
    if recorded != generator():
        raise VerificationFailed(
            f"{path}: rendered with {'; '.join(_other_versions(recorded))}, so what it shows "
            f"cannot be checked here (delete it; {REPAIR})"
        )
    from_evidence = parsed.meta.get(FIGURES_META) != FROM_STATEMENT
    expected = render_html(build(statement, run_dir if from_evidence else None))
    if data != expected.encode("utf-8"):
        raise _differs(path, statement)


def check_rendered(run_dir: Path, statement: dict[str, Any]) -> list[str]:
    """Warnings about report.md and report.html of a verified run directory; raises
    VerificationFailed when one is not what the signed statement renders."""
    warnings: list[str] = []
    markdown, page = run_dir / MARKDOWN_FILE, run_dir / HTML_FILE
    if markdown.is_file():
        _check_markdown(markdown, statement)
    else:
        warnings.append(f"{MARKDOWN_FILE} is absent")
    if page.is_file():
        _check_html(page, run_dir, statement)
    else:
        warnings.append(f"{HTML_FILE} is absent")
    return warnings
