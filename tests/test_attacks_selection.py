"""Attacks on the selection and the paper trail that succeeded in the hostile review, kept as
regression tests (each failed before the fix).

The reports are issued as the agency would (tests/rankhelpers.py `issue`, with an "agency"
key the test makes) from the session's real tiny run; the attacker never holds that key: a
hostile report is signed with a key of the attacker's own, or not validly signed at all.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import TinyRun, run_cli
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rankhelpers import Figure, issue

from harness import signing
from harness.selection import reports
from harness.verify import VerifyResult

FP32, INT8, POWER = "fp32_tflops", "int8_tops", "typical_power_w"


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> tuple[signing.SigningKey, Path]:
    base = tmp_path_factory.mktemp("agency")
    key_path, pub_path = signing.write_keypair(base / "agency")
    return signing.load_private(key_path), pub_path


def _issue(tiny_run: TinyRun, root: Path, key: signing.SigningKey, name: str, fp32: float) -> Path:
    return issue(
        tiny_run.run_dir, root / name, key, f"Lab {name}", f"Chip {name}",
        {FP32: Figure(fp32, fp32 - 0.1, fp32 + 0.1), INT8: Figure(3, 2.9, 3.1),
         POWER: Figure(None, None, None)},
        html=False,
    )


def _statement(run_dir: Path) -> dict[str, Any]:
    envelope = json.loads((run_dir / "report.dsse.json").read_text(encoding="utf-8"))
    return json.loads(base64.b64decode(envelope["payload"]))


def _sign_own(run_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Re-sign the statement, edited, with a fresh key of the attacker's own (embedded)."""
    statement = _statement(run_dir)
    key = signing.SigningKey(Ed25519PrivateKey.generate(), run_dir / "own.key", False)
    statement["predicate"]["signer"] = {
        "keyid": key.keyid, "public_key": key.public_pem(), "self_generated": False}
    edit(statement)
    (run_dir / "report.dsse.json").write_text(json.dumps(signing.sign(statement, key)))
    (run_dir / "statement.json").write_bytes(signing.payload_bytes(statement))
    for name in ("report.md", "report.html"):
        (run_dir / name).unlink(missing_ok=True)


def _unsigned(run_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """The statement edited inside the agency's envelope (its signature no longer fits)."""
    path = run_dir / "report.dsse.json"
    envelope = json.loads(path.read_text(encoding="utf-8"))
    statement = _statement(run_dir)
    edit(statement)
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(statement: dict[str, Any]) -> None:
        target: Any = statement
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


def _first_verdict_target(statement: dict[str, Any]) -> None:
    statement["predicate"]["verdicts"][0]["target"] = "abc"


def _deep_envelope(run_dir: Path) -> None:
    (run_dir / "report.dsse.json").write_text("[" * 100_000)


HOSTILE: dict[str, Callable[[Path], None]] = {
    "deeply nested envelope JSON (RecursionError)": _deep_envelope,
    "predicate is a list, unsigned (AttributeError in _trusted_signers)":
        lambda d: _unsigned(d, _set("predicate", value=[])),
    "predicate.suite is a string, own key (AttributeError in record_of)":
        lambda d: _sign_own(d, _set("predicate", "suite", value="x")),
    "predicate.submission is a string, own key (AttributeError in record_of)":
        lambda d: _sign_own(d, _set("predicate", "submission", value="x")),
    "a verdict's target is a string, own key (ValueError in _indicator_rows)":
        lambda d: _sign_own(d, _first_verdict_target),
}


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_a_hostile_run_directory_does_not_crash_rank_and_drop_the_others(
    attack: str, tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path]
) -> None:
    """One hostile folder among the reports must be excluded with its reason, not abort the
    whole ranking (which drops every genuine applicant from the table)."""
    key, pub = agency
    _issue(tiny_run, tmp_path, key, "A", 10)
    _issue(tiny_run, tmp_path, key, "B", 8)
    hostile = _issue(tiny_run, tmp_path, key, "ZZ", 2)
    HOSTILE[attack](hostile)
    result = run_cli("rank", tmp_path, "--pubkey", pub, "--format", "json")
    assert result.code == 0, result.stderr[-400:]
    ranked = json.loads(result.stdout)
    names = [e["applicant"] for t in ranked["tables"] for e in t["entries"]]
    assert names == ["Lab A", "Lab B"]
    assert [Path(u["path"]).name for u in ranked["excluded"]] == ["ZZ"]


def test_an_envelope_swapped_after_verification_is_not_ranked_with_its_edited_figures(
    tiny_run: TinyRun, tmp_path: Path, agency: tuple[signing.SigningKey, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TOCTOU: read_report verifies RUN/report.dsse.json, then record_of reads the file again
    and takes the figures from it without checking its signature. A writer that replaces the
    file in between (here right after verify returns; a real concurrent flipper won 2 of 10
    rankings in the review) gets unsigned figures ranked as official."""
    key, pub = agency
    _issue(tiny_run, tmp_path, key, "A", 10)
    me = _issue(tiny_run, tmp_path, key, "ME", 2)
    genuine = (me / "report.dsse.json").read_bytes()

    def bump(statement: dict[str, Any]) -> None:
        for verdict in statement["predicate"]["verdicts"]:
            if verdict["indicator"] == FP32:
                verdict["value"] = 99.0
        for m in statement["predicate"]["measurements"]:
            if m["id"] == "gemm.fp32.throughput":
                m["value"], m["ci"]["low"], m["ci"]["high"] = 99.0, 98.0, 100.0

    _unsigned(me, bump)
    edited = (me / "report.dsse.json").read_bytes()
    (me / "report.dsse.json").write_bytes(genuine)
    real_verify = reports.verify

    def verify_then_swap(path: Path, *args: Any, **kwargs: Any) -> VerifyResult:
        result = real_verify(path, *args, **kwargs)
        if Path(path).resolve() == me.resolve():
            (me / "report.dsse.json").write_bytes(edited)  # the concurrent writer's move
        return result

    monkeypatch.setattr(reports, "verify", verify_then_swap)
    result = run_cli("rank", tmp_path, "--pubkey", pub, "--format", "json")
    assert result.code == 0, result.stderr[-400:]
    ranked = json.loads(result.stdout)
    rows = {e["applicant"]: e for t in ranked["tables"] for e in t["entries"]}
    if "Lab ME" in rows:  # ranked with the figures that verified, or not at all
        assert rows["Lab ME"]["rank"] == "2", rows["Lab ME"]["why"]


def test_report_html_with_a_claimed_other_generator_cannot_show_other_figures(
    run_copy: Path,
) -> None:
    """report.html claiming another harness/jinja2/matplotlib version is compared by its
    verdict table's data-value, status and indicator cells only; the figures a reader sees
    (value text, target, the measurement table, any banner) can be rewritten and `verify`
    still exits 0 with a warning."""
    page = run_copy / "report.html"
    text = page.read_text(encoding="utf-8")
    text = re.sub(
        r'<meta name="generator" content="[^"]*">',
        '<meta name="generator" content="harness 0.0.1; jinja2 3.0.0; matplotlib 3.0.0">',
        text,
        count=1,
    )
    shown = re.findall(r'data-value="([0-9.e+-]+)">([0-9.e+-]+ TFLOPS)<', text)
    assert shown, "the verdict table shows a TFLOPS value"
    text = text.replace(f">{shown[0][1]}<", ">9000 TFLOPS<")
    text = text.replace("<body>", "<body><h1>OFFICIAL WINNER, certified by the agency</h1>", 1)
    page.write_text(text, encoding="utf-8")
    result = run_cli("verify", run_copy)
    assert result.code != 0, result.stdout + result.stderr
