"""`system.toolchain`: the toolchain a system description declares (compiler, driver,
development environment...), each component's command actually run and answered.

collect: run every declared check's argv with a timeout; record exit code, output head and
time. score: the roles (of the required ones) with at least one working component.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.evidence import EvidenceReader
from harness.models import Measurement, ToolCheck, Unmeasured
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.registry import probes

OUTPUT_HEAD = 400  # characters of output kept per check


class ToolchainArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    required_roles: list[str] = Field(
        default_factory=lambda: ["compiler", "driver", "dev-environment"], min_length=1
    )
    timeout_s: float = Field(default=20.0, gt=0)


def run_check(check: ToolCheck, timeout_s: float) -> dict[str, Any]:
    record: dict[str, Any] = {"name": check.name, "role": check.role, "argv": check.argv}
    program = shutil.which(check.argv[0])
    if program is None:
        return {**record, "ok": False, "reason": f"{check.argv[0]!r} is not installed here"}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [program, *check.argv[1:]], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return {**record, "ok": False, "reason": f"no answer within {timeout_s:g} s"}
    except OSError as error:
        return {**record, "ok": False, "reason": f"cannot run: {error}"}
    output = (done.stdout or done.stderr).strip()[:OUTPUT_HEAD]
    ok = done.returncode == 0
    last_line = output.splitlines()[-1] if output else ""
    return {
        **record,
        "ok": ok,
        "exit_code": done.returncode,
        "seconds": time.monotonic() - start,
        "output": output,
        "reason": "" if ok else f"exit {done.returncode}: {last_line}",
    }


@probes.register("system.toolchain")
class ToolchainProbe:
    name: ClassVar[str] = "system.toolchain"
    Args: ClassVar[type[BaseModel]] = ToolchainArgs

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"toolchain": "count", "tools_working": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        return 1

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ToolchainArgs)
        declared = ctx.hardware.toolchain if ctx.hardware else []
        checks = [t for t in declared if isinstance(t, ToolCheck)]
        unchecked = [t for t in declared if isinstance(t, str)]
        ctx.progress(f"{len(checks)} toolchain checks")
        ctx.evidence.write_json(
            "toolchain.json",
            {
                "description": ctx.hardware.id if ctx.hardware else None,
                "checks": [run_check(c, args.timeout_s) for c in checks],
                "declared_without_check": unchecked,
            },
        )
        return []

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ToolchainArgs)
        record = evidence.read_json("toolchain.json")
        checks = record["checks"]
        if record["description"] is None or not checks:
            reason = (
                "no system description for this SUT"
                if record["description"] is None
                else f"the system description {record['description']} declares no toolchain "
                "command to run"
            )
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in self.metrics(args)])
        roles = {
            role: [c["name"] for c in checks if c["role"] == role and c["ok"]]
            for role in args.required_roles
        }
        working = [c for c in checks if c["ok"]]
        failing = {c["name"]: c["reason"] for c in checks if not c["ok"]}
        return ScoreResult(
            [
                Measurement(
                    id="toolchain",
                    value=float(sum(1 for names in roles.values() if names)),
                    unit="count",
                    n=len(checks),
                    repeats=1,
                    method="roles of the toolchain (" + ", ".join(args.required_roles) + ") with "
                    "at least one component whose declared command ran and exited 0 here",
                    details={"roles": roles, "failing": failing},
                ),
                Measurement(
                    id="tools_working",
                    value=float(len(working)),
                    unit="count",
                    n=len(checks),
                    repeats=1,
                    method="declared toolchain commands that ran and exited 0",
                    details={
                        "working": [c["name"] for c in working],
                        "failing": failing,
                        "declared_without_check": record["declared_without_check"],
                    },
                ),
            ],
            [],
        )
