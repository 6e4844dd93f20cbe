"""Every shipped suite has its page, generated from the suite file and current."""

from __future__ import annotations

from harness import suite_docs
from harness.suites import SUITES_DIR


def test_every_shipped_suite_has_a_current_page() -> None:
    """Editing a suite without regenerating its page fails here: run
    `python -m harness.suite_docs`."""
    pages = suite_docs.pages()
    assert len(pages) == len(list(SUITES_DIR.glob("*.yaml")))
    for path, text in pages.items():
        assert path.is_file(), f"{path} is missing: run python -m harness.suite_docs"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale"
        assert "## Indicators" in text and "## Dry run on this machine" in text
