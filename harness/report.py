"""Rendering a signed statement as Markdown and HTML.

Both formats come from one document model: the builders below turn the statement into
headings, banners, fact lists, tables and charts, and two small writers print those blocks
as Markdown or as a single self-contained HTML file (inline CSS, no scripts, no external
assets). Nothing here reads the clock, so the same statement always renders the same bytes.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STATUSES = ("PASS", "FAIL", "INCONCLUSIVE", "NOT_MEASURED")
GIB = 1024**3
HASH_CHARS = 16
VERIFY_COMMANDS = "harness verify <run dir> [--pubkey KEY.pub]\nharness audit <run dir>"

# ---------------------------------------------------------------- document model


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Banner:
    text: str
    kind: str  # "alert", "warn" or "ok": the HTML colour


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Facts:
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    status_col: int | None = None  # HTML colours this column by verdict status
    mono_cols: tuple[int, ...] = ()  # HTML sets these columns in a monospace font


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Chart:
    """Horizontal bars; a string value is a skip reason, shown as text without a bar."""

    title: str
    unit: str
    bars: tuple[tuple[str, float | str], ...]


Block = Heading | Banner | Para | Facts | Table | Code | Chart


@dataclass(frozen=True)
class Document:
    title: str
    blocks: tuple[Block, ...]


# ---------------------------------------------------------------- formatting


def num(x: Any) -> str:
    """A number with 4 significant digits; ints as they are; None as '-'."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def text(x: Any) -> str:
    return "-" if x is None or x == "" else str(x)


def qty(x: Any, unit: Any) -> str:
    if x is None:
        return "-"
    return f"{num(x)}%" if unit == "%" else f"{num(x)} {text(unit)}"


def pct(fraction: Any) -> str:
    return "-" if fraction is None else f"{fraction * 100:.4g}%"


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


# ---------------------------------------------------------------- builders


def build(statement: Mapping[str, Any]) -> Document:
    p = _dict(statement.get("predicate"))
    suite = _dict(p.get("suite"))
    title = f"{text(suite.get('id'))} v{text(suite.get('version'))}: {text(suite.get('title'))}"
    blocks: list[Block] = [
        Heading(title, 1),
        Para(
            f"Direction {text(suite.get('direction'))}; "
            f"suite confidence {pct(suite.get('confidence'))}"
        ),
        *banners(p),
        Heading("Run"),
        run_facts(p),
        *verdict_section(_list(p.get("verdicts"))),
        *measurement_section(_list(p.get("measurements"))),
        *size_section(_list(p.get("measurements"))),
        *unmeasured_section(_list(p.get("unmeasured"))),
        *environment_section(_dict(p.get("environment"))),
        *evidence_section(_list(statement.get("subject"))),
    ]
    return Document(title, tuple(blocks))


def banners(p: Mapping[str, Any]) -> list[Banner]:
    signer = _dict(p.get("signer"))
    out: list[Banner] = []
    trust = _dict(p.get("trust"))
    if trust.get("precomputed_outputs"):
        out.append(Banner(text(trust.get("note")), "alert"))
    suite = _dict(p.get("suite"))
    if suite.get("shipped") != "shipped":
        out.append(
            Banner(
                f"NOT A SHIPPED SUITE: {text(suite.get('id'))} v{text(suite.get('version'))} "
                f"(sha256 {text(suite.get('sha256'))}): {text(suite.get('shipped_note'))}",
                "alert",
            )
        )
    out.append(
        Banner("UNOFFICIAL — signed with a self-generated dry-run key", "alert")
        if signer.get("self_generated")
        else Banner(
            f"Signed with key {text(signer.get('keyid'))}: official only if that is the "
            "agency's key (harness verify --pubkey AGENCY.pub)",
            "warn",
        )
    )
    if _dict(p.get("run")).get("quick"):
        out.append(Banner("QUICK RUN (dry-run sizes and repeats)", "warn"))
    bad = [t for t in _list(p.get("tasks")) if t.get("status") != "ok"]
    if bad:
        listed = "; ".join(
            f"{text(t.get('task'))} ({text(t.get('status'))}): {text(t.get('reason'))}" for t in bad
        )
        out.append(Banner(f"Tasks not completed: {listed}", "alert"))
    return out


def _submission_facts(sub: Mapping[str, Any]) -> list[tuple[str, str]]:
    if sub.get("local_default", True):
        return [("Product", "local machine, default submission")]
    return [
        ("Applicant", text(sub.get("applicant"))),
        ("Product", text(sub.get("product"))),
        ("Submission sha256", text(sub.get("sha256"))),
    ]


def _hardware_fact(hw: Any) -> str:
    if not isinstance(hw, dict):
        return "none matched"
    how = "matched automatically" if hw.get("matched_automatically") else "named by the submission"
    return f"{text(hw.get('name'))} ({text(hw.get('id'))}, {how})"


def _suite_fact(suite: Mapping[str, Any]) -> str:
    return f"sha256 {text(suite.get('sha256'))} ({text(suite.get('shipped'))})"


def run_facts(p: Mapping[str, Any]) -> Facts:
    run, harness, signer = _dict(p.get("run")), _dict(p.get("harness")), _dict(p.get("signer"))
    sut = _dict(_dict(p.get("submission")).get("sut"))
    return Facts(
        (
            *_submission_facts(_dict(p.get("submission"))),
            ("System under test", f"adapter {text(sut.get('adapter'))}"),
            ("Device", text(run.get("device"))),
            ("Hardware description", _hardware_fact(p.get("hardware"))),
            ("Suite file", _suite_fact(_dict(p.get("suite")))),
            ("Started (UTC)", text(run.get("started_utc"))),
            ("Finished (UTC)", text(run.get("finished_utc"))),
            ("Seed", num(run.get("seed"))),
            ("Quick run", num(bool(run.get("quick")))),
            ("Datasets (--dataset)", _datasets_fact(run.get("datasets"))),
            (
                "Harness",
                f"{text(harness.get('version'))} (git {text(harness.get('git_revision'))}, "
                f"Python {text(harness.get('python'))})",
            ),
            ("Signer key id", text(signer.get("keyid"))),
            (
                "Signer key",
                "self-generated dry-run key"
                if signer.get("self_generated")
                else "given by the operator; check it with harness verify --pubkey",
            ),
        )
    )


def status_counts(verdicts: Iterable[Mapping[str, Any]]) -> str:
    counts = Counter(str(v.get("status")) for v in verdicts)
    names = list(STATUSES) + sorted(set(counts) - set(STATUSES))
    return ", ".join(f"{counts[name]} {name}" for name in names)


def _declared_cell(v: Mapping[str, Any]) -> str:
    target = v.get("declared_target")
    cell = "-"
    if target is not None:
        cell = f"{text(v.get('op'))} {qty(target, v.get('unit'))}"
        if v.get("declared_status"):
            cell += f" ({v['declared_status']} against it)"
    flags = [str(f) for f in _list(v.get("flags"))]
    return "; ".join([cell, *(f"FLAG: {f}" for f in flags)]) if flags else cell


def verdict_row(v: Mapping[str, Any]) -> tuple[str, ...]:
    unit = v.get("unit")
    return (
        text(v.get("indicator")),
        text(v.get("title")),
        f"{text(v.get('op'))} {qty(v.get('target'), unit)}",
        _declared_cell(v),
        qty(v.get("value"), unit),
        qty(v.get("bound"), unit),
        text(v.get("status")),
        text(v.get("reason")),
    )


def verdict_section(verdicts: list[Any]) -> list[Block]:
    header = ("Indicator", "Title", "Target", "Declared", "Measured", "Bound", "Verdict", "Reason")
    return [
        Heading("Verdicts"),
        Para(status_counts(verdicts)),
        Table(header, tuple(verdict_row(v) for v in verdicts), status_col=6, mono_cols=(0,)),
    ]


def _datasets_fact(datasets: Any) -> str:
    """NAME=PATH of every set the run was given (each task's evidence holds its sha256), or
    that the tasks ran on the harness's own dev data."""
    if not isinstance(datasets, dict) or not datasets:
        return "none given (tasks that read a set used the harness's own dev data)"
    return "; ".join(f"{text(k)}={text(v)}" for k, v in sorted(datasets.items()))


def interval(ci: Any, exact: Any = None) -> str:
    """The figure's bounds; without any, "exact" only where the probe said why (an exact
    count, a deterministic ratio), else "no bound"."""
    if not isinstance(ci, dict):
        return f"exact: {exact}" if exact else "no bound"
    low, high = ci.get("low"), ci.get("high")
    cell = f"[{num(low)}, {num(high)}] at {pct(ci.get('confidence'))}"
    if (low is None or high is None) and ci.get("need"):
        cell += f"; need: {ci['need']}"
    return cell


def measurement_row(m: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        text(m.get("id")),
        qty(m.get("value"), m.get("unit")),
        interval(m.get("ci"), m.get("exact") or ("a count" if m.get("unit") == "count" else "")),
        num(m.get("n")),
        num(m.get("repeats")),
        text(m.get("method")),
    )


def measurement_section(measurements: list[Any]) -> list[Block]:
    header = ("Measurement", "Value", "Interval", "n", "Repeats", "Method")
    blocks: list[Block] = [
        Heading("Measurements"),
        Table(header, tuple(measurement_row(m) for m in measurements), mono_cols=(0,)),
    ]
    methods = sorted({str(m["ci"].get("method")) for m in measurements if _dict(m.get("ci"))})
    if methods:
        blocks.append(Para("Intervals: " + "; ".join(methods) + "."))
    return blocks


def _size_key(size: str) -> tuple[int, str]:
    return (int(size), "") if size.isdecimal() else (2**63, size)


def size_bars(by_size: Mapping[str, Any]) -> tuple[tuple[str, float | str], ...]:
    return tuple(
        (size, value if isinstance(value, int | float) else str(value))
        for size, value in sorted(by_size.items(), key=lambda item: _size_key(item[0]))
    )


def _size_row(size: str, value: float | str, unit: str, best: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (size, "-", f"skipped: {value}")
    return (size, qty(value, unit), "chosen (figure from fresh repeats)" if size == best else "")


def size_blocks(m: Mapping[str, Any]) -> list[Block]:
    details, unit, name = _dict(m.get("details")), text(m.get("unit")), text(m.get("id"))
    best = [str(x) for x in _list(details.get("best_size"))]
    best_size = best[0] if best and len(set(best)) == 1 else ""
    bars = size_bars(_dict(details.get("median_by_size")))
    rows = tuple(_size_row(size, value, unit, best_size) for size, value in bars)
    return [
        Heading(f"{name} ({unit})", 3),
        Table(("Size (square)", "Median pilot throughput", "Note"), rows),
        Chart(f"{name}: median pilot throughput by size", unit, bars),
    ]


def size_section(measurements: list[Any]) -> list[Block]:
    swept = [m for m in measurements if _dict(_dict(m.get("details")).get("median_by_size"))]
    if not swept:
        return []
    blocks: list[Block] = [Heading("Throughput by size")]
    for m in swept:
        blocks.extend(size_blocks(m))
    return blocks


def unmeasured_section(unmeasured: list[Any]) -> list[Block]:
    if not unmeasured:
        return [Heading("Not measured"), Para("Every metric of the suite was measured.")]
    rows = tuple((text(u.get("id")), text(u.get("reason"))) for u in unmeasured)
    return [Heading("Not measured"), Table(("Metric", "Reason"), rows, mono_cols=(0,))]


def _cpu_fact(cpu: Mapping[str, Any]) -> str:
    cores = (
        f"{num(cpu.get('physical_cores'))} physical, {num(cpu.get('logical_cores'))} logical, "
        f"{num(cpu.get('usable_cores'))} usable cores"
    )
    return f"{text(cpu.get('cpu_name'))} ({text(cpu.get('architecture'))}; {cores})"


def _os_fact(os_: Mapping[str, Any]) -> str:
    return f"{text(os_.get('system'))} {text(os_.get('release'))} ({text(os_.get('libc'))})"


def _gpu_text(gpu: Mapping[str, Any]) -> str:
    memory = gpu.get("memory_bytes")
    return (
        f"#{num(gpu.get('index'))} {text(gpu.get('name'))}, "
        f"{qty(None if memory is None else memory / GIB, 'GiB')}, "
        f"driver {text(gpu.get('driver'))}, power limit {qty(gpu.get('power_limit_w'), 'W')}"
    )


def environment_facts(env: Mapping[str, Any]) -> Facts:
    os_, py = _dict(env.get("os")), _dict(env.get("python"))
    memory = env.get("memory_bytes")
    gpus = [_gpu_text(g) for g in _list(env.get("gpus")) if isinstance(g, dict)]
    return Facts(
        (
            ("CPU", _cpu_fact(_dict(env.get("cpu")))),
            ("Memory", qty(None if memory is None else memory / GIB, "GiB")),
            ("OS", _os_fact(os_)),
            ("Python", f"{text(py.get('implementation'))} {text(py.get('version'))}"),
            ("GPUs", "; ".join(gpus) if gpus else f"none ({text(env.get('nvml'))})"),
        )
    )


def environment_section(env: Mapping[str, Any]) -> list[Block]:
    packages = _dict(env.get("packages"))
    rows = tuple((name, text(packages[name])) for name in sorted(packages))
    return [
        Heading("Environment"),
        environment_facts(env),
        Table(("Package", "Version"), rows, mono_cols=(1,)),
    ]


def evidence_section(subjects: list[Any]) -> list[Block]:
    rows = tuple(
        (text(s.get("name")), text(_dict(s.get("digest")).get("sha256"))[:HASH_CHARS])
        for s in subjects
    )
    return [
        Heading("Evidence"),
        Para(f"{len(rows)} evidence files, each bound to this statement by its sha256 digest."),
        Table(("File", "sha256 (first 16 hex)"), rows, mono_cols=(0, 1)),
        Para(
            "To check: verify tests the signature and every digest (without --pubkey it uses "
            "the key embedded in the report, which proves integrity, not who signed); audit "
            "recomputes measurements and verdicts from the evidence alone."
        ),
        Code(VERIFY_COMMANDS),
    ]


# ---------------------------------------------------------------- Markdown


def md_cell(value: str) -> str:
    one_line = " ".join(value.split())
    return one_line.replace("\\", "\\\\").replace("|", "\\|")


def md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


def md_table(table: Table) -> str:
    lines = [md_row(table.header), "|" + "---|" * len(table.header)]
    lines.extend(md_row(row) for row in table.rows)
    return "\n".join(lines)


def md_block(block: Block) -> str:
    match block:
        case Heading():
            return f"{'#' * block.level} {block.text}"
        case Banner():
            return f"> **{block.text}**"
        case Para():
            return block.text
        case Facts():
            return "\n".join(f"- **{label}:** {value}" for label, value in block.items)
        case Table():
            return md_table(block) if block.rows else "(none)"
        case Code():
            return f"```\n{block.text}\n```"
        case Chart():
            return ""  # the per-size table above carries the same numbers


def render_markdown(statement: dict[str, Any]) -> str:
    parts = (md_block(block) for block in build(statement).blocks)
    return "\n\n".join(part for part in parts if part) + "\n"


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#1a1a1a;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
.banner{padding:.6em 1em;margin:.5em 0;border-radius:4px;font-weight:bold}
.alert{background:#fde2e1;border:2px solid #c62828;color:#8e0000}
.warn{background:#fff4d6;border:2px solid #c98a00;color:#6b4a00}
.ok{background:#e3f4e6;border:2px solid #2e7d32;color:#1b4d1f}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}.mono{font-family:ui-monospace,Menlo,Consolas,monospace}
.s-PASS{background:#c8e6c9;font-weight:bold}.s-FAIL{background:#ffcdd2;font-weight:bold}
.s-INCONCLUSIVE{background:#fff3c4;font-weight:bold}.s-NOT_MEASURED{background:#e0e0e0}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}
dd{margin:0}pre{background:#f5f5f5;padding:.6em;border:1px solid #ddd}
"""

BAR_LEFT, BAR_WIDTH, BAR_HEIGHT, BAR_GAP, SKIP_CHARS = 90, 420, 22, 8, 75


def esc(value: str) -> str:
    return html.escape(value, quote=True)


def html_cell(value: str, tag: str, css: str) -> str:
    attr = f' class="{esc(css)}"' if css else ""
    return f"<{tag}{attr}>{esc(value)}</{tag}>"


def _cell_class(table: Table, col: int, value: str) -> str:
    classes = ["mono"] if col in table.mono_cols else []
    if col == table.status_col:
        classes.append(f"s-{value}")
    return " ".join(classes)


def html_table(table: Table) -> str:
    head = "".join(html_cell(h, "th", "") for h in table.header)
    body = "\n".join(
        "<tr>"
        + "".join(html_cell(c, "td", _cell_class(table, i, c)) for i, c in enumerate(row))
        + "</tr>"
        for row in table.rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _svg_bar(index: int, label: str, value: float | str, top: float, unit: str) -> str:
    y = BAR_GAP + index * (BAR_HEIGHT + BAR_GAP)
    mid = y + BAR_HEIGHT * 0.7
    out = f'<text x="{BAR_LEFT - 8}" y="{mid:.1f}" text-anchor="end">{esc(label)}</text>'
    if isinstance(value, str):
        short = value if len(value) <= SKIP_CHARS else value[: SKIP_CHARS - 1] + "…"
        return out + (
            f'<text x="{BAR_LEFT}" y="{mid:.1f}" fill="#777" font-style="italic">'
            f"<title>{esc(value)}</title>skipped: {esc(short)}</text>"
        )
    width = BAR_WIDTH * value / top if top > 0 else 0.0
    return out + (
        f'<rect x="{BAR_LEFT}" y="{y}" width="{max(width, 0.0):.1f}" height="{BAR_HEIGHT}" '
        f'fill="#3b78c2"/><text x="{BAR_LEFT + max(width, 0.0) + 6:.1f}" y="{mid:.1f}">'
        f"{esc(qty(value, unit))}</text>"
    )


def html_chart(chart: Chart) -> str:
    top = max((v for _, v in chart.bars if not isinstance(v, str)), default=0.0)
    height = BAR_GAP + len(chart.bars) * (BAR_HEIGHT + BAR_GAP)
    width = BAR_LEFT + BAR_WIDTH + 160
    bars = "\n".join(
        _svg_bar(i, label, value, top, chart.unit) for i, (label, value) in enumerate(chart.bars)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
        f"<title>{esc(chart.title)}</title>\n{bars}\n</svg>"
    )


def html_block(block: Block) -> str:
    match block:
        case Heading():
            return f"<h{block.level}>{esc(block.text)}</h{block.level}>"
        case Banner():
            return f'<div class="banner {esc(block.kind)}">{esc(block.text)}</div>'
        case Para():
            return f"<p>{esc(block.text)}</p>"
        case Facts():
            items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in block.items)
            return f"<dl>{items}</dl>"
        case Table():
            return html_table(block) if block.rows else "<p>(none)</p>"
        case Code():
            return f"<pre><code>{esc(block.text)}</code></pre>"
        case Chart():
            return html_chart(block)


def render_html(statement: dict[str, Any]) -> str:
    doc = build(statement)
    body = "\n".join(html_block(block) for block in doc.blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
