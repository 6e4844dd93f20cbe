"""Signed reports for the ranking, index and co-signature tests, made from one real run.

`issue` copies a real run directory and re-issues it as the agency would for another
applicant: the predicate's applicant, product and chosen verdicts edited, signed with the
given key (the statement then names that key as its signer). The figures are test data
for the ordering rules; the signatures, digests and files are all real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from harness import report, signing
from harness.evidence import digest_tree


@dataclass(frozen=True)
class Figure:
    value: float | None
    low: float | None
    high: float | None
    status: str = "PASS"


def load_key(path: Path) -> signing.SigningKey:
    return signing.load_private(path)


def statement_of(run_dir: Path) -> dict[str, Any]:
    envelope = json.loads((run_dir / "report.dsse.json").read_text(encoding="utf-8"))
    return json.loads(base64.b64decode(envelope["payload"]))


def issue(
    base: Path,
    dest: Path,
    key: signing.SigningKey,
    applicant: str,
    product: str,
    figures: dict[str, Figure],
    *,
    quick: bool = False,
    shipped: bool = True,
    version: str | None = None,
    finished_utc: str | None = None,
    self_generated: bool = False,
    html: bool = True,
) -> Path:
    shutil.copytree(base, dest)
    statement = statement_of(dest)
    p = statement["predicate"]
    if version is not None:
        suite_file = dest / "evidence" / "suite.yaml"
        text = suite_file.read_text(encoding="utf-8")
        old = p["suite"]["version"]
        suite_file.write_text(text.replace(f"version: {old}", f"version: {version}", 1))
        p["suite"]["version"] = version
        p["suite"]["sha256"] = hashlib.sha256(suite_file.read_bytes()).hexdigest()
        for verdict in p["verdicts"]:
            verdict["suite_sha256"] = p["suite"]["sha256"]
        statement["subject"] = [
            {"name": name, "digest": {"sha256": digest}}
            for name, digest in digest_tree(dest / "evidence")
        ]
    p["submission"] = {
        "applicant": applicant,
        "product": product,
        "suite": p["suite"]["id"],
        "sut": {"adapter": "local"},
    }
    p["run"]["quick"] = quick
    if finished_utc is not None:
        p["run"]["finished_utc"] = finished_utc
    p["suite"]["shipped"] = "shipped" if shipped else "not shipped"
    metric_of = {v["indicator"]: None for v in p["verdicts"]}
    suite_text = (dest / "evidence" / "suite.yaml").read_text(encoding="utf-8")
    import yaml

    for ind in yaml.safe_load(suite_text)["indicators"]:
        metric_of[ind["id"]] = ind["metric"]
    for verdict in p["verdicts"]:
        figure = figures.get(verdict["indicator"])
        if figure is None:
            continue
        verdict["value"] = figure.value
        verdict["status"] = figure.status
        verdict["bound"] = figure.low
        for m in p["measurements"]:
            if m["id"] == metric_of[verdict["indicator"]] and figure.value is not None:
                m["value"] = figure.value
                m["exact"] = ""
                m["ci"] = {
                    "confidence": 0.95,
                    "high": figure.high,
                    "low": figure.low,
                    "method": "test data",
                    "need": "",
                    "proportion": {},
                }
    p["signer"] = {
        "keyid": key.keyid,
        "public_key": key.public_pem(),
        "self_generated": self_generated,
    }
    envelope = signing.sign(statement, key)
    (dest / "report.dsse.json").write_bytes(signing.envelope_file_bytes(envelope))
    (dest / "statement.json").write_bytes(signing.payload_bytes(statement))
    (dest / "report.md").write_text(report.render_markdown(statement), encoding="utf-8")
    if html:
        (dest / "report.html").write_text(report.render_html(statement), encoding="utf-8")
    else:
        (dest / "report.html").unlink(missing_ok=True)
    return dest


def public_pem_file(key: signing.SigningKey, path: Path) -> Path:
    path.write_bytes(
        key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path
