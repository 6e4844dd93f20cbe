"""system.toolchain: declared toolchain commands are really run, and counted by role."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.toolchain import ToolchainArgs, ToolchainProbe
from harness.schema import HardwareDescription, SutSpec


def _hardware(toolchain: list[object]) -> HardwareDescription:
    return HardwareDescription.model_validate(
        {
            "schema": "harness.hardware/v1",
            "id": "t",
            "name": "t",
            "kind": "system",
            "toolchain": toolchain,
        }
    )


def _run(tmp_path: Path, hardware: HardwareDescription | None) -> dict[str, object]:
    args = ToolchainArgs(timeout_s=5)
    probe = ToolchainProbe()
    ctx = CollectContext(
        "system", args, SutSpec(), "cpu", 0, True, EvidenceWriter(tmp_path), hardware=hardware
    )
    assert probe.collect(ctx) == []
    score_ctx = ScoreContext("system", args, 0.95, None)
    first = probe.score(EvidenceReader(tmp_path), score_ctx)
    assert first == probe.score(EvidenceReader(tmp_path), score_ctx)  # pure
    out: dict[str, object] = {m.id: m for m in first.measurements}
    out.update({u.id: u for u in first.unmeasured})
    return out


def test_each_role_needs_a_command_that_really_answers(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        _hardware(
            [
                {
                    "name": "python",
                    "role": "dev-environment",
                    "argv": [sys.executable, "--version"],
                },
                {
                    "name": "broken cc",
                    "role": "compiler",
                    "argv": [sys.executable, "-c", "import sys; print('bad'); sys.exit(3)"],
                },
                {"name": "driver", "role": "driver", "argv": ["no-such-driver-tool-xyz"]},
                "an IDE (declared, no command)",
            ]
        ),
    )
    roles = result["toolchain"]
    working = result["tools_working"]
    assert roles.value == 1 and working.value == 1  # type: ignore[attr-defined]
    failing = working.details["failing"]  # type: ignore[attr-defined]
    assert failing["broken cc"] == "exit 3: bad"
    assert "not installed" in failing["driver"]
    assert working.details["declared_without_check"] == ["an IDE (declared, no command)"]  # type: ignore[attr-defined]


def test_without_a_description_or_commands_nothing_is_claimed(tmp_path: Path) -> None:
    none = _run(tmp_path / "a", None)
    assert "no system description" in none["toolchain"].reason  # type: ignore[attr-defined]
    names_only = _run(tmp_path / "b", _hardware(["gcc", "a driver"]))
    assert "declares no toolchain command" in names_only["toolchain"].reason  # type: ignore[attr-defined]


def test_recorded_checks_must_be_the_declared_ones(tmp_path: Path) -> None:
    import json

    import pytest

    hardware = _hardware(
        [{"name": "python", "role": "dev-environment", "argv": [sys.executable, "--version"]}]
    )
    args = ToolchainArgs(timeout_s=5)
    ctx = CollectContext(
        "system", args, SutSpec(), "cpu", 0, True, EvidenceWriter(tmp_path), hardware=hardware
    )
    ToolchainProbe().collect(ctx)
    score_ctx = ScoreContext("system", args, 0.95, hardware)
    assert ToolchainProbe().score(EvidenceReader(tmp_path), score_ctx).measurements
    record = json.loads((tmp_path / "toolchain.json").read_text())
    record["checks"].append({**record["checks"][0], "name": "gcc", "role": "compiler"})
    (tmp_path / "toolchain.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="not the ones the system description"):
        ToolchainProbe().score(EvidenceReader(tmp_path), score_ctx)
