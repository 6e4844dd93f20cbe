"""A corpus of bad inputs to `harness run` (and `verify`): each one is exit 2, exactly one
line on stderr naming the file (and the field where there is one), no traceback, and no run
directory (nor its `.NAME.partial` staging sibling) left behind."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from clihelpers import (
    FP32_INDICATOR,
    TINY_SUITE,
    Result,
    TinyRun,
    assert_one_line_error,
    run_cli,
    write_submission,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

TINY: dict[str, Any] = yaml.safe_load(TINY_SUITE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Case:
    """args for `harness run` (before --out) and the strings its one error line must hold."""

    args: list[str]
    needles: list[str]


Builder = Callable[[Path], Case]


def suite_with(change: Callable[[dict[str, Any]], None]) -> Builder:
    """A copy of the tiny suite with one field broken."""

    def build(inputs: Path) -> Case:
        data = copy.deepcopy(TINY)
        change(data)
        path = inputs / "broken-suite.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return Case([str(path)], [str(path)])

    return build


def suite_text(text: str) -> Builder:
    def build(inputs: Path) -> Case:
        path = inputs / "broken-suite.yaml"
        path.write_text(text, encoding="utf-8")
        return Case([str(path)], [str(path)])

    return build


def with_field(builder: Builder, *fields: str) -> Builder:
    def build(inputs: Path) -> Case:
        case = builder(inputs)
        return Case(case.args, [*case.needles, *fields])

    return build


def task_args(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["tasks"][0]["args"].update(changes)

    return change


def indicator(index: int, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["indicators"][index].update(changes)

    return change


def top(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                del data[key]
            else:
                data[key] = value

    return change


def _probe(data: dict[str, Any]) -> None:
    data["tasks"][0]["probe"] = "compute.nope"


def _duplicate_indicator(data: dict[str, Any]) -> None:
    data["indicators"][1]["id"] = data["indicators"][0]["id"]


def _duplicate_task(data: dict[str, Any]) -> None:
    data["tasks"].append(copy.deepcopy(data["tasks"][0]))


def _task_key(data: dict[str, Any]) -> None:
    data["tasks"][0]["colour"] = "red"


def _unpended(data: dict[str, Any]) -> None:
    del data["indicators"][2]["pending"]


SUITE_CASES: dict[str, Builder] = {
    "malformed-yaml": with_field(
        suite_text("schema: harness.suite/v1\ntasks: [unclosed\n"), "YAML"
    ),
    "not-a-mapping": suite_text("- just\n- a list\n"),
    "wrong-schema": with_field(suite_with(top(schema="harness.suite/v9")), "schema"),
    "missing-title": with_field(suite_with(top(title=None)), "title"),
    "unknown-top-level-key": with_field(suite_with(top(colour="red")), "colour"),
    "bad-direction": with_field(suite_with(top(direction="direction one")), "direction"),
    "confidence-out-of-range": with_field(suite_with(top(confidence=1.5)), "confidence"),
    "unknown-probe": with_field(suite_with(_probe), "tasks[0].probe", "compute.nope"),
    "unknown-task-key": with_field(suite_with(_task_key), "tasks[0].colour"),
    "duplicate-task-id": with_field(suite_with(_duplicate_task), "tasks[1].id"),
    "task-args-unknown-key": with_field(
        suite_with(task_args(colour="red")), "tasks[0].args.colour"
    ),
    "sizes-not-multiple-of-32": with_field(
        suite_with(task_args(sizes={"cpu": [64, 100], "cuda": [256]})), "tasks[0].args.sizes"
    ),
    "unknown-precision": with_field(
        suite_with(task_args(precisions=["fp32", "fp7"])), "tasks[0].args.precisions"
    ),
    "zero-repeats": with_field(suite_with(task_args(repeats=0)), "tasks[0].args.repeats"),
    "unknown-indicator-field": with_field(
        suite_with(indicator(0, colour="red")), "indicators[0].colour"
    ),
    "wrong-operator": with_field(suite_with(indicator(0, op="=>")), "indicators[0].op", "=>"),
    "unit-does-not-fit-metric": with_field(
        suite_with(indicator(0, unit="W")), "indicators[0].unit", "W"
    ),
    "unknown-unit": with_field(
        suite_with(indicator(0, unit="furlongs")), "indicators[0].unit", "furlongs"
    ),
    "nan-target": with_field(suite_with(indicator(0, target=float("nan"))), "indicators[0].target"),
    "infinite-target": with_field(
        suite_with(indicator(1, target=float("inf"))), "indicators[1].target"
    ),
    "text-target": with_field(suite_with(indicator(0, target="lots")), "indicators[0].target"),
    "bad-indicator-id": with_field(suite_with(indicator(0, id="FP32 TFLOPS")), "indicators[0].id"),
    "duplicate-indicator-id": with_field(suite_with(_duplicate_indicator), "indicators[1].id"),
    "metric-no-task-produces": with_field(
        suite_with(indicator(0, metric="gemm.fp64.throughput")), "indicators[0].metric"
    ),
    "pending-reason-removed": with_field(suite_with(_unpended), "indicators[2].metric"),
}


def _missing_suite(inputs: Path) -> Case:
    path = inputs / "no-such-suite.yaml"
    return Case([str(path)], [str(path), "not found"])


def _unknown_suite_id(inputs: Path) -> Case:
    return Case(["no-such-suite-id"], ["no-such-suite-id", "d01-cloud-training-chip"])


SUITE_CASES["suite-file-missing"] = _missing_suite
SUITE_CASES["unknown-suite-id"] = _unknown_suite_id


# ------------------------------------------------------------------ submissions


def submission(*fields: str, **overrides: Any) -> Builder:
    def build(inputs: Path) -> Case:
        path = write_submission(inputs / "submission.yaml", **overrides)
        return Case([str(TINY_SUITE), "--submission", str(path)], [str(path), *fields])

    return build


def _missing_submission(inputs: Path) -> Case:
    path = inputs / "no-such-submission.yaml"
    return Case([str(TINY_SUITE), "--submission", str(path)], [str(path), "not found"])


def _malformed_submission(inputs: Path) -> Case:
    path = inputs / "submission.yaml"
    path.write_text("applicant: [unclosed\n", encoding="utf-8")
    return Case([str(TINY_SUITE), "--submission", str(path)], [str(path), "YAML"])


SUBMISSION_CASES: dict[str, Builder] = {
    "for-another-suite": submission(
        "suite", "d01-cloud-training-chip", suite="d01-cloud-training-chip"
    ),
    "declared-indicator-does-not-exist": submission(
        "declared.no_such_indicator", declared={"no_such_indicator": {"target": 1.0}}
    ),
    "declared-neither-current-nor-target": submission(
        f"declared.{FP32_INDICATOR}", declared={FP32_INDICATOR: {"scenario": "x"}}
    ),
    "declared-nan": submission(
        f"declared.{FP32_INDICATOR}.target", declared={FP32_INDICATOR: {"target": float("nan")}}
    ),
    "unknown-adapter": submission("sut.adapter", "warp-drive", sut={"adapter": "warp-drive"}),
    "unknown-adapter-key": submission(
        "sut.colour", sut={"adapter": "local", "device": "cpu", "colour": "red"}
    ),
    "bad-device": submission("sut.device", sut={"adapter": "local", "device": "tpu"}),
    "unknown-top-level-key": submission("colour", colour="red"),
    "missing-applicant": submission("applicant", applicant=None),
    "unknown-instrument": submission("instruments[0].kind", instruments=[{"kind": "wattmeter"}]),
    "hardware-file-missing": submission(
        "hardware", "no-such-hardware.yaml", hardware="no-such-hardware.yaml"
    ),
    "submission-file-missing": _missing_submission,
    "malformed-yaml": _malformed_submission,
}


# ------------------------------------------------------------------ keys


def key_file(name: str, data: Callable[[], bytes], *needles: str) -> Builder:
    def build(inputs: Path) -> Case:
        path = inputs / name
        path.write_bytes(data())
        return Case([str(TINY_SUITE), "--key", str(path)], [str(path), *needles])

    return build


def _pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _rsa() -> bytes:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _ec() -> bytes:
    return _pem(ec.generate_private_key(ec.SECP256R1()))


def _random_bytes() -> bytes:
    import random

    return random.Random(20240601).randbytes(256)


def _public_only() -> bytes:
    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _encrypted() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def _truncated() -> bytes:
    return b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"


def _missing_key(inputs: Path) -> Case:
    path = inputs / "no-such.key"
    return Case([str(TINY_SUITE), "--key", str(path)], [str(path), "not found"])


KEY_CASES: dict[str, Builder] = {
    "random-bytes": key_file("random.key", _random_bytes),
    "empty": key_file("empty.key", lambda: b""),
    "truncated-pem": key_file("truncated.key", _truncated),
    "rsa": key_file("rsa.key", _rsa, "Ed25519"),
    "ecdsa": key_file("ec.key", _ec, "Ed25519"),
    "public-key-given-as-private": key_file("agency.pub", _public_only),
    "encrypted": key_file("encrypted.key", _encrypted),
    "missing": _missing_key,
}


# ------------------------------------------------------------------ datasets


def dataset(value: str, *needles: str) -> Builder:
    def build(inputs: Path) -> Case:
        return Case([str(TINY_SUITE), "--dataset", value.format(inputs=inputs)], list(needles))

    return build


DATASET_CASES: dict[str, Builder] = {
    "suite-declares-none": dataset("imagenet={inputs}", "--dataset", "imagenet"),
    "without-equals": dataset("imagenet", "--dataset", "imagenet", "NAME=PATH"),
    "empty-name": dataset("={inputs}", "--dataset"),
    "empty-path": dataset("imagenet=", "--dataset"),
}


ALL_CASES: dict[str, Builder] = {
    **{f"suite/{k}": v for k, v in SUITE_CASES.items()},
    **{f"submission/{k}": v for k, v in SUBMISSION_CASES.items()},
    **{f"key/{k}": v for k, v in KEY_CASES.items()},
    **{f"dataset/{k}": v for k, v in DATASET_CASES.items()},
}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(inputs, work): the broken inputs live apart from where the run would go."""
    inputs, work = tmp_path / "inputs", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    return inputs, work


def assert_bad_input(result: Result, case: Case, work: Path) -> None:
    assert result.code == 2, f"exit {result.code}:\n{result.stdout}{result.stderr}"
    assert_one_line_error(result, *case.needles)
    assert result.stdout == ""
    assert not (work / "run").exists()
    assert not (work / ".run.partial").exists()
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_bad_input(name: str, dirs: tuple[Path, Path], config_home: Path) -> None:
    inputs, work = dirs
    case = ALL_CASES[name](inputs)
    result = run_cli("run", *case.args, "--out", work / "run")
    assert_bad_input(result, case, work)


def test_the_tiny_suite_itself_is_valid(tiny_run: TinyRun) -> None:
    """The corpus breaks one field of a suite that is otherwise known to run."""
    assert tiny_run.result.code == 0


@pytest.mark.parametrize("name", ["suite/nan-target", "key/rsa"])
def test_bad_input_in_a_real_process(name: str, dirs: tuple[Path, Path], cli_subprocess) -> None:
    inputs, work = dirs
    case = ALL_CASES[name](inputs)
    result = cli_subprocess("run", *case.args, "--out", work / "run")
    assert_bad_input(result, case, work)


def test_out_not_empty(dirs: tuple[Path, Path]) -> None:
    _, work = dirs
    out = work / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine\n", encoding="utf-8")
    result = run_cli("run", TINY_SUITE, "--out", out)
    assert result.code == 2
    assert_one_line_error(result, str(out), "--out")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not (work / ".run.partial").exists()


def test_out_is_a_file(dirs: tuple[Path, Path]) -> None:
    _, work = dirs
    out = work / "run"
    out.write_text("not a directory\n", encoding="utf-8")
    result = run_cli("run", TINY_SUITE, "--out", out)
    assert result.code == 2
    assert_one_line_error(result, str(out), "--out")
    assert out.read_text(encoding="utf-8") == "not a directory\n"


# ------------------------------------------------------------------ verify's own bad inputs


def test_verify_of_a_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere"
    result = run_cli("verify", path)
    assert result.code == 2
    assert_one_line_error(result, str(path))


def test_verify_of_a_directory_without_an_envelope(tmp_path: Path) -> None:
    result = run_cli("verify", tmp_path)
    assert result.code == 2
    assert_one_line_error(result, str(tmp_path), "report.dsse.json")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("missing.pub", None),
        ("garbage.pub", b"not a key\n"),
        (
            "rsa.pub",
            lambda: (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ),
        ),
    ],
)
def test_verify_with_a_bad_pubkey(tiny_run: TinyRun, tmp_path: Path, name: str, data: Any) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data() if callable(data) else data)
    result = run_cli("verify", tiny_run.run_dir, "--pubkey", path)
    assert result.code == 2
    assert_one_line_error(result, str(path))
