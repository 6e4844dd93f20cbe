"""The report's JSON Schema (harness/schemas/evaluation-report-v1.schema.json): the file is what
its generator writes, and `jsonschema` (an independent draft 2020-12 validator) accepts real
signed statements and refuses broken ones."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import TinyRun, flip_byte, forge, write_submission
from jsonschema import Draft202012Validator

from harness import header
from harness.schema import PREDICATE_TYPE
from harness.schemas import SCHEMA_FILE, generate, load


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = load()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def signed_statement(run_dir: Path) -> dict[str, Any]:
    """The statement as the envelope carries it (base64 payload), read without the harness."""
    envelope = json.loads((run_dir / "report.dsse.json").read_text(encoding="utf-8"))
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def errors_of(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [
        "/".join(str(p) for p in error.absolute_path) + f": {error.message}"
        for error in validator.iter_errors(instance)
    ]


def test_the_file_is_what_the_generator_writes() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == generate.render(), (
        "harness/schemas/evaluation-report-v1.schema.json is stale: run "
        "python -m harness.schemas.generate"
    )


def test_the_schema_names_the_dialect_and_the_predicate_type() -> None:
    schema = load()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://harness.dev/evaluation-report/v1.schema.json"
    assert schema["properties"]["predicateType"] == {"const": PREDICATE_TYPE}
    assert schema["properties"]["_type"] == {"const": "https://in-toto.io/Statement/v1"}
    verdict_status = schema["$defs"]["Verdict"]["properties"]["status"]["enum"]
    assert verdict_status == ["PASS", "FAIL", "INCONCLUSIVE", "NOT_MEASURED"]
    assert schema["$defs"]["Verdict"]["properties"]["op"]["enum"] == [">=", "<=", ">", "<"]


def test_a_real_signed_statement_validates(
    tiny_run: TinyRun, validator: Draft202012Validator
) -> None:
    statement = signed_statement(tiny_run.run_dir)
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["predicate"]["measurements"], "the tiny run measured nothing"
    assert errors_of(validator, statement) == []
    loose = json.loads((tiny_run.run_dir / "statement.json").read_text(encoding="utf-8"))
    assert loose == statement


def test_the_header_of_a_submission_validates(
    tiny_run: TinyRun, tmp_path: Path, validator: Draft202012Validator
) -> None:
    """A submission with per-task SUT blocks, thresholds and declared levels: its section as
    the run derives it from the evidence (header.derive, what `harness run` signs)."""
    evidence = tmp_path / "evidence"
    shutil.copytree(tiny_run.run_dir / "evidence", evidence)
    write_submission(
        evidence / header.SUBMISSION_FILE,
        task_suts={"gemm": {"adapter": "local", "device": "cpu"}},
        thresholds={"gemm": 0.5},
    )
    statement = signed_statement(tiny_run.run_dir)
    statement["predicate"].update(header.derive(evidence))
    submission = statement["predicate"]["submission"]
    assert submission["local_default"] is False
    assert submission["applicant"] == "Test Lab"
    assert submission["task_suts"] and submission["thresholds"] and submission["declared"]
    assert errors_of(validator, statement) == []
    # the closed sections stay closed: a key the harness never writes is refused
    submission["reviewer"] = "someone"
    assert errors_of(validator, statement)


def _verdict_maybe(s: dict[str, Any]) -> None:
    s["predicate"]["verdicts"][0]["status"] = "MAYBE"


def _no_value(s: dict[str, Any]) -> None:
    del s["predicate"]["measurements"][0]["value"]


def _extra_predicate_field(s: dict[str, Any]) -> None:
    s["predicate"]["ranking_hint"] = "first"


def _extra_statement_field(s: dict[str, Any]) -> None:
    s["comment"] = "hello"


def _other_predicate_type(s: dict[str, Any]) -> None:
    s["predicateType"] = "https://harness.dev/evaluation-report/v2"


def _extra_measurement_key(s: dict[str, Any]) -> None:
    s["predicate"]["measurements"][0]["bonus"] = 1


def _bad_op(s: dict[str, Any]) -> None:
    s["predicate"]["verdicts"][0]["op"] = "=="


def _value_as_text(s: dict[str, Any]) -> None:
    s["predicate"]["measurements"][0]["value"] = "0.5"


def _bad_digest(s: dict[str, Any]) -> None:
    s["subject"][0]["digest"]["sha256"] = "not-a-digest"


def _no_subjects(s: dict[str, Any]) -> None:
    s["subject"] = []


def _task_status(s: dict[str, Any]) -> None:
    s["predicate"]["tasks"][0]["status"] = "crashed"


def _no_verdicts(s: dict[str, Any]) -> None:
    del s["predicate"]["verdicts"]


def _quick_as_text(s: dict[str, Any]) -> None:
    s["predicate"]["run"]["quick"] = "no"


def _shipped_status(s: dict[str, Any]) -> None:
    s["predicate"]["suite"]["shipped"] = "probably"


def _interval_extra(s: dict[str, Any]) -> None:
    s["predicate"]["measurements"][0]["ci"]["width"] = 1.0


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "verdict status MAYBE": (_verdict_maybe, "predicate/verdicts/0/status"),
    "measurement without value": (_no_value, "predicate/measurements/0"),
    "extra top-level predicate field": (_extra_predicate_field, "predicate"),
    "extra statement field": (_extra_statement_field, ""),
    "other predicate type": (_other_predicate_type, "predicateType"),
    "extra key in a measurement": (_extra_measurement_key, "predicate/measurements/0"),
    "unknown op": (_bad_op, "predicate/verdicts/0/op"),
    "value as text": (_value_as_text, "predicate/measurements/0/value"),
    "subject digest not hex": (_bad_digest, "subject/0/digest/sha256"),
    "no subjects": (_no_subjects, "subject"),
    "unknown task status": (_task_status, "predicate/tasks/0/status"),
    "no verdicts": (_no_verdicts, "predicate"),
    "quick as text": (_quick_as_text, "predicate/run/quick"),
    "unknown shipped status": (_shipped_status, "predicate/suite/shipped"),
    "extra key in an interval": (_interval_extra, "predicate/measurements/0/ci"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_statement_is_refused(
    tiny_run: TinyRun, validator: Draft202012Validator, name: str
) -> None:
    mutate, where = BROKEN[name]
    statement = copy.deepcopy(signed_statement(tiny_run.run_dir))
    mutate(statement)
    errors = errors_of(validator, statement)
    assert errors, f"{name}: accepted"
    assert any(error.startswith(f"{where}:") for error in errors), errors


def _details(s: dict[str, Any]) -> None:
    s["predicate"]["measurements"][0]["details"]["probe_specific"] = {"any": ["thing"]}


def _cpu_fact(s: dict[str, Any]) -> None:
    s["predicate"]["environment"]["cpu"]["microcode"] = "0xa0011d1"


def _adapter_key(s: dict[str, Any]) -> None:
    s["predicate"]["submission"]["sut"]["url"] = "http://10.0.0.7/infer"


def _older_measurement(s: dict[str, Any]) -> None:
    for key in ("exact", "invalid_reason", "failures_count_against"):
        del s["predicate"]["measurements"][0][key]


OPEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "a probe's own details": _details,
    "another CPU fact": _cpu_fact,
    "an adapter's own key": _adapter_key,
    "a measurement without its defaulted fields": _older_measurement,
}


@pytest.mark.parametrize("name", sorted(OPEN))
def test_open_parts_accept_what_a_probe_or_machine_adds(
    tiny_run: TinyRun, validator: Draft202012Validator, name: str
) -> None:
    statement = copy.deepcopy(signed_statement(tiny_run.run_dir))
    OPEN[name](statement)
    assert errors_of(validator, statement) == []


# ------------------------------------------------------------------ the documented readers

DOC = Path(__file__).resolve().parents[1] / "docs" / "report-format.md"


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)


def expected_verdict_lines(run_dir: Path) -> list[str]:
    verdicts = signed_statement(run_dir)["predicate"]["verdicts"]
    return [
        " ".join(str(v[k]) for k in ("indicator", "status", "value", "unit", "op", "target"))
        for v in verdicts
    ]


def test_the_documented_python_reader(tiny_run: TinyRun, tmp_path: Path) -> None:
    script = tmp_path / "read_verdicts.py"
    script.write_text(doc_blocks("python")[0], encoding="utf-8")

    def read(run_dir: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, script, run_dir, tiny_run.dry_run_pub],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = read(tiny_run.run_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected_verdict_lines(tiny_run.run_dir)
    # re-signed by another key (the statement embeds it): the trusted key refuses it
    forged = tmp_path / "forged"
    shutil.copytree(tiny_run.run_dir, forged)
    forge(forged)
    refused = read(forged)
    assert refused.returncode != 0 and "InvalidSignature" in refused.stderr
    # a changed evidence file: the digest check names it
    changed = tmp_path / "changed"
    shutil.copytree(tiny_run.run_dir, changed)
    flip_byte(changed / "evidence/run.json")
    refused = read(changed)
    assert refused.returncode == 1 and "evidence/run.json: sha256" in refused.stderr


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_documented_jq_reader(tiny_run: TinyRun) -> None:
    command = doc_blocks("bash")[0].replace("RUN_DIR", str(tiny_run.run_dir))
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=True
    )
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    verdicts = signed_statement(tiny_run.run_dir)["predicate"]["verdicts"]
    assert [(r[0], r[1]) for r in rows] == [(v["indicator"], v["status"]) for v in verdicts]


def test_the_documented_schema_check(tiny_run: TinyRun) -> None:
    code = doc_blocks("python")[1].replace("RUN_DIR", str(tiny_run.run_dir))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
