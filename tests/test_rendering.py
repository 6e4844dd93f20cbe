"""harness.rendering: report.html is self-contained and escaped, both reports are the same
bytes every time, figures read evidence only through the signed digests, verify compares
what it can and says what it cannot, `harness render` rewrites the reports, and a real
browser loads the page without a console message and shows the statement's verdicts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clihelpers import TinyRun, assert_one_line_error, flip_byte, forge, run_cli

import harness
from harness.errors import VerificationFailed
from harness.rendering import figures as figure_data
from harness.rendering.evidence import NO_RUN_DIR
from harness.rendering.html import render_html
from harness.rendering.markdown import render_markdown
from harness.rendering.report_document import build

HOSTILE = "<img src=x onerror=alert(1)>"
CHROMIUM_TIMEOUT_S = 60


def page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


def statement_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "statement.json").read_text(encoding="utf-8"))


class Dom(HTMLParser):
    """What the tests read from a page, parsed here independently of harness.rendering:
    the verdict table's cells (text, attributes), every tag name and every <meta>."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.meta: dict[str, str] = {}
        self.rows: list[list[dict[str, Any]]] = []
        self._in_table = False
        self._cell: dict[str, Any] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = {k: v or "" for k, v in attrs}
        if tag == "meta" and "name" in a:
            self.meta[a["name"]] = a.get("content", "")
        if tag == "table" and a.get("id") == "verdicts":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "td":
            self._cell = {"text": "", **a}

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def verdict_rows(self) -> list[list[dict[str, Any]]]:
        return [row for row in self.rows if row]  # the header row has <th> only


def assert_verdicts_shown(dom: Dom, statement: dict[str, Any]) -> None:
    """Indicator, verdict and the exact measured value of every row, against the statement
    (columns: Indicator, Title, Target, Declared, Measured, Bound, Verdict, Reason)."""
    verdicts = statement["predicate"]["verdicts"]
    rows = dom.verdict_rows()
    assert len(rows) == len(verdicts) > 0
    for row, v in zip(rows, verdicts, strict=True):
        assert row[0]["text"] == v["indicator"]
        assert row[6]["text"] == v["status"]
        assert f"s-{v['status']}" in row[6]["class"].split()
        assert json.loads(row[4]["data-value"]) == v["value"]
        assert json.loads(row[5]["data-value"]) == v["bound"]


# ------------------------------------------------------------------ self-contained, escaped


def test_the_page_is_self_contained(tiny_run: TinyRun) -> None:
    text = page(tiny_run.run_dir)
    dom = Dom(text)
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        assert tag not in dom.tags, tag
    assert "src=" not in text and "@import" not in text
    # every reference is to a part of the page itself (a figure's glyphs and clip paths)
    references = re.findall(r'href="([^"]*)"|url\(([^)]*)\)', text)
    assert references and all((h or u).startswith("#") for h, u in references)
    # the only URLs are SVG namespace names
    for match in re.finditer(r"https?://[^\"' >]*", text):
        before = text[max(0, match.start() - 20) : match.start()]
        assert re.search(r'xmlns(:\w+)?="$', before), match.group(0)
    assert dom.meta["generator"] == (
        f"harness {harness.__version__}; jinja2 {version('jinja2')}; "
        f"matplotlib {version('matplotlib')}"
    )
    # the verdict table comes first, after the title and banners; figures next, then the rest
    assert text.index("<h1>") < text.index('<table id="verdicts">') < text.index("<svg")
    assert text.index("<svg") < text.index("<h2>Run</h2>") < text.index("<h2>Evidence</h2>")
    assert_verdicts_shown(dom, statement_of(tiny_run.run_dir))


def test_a_hostile_product_name_is_escaped(run_copy: Path) -> None:
    def edit(p: dict[str, Any]) -> None:
        p["submission"].update(local_default=False, applicant=HOSTILE, product=f"<b>{HOSTILE}")

    forge(run_copy, edit)
    text = page(run_copy)
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<img" not in text and "<b>" not in text
    assert "img" not in Dom(text).tags
    assert run_cli("verify", run_copy).code == 0


def test_markdown_leaves_figures_out(tiny_run: TinyRun) -> None:
    md = (tiny_run.run_dir / "report.md").read_text(encoding="utf-8")
    assert "<svg" not in md and "## Figures" not in md
    assert md.index("## Verdicts") < md.index("## Run") < md.index("## Evidence")


# ------------------------------------------------------------------ determinism


def test_the_same_statement_renders_the_same_bytes(tiny_run: TinyRun) -> None:
    import matplotlib

    statement = statement_of(tiny_run.run_dir)
    before = dict(matplotlib.rcParams)
    first = render_html(build(statement)), render_markdown(build(statement))
    assert first == (render_html(build(statement)), render_markdown(build(statement)))
    assert dict(matplotlib.rcParams) == before  # no global matplotlib state changed
    # and they are the files the run wrote
    assert first[0].encode() == (tiny_run.run_dir / "report.html").read_bytes()
    assert first[1].encode() == (tiny_run.run_dir / "report.md").read_bytes()


def test_another_process_and_another_matplotlibrc_give_the_same_bytes(
    tiny_run: TinyRun, tmp_path: Path
) -> None:
    rc = tmp_path / "matplotlibrc"
    rc.write_text("font.size: 20\naxes.grid: False\nsvg.hashsalt: other\nsvg.fonttype: none\n")
    out = tmp_path / "again.html"
    script = (
        "import json, sys; from pathlib import Path; from harness import report; "
        "s = json.loads(Path(sys.argv[1]).read_text()); "
        "Path(sys.argv[2]).write_text(report.render_html(s), encoding='utf-8')"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MATPLOTLIBRC": str(rc)}
    env["MPLCONFIGDIR"] = str(tmp_path / "mplconfig")
    subprocess.run(
        [sys.executable, "-c", script, str(tiny_run.run_dir / "statement.json"), str(out)],
        env=env,
        check=True,
        timeout=120,
    )
    assert out.read_bytes() == (tiny_run.run_dir / "report.html").read_bytes()


# ------------------------------------------------------------------ figures from evidence


def _run_loadgen(outdir: Path) -> None:
    """A real MLPerf LoadGen SingleStream run of a SUT that answers at once."""
    import mlperf_loadgen as lg

    def issue(queries: Any) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in queries])

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(16, 16, lambda s: None, lambda s: None)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.SingleStream
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = 100
    settings.min_query_count = 16
    settings.single_stream_expected_latency_ns = 100_000
    logs = lg.LogSettings()
    logs.log_output.outdir = str(outdir)
    logs.log_output.copy_summary_to_stdout = False
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, logs)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


def _detail_percentiles_ms(detail: Path) -> list[tuple[float, float]]:
    """The percentiles LoadGen's detail log states (MLLOG JSON lines), read here directly."""
    out = []
    for line in detail.read_text().splitlines():
        if ":::MLLOG" not in line:
            continue
        record = json.loads(line.split(":::MLLOG", 1)[1])
        found = re.fullmatch(r"result_(\d+\.\d+)_percentile_latency_ns", record["key"])
        if found:
            out.append((float(found.group(1)), record["value"] / 1e6))
    return out


@pytest.fixture
def loadgen_run(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A run directory holding one real LoadGen performance run as evidence, and a statement
    listing its files with their digests and a p90 figure naming its summary log."""
    run_dir = tmp_path / "run"
    logs = run_dir / "evidence" / "tasks" / "lg" / "runs" / "01-performance-1"
    logs.mkdir(parents=True)
    _run_loadgen(logs)
    subjects = [
        {"name": p.relative_to(run_dir).as_posix(), "digest": {"sha256": _sha256(p)}}
        for p in sorted(logs.iterdir())
    ]
    p90 = dict(_detail_percentiles_ms(logs / "mlperf_log_detail.txt"))[90.0]
    measurement = {
        "id": "lg.latency_p90",
        "value": p90,
        "unit": "ms",
        "ci": {"low": None, "high": p90 * 1.1, "confidence": 0.99, "method": "m", "need": ""},
        "details": {"loadgen_logs": ["runs/01-performance-1/mlperf_log_summary.txt"]},
    }
    statement = {
        "subject": subjects,
        "predicate": {
            "tasks": [{"task": "lg", "probe": "inference.loadgen", "status": "ok"}],
            "measurements": [measurement],
        },
    }
    return run_dir, statement


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _figures(doc: Any) -> list[Any]:
    return [b for b in doc.blocks if b.macro == "figure"]


def test_loadgen_percentiles_come_from_the_summary(loadgen_run: tuple[Path, dict]) -> None:
    run_dir, _ = loadgen_run
    logs = run_dir / "evidence/tasks/lg/runs/01-performance-1"
    parsed = figure_data._summary_percentiles((logs / "mlperf_log_summary.txt").read_text())
    assert parsed == _detail_percentiles_ms(logs / "mlperf_log_detail.txt")
    assert [p for p, _ in parsed] == [50.0, 90.0, 95.0, 97.0, 99.0, 99.9]


def test_evidence_figures_read_only_signed_subjects(loadgen_run: tuple[Path, dict]) -> None:
    run_dir, statement = loadgen_run
    alone = build(statement)
    (figure,) = _figures(alone)
    assert not figure.svg and NO_RUN_DIR in figure.note
    assert dict(alone.meta)["harness-figures"] == "statement only"
    drawn = build(statement, run_dir)
    (figure,) = _figures(drawn)
    assert figure.svg.startswith("<svg") and figure.note == ""
    assert dict(drawn.meta)["harness-figures"] == "statement and evidence files"
    assert render_html(drawn) == render_html(build(statement, run_dir))
    # a file the statement does not list is never read, even when it lies there
    summary = "evidence/tasks/lg/runs/01-performance-1/mlperf_log_summary.txt"
    unlisted = {**statement, "subject": [s for s in statement["subject"] if s["name"] != summary]}
    (figure,) = _figures(build(unlisted, run_dir))
    assert not figure.svg and "is not a subject of the signed statement" in figure.note
    # a listed file whose bytes changed is a broken run, named as verify names it
    flip_byte(run_dir / summary)
    with pytest.raises(VerificationFailed, match=f"{re.escape(summary)}: sha256 does not match"):
        build(statement, run_dir)


def test_det_roc_and_latency_histogram_from_the_statement() -> None:
    rng = np.random.default_rng(7)
    genuine, impostor = rng.normal(0.8, 0.1, 40), rng.normal(0.3, 0.1, 400)
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    points = [
        [float(t), float((impostor >= t).mean()), float((genuine < t).mean())] for t in thresholds
    ]
    counts = {"genuine_acquired": 40, "impostor_acquired": 400, "threshold": 0.6}
    ci = {"confidence": 0.95, "method": "Clopper-Pearson", "need": ""}
    latencies = [float(x) for x in rng.gamma(4.0, 0.05, 60)]
    measurements = [
        {
            "id": "verify.fmr",
            "value": 0.25,
            "unit": "%",
            "ci": {**ci, "low": 0.006, "high": 1.4},
            "details": {
                **counts,
                "det_roc": {"columns": ["threshold", "fmr", "fnmr"], "points": points},
            },
        },
        {"id": "verify.fnmr", "value": 2.5, "unit": "%", "ci": {**ci, "low": 0.06, "high": 13.2}},
        {
            "id": "modes.text.latency_p50",
            "value": float(np.median(latencies)),
            "unit": "s",
            "ci": {**ci, "low": min(latencies), "high": max(latencies)},
            "details": {"latencies_s": latencies},
        },
    ]
    tasks = [
        {"task": "verify", "probe": "face.verify", "status": "ok"},
        {"task": "modes", "probe": "mt.modes", "status": "ok"},
    ]
    statement = {"subject": [], "predicate": {"tasks": tasks, "measurements": measurements}}
    det, histogram = _figures(build(statement))
    assert det.svg.startswith("<svg") and "40 genuine, 400 impostor" in det.caption
    assert histogram.svg.startswith("<svg") and "the 60 timed latencies" in histogram.caption
    text = render_html(build(statement))
    assert text.index("verify (face.verify)") < text.index("modes (mt.modes)")


@pytest.mark.parametrize("n", [1, 7, 60, 1001])
def test_nearest_rank_percentiles_match_numpy(n: int) -> None:
    values = sorted(np.random.default_rng(n).exponential(size=n).tolist())
    for p in (50.0, 90.0, 99.0):
        want = float(np.percentile(values, p, method="inverted_cdf"))
        assert figure_data._nearest_rank(values, p) == want


# ------------------------------------------------------------------ verify


def _set_generator(run_dir: Path, old: str, new: str) -> None:
    path = run_dir / "report.html"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_another_matplotlib_cannot_be_vouched_for(run_copy: Path) -> None:
    """A page rendered with other versions cannot be re-made here byte for byte: verify
    fails (a page claiming another generator could show any figures) and says how to
    rewrite it from the signed statement."""
    mine = version("matplotlib")
    _set_generator(run_copy, f'; matplotlib {mine}"', '; matplotlib 0.0.1"')
    result = run_cli("verify", run_copy)
    assert result.code == 1
    assert_one_line_error(
        result, "report.html", f"matplotlib 0.0.1, here {mine}", "cannot be checked here",
        "`harness render RUN_DIR` rewrites it from the signed statement",
    )
    assert run_cli("render", run_copy).code == 0
    assert run_cli("verify", run_copy).code == 0


def test_a_changed_figure_is_caught(run_copy: Path) -> None:
    path = run_copy / "report.html"
    text = path.read_text(encoding="utf-8")
    changed = re.sub(
        r'(<path d="M )(\d)', lambda m: m.group(1) + str((int(m.group(2)) + 1) % 10), text, count=1
    )
    assert changed != text
    path.write_text(changed, encoding="utf-8")
    result = run_cli("verify", run_copy)
    assert result.code == 1
    assert_one_line_error(result, "report.html", "differs from the report the signed statement")


# ------------------------------------------------------------------ harness render


def test_render_rewrites_deleted_reports_identical(run_copy: Path) -> None:
    originals = {n: (run_copy / n).read_bytes() for n in ("report.html", "report.md")}
    for name in originals:
        (run_copy / name).unlink()
    verified = run_cli("verify", run_copy)
    assert verified.code == 0 and "report.html is absent" in verified.stderr
    result = run_cli("render", run_copy)
    assert result.code == 0, result.stderr
    for name, data in originals.items():
        assert (run_copy / name).read_bytes() == data, name
    assert not [p.name for p in run_copy.iterdir() if p.name.startswith(".report")]
    assert run_cli("verify", run_copy).code == 0


def test_render_refuses_a_run_that_does_not_verify(run_copy: Path) -> None:
    (run_copy / "report.html").unlink()
    flip_byte(run_copy / "evidence/tasks/gemm/fp32.json")
    result = run_cli("render", run_copy)
    assert result.code == 1
    assert_one_line_error(result, "evidence/tasks/gemm/fp32.json", "sha256")
    assert not (run_copy / "report.html").exists()


def test_render_of_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    result = run_cli("render", tmp_path / "nowhere")
    assert result.code == 2
    assert_one_line_error(result, "nowhere", "not a run directory")


@pytest.fixture(scope="module")
def power_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real run of the power probe with a meter log the lab names (tests/test_power.py's
    set-up: a meter appending samples while the run goes on)."""
    from test_power import _power_run

    base = tmp_path_factory.mktemp("power-run")
    with pytest.MonkeyPatch.context() as mp:
        out, _ = _power_run(base, mp)
    yield out


def _power_section(text: str) -> str:
    start = text.index("<h3>power (power.gemm_load)</h3>")
    return text[start : text.index("<h2>", start)]


def test_render_draws_power_from_the_signed_evidence(power_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(power_run, run_dir)
    statement = statement_of(run_dir)
    alone = _power_section(render_html(build(statement)))
    assert "<svg" not in alone and NO_RUN_DIR in alone
    result = run_cli("render", run_dir)
    assert result.code == 0, result.stderr
    drawn = _power_section(page(run_dir))
    assert "<svg" in drawn and "power from wall-log (wall)" in drawn
    assert Dom(page(run_dir)).meta["harness-figures"] == "statement and evidence files"
    assert run_cli("verify", run_dir).code == 0
    record = "evidence/tasks/power/load/wall-log.json"
    flip_byte(run_dir / record)
    result = run_cli("verify", run_dir)
    assert result.code == 1
    assert_one_line_error(result, record, "sha256")


# ------------------------------------------------------------------ a real browser


def _chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium")
    assert exe is not None
    argv = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=1",
        *extra,
        url,
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False
    )


def _console_lines(stderr: str) -> list[str]:
    """Console messages chromium logged. Chromium 156 logs every console message, errors
    and uncaught exceptions included, as `INFO:CONSOLE` lines (`"Uncaught ...", source: ...`
    for an exception): the page has no script, so any console line is a failure."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_a_real_browser_loads_the_report(tiny_run: TinyRun, run_copy: Path, tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("no chromium installed: apt-get install chromium (.ci/run installs it)")
    from PIL import Image

    # the check can fail: a page that logs an error and throws is seen
    probe = tmp_path / "probe.html"
    probe.write_text(
        "<!DOCTYPE html><html><body><script>console.error('deliberate');"
        "undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    seen = _console_lines(_chromium(tmp_path, probe.as_uri(), "--dump-dom").stderr)
    assert any("deliberate" in line for line in seen), seen
    assert any("Uncaught" in line for line in seen), seen

    url = (tiny_run.run_dir / "report.html").as_uri()
    shot = tmp_path / "report.png"
    painted = _chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1200,2000")
    assert painted.returncode == 0, painted.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1200, 2000)
        image.verify()
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, table, banners and figures drawn
    loaded = _chromium(tmp_path, url, "--dump-dom")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert _console_lines(loaded.stderr + painted.stderr) == []
    dom = Dom(loaded.stdout)
    assert "svg" in dom.tags
    assert_verdicts_shown(dom, statement_of(tiny_run.run_dir))

    # escaping as the browser sees it: the hostile name is text, no element
    forge(run_copy, lambda p: p["submission"].update(local_default=False, product=HOSTILE))
    hostile = _chromium(tmp_path, (run_copy / "report.html").as_uri(), "--dump-dom")
    assert _console_lines(hostile.stderr) == []
    assert "img" not in Dom(hostile.stdout).tags
    assert HOSTILE.replace("<", "&lt;").replace(">", "&gt;") in hostile.stdout
