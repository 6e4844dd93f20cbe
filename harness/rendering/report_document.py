"""The report of one run as a Document, built from the signed statement.

Order: title and banners, the verdict table, each task's figures, then the rest (run,
measurements, sizes, what was not measured, environment, evidence). Nothing here reads the
clock; figures that need evidence files read them through `SignedEvidence` only.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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
from harness.rendering.evidence import SignedEvidence
from harness.rendering.figures import task_figures
from harness.rendering.fmt import as_dict, as_list, exact, interval, num, pct, qty, text

STATUSES = ("PASS", "FAIL", "INCONCLUSIVE", "NOT_MEASURED")
GIB = 1024**3
HASH_CHARS = 16
VERIFY_COMMANDS = "harness verify <run dir> [--pubkey KEY.pub]\nharness audit <run dir>"
VERDICT_HEADER = (
    "Indicator",
    "Title",
    "Target",
    "Declared",
    "Measured",
    "Bound",
    "Verdict",
    "Reason",
)
VERDICTS_TABLE_ID = "verdicts"
FIGURES_META = "harness-figures"
FROM_EVIDENCE = "statement and evidence files"
FROM_STATEMENT = "statement only"


def build(statement: Mapping[str, Any], run_dir: Path | None = None) -> Document:
    """The report. With `run_dir`, figures whose numbers lie in evidence files are drawn from
    those files (subjects of the statement whose sha256 matches); without it they carry a
    note, and the document is a function of the statement alone. Its `harness-figures` meta
    says which: evidence files were read, or the statement only (also with `run_dir` when no
    figure needed a file), so a checker can render it the same way."""
    p = as_dict(statement.get("predicate"))
    suite = as_dict(p.get("suite"))
    title = f"{text(suite.get('id'))} v{text(suite.get('version'))}: {text(suite.get('title'))}"
    evidence = SignedEvidence(run_dir, dict(statement))
    blocks: list[Block] = [
        Heading(title, 1),
        Para(
            f"Direction {text(suite.get('direction'))}; "
            f"suite confidence {pct(suite.get('confidence'))}"
        ),
        *banners(p),
        *verdict_section(as_list(p.get("verdicts"))),
        *figure_section(as_list(p.get("tasks")), as_list(p.get("measurements")), evidence),
        Heading("Run"),
        run_facts(p),
        *measurement_section(as_list(p.get("measurements"))),
        *size_section(as_list(p.get("measurements"))),
        *unmeasured_section(as_list(p.get("unmeasured"))),
        *environment_section(as_dict(p.get("environment"))),
        *evidence_section(as_list(statement.get("subject"))),
    ]
    source = FROM_EVIDENCE if evidence.read_any else FROM_STATEMENT
    return Document(title, tuple(blocks), ((FIGURES_META, source),))


def banners(p: Mapping[str, Any]) -> list[Banner]:
    signer = as_dict(p.get("signer"))
    out: list[Banner] = []
    trust = as_dict(p.get("trust"))
    if trust.get("precomputed_outputs"):
        out.append(Banner(text(trust.get("note")), "alert"))
    suite = as_dict(p.get("suite"))
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
    if as_dict(p.get("run")).get("quick"):
        out.append(Banner("QUICK RUN (dry-run sizes and repeats)", "warn"))
    bad = [as_dict(t) for t in as_list(p.get("tasks")) if as_dict(t).get("status") != "ok"]
    if bad:
        listed = "; ".join(
            f"{text(t.get('task'))} ({text(t.get('status'))}): {text(t.get('reason'))}" for t in bad
        )
        out.append(Banner(f"Tasks not completed: {listed}", "alert"))
    return out


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
    flags = [str(f) for f in as_list(v.get("flags"))]
    return "; ".join([cell, *(f"FLAG: {f}" for f in flags)]) if flags else cell


def verdict_row(v: Mapping[str, Any]) -> tuple[str | Cell, ...]:
    unit = v.get("unit")
    return (
        text(v.get("indicator")),
        text(v.get("title")),
        Cell(f"{text(v.get('op'))} {qty(v.get('target'), unit)}", exact(v.get("target"))),
        _declared_cell(v),
        Cell(qty(v.get("value"), unit), exact(v.get("value"))),
        Cell(qty(v.get("bound"), unit), exact(v.get("bound"))),
        text(v.get("status")),
        text(v.get("reason")),
    )


def verdict_section(verdicts: list[Any]) -> list[Block]:
    rows = [as_dict(v) for v in verdicts]
    return [
        Heading("Verdicts"),
        Para(status_counts(rows)),
        Table(
            VERDICT_HEADER,
            tuple(verdict_row(v) for v in rows),
            status_col=6,
            mono_cols=(0,),
            table_id=VERDICTS_TABLE_ID,
        ),
    ]


def figure_section(
    tasks: list[Any], measurements: list[Any], evidence: SignedEvidence
) -> list[Block]:
    ids = (f"fig{n}" for n in itertools.count(1))
    ms = [as_dict(m) for m in measurements]
    blocks: list[Block] = []
    for task in (as_dict(t) for t in tasks):
        name = text(task.get("task"))
        figures: list[Figure] = task_figures(name, ms, evidence, ids)
        if figures:
            heading = Heading(f"{name} ({text(task.get('probe'))})", 3, html_only=True)
            blocks += [heading, *figures]
    return [Heading("Figures", html_only=True), *blocks] if blocks else []


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


def _datasets_fact(datasets: Any) -> str:
    """NAME=PATH of every set the run was given (each task's evidence holds its sha256), or
    that the tasks ran on the harness's own dev data."""
    if not isinstance(datasets, dict) or not datasets:
        return "none given (tasks that read a set used the harness's own dev data)"
    return "; ".join(f"{text(k)}={text(v)}" for k, v in sorted(datasets.items()))


def run_facts(p: Mapping[str, Any]) -> Facts:
    run, harness, signer = (
        as_dict(p.get("run")),
        as_dict(p.get("harness")),
        as_dict(p.get("signer")),
    )
    sut = as_dict(as_dict(p.get("submission")).get("sut"))
    return Facts(
        (
            *_submission_facts(as_dict(p.get("submission"))),
            ("System under test", f"adapter {text(sut.get('adapter'))}"),
            ("Device", text(run.get("device"))),
            ("Hardware description", _hardware_fact(p.get("hardware"))),
            ("Suite file", _suite_fact(as_dict(p.get("suite")))),
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


def measurement_row(m: Mapping[str, Any]) -> tuple[str | Cell, ...]:
    return (
        text(m.get("id")),
        Cell(qty(m.get("value"), m.get("unit")), exact(m.get("value"))),
        interval(m.get("ci"), m.get("exact") or ("a count" if m.get("unit") == "count" else "")),
        num(m.get("n")),
        num(m.get("repeats")),
        text(m.get("method")),
    )


def measurement_section(measurements: list[Any]) -> list[Block]:
    rows = [as_dict(m) for m in measurements]
    header = ("Measurement", "Value", "Interval", "n", "Repeats", "Method")
    blocks: list[Block] = [
        Heading("Measurements"),
        Table(header, tuple(measurement_row(m) for m in rows), mono_cols=(0,)),
    ]
    methods = sorted(
        {str(as_dict(m.get("ci")).get("method")) for m in rows if as_dict(m.get("ci"))}
    )
    if methods:
        blocks.append(Para("Intervals: " + "; ".join(methods) + "."))
    return blocks


def _size_key(size: str) -> tuple[int, str]:
    return (int(size), "") if size.isdecimal() else (2**63, size)


def size_bars(by_size: Mapping[str, Any]) -> tuple[tuple[str, float | str], ...]:
    """(size, median pilot throughput, or why the size was skipped), sizes in numeric order."""
    return tuple(
        (size, value if isinstance(value, int | float) else str(value))
        for size, value in sorted(by_size.items(), key=lambda item: _size_key(item[0]))
    )


def _size_row(size: str, value: float | str, unit: str, best: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (size, "-", f"skipped: {value}")
    return (size, qty(value, unit), "chosen (figure from fresh repeats)" if size == best else "")


def size_blocks(m: Mapping[str, Any]) -> list[Block]:
    details, unit, name = as_dict(m.get("details")), text(m.get("unit")), text(m.get("id"))
    best = [str(x) for x in as_list(details.get("best_size"))]
    best_size = best[0] if best and len(set(best)) == 1 else ""
    bars = size_bars(as_dict(details.get("median_by_size")))
    rows = tuple(_size_row(size, value, unit, best_size) for size, value in bars)
    return [
        Heading(f"{name} ({unit})", 3),
        Table(("Size (square)", "Median pilot throughput", "Note"), rows),
    ]


def size_section(measurements: list[Any]) -> list[Block]:
    swept = [as_dict(m) for m in measurements]
    swept = [m for m in swept if as_dict(as_dict(m.get("details")).get("median_by_size"))]
    if not swept:
        return []
    blocks: list[Block] = [Heading("Throughput by size")]
    for m in swept:
        blocks.extend(size_blocks(m))
    return blocks


def unmeasured_section(unmeasured: list[Any]) -> list[Block]:
    if not unmeasured:
        return [Heading("Not measured"), Para("Every metric of the suite was measured.")]
    rows = tuple((text(as_dict(u).get("id")), text(as_dict(u).get("reason"))) for u in unmeasured)
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
    os_, py = as_dict(env.get("os")), as_dict(env.get("python"))
    memory = env.get("memory_bytes")
    gpus = [_gpu_text(g) for g in as_list(env.get("gpus")) if isinstance(g, dict)]
    return Facts(
        (
            ("CPU", _cpu_fact(as_dict(env.get("cpu")))),
            ("Memory", qty(None if memory is None else memory / GIB, "GiB")),
            ("OS", _os_fact(os_)),
            ("Python", f"{text(py.get('implementation'))} {text(py.get('version'))}"),
            ("GPUs", "; ".join(gpus) if gpus else f"none ({text(env.get('nvml'))})"),
        )
    )


def environment_section(env: Mapping[str, Any]) -> list[Block]:
    packages = as_dict(env.get("packages"))
    rows = tuple((name, text(packages[name])) for name in sorted(packages))
    return [
        Heading("Environment"),
        environment_facts(env),
        Table(("Package", "Version"), rows, mono_cols=(1,)),
    ]


def evidence_section(subjects: list[Any]) -> list[Block]:
    rows = tuple(
        (
            text(as_dict(s).get("name")),
            text(as_dict(as_dict(s).get("digest")).get("sha256"))[:HASH_CHARS],
        )
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
