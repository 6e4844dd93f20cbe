"""The Markdown and HTML renderers, on a small hand-built statement."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from typing import Any

from harness import report

HOSTILE = "<script>alert(1)</script>"
PIPED = "left | right"
VERDICT_COLUMNS = 8


def verdict(indicator: str, status: str, reason: str, **extra: Any) -> dict[str, Any]:
    measured = status != "NOT_MEASURED"
    base: dict[str, Any] = {
        "indicator": indicator,
        "title": f"Title of {indicator}",
        "status": status,
        "value": 12.345678 if measured else None,
        "unit": "TFLOPS",
        "op": ">=",
        "target": 10.0,
        "declared_target": None,
        "declared_status": None,
        "bound": 11.0 if measured else None,
        "reason": reason,
        "flags": [],
    }
    base.update(extra)
    return base


def statement() -> dict[str, Any]:
    verdicts = [
        verdict("pass_a", "PASS", "confidence bound 11 >= 10"),
        verdict(
            "pass_b",
            "PASS",
            "ok",
            declared_target=8.0,
            declared_status="PASS",
            flags=["declared target >= 8 is weaker than the guide's >= 10"],
        ),
        verdict("fail_a", "FAIL", HOSTILE),
        verdict("fail_b", "FAIL", "measured 3 does not meet >= 10"),
        verdict("inc_a", "INCONCLUSIVE", PIPED),
        verdict("inc_b", "INCONCLUSIVE", "bound too wide"),
        verdict("nm_a", "NOT_MEASURED", "no probe yet"),
        verdict("nm_b", "NOT_MEASURED", "no power meter"),
    ]
    measurements = [
        {
            "id": "gemm.fp32.throughput",
            "value": 0.19900068197899384,
            "unit": "TFLOPS",
            "n": 75,
            "repeats": 5,
            "ci": {
                "low": 0.1949615648156349,
                "high": 0.19960590922008298,
                "confidence": 0.95,
                "method": "order statistics",
                "need": "",
            },
            "method": "dense square GEMM sweep",
            "details": {
                "best_size": [512, 512, 512],
                "median_by_size": {
                    "1024": "estimated 5.5 s exceeds the 3 s budget",
                    "256": 0.18,
                    "512": 0.199,
                },
            },
        },
        {
            "id": "gemm.verified_precisions",
            "value": 5.0,
            "unit": "count",
            "n": 6,
            "repeats": 1,
            "ci": None,
            "method": "precisions that matched a reference",
            "details": {},
        },
        {
            "id": "latency.p99",
            "value": 3.0,
            "unit": "ms",
            "n": 4,
            "repeats": 4,
            "ci": {
                "low": None,
                "high": None,
                "confidence": 0.95,
                "method": "order statistics",
                "need": "at least 59 repeats",
            },
            "method": "timed requests",
            "details": {},
        },
    ]
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "evidence/run.json", "digest": {"sha256": "ab" * 32}},
            {"name": "evidence/suite.yaml", "digest": {"sha256": "cd" * 32}},
        ],
        "predicateType": "https://harness.dev/evaluation-report/v1",
        "predicate": {
            "suite": {
                "id": "d01-test",
                "version": "1.0.0",
                "direction": "D01",
                "title": "Test suite",
                "confidence": 0.95,
                "file": "evidence/suite.yaml",
                "sha256": "cd" * 32,
            },
            "submission": {
                "local_default": False,
                "applicant": "ACME Labs",
                "product": "Chip X1",
                "sut": {"adapter": "local"},
                "declared": {"pass_b": {"current": 12.0, "target": 8.0, "scenario": "train"}},
                "sha256": "ef" * 32,
            },
            "hardware": None,
            "harness": {"version": "0.1.0", "git_revision": None, "python": "3.11.7"},
            "run": {
                "started_utc": "2026-01-01T00:00:00Z",
                "finished_utc": "2026-01-01T00:01:00Z",
                "seed": 7,
                "quick": True,
                "device": "cpu",
            },
            "signer": {
                "keyid": "k" * 64,
                "public_key": "PEM",
                "self_generated": True,
                "official": False,
            },
            "environment": {
                "cpu": {"cpu_name": "Test CPU", "physical_cores": 2, "logical_cores": 4},
                "memory_bytes": 8 * 1024**3,
                "os": {"system": "Linux", "release": "6.1", "libc": "glibc 2.36"},
                "python": {"implementation": "cpython", "version": "3.11.7"},
                "packages": {"torch": "2.4.0", "onnxruntime": None},
                "gpus": [],
                "nvml": "no NVML here",
            },
            "tasks": [
                {"task": "gemm", "probe": "compute.gemm", "status": "ok", "reason": ""},
                {
                    "task": "latency",
                    "probe": "serve.latency",
                    "status": "failed",
                    "reason": "ConnectionError: refused",
                },
            ],
            "measurements": measurements,
            "unmeasured": [{"id": "gemm.tf32.throughput", "reason": "no TF32 on a CPU"}],
            "verdicts": verdicts,
        },
    }


def md_cells(line: str) -> list[str]:
    """Cells of a Markdown table row, splitting on unescaped pipes only."""
    inner = line.strip()
    assert inner.startswith("|") and inner.endswith("|")
    return re.split(r"(?<!\\)\|", inner[1:-1])


def md_row(markdown: str, key: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {key} |")]
    assert len(rows) == 1, rows
    return rows[0]


def test_banners_in_both_formats() -> None:
    s = statement()
    for out in (report.render_markdown(s), report.render_html(s)):
        assert "UNOFFICIAL — signed with a self-generated dry-run key" in out
        assert "QUICK RUN (dry-run sizes and repeats)" in out
        assert "latency (failed)" in out
        assert "ConnectionError: refused" in out


def test_official_run_has_key_banner_and_no_warnings() -> None:
    s = statement()
    p = s["predicate"]
    p["signer"]["self_generated"] = False
    p["run"]["quick"] = False
    p["tasks"] = [p["tasks"][0]]
    for out in (report.render_markdown(s), report.render_html(s)):
        assert f"Signed with key {'k' * 64}" in out
        assert "UNOFFICIAL" not in out
        assert "QUICK RUN" not in out
        assert "Tasks not completed" not in out


def test_every_indicator_and_measurement_appears() -> None:
    s = statement()
    ids = [v["indicator"] for v in s["predicate"]["verdicts"]]
    ids += [m["id"] for m in s["predicate"]["measurements"]]
    ids += ["gemm.tf32.throughput"]
    for out in (report.render_markdown(s), report.render_html(s)):
        for name in ids:
            assert name in out, name


def test_who_and_what() -> None:
    md = report.render_markdown(statement())
    for fact in ("ACME Labs", "Chip X1", "none matched", "2026-01-01T00:00:00Z", "0.1.0"):
        assert fact in md
    assert "**Seed:** 7" in md


def test_local_default_submission() -> None:
    s = statement()
    s["predicate"]["submission"] = {"local_default": True, "sut": {"adapter": "local"}}
    assert "local machine, default submission" in report.render_markdown(s)


def test_status_counts_line() -> None:
    s = statement()
    line = "2 PASS, 2 FAIL, 2 INCONCLUSIVE, 2 NOT_MEASURED"
    assert line in report.render_markdown(s)
    assert line in report.render_html(s)


def test_verdict_row_formatting_and_flags() -> None:
    md = report.render_markdown(statement())
    cells = [c.strip() for c in md_cells(md_row(md, "pass_b"))]
    assert cells[2] == ">= 10 TFLOPS"
    assert cells[3].startswith(">= 8 TFLOPS (PASS against it); FLAG: declared target >= 8")
    assert cells[4] == "12.35 TFLOPS"  # four significant digits
    assert cells[5] == "11 TFLOPS"
    assert cells[6] == "PASS"
    nm = [c.strip() for c in md_cells(md_row(md, "nm_a"))]
    assert nm[3:6] == ["-", "-", "-"]  # None shown as '-'


def test_intervals() -> None:
    md = report.render_markdown(statement())
    assert "[0.195, 0.1996] at 95%" in md_row(md, "gemm.fp32.throughput")
    assert "| exact: a count |" in md_row(md, "gemm.verified_precisions")
    assert "[-, -] at 95%; need: at least 59 repeats" in md_row(md, "latency.p99")


def test_html_escapes_text() -> None:
    out = report.render_html(statement())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<script" not in out


def test_html_is_self_contained() -> None:
    out = report.render_html(statement())
    assert out.startswith("<!DOCTYPE html>")
    assert "<style>" in out
    for external in ("<link", "src=", "@import", "<script", "<img", "<iframe"):
        assert external not in out
    # the inline figures refer only to their own parts (glyphs, clip paths) by fragment
    references = re.findall(r'href="([^"]*)"|url\(([^)]*)\)', out)
    assert references
    assert all((href or url).startswith("#") for href, url in references)


def test_markdown_pipe_does_not_break_row() -> None:
    md = report.render_markdown(statement())
    row = md_row(md, "inc_a")
    cells = md_cells(row)
    assert len(cells) == VERDICT_COLUMNS
    assert cells[-1].strip() == "left \\| right"
    header = next(line for line in md.splitlines() if line.startswith("| Indicator |"))
    assert len(md_cells(header)) == VERDICT_COLUMNS


def test_markdown_cell_escaping() -> None:
    assert report.md_cell("a | b") == "a \\| b"
    assert report.md_cell("a\\|b") == "a\\\\\\|b"  # an escaped backslash, then an escaped pipe
    assert report.md_cell("two\nlines") == "two lines"


def test_size_table_and_figures() -> None:
    s = statement()
    md = report.render_markdown(s)
    assert "| 512 | 0.199 TFLOPS | chosen (figure from fresh repeats) |" in md
    assert "| 1024 | - | skipped: estimated 5.5 s exceeds the 3 s budget |" in md
    assert "<svg" not in md
    assert "## Figures" not in md  # the figures are in report.html only
    out = report.render_html(s)
    svgs = re.findall(r"<svg.*?</svg>", out, re.S)
    assert len(svgs) == 2  # GEMM throughput per precision, and the pilot sweep by size
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML
    names = re.findall(r'\bid="([^"]+)"', out)
    assert len(names) == len(set(names))  # two figures on one page share no id
    assert "skipped sizes: fp32 1024" in out  # the details name no label: the precision
    assert out.index('<table id="verdicts">') < out.index("<svg") < out.index("<h2>Run</h2>")


def test_sizes_sort_numerically() -> None:
    bars = report.size_bars({"1024": 1.0, "256": 2.0, "512": "skipped"})
    assert [size for size, _ in bars] == ["256", "512", "1024"]


def test_environment_and_evidence() -> None:
    s = statement()
    for out in (report.render_markdown(s), report.render_html(s)):
        assert "Test CPU" in out
        assert "8 GiB" in out
        assert "no NVML here" in out
        assert "torch" in out
        assert "2 evidence files" in out
        assert "ab" * 8 in out
        assert "ab" * 9 not in out  # digests cut to 16 hex characters
        assert "harness verify &lt;run dir&gt;" in out or "harness verify <run dir>" in out
        assert "--pubkey KEY.pub" in out
        assert "harness audit" in out


def test_deterministic_and_input_untouched() -> None:
    s = statement()
    before = copy.deepcopy(s)
    assert report.render_markdown(s) == report.render_markdown(s)
    assert report.render_html(s) == report.render_html(s)
    assert s == before


def test_sparse_statement_renders() -> None:
    sparse: dict[str, Any] = {"predicate": {}, "subject": []}
    assert "0 PASS, 0 FAIL, 0 INCONCLUSIVE, 0 NOT_MEASURED" in report.render_markdown(sparse)
    assert report.render_html(sparse).endswith("</html>\n")
