"""The SUT sandbox (harness.sandbox through bubblewrap): a command SUT that snoops for the
lab's pair manifest (through its ancestors' command lines, or in the manifest's folder)
finds nothing; the evidence says the SUT was sandboxed. Skipped where bwrap is absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from clihelpers import isolated_env, run_cli
from test_face_verify import SUITE, make_pairs

from harness import sandbox

SNOOP = Path(__file__).resolve().parent / "data" / "d07_snooping_compare.py"


@pytest.mark.skipif(sandbox.bwrap() is None, reason="bwrap (bubblewrap) not installed here")
def test_a_snooping_command_sut_cannot_find_the_lab_set(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    manifest, _ = make_pairs(lab)
    applicant = tmp_path / "applicant"
    applicant.mkdir()
    earlier = tmp_path / "runs" / "earlier"  # an earlier run's evidence holds the manifest
    (earlier / "evidence").mkdir(parents=True)
    (earlier / "evidence" / "pairs.jsonl").write_text(manifest.read_text())
    submission = applicant / "submission.yaml"
    submission.write_text(
        "applicant: T\nproduct: snoop\nsuite: test-d07-verify\n"
        f"sut:\n  adapter: command\n  argv: [{sys.executable}, {SNOOP}, {lab}, {earlier}]\n"
        "  mode: batch\nthresholds:\n  verify: 0.5\n"
    )
    config = tmp_path / "xdg"
    config.mkdir()
    run_dir = tmp_path / "runs" / "run"
    with isolated_env(config):
        result = run_cli(
            "run", SUITE, "--submission", submission, "--dataset", f"pairs={manifest}",
            "--out", run_dir,
        )
        assert result.code == 0, result.stdout + result.stderr
    evidence = run_dir / "evidence/tasks/verify"
    outputs = json.loads((evidence / "outputs.json").read_text())
    assert {r["output"] for r in outputs} == {"0.0"}  # it learnt nothing
    sut = json.loads((evidence / "sut.json").read_text())
    assert sut["sandbox"].startswith("bwrap: own PID and IPC namespaces")


def test_without_the_sandbox_the_same_snoop_succeeds_so_the_test_means_something(
    tmp_path: Path,
) -> None:
    """The snooping SUT run directly (no sandbox) does find the manifest's folder."""
    import subprocess

    lab = tmp_path / "lab"
    lab.mkdir()
    make_pairs(lab)
    answer = subprocess.run(
        [sys.executable, str(SNOOP), str(lab)],
        input='{"probe": "a", "reference": "b"}\n',
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout.strip() == "1.0"
