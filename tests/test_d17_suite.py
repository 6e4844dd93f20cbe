"""The d17-security-platform suite end to end through the CLI: the quick dry run (the
harness's reference platforms answer: real figures that never PASS), audited; a submission
naming those same reference platforms is flagged and decides nothing; and the rule that
tells such a submission from a product's, on SUT blocks written by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from clihelpers import run_cli

from harness.evaluate import submits_reference_engine
from harness.schema import SutSpec

INDICATORS = {
    "membership_methods",
    "risk_models",
    "digital_attacks",
    "physical_attacks",
    "frameworks",
}


def _statement(run_dir: Path) -> dict:
    return json.loads((run_dir / "statement.json").read_text(encoding="utf-8"))


def _verdicts(run_dir: Path) -> dict[str, dict]:
    return {v["indicator"]: v for v in _statement(run_dir)["predicate"]["verdicts"]}


def test_quick_dry_run_passes_nothing_and_audits(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("run", "d17-security-platform", "--quick", "--out", run_dir)
    assert result.code == 0, result.stderr[-600:]
    verdicts = _verdicts(run_dir)
    assert set(verdicts) == INDICATORS
    assert "PASS" not in {v["status"] for v in verdicts.values()}
    figures = {m["id"]: m for m in _statement(run_dir)["predicate"]["measurements"]}
    # the reference platform's attacks really work on some items, checked by the harness
    rates = [v["value"] for k, v in figures.items() if k.startswith("digital.success_rate_")]
    assert len(rates) >= 10 and max(rates) > 0
    assert "reference platform" in figures["digital.digital_attacks_passing"]["method"]
    audit = run_cli("audit", run_dir)
    assert audit.code == 0, audit.stdout + audit.stderr


def test_the_reference_platforms_submitted_decide_nothing(tmp_path: Path) -> None:
    submission = tmp_path / "submission.yaml"
    callable_of = {
        "membership": "harness.refengines.privacy_platform:answer",
        "risk": "harness.refengines.risk_platform:answer",
    }
    submission.write_text(
        yaml.safe_dump(
            {
                "applicant": "Test Lab",
                "product": "Copied Platform",
                "suite": "d17-security-platform",
                "sut": {"adapter": "callable", "target": "harness.refengines.art_platform:answer"},
                "task_suts": {
                    t: {"adapter": "callable", "target": c} for t, c in callable_of.items()
                },
            }
        ),
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    result = run_cli(
        "run", "d17-security-platform", "--quick", "--submission", submission, "--out", run_dir
    )
    assert result.code == 0, result.stderr[-600:]
    verdicts = _verdicts(run_dir)
    assert "PASS" not in {v["status"] for v in verdicts.values()}
    # six membership methods clear their AUC bound, more than the 3 asked: not a PASS, since
    # the engine is the harness's own
    membership = verdicts["membership_methods"]
    assert membership["status"] == "INCONCLUSIVE"
    assert "reference_engine_submitted" in membership["flags"]
    assert run_cli("audit", run_dir).code == 0


def test_which_sut_blocks_are_the_reference_engines() -> None:
    def spec(**fields: object) -> SutSpec:
        return SutSpec.model_validate(fields)

    assert submits_reference_engine(
        spec(adapter="callable", target="harness.refengines.art_platform:answer")
    )
    assert submits_reference_engine(
        spec(
            adapter="command",
            argv=[sys.executable, "-m", "harness.refengines.risk_platform", "--batch"],
        )
    )
    assert submits_reference_engine(
        spec(
            adapter="command",
            argv=["python3", "/src/harness/refengines/privacy_platform.py", "{input}"],
        )
    )
    assert not submits_reference_engine(spec(adapter="callable", target="vendor.platform:answer"))
    assert not submits_reference_engine(
        spec(adapter="command", argv=["/opt/platform/attack", "{input}"])
    )
    assert not submits_reference_engine(spec(adapter="http", url="http://127.0.0.1:9000"))
