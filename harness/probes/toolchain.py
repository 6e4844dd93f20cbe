"""`system.toolchain`: the toolchain a system description declares (compiler, driver,
development environment...), each component's command actually run and answered.

collect: run every declared check's argv with a timeout; record the executable (path and
sha256), exit code, output head and time. score: a component works when its own program
(not a shell utility, not code run through an interpreter) exited 0 and printed a version
string naming it (a word of its declared name and a dotted version number); the roles (of
the required ones) with at least one working component are counted. Which role a component
plays is the applicant's declaration, and the report says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.framework.identity import INTERPRETERS
from harness.probes.framework.util import sha256_path
from harness.registry import probes
from harness.schema import Measurement, ToolCheck, Unmeasured

OUTPUT_HEAD = 400  # characters of output kept per check
VERSION = re.compile(r"\b\d+\.\d+")
# programs that print whatever they are given: they answer for no component
ECHO_NAMES = (
    "echo", "printf", "true", "false", "cat", "yes", "test", "[", "tee", "head", "tail", "seq",
    "date", "expr", "basename", "dirname", "printenv", "tr", "sed", "awk", "gawk", "mawk",
    "grep", "cut", "paste", "rev", "xargs", "env", "cp", "ln", "install", "sh", "bash", "dash",
)  # fmt: skip
ECHOES = re.compile("^(" + "|".join(re.escape(n) for n in ECHO_NAMES) + ")$")


def echo_digests() -> dict[str, str]:
    """sha256 -> name of this machine's utilities that print what they are given, so that
    a renamed copy (./npu-smi = /bin/echo) is known for what it is."""
    found: dict[str, str] = {}
    for name in ECHO_NAMES:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            found.setdefault(sha256_path(Path(path).resolve()), name)
        except OSError:
            continue
    return found


VERSION_FLAGS = {"--version", "-version", "-V", "--help", "version", "-v", "/?", "--info"}
NAME_WORD = re.compile(r"[a-z0-9][a-z0-9+.-]*[a-z0-9+]|[a-z0-9]")


def _name_words(name: str) -> list[str]:
    """The words of a declared name that can identify it in a version string (>= 2 chars)."""
    return [w for w in NAME_WORD.findall(name.lower()) if len(w) >= 2 and not w.isdigit()]


def answer_problem(record: dict[str, Any], echoes: dict[str, str] | None = None) -> str:
    """Why a recorded check does not show the declared component answering ("" when it
    does); a pure function of the record and the recorded utility digests."""
    if record.get("reason") and "exit_code" not in record:
        return str(record["reason"])
    if record.get("exit_code") != 0:
        return str(record.get("reason") or f"exit {record.get('exit_code')}")
    program = Path(str(record.get("executable", record["argv"][0]))).name
    if ECHOES.match(program):
        return f"{program} prints what it is given: it answers for no component"
    copy_of = (echoes or {}).get(str(record.get("executable_sha256")))
    if copy_of:
        return f"{program} is a copy of {copy_of}, which prints what it is given"
    if INTERPRETERS.match(program) and any(a not in VERSION_FLAGS for a in record["argv"][1:]):
        return (
            f"runs code through {program}, not the component's own program: declare a "
            "command of the component itself (e.g. `gcc --version`)"
        )
    output = str(record.get("output", ""))
    words = _name_words(str(record["name"]))
    if not any(w in output.lower() for w in words):
        return (
            f"its output does not name it (none of {', '.join(words) or 'no words'} in "
            f"{output[:80]!r})"
        )
    if not VERSION.search(output):
        return f"its output has no version number ({output[:80]!r})"
    given = " ".join(str(a) for a in record["argv"][1:]).lower()
    named = [w for w in words if w in output.lower()]
    versions = VERSION.findall(output)
    for kind, found in (("name", named), ("version", versions)):
        if all(x in given for x in found):
            return (
                f"its {kind} ({found[0]!r}) is on its own command line: the output must "
                "come from the component, not from its arguments"
            )
    return ""


class ToolchainArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    required_roles: list[str] = Field(
        default_factory=lambda: ["compiler", "driver", "dev-environment"], min_length=1
    )
    timeout_s: float = Field(default=20.0, gt=0)


def run_check(
    check: ToolCheck, timeout_s: float, echoes: dict[str, str] | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {"name": check.name, "role": check.role, "argv": check.argv}
    program = shutil.which(check.argv[0])
    if program is None:
        return {**record, "ok": False, "reason": f"{check.argv[0]!r} is not installed here"}
    executable = Path(program).resolve()
    record.update(executable=str(executable), executable_sha256=sha256_path(executable))
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
    last_line = output.splitlines()[-1] if output else ""
    record.update(
        exit_code=done.returncode,
        seconds=time.monotonic() - start,
        output=output,
        reason="" if done.returncode == 0 else f"exit {done.returncode}: {last_line}",
    )
    problem = answer_problem(record, echoes)
    return {**record, "ok": not problem, "reason": problem}


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
        echoes = echo_digests()
        ctx.evidence.write_json(
            "toolchain.json",
            {
                "description": ctx.hardware.id if ctx.hardware else None,
                "checks": [run_check(c, args.timeout_s, echoes) for c in checks],
                "declared_without_check": unchecked,
                "echo_utilities": echoes,
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
        if ctx.hardware is not None:
            declared = [
                (t.name, t.role, list(t.argv))
                for t in ctx.hardware.toolchain
                if isinstance(t, ToolCheck)
            ]
            recorded = [(c["name"], c["role"], list(c["argv"])) for c in checks]
            if declared != recorded:
                raise ValueError(
                    "toolchain.json's checks are not the ones the system description "
                    f"{ctx.hardware.id} declares"
                )
        echoes = record.get("echo_utilities") or {}
        problems = {c["name"]: answer_problem(c, echoes) for c in checks}  # not c["ok"]
        by_program: dict[str, str] = {}  # one program answers for one component only
        for c in checks:
            if problems[c["name"]]:
                continue
            digest = str(c.get("executable_sha256"))
            if digest in by_program:
                problems[c["name"]] = (
                    f"the same program as {by_program[digest]}: one program is one component"
                )
            else:
                by_program[digest] = c["name"]
        roles = {
            role: [c["name"] for c in checks if c["role"] == role and not problems[c["name"]]]
            for role in args.required_roles
        }
        working = [c for c in checks if not problems[c["name"]]]
        failing = {name: why for name, why in problems.items() if why}
        return ScoreResult(
            [
                Measurement(
                    id="toolchain",
                    value=float(sum(1 for names in roles.values() if names)),
                    unit="count",
                    n=len(checks),
                    repeats=1,
                    method="roles of the toolchain (" + ", ".join(args.required_roles) + ") with "
                    "at least one component whose own program ran here, exited 0 and printed a "
                    "version string naming it; each component's role is as declared by the "
                    "applicant",
                    details={"roles": roles, "failing": failing},
                ),
                Measurement(
                    id="tools_working",
                    value=float(len(working)),
                    unit="count",
                    n=len(checks),
                    repeats=1,
                    method="declared toolchain components whose own program ran, exited 0 "
                    "and printed a version string naming it",
                    details={
                        "working": [c["name"] for c in working],
                        "failing": failing,
                        "declared_without_check": record["declared_without_check"],
                    },
                ),
            ],
            [],
        )
