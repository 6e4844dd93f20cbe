"""`task_suts` in a submission: a SUT block per suite task, in place of `sut` for that task.
Trust follows the block that answered each task: a task answered from pre-computed outputs
cannot PASS, one the harness drove can."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clihelpers import assert_one_line_error, run_cli

SUITE = """\
schema: harness.suite/v1
id: test-task-suts
version: 0.0.1
direction: D08
title: one task, its own SUT
source: test
datasets:
  intents: {description: the lab's intent set}
tasks:
  - id: intent
    probe: speech.intent
indicators:
  - {id: intent, title: intent, metric: intent.accuracy, op: ">=", target: 95, unit: "%",
     source: test}
"""

WORDS = ["lights", "music", "weather", "timer", "alarm"]


def _lab_set(path: Path) -> Path:
    rows = [
        {"id": f"u{k:03d}", "text": f"please do {WORDS[k % 5]} number {k}", "intent": WORDS[k % 5]}
        for k in range(120)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def keyword_intent(text: str) -> str:
    """A callable SUT that really classifies the lab set's texts (by their keyword)."""
    return next(w for w in WORDS if w in text)


def _run(tmp_path: Path, body: str) -> tuple[Any, Path]:
    (tmp_path / "suite.yaml").write_text(SUITE)
    (tmp_path / "none.jsonl").write_text(json.dumps({"index": 999, "output": "x"}) + "\n")
    submission = tmp_path / "submission.yaml"
    submission.write_text("applicant: Lab\nproduct: Speech\nsuite: test-task-suts\n" + body)
    out = tmp_path / "run"
    result = run_cli(
        "run", tmp_path / "suite.yaml", "--submission", submission,
        "--dataset", f"intents={_lab_set(tmp_path / 'intents.jsonl')}", "--out", out,
    )  # fmt: skip
    return result, out


def _predicate(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "statement.json").read_bytes())["predicate"]  # type: ignore[no-any-return]


def test_a_task_answered_by_its_own_driven_sut_can_pass(tmp_path: Path) -> None:
    result, out = _run(
        tmp_path,
        "sut: {adapter: outputs, path: none.jsonl}\n"
        "task_suts:\n  intent: {adapter: callable, target: 'test_task_suts:keyword_intent'}\n",
    )
    assert result.code == 0, result.stdout + result.stderr
    predicate = _predicate(out)
    (verdict,) = predicate["verdicts"]
    assert verdict["status"] == "PASS", verdict["reason"]
    assert predicate["submission"]["task_suts"]["intent"]["adapter"] == "callable"
    assert run_cli("audit", out).code == 0


def test_a_task_answered_from_supplied_outputs_cannot_pass(tmp_path: Path) -> None:
    outputs = "".join(json.dumps({"index": k, "output": WORDS[k % 5]}) + "\n" for k in range(120))
    (tmp_path / "outputs.jsonl").write_text(outputs)
    result, out = _run(
        tmp_path,
        "sut: {adapter: callable, target: 'test_task_suts:keyword_intent'}\n"
        "task_suts:\n  intent: {adapter: outputs, path: outputs.jsonl}\n",
    )
    assert result.code == 0, result.stdout + result.stderr
    predicate = _predicate(out)
    (verdict,) = predicate["verdicts"]
    assert verdict["status"] == "INCONCLUSIVE" and "pre-computed outputs" in verdict["reason"]
    assert predicate["trust"]["precomputed_outputs"] is True
    assert "task_suts.intent.adapter: outputs" in predicate["trust"]["note"]
    assert run_cli("audit", out).code == 0


def test_a_task_sut_for_a_task_the_suite_lacks_is_refused(tmp_path: Path) -> None:
    result, out = _run(
        tmp_path,
        "sut: {adapter: callable, target: 'test_task_suts:keyword_intent'}\n"
        "task_suts:\n  wake: {adapter: callable, target: 'test_task_suts:keyword_intent'}\n",
    )
    assert result.code == 2
    assert_one_line_error(result, "submission.yaml", "task_suts.wake", "unknown task")
    assert not out.exists()
