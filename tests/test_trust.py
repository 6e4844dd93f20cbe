"""What a signed report may claim: the suite it names is the suite that ran, and a run on
pre-computed outputs reports no figure the harness did not drive."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from clihelpers import TINY_SUITE, assert_one_line_error, isolated_env, run_cli, write_submission

from harness import suite_manifest
from harness.suites import SUITES_DIR

SHIPPED = SUITES_DIR / "d01-cloud-training-chip.yaml"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_shipped_suite_file_is_in_the_manifest() -> None:
    """Editing a file in suites/ without bumping its version fails here: run
    `python -m harness.suite_manifest` after the bump."""
    table = json.loads(suite_manifest.MANIFEST_FILE.read_text(encoding="utf-8"))
    files = sorted(SUITES_DIR.glob("*.yaml"))
    assert files
    for path in files:
        head = yaml.safe_load(path.read_text(encoding="utf-8"))
        digest = table.get(head["id"], {}).get(head["version"])
        assert digest == sha256(path.read_bytes()), (
            f"{path.name}: {head['id']} {head['version']} is not in "
            f"{suite_manifest.MANIFEST_FILE.name} with this file's sha256; bump its version "
            "and run python -m harness.suite_manifest"
        )


def test_identify_tells_shipped_modified_and_unknown() -> None:
    raw = SHIPPED.read_bytes()
    head = yaml.safe_load(raw)
    assert suite_manifest.identify(head["id"], head["version"], raw).status == "shipped"
    edited = raw.replace(b"target: 32,", b"target: 0.001,")
    assert edited != raw
    modified = suite_manifest.identify(head["id"], head["version"], edited)
    assert modified.status == "modified"
    assert modified.shipped_sha256 == sha256(raw)
    assert suite_manifest.identify("my-own-suite", "1.0.0", raw).status == "not shipped"


def test_a_shipped_suite_with_lowered_targets_is_refused(cli, tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    lowered = text.replace("target: 32,", "target: 0.001,").replace("target: 64,", "target: 0.001,")
    assert lowered != text
    copy = tmp_path / "d01-cloud-training-chip.yaml"
    copy.write_text(lowered, encoding="utf-8")
    out = tmp_path / "run"
    result = cli("run", copy, "--quick", "--out", out)
    assert result.code == 2, result.stdout + result.stderr
    assert_one_line_error(result, str(copy), "version", "change its id or version")
    assert not out.exists()


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_a_suite_the_harness_does_not_ship_says_so(tiny_run, name: str) -> None:
    predicate = json.loads((tiny_run.run_dir / "statement.json").read_bytes())["predicate"]
    assert predicate["suite"]["shipped"] == "not shipped"
    assert "NOT A SHIPPED SUITE" in (tiny_run.run_dir / name).read_text(encoding="utf-8")


# ------------------------------------------------------------------ pre-computed outputs


@pytest.fixture(scope="module")
def outputs_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny suite with an `outputs` SUT, signed with a key given on the command line."""
    base = tmp_path_factory.mktemp("outputs-run")
    config = base / "xdg-config"
    config.mkdir()
    (base / "outputs.jsonl").write_text(
        "".join(json.dumps({"index": i, "output": [1.0, 2.0]}) + "\n" for i in range(8)),
        encoding="utf-8",
    )
    submission = write_submission(
        base / "submission.yaml", sut={"adapter": "outputs", "path": "outputs.jsonl"}
    )
    with isolated_env(config):
        assert run_cli("keygen", "--out", base / "lab").code == 0
        result = run_cli(
            "run", TINY_SUITE, "--submission", submission, "--key", base / "lab.key",
            "--out", base / "run",
        )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert "LOWER TRUST" in result.stdout
    return base / "run"


def test_pre_computed_outputs_give_no_throughput(outputs_run: Path) -> None:
    predicate = json.loads((outputs_run / "statement.json").read_bytes())["predicate"]
    assert predicate["trust"]["precomputed_outputs"] is True
    ids = {m["id"] for m in predicate["measurements"]}
    assert "gemm.fp32.throughput" not in ids and "gemm.int8.throughput" not in ids
    unmeasured = {u["id"]: u["reason"] for u in predicate["unmeasured"]}
    assert "pre-computed outputs" in unmeasured["gemm.fp32.throughput"]
    verdicts = {v["indicator"]: v for v in predicate["verdicts"]}
    assert verdicts["fp32_tflops"]["status"] == "NOT_MEASURED"
    assert "pre-computed outputs" in verdicts["fp32_tflops"]["reason"]
    assert "PASS" not in {v["status"] for v in predicate["verdicts"]}


def test_pre_computed_outputs_give_no_figure_of_a_task_that_measures_this_machine(
    outputs_run: Path,
) -> None:
    """Not even a count or an accuracy: GEMM (and every probe that does not read the SUT's
    outputs) measured the harness's machine, not the system whose outputs were supplied."""
    predicate = json.loads((outputs_run / "statement.json").read_bytes())["predicate"]
    assert not [m["id"] for m in predicate["measurements"] if m["id"].startswith("gemm.")]
    unmeasured = {u["id"]: u["reason"] for u in predicate["unmeasured"]}
    assert "measures this machine" in unmeasured["gemm.verified_precisions"]
    assert "nor any figure of a task that measures this machine" in predicate["trust"]["note"]


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_pre_computed_outputs_put_a_lower_trust_banner_first(outputs_run: Path, name: str) -> None:
    text = (outputs_run / name).read_text(encoding="utf-8")
    assert "LOWER TRUST" in text
    # above every other banner and the run facts
    assert text.index("LOWER TRUST") < text.index("Signed with key") < text.index("Started (UTC)")


def test_pre_computed_outputs_audit_clean(outputs_run: Path) -> None:
    result = run_cli("audit", outputs_run)
    assert result.code == 0, result.stdout + result.stderr
