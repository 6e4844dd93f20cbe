"""Write `evaluation-report-v1.schema.json`: the JSON Schema (draft 2020-12) of the signed
in-toto Statement v1 whose predicate is the harness's evaluation report.

The result records (measurements, intervals, verdicts, task outcomes, declared levels, SUT
blocks) come from the pydantic models in `harness.schema` (`model_json_schema`, serialisation
mode: what `model_dump(mode="json")` writes); the header sections the run derives from the
evidence (`harness.header`) and the statement's envelope fields are laid out here. Parts the
harness itself forbids extras in are closed (`additionalProperties: false`); parts whose
content is probe- or machine-specific (`details`, a SUT block's adapter keys, the
environment's sub-objects) are open.

Maintainers: after changing a model or a header section, run `python -m harness.schemas.generate`
(a test fails until then) and keep docs/report-format.md in step. Removing or retyping a field
is a breaking change: it gets a new predicate type (/v2) and a new schema file; an added
optional field keeps v1.
"""

from __future__ import annotations

import sys
from typing import Any, get_args

from pydantic.json_schema import models_json_schema

from harness import header, jsonio, signing, suite_manifest
from harness.evaluate import Evaluation
from harness.schema import (
    PREDICATE_TYPE,
    Declared,
    Measurement,
    SutSpec,
    TaskOutcome,
    Unmeasured,
    Verdict,
)
from harness.schemas import SCHEMA_FILE

SCHEMA_ID = f"{PREDICATE_TYPE}.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
MODELS = (Measurement, Verdict, TaskOutcome, Unmeasured, Declared, SutSpec)

SHA256: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
TEXT: dict[str, Any] = {"type": "string"}
NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}
UTC_TIME: dict[str, Any] = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def closed(
    properties: dict[str, Any], optional: tuple[str, ...] = (), description: str = ""
) -> dict[str, Any]:
    """An object with exactly these properties, all required but `optional`."""
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }
    if description:
        out["description"] = description
    return out


def open_object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    """An object whose known properties are typed; others may appear."""
    return {
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
        "description": description,
    }


def model_defs() -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "serialization") for model in MODELS], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = top["$defs"]
    return defs


RUN_TYPES: dict[str, Any] = {
    "started_utc": UTC_TIME,
    "finished_utc": UTC_TIME,
    "seed": {"type": "integer"},
    "quick": {"type": "boolean"},
    "device": TEXT,
    "datasets": {
        "type": "object",
        "additionalProperties": TEXT,
        "description": "--dataset NAME -> the path the lab gave",
    },
}


def header_defs() -> dict[str, Any]:
    if set(RUN_TYPES) != set(header.RUN_KEYS):
        raise RuntimeError(f"RUN_TYPES {sorted(RUN_TYPES)} != header.RUN_KEYS")
    evidence = "evidence/"
    return {
        "Subject": closed(
            {
                "name": {"type": "string", "pattern": r"^evidence/[^\\]+$"},
                "digest": closed({"sha256": SHA256}),
            },
            description="one evidence file: its path in the run directory and its sha256",
        ),
        "SuiteSection": closed(
            {
                "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
                "version": TEXT,
                "direction": {"type": "string", "pattern": r"^D\d\d$"},
                "title": TEXT,
                "confidence": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1},
                "file": {"const": evidence + header.SUITE_FILE},
                "sha256": SHA256,
                "shipped": {"enum": list(get_args(suite_manifest.Status))},
                "shipped_note": TEXT,
            },
            description="the suite file the run was judged by, and whether the harness ships it",
        ),
        "LocalDefaultSubmission": closed(
            {"local_default": {"const": True}, "sut": ref("SutSpec")},
            description="no submission: the local machine is the system under test",
        ),
        "GivenSubmission": closed(
            {
                "local_default": {"const": False},
                "file": {"const": evidence + header.SUBMISSION_FILE},
                "sha256": SHA256,
                "applicant": TEXT,
                "product": TEXT,
                "sut": ref("SutSpec"),
                "task_suts": {"type": "object", "additionalProperties": ref("SutSpec")},
                "declared": {"type": "object", "additionalProperties": ref("Declared")},
                "thresholds": {"type": "object", "additionalProperties": {"type": "number"}},
            },
            optional=("task_suts", "thresholds"),
            description="the applicant's submission (its file is in the evidence)",
        ),
        "SubmissionSection": {
            "oneOf": [ref("LocalDefaultSubmission"), ref("GivenSubmission")],
        },
        "HardwareSection": {
            "anyOf": [
                closed(
                    {
                        "file": {"const": evidence + header.HARDWARE_FILE},
                        "id": TEXT,
                        "name": TEXT,
                        "sha256": SHA256,
                        "matched_automatically": {"type": "boolean"},
                    }
                ),
                {"type": "null"},
            ],
            "description": "the system description the run used, or null when none applied",
        },
        "RunSection": closed(dict(RUN_TYPES), description="evidence/run.json"),
        "Environment": closed(
            {
                "cpu": open_object(
                    {
                        "cpu_name": TEXT,
                        "cpu_vendor": TEXT,
                        "cpu_family": NULLABLE_INT,
                        "cpu_model": NULLABLE_INT,
                        "architecture": TEXT,
                        "logical_cores": NULLABLE_INT,
                        "physical_cores": NULLABLE_INT,
                        "usable_cores": NULLABLE_INT,
                        "isa_extensions": {"type": "array", "items": TEXT},
                        "cpu_flags": {"type": "array", "items": TEXT},
                    },
                    "the first processor of /proc/cpuinfo and the core counts",
                ),
                "memory_bytes": {"type": "integer"},
                "os": open_object(
                    {"system": TEXT, "release": TEXT, "version": TEXT, "libc": TEXT},
                    "platform.system(), release(), version(), libc_ver()",
                ),
                "python": open_object(
                    {"version": TEXT, "implementation": TEXT}, "the interpreter that ran"
                ),
                "packages": {
                    "type": "object",
                    "additionalProperties": NULLABLE_TEXT,
                    "description": "distribution name -> installed version (null: not installed)",
                },
                "gpus": {
                    "type": "array",
                    "items": open_object(
                        {"index": {"type": "integer"}, "name": TEXT, "uuid": NULLABLE_TEXT},
                        "one GPU as NVML reports it (or its error)",
                    ),
                },
                "nvml": {
                    "type": "string",
                    "description": '"available", or why NVML could not be used',
                },
            },
            description="evidence/environment.json: the machine the run happened on",
        ),
        "TrustSection": closed(
            {"precomputed_outputs": {"type": "boolean"}, "note": TEXT},
            description="precomputed_outputs: some task replayed outputs the applicant supplied",
        ),
        "HarnessBuild": closed(
            {
                "version": TEXT,
                "git_revision": NULLABLE_TEXT,
                "source_sha256": SHA256,
                "python": TEXT,
            },
            description="the harness that made the report",
        ),
        "Signer": closed(
            {
                "keyid": SHA256,
                "public_key": {"type": "string", "pattern": "^-----BEGIN PUBLIC KEY-----"},
                "self_generated": {"type": "boolean"},
            },
            description="the key that signed the envelope (self-asserted until checked against "
            "a key the verifier trusts)",
        ),
    }


def predicate_def() -> dict[str, Any]:
    sections = {
        "suite": ref("SuiteSection"),
        "submission": ref("SubmissionSection"),
        "hardware": ref("HardwareSection"),
        "run": ref("RunSection"),
        "environment": ref("Environment"),
        "trust": ref("TrustSection"),
    }
    results = {
        "tasks": {"type": "array", "items": ref("TaskOutcome")},
        "measurements": {"type": "array", "items": ref("Measurement")},
        "unmeasured": {"type": "array", "items": ref("Unmeasured")},
        "verdicts": {"type": "array", "items": ref("Verdict")},
    }
    if tuple(sections) != header.SECTIONS:
        raise RuntimeError(f"header sections {header.SECTIONS} are not {tuple(sections)}")
    evaluated = Evaluation([], [], [], []).as_json()
    if set(results) != set(evaluated):
        raise RuntimeError(f"evaluation keys {sorted(evaluated)} are not {sorted(results)}")
    return closed(
        {
            **sections,
            "harness": ref("HarnessBuild"),
            "signer": ref("Signer"),
            **results,
        },
        description=f"predicateType {PREDICATE_TYPE}",
    )


def build() -> dict[str, Any]:
    """The whole schema document."""
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "harness evaluation report, v1",
        "description": (
            "An in-toto Statement v1 (signed in a DSSE envelope with Ed25519) whose predicate "
            f"is a harness evaluation report, predicateType {PREDICATE_TYPE}. Generated by "
            "python -m harness.schemas.generate; see docs/report-format.md."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": ["_type", "subject", "predicateType", "predicate"],
        "properties": {
            "_type": {"const": signing.STATEMENT_TYPE},
            "subject": {"type": "array", "minItems": 1, "items": ref("Subject")},
            "predicateType": {"const": PREDICATE_TYPE},
            "predicate": ref("Predicate"),
        },
        "$defs": {**model_defs(), **header_defs(), "Predicate": predicate_def()},
    }


def render() -> str:
    """The file's exact text."""
    return jsonio.dumps(build())


def main() -> int:
    text = render()
    if SCHEMA_FILE.is_file() and SCHEMA_FILE.read_text(encoding="utf-8") == text:
        print(f"{SCHEMA_FILE.name} is up to date")
        return 0
    SCHEMA_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
