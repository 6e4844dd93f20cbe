"""A system under test that fails mid-run: exit 3, the report is still written and signed,
it marks what failed, and it reports no number that was not measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from harness.errors import SutFailure
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.registry import probes
from harness.schema import Measurement


class _NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrashingProbe:
    """Writes a little evidence, then the 'device' disappears."""

    name: ClassVar[str] = "test.crashing"
    Args: ClassVar[type[BaseModel]] = _NoArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"ops": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 1

    def collect(self, ctx: CollectContext) -> list[str]:
        ctx.evidence.write_json("started.json", {"step": 1})
        raise SutFailure("device lost after the first step")

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        done = evidence.read_json("finished.json")  # never written: the device was lost
        return ScoreResult(
            [
                Measurement(
                    id="ops", value=done["ops"], unit="count", n=1, repeats=1, method="count"
                )
            ],
            [],
        )


if probes.get(CrashingProbe.name) is None:
    probes.register(CrashingProbe.name)(CrashingProbe)

SUITE = """\
schema: harness.suite/v1
id: crash-test
version: 0.0.1
direction: D01
title: a SUT that crashes
source: test
tasks:
  - {id: crash, probe: test.crashing}
  - id: gemm
    probe: compute.gemm
    args: {precisions: [int8], sizes: {cpu: [64], cuda: [256]}, repeats: 5, warmup: 1,
           min_repeat_s: 0.005, check_size: 64}
indicators:
  - {id: ops, title: ops, metric: crash.ops, op: ">=", target: 1, unit: count, source: t}
  - {id: int8, title: int8, metric: gemm.int8.throughput, op: ">=", target: 1e-9, unit: TOPS,
     source: t}
"""


def test_a_crashing_sut_gives_exit_3_and_an_honest_signed_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "run"
    monkeypatch.setattr("sys.argv", ["harness", "run", str(suite), "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 3
    statement: dict[str, Any] = json.loads((out / "statement.json").read_text())
    predicate = statement["predicate"]
    tasks = {t["task"]: t for t in predicate["tasks"]}
    assert tasks["crash"]["status"] == "failed"
    assert "device lost" in tasks["crash"]["reason"]
    assert tasks["gemm"]["status"] == "ok"
    verdicts = {v["indicator"]: v for v in predicate["verdicts"]}
    assert verdicts["ops"]["status"] == "NOT_MEASURED"
    assert verdicts["ops"]["value"] is None
    assert "device lost" in verdicts["ops"]["reason"]
    assert verdicts["int8"]["status"] == "PASS"  # the rest of the run went on
    assert "crash.ops" not in {m["id"] for m in predicate["measurements"]}
    for name in ("report.dsse.json", "report.md", "report.html"):
        assert (out / name).is_file()
    assert "device lost" in (out / "report.md").read_text()

    for argv in (["harness", "verify", str(out)], ["harness", "audit", str(out)]):
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 0, capsys.readouterr()
