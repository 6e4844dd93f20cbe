"""External commands (language bindings, command backends): what a suite or a submission
declares (`CommandSpec`; `BackendSpec`, an execution provider or such a command), running
one with a timeout that kills its whole process group, and the text contract of its input
and output."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.contracts.framework import (
    INPUT_PLACEHOLDER,
    MODEL_PLACEHOLDER,
    CommandSpec,
)
from harness.probes.framework.identity import program_facts

TAIL_CHARS = 2000
MAX_STDOUT_BYTES = 16 * 1024 * 1024
KILL_GRACE_S = 2.0


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def format_inputs(x: np.ndarray) -> str:
    flat = x.reshape(len(x), -1)
    return "".join(" ".join(f"{v:.9g}" for v in row.tolist()) + "\n" for row in flat)


def substitute(argv: Sequence[str], model: Path, inputs: Path) -> list[str]:
    return [
        part.replace(MODEL_PLACEHOLDER, str(model)).replace(INPUT_PLACEHOLDER, str(inputs))
        for part in argv
    ]


def run_command(spec: CommandSpec, model: Path, inputs: Path) -> tuple[dict[str, Any], bytes]:
    """Run one command; the record (never raises) and its raw stdout."""
    argv = substitute(spec.argv, model, inputs)
    cwd = Path(spec.cwd).resolve() if spec.cwd else Path.cwd()
    env = dict(os.environ)
    env.update(spec.env or {})
    record: dict[str, Any] = {
        "argv": argv,
        "cwd": str(cwd),
        "env_added": dict(spec.env or {}),
        "timeout_s": spec.timeout_s,
        "output": spec.output,
    }
    program = argv[0]
    if os.sep not in program and shutil.which(program, path=env.get("PATH")) is None:
        record.update(status="not_run", reason=f"program {program!r} not found on PATH")
        return record, b""
    record["program"] = program_facts(spec.argv, argv, cwd, env.get("PATH"), spec.sources)
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        record.update(status="not_run", reason=f"cannot start: {type(error).__name__}: {error}")
        return record, b""
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=spec.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:
            stdout, stderr = proc.communicate(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            stdout, stderr = b"", b""
    wall = time.perf_counter() - t0
    err_text = stderr.decode("utf-8", errors="replace")
    record.update(
        wall_s=wall,
        exit_code=proc.returncode,
        timed_out=timed_out,
        stdout_bytes=len(stdout),
        stdout_tail=tail(stdout.decode("utf-8", errors="replace")),
        stderr_tail=tail(err_text),
    )
    if timed_out:
        record.update(status="timeout", reason=f"timeout after {spec.timeout_s:g} s (killed)")
    elif proc.returncode != 0:
        last = next((ln for ln in reversed(err_text.splitlines()) if ln.strip()), "")
        record.update(status="crashed", reason=f"exit {proc.returncode}: {last[:300]}")
    else:
        record["status"] = "ran"
    if len(stdout) > MAX_STDOUT_BYTES:
        stdout = stdout[:MAX_STDOUT_BYTES]
        record["stdout_truncated"] = True
    return record, stdout


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def parse_stdout(raw: bytes, n: int, width: int, output: str) -> tuple[Any, str]:
    """Parse a command's stdout by the contract; (parsed, "") or (None, reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"bad output: stdout is not UTF-8 ({error})"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != n:
        return None, f"bad output: {len(lines)} non-empty lines for {n} inputs"
    if output == "class":
        classes: list[int] = []
        for i, line in enumerate(lines):
            try:
                classes.append(int(line.strip()))
            except ValueError:
                return None, f"bad output: line {i + 1} is not one integer: {line[:80]!r}"
        return classes, ""
    rows: list[list[float]] = []
    for i, line in enumerate(lines):
        try:
            row = [float(v) for v in line.split()]
        except ValueError:
            return None, f"bad output: line {i + 1} holds a non-number: {line[:80]!r}"
        if len(row) != width:
            return None, f"bad output: line {i + 1} has {len(row)} values, expected {width}"
        rows.append(row)
    return rows, ""


HARNESS_PYTHON_BINDING = """\
import sys

import numpy as np
import onnxruntime as ort

model, inputs = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
first = session.get_inputs()[0]
dims = [d if isinstance(d, int) else -1 for d in first.shape[1:]]
with open(inputs, encoding="utf-8") as handle:
    for line in handle:
        if not line.strip():
            continue
        x = np.array(line.split(), dtype=np.float32).reshape([1, *dims])
        out = np.asarray(session.run(None, {first.name: x})[0]).reshape(-1)
        print(" ".join(f"{v:.9g}" for v in out.tolist()), flush=True)
"""
