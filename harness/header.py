"""The report's header, derived from the evidence alone: suite (and whether it is a shipped
one), submission, hardware, run, environment and trust.

`harness run` puts exactly this into the signed predicate; `harness audit` derives it again
from `evidence/` and fails on any difference, so the QUICK banner, the applicant, the suite's
identity or the lower-trust banner cannot be changed in a re-signed statement without the
evidence saying so too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import suite_manifest
from harness.adapters import precomputed
from harness.errors import BadInput
from harness.evidence import EvidenceReader, sha256_file
from harness.hardware import load as load_hardware
from harness.loading import load_model, read_yaml
from harness.schema import Submission, SutSpec
from harness.submissions import LOCAL_DEFAULT

SUITE_FILE = "suite.yaml"
SUBMISSION_FILE = "submission.yaml"
HARDWARE_FILE = "hardware.yaml"
LAB_INSTRUMENTS_FILE = "lab-instruments.yaml"
ENVIRONMENT_FILE = "environment.json"
RUN_FILE = "run.json"

RUN_KEYS = ("started_utc", "finished_utc", "seed", "quick", "device", "datasets")
SECTIONS = ("suite", "submission", "hardware", "run", "environment", "trust")


def read_json(reader: EvidenceReader, name: str) -> Any:
    if not reader.exists(name):
        raise BadInput(reader.path(name), None, "missing from the evidence")
    try:
        return reader.read_json(name)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadInput(reader.path(name), None, f"not readable JSON: {error}") from None


def read_run(reader: EvidenceReader) -> dict[str, Any]:
    run = read_json(reader, RUN_FILE)
    if not isinstance(run, dict) or not isinstance(run.get("quick"), bool):
        raise BadInput(reader.path(RUN_FILE), "quick", "expected true or false")
    return run


def submission_of(reader: EvidenceReader) -> Submission | None:
    if not reader.exists(SUBMISSION_FILE):
        return None
    return load_model(reader.path(SUBMISSION_FILE), Submission, "submission")


def sut_of(reader: EvidenceReader) -> SutSpec:
    """The SUT block the run used: the submission's, or the local default."""
    submission = submission_of(reader)
    return submission.sut if submission is not None else LOCAL_DEFAULT.sut


def suite_section(reader: EvidenceReader) -> dict[str, Any]:
    raw = read_yaml(reader.path(SUITE_FILE))
    head = raw if isinstance(raw, dict) else {}
    identity = suite_manifest.identify(
        str(head.get("id")), str(head.get("version")), reader.path(SUITE_FILE).read_bytes()
    )
    return {
        "id": head.get("id"),
        "version": head.get("version"),
        "direction": head.get("direction"),
        "title": head.get("title"),
        "confidence": head.get("confidence", 0.95),
        "file": f"evidence/{SUITE_FILE}",
        "sha256": identity.sha256,
        "shipped": identity.status,
        "shipped_note": identity.note,
    }


def submission_section(reader: EvidenceReader) -> dict[str, Any]:
    sub = submission_of(reader)
    if sub is None:
        return {"local_default": True, "sut": LOCAL_DEFAULT.sut.model_dump()}
    return {
        "local_default": False,
        "file": f"evidence/{SUBMISSION_FILE}",
        "sha256": sha256_file(reader.path(SUBMISSION_FILE)),
        "applicant": sub.applicant,
        "product": sub.product,
        "sut": sub.sut.model_dump(),
        **(
            {"task_suts": {k: v.model_dump() for k, v in sorted(sub.task_suts.items())}}
            if sub.task_suts
            else {}
        ),
        "declared": {k: v.model_dump() for k, v in sub.declared.items()},
        **({"thresholds": dict(sorted(sub.thresholds.items()))} if sub.thresholds else {}),
    }


def hardware_section(reader: EvidenceReader) -> dict[str, Any] | None:
    if not reader.exists(HARDWARE_FILE):
        return None
    desc = load_hardware(reader.path(HARDWARE_FILE))
    return {
        "file": f"evidence/{HARDWARE_FILE}",
        "id": desc.id,
        "name": desc.name,
        "sha256": sha256_file(reader.path(HARDWARE_FILE)),
        "matched_automatically": not reader.exists(SUBMISSION_FILE),
    }


def trust_section(reader: EvidenceReader) -> dict[str, Any]:
    sut = sut_of(reader)
    submission = submission_of(reader)
    replayed = [
        f"task_suts.{task}.adapter: {spec.adapter}"
        for task, spec in sorted((submission.task_suts if submission else {}).items())
        if precomputed(spec)
    ]
    if precomputed(sut):
        replayed.insert(0, f"sut.adapter: {sut.adapter}")
    if replayed:
        return {
            "precomputed_outputs": True,
            "note": f"LOWER TRUST: pre-computed outputs supplied by the applicant "
            f"({'; '.join(replayed)}); the harness did not drive the system, so no latency, "
            "throughput, power or energy figure is reported, nor any figure of a task that "
            "measures this machine instead of reading the outputs; accuracy-type figures of "
            "the tasks that read them are computed from the supplied outputs and none of "
            "them can PASS (at best INCONCLUSIVE)",
        }
    return {"precomputed_outputs": False, "note": ""}


def derive(evidence_dir: Path) -> dict[str, Any]:
    """Every header section of the predicate, from the evidence alone."""
    reader = EvidenceReader(evidence_dir)
    run = read_run(reader)
    environment = read_json(reader, ENVIRONMENT_FILE)
    return {
        "suite": suite_section(reader),
        "submission": submission_section(reader),
        "hardware": hardware_section(reader),
        "run": {key: run.get(key) for key in RUN_KEYS},
        "environment": environment,
        "trust": trust_section(reader),
    }
