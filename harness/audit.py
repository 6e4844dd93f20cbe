"""`harness audit`: verify the run directory, then recompute the header, every measurement and
every verdict from evidence/ alone and compare them with the signed statement."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__, header
from harness.environment import git_revision, package_versions, source_digest
from harness.errors import BadInput
from harness.evaluate import evaluate
from harness.verify import ENVELOPE_FILE, VerifyResult, check_subjects, verify

COMPARED = ("tasks", "measurements", "unmeasured", "verdicts")


@dataclass(frozen=True)
class AuditResult:
    differences: list[str]
    compared: dict[str, int]
    notes: list[str]  # e.g. the report was made by another harness revision
    verified: VerifyResult


def _key(section: str, item: dict[str, Any]) -> str:
    return str(item.get("indicator") or item.get("id") or item.get("task"))


def _diff_values(path: str, signed: Any, recomputed: Any, out: list[str]) -> None:
    if isinstance(signed, dict) and isinstance(recomputed, dict):
        for k in sorted(set(signed) | set(recomputed)):
            if k not in signed:
                out.append(f"{path}.{k}: not in the statement, recomputed {_show(recomputed[k])}")
            elif k not in recomputed:
                out.append(f"{path}.{k}: in the statement ({_show(signed[k])}), not recomputed")
            else:
                _diff_values(f"{path}.{k}", signed[k], recomputed[k], out)
    elif (
        isinstance(signed, list) and isinstance(recomputed, list) and len(signed) == len(recomputed)
    ):
        for i, (a, b) in enumerate(zip(signed, recomputed, strict=True)):
            _diff_values(f"{path}[{i}]", a, b, out)
    elif signed != recomputed or type(signed) is not type(recomputed):
        out.append(f"{path}: signed {_show(signed)} != recomputed {_show(recomputed)}")


def _show(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def diff_header(signed: dict[str, Any], derived: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for section in header.SECTIONS:
        if section not in signed:
            out.append(f"{section}: missing from the statement")
            continue
        _diff_values(section, signed[section], derived[section], out)
    return out


def audit(
    run_dir: Path, pubkeys: Sequence[Path] = (), threshold: int = 1, rendered: bool = True
) -> AuditResult:
    """VerificationFailed when the run directory does not verify (signature, digests, links,
    statement.json, rendered reports unless `rendered=False`); otherwise the differences
    between the signed predicate and what the evidence gives. The evidence is scored from a
    private copy whose digests are checked again against the verified statement, so a file
    swapped back and forth during the audit is never what it scores."""
    evidence_dir = run_dir / "evidence"
    if not evidence_dir.is_dir():
        raise BadInput(run_dir, None, "no evidence/ directory: not a run directory")
    envelope_path = run_dir / ENVELOPE_FILE
    if not envelope_path.is_file():
        raise BadInput(run_dir, None, f"no {ENVELOPE_FILE}: not a run directory")
    verified = verify(run_dir, pubkeys, threshold, rendered)
    signed = verified.statement.get("predicate")  # the bytes that verified, not a re-read
    if not isinstance(signed, dict):
        raise BadInput(envelope_path, "predicate", "missing")
    with tempfile.TemporaryDirectory(prefix="harness-audit-") as private:
        copy = Path(private) / "evidence"
        shutil.copytree(evidence_dir, copy, symlinks=True)
        check_subjects(copy, verified.statement, envelope_path)
        return _recompute(copy, signed, verified)


def _recompute(evidence_dir: Path, signed: dict[str, Any], verified: VerifyResult) -> AuditResult:
    try:
        differences = diff_header(signed, header.derive(evidence_dir))
        recomputed = evaluate(evidence_dir).as_json()
    except BadInput as error:
        # evidence that verified but cannot be scored here (a forger's, or another harness
        # revision's format): still the one-line refusal (exit 2), saying who made it
        notes = _notes(signed)
        if not notes:
            raise
        raise BadInput(error.source, error.field, f"{error.message} ({'; '.join(notes)})") from None
    differences += diff_sections(signed, recomputed)
    extra = sorted(set(signed) - set(header.SECTIONS) - set(COMPARED) - {"harness", "signer"})
    differences += [f"{name}: in the statement, not derived from the evidence" for name in extra]
    return AuditResult(
        differences, {s: len(recomputed[s]) for s in COMPARED}, _notes(signed), verified
    )


def _notes(signed: dict[str, Any]) -> list[str]:
    """Scoring code and the libraries it scores with can change: say when they did."""
    return _revision_notes(signed) + _package_notes(signed)


def _package_notes(signed: dict[str, Any]) -> list[str]:
    environment = signed.get("environment")
    recorded = environment.get("packages") if isinstance(environment, dict) else None
    if not isinstance(recorded, dict):
        return []
    here = package_versions()
    changed = [
        f"{name} {recorded[name]} -> {here[name]}"
        for name in sorted(set(recorded) & set(here))
        if recorded[name] != here[name]
    ]
    if not changed:
        return []
    return [
        "packages the figures are computed with differ from the run's (a figure that "
        "differs may come from them): " + ", ".join(changed)
    ]


def _revision_notes(signed: dict[str, Any]) -> list[str]:
    made_by = signed.get("harness") or {}
    current = {"version": __version__, "git_revision": git_revision()}
    same_source = made_by.get("source_sha256") == source_digest()
    if same_source and (made_by.get("version"), made_by.get("git_revision")) == (
        current["version"],
        current["git_revision"],
    ):
        return []
    if not same_source and made_by.get("git_revision") == current["git_revision"]:
        return [
            "the report was made by harness code with other bytes than this audit's "
            f"(source sha256 {str(made_by.get('source_sha256'))[:12]} vs "
            f"{source_digest()[:12]}), at the same git revision: a modified working tree"
        ]
    return [
        f"the report was made by harness {made_by.get('version')} "
        f"(revision {made_by.get('git_revision') or 'unknown'}); this audit runs "
        f"{current['version']} (revision {current['git_revision'] or 'unknown'})"
    ]
