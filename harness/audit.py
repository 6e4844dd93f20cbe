"""`harness audit`: recompute measurements and verdicts from evidence/ alone and compare
with the signed statement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__, jsonio, signing
from harness.errors import BadInput
from harness.evaluate import evaluate
from harness.run import git_revision
from harness.verify import ENVELOPE_FILE, STATEMENT_FILE

COMPARED = ("tasks", "measurements", "unmeasured", "verdicts")


@dataclass(frozen=True)
class AuditResult:
    differences: list[str]
    compared: dict[str, int]
    notes: list[str]  # e.g. the report was made by another harness revision


def _key(section: str, item: dict[str, Any]) -> str:
    return str(item.get("indicator") or item.get("id") or item.get("task"))


def _diff_values(path: str, signed: Any, recomputed: Any, out: list[str]) -> None:
    if isinstance(signed, dict) and isinstance(recomputed, dict):
        for k in sorted(set(signed) | set(recomputed)):
            _diff_values(f"{path}.{k}", signed.get(k), recomputed.get(k), out)
    elif signed != recomputed or type(signed) is not type(recomputed):
        out.append(f"{path}: signed {json.dumps(signed)} != recomputed {json.dumps(recomputed)}")


def diff_sections(signed: dict[str, Any], recomputed: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for section in COMPARED:
        a = {_key(section, x): x for x in signed.get(section, [])}
        b = {_key(section, x): x for x in recomputed.get(section, [])}
        for name in sorted(set(a) | set(b)):
            if name not in b:
                out.append(f"{section}[{name}]: in the statement, not recomputed")
            elif name not in a:
                out.append(f"{section}[{name}]: recomputed, not in the statement")
            else:
                _diff_values(f"{section}[{name}]", a[name], b[name], out)
        if not out and [_key(section, x) for x in signed.get(section, [])] != [
            _key(section, x) for x in recomputed.get(section, [])
        ]:
            out.append(f"{section}: same entries in another order")
    return out


def _signed_predicate(run_dir: Path) -> dict[str, Any]:
    envelope_path = run_dir / ENVELOPE_FILE
    if not envelope_path.is_file():
        raise BadInput(run_dir, None, f"no {ENVELOPE_FILE}: not a run directory")
    try:
        data = json.loads(envelope_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BadInput(envelope_path, None, f"not JSON: {error}") from None
    statement = signing.statement_of(
        signing.open_envelope(data, str(envelope_path)), str(envelope_path)
    )
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise BadInput(envelope_path, "predicate", "missing")
    return predicate


def audit(run_dir: Path) -> AuditResult:
    evidence_dir = run_dir / "evidence"
    if not evidence_dir.is_dir():
        raise BadInput(run_dir, None, "no evidence/ directory: not a run directory")
    recomputed = evaluate(evidence_dir).as_json()
    signed = _signed_predicate(run_dir)
    differences = diff_sections(signed, recomputed)
    statement_file = run_dir / STATEMENT_FILE
    if statement_file.is_file():
        try:
            on_disk = jsonio.read(statement_file)
        except (ValueError, UnicodeDecodeError) as error:
            differences.append(f"{STATEMENT_FILE}: not readable JSON ({error})")
        else:
            predicate = on_disk.get("predicate") if isinstance(on_disk, dict) else None
            if not isinstance(predicate, dict):
                differences.append(f"{STATEMENT_FILE}: holds no predicate")
            else:
                differences += [
                    f"{STATEMENT_FILE}: {d}" for d in diff_sections(predicate, recomputed)
                ]
    return AuditResult(differences, {s: len(recomputed[s]) for s in COMPARED}, _notes(signed))


def _notes(signed: dict[str, Any]) -> list[str]:
    """Scoring code can change between harness revisions: say when it did."""
    made_by = signed.get("harness") or {}
    current = {"version": __version__, "git_revision": git_revision()}
    if (made_by.get("version"), made_by.get("git_revision")) == (
        current["version"],
        current["git_revision"],
    ):
        return []
    return [
        f"the report was made by harness {made_by.get('version')} "
        f"(revision {made_by.get('git_revision') or 'unknown'}); this audit runs "
        f"{current['version']} (revision {current['git_revision'] or 'unknown'})"
    ]
