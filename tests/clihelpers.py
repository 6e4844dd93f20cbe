"""Helpers for the CLI-level tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

DATA = Path(__file__).resolve().parent / "data"
TINY_SUITE = DATA / "tiny-suite.yaml"

FP32_INDICATOR = "fp32_tflops"
INT8_INDICATOR = "int8_tops"
PENDING_INDICATOR = "typical_power_w"


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def _exit_code(error: SystemExit) -> tuple[int, str]:
    if error.code is None:
        return 0, ""
    if isinstance(error.code, int):
        return error.code, ""
    return 1, f"{error.code}\n"  # sys.exit("message") prints the message, exits 1


def run_cli(*args: str | os.PathLike[str]) -> Result:
    """`harness ARGS...` in this process, the way a real process would end.

    An exception that escapes `main` is reported as Python would report it: the traceback
    on stderr and exit code 1, so tests can assert on it like on a real process.
    """
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["harness", *(os.fspath(a) for a in args)]
    saved = sys.argv
    sys.argv = argv
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as error:
                code, message = _exit_code(error)
                err.write(message)
            except Exception:
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv = saved
    return Result(code, out.getvalue(), err.getvalue())


def run_cli_subprocess(*args: str | os.PathLike[str], timeout: float = 120) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *(os.fspath(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def set_env(mp: pytest.MonkeyPatch, config: Path, columns: int) -> None:
    mp.setenv("XDG_CONFIG_HOME", str(config))
    mp.setenv("COLUMNS", str(columns))
    mp.setenv("NO_COLOR", "1")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        mp.delenv(name, raising=False)


@contextlib.contextmanager
def isolated_env(config: Path, columns: int = 200) -> Iterator[pytest.MonkeyPatch]:
    """XDG_CONFIG_HOME at `config`, plain (uncoloured) output `columns` wide."""
    with pytest.MonkeyPatch.context() as mp:
        set_env(mp, config, columns)
        yield mp


@dataclass(frozen=True)
class TinyRun:
    run_dir: Path
    config_home: Path  # XDG_CONFIG_HOME during the run: holds harness/dry-run.key
    result: Result  # what `harness run` printed (80 columns, as in a pipe or a CI log)

    @property
    def dry_run_key(self) -> Path:
        return self.config_home / "harness" / "dry-run.key"

    @property
    def dry_run_pub(self) -> Path:
        return self.config_home / "harness" / "dry-run.pub"


def evidence_files(run_dir: Path) -> list[str]:
    """Every file under evidence/, as a POSIX path relative to the run directory."""
    return sorted(
        p.relative_to(run_dir).as_posix() for p in (run_dir / "evidence").rglob("*") if p.is_file()
    )


def flip_byte(path: Path, offset: int | None = None) -> int:
    """XOR one byte (the middle one unless told) with 0x01; returns the offset."""
    data = bytearray(path.read_bytes())
    assert data, f"{path} is empty"
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 0x01
    path.write_bytes(bytes(data))
    return where


def assert_one_line_error(result: Result, *needles: str) -> str:
    """stderr is exactly one line, no traceback, and names every needle."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr_lines
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    line = lines[0]
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def write_submission(path: Path, **overrides: object) -> Path:
    """A valid submission for the tiny suite; keyword arguments replace top-level keys
    (a value of None removes the key)."""
    data: dict[str, object] = {
        "applicant": "Test Lab",
        "product": "Test Chip 1",
        "suite": "tiny-gemm",
        "sut": {"adapter": "local", "device": "cpu"},
        "declared": {FP32_INDICATOR: {"current": 0.1, "target": 0.0000001}},
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def forge(
    run_dir: Path,
    edit: Callable[[dict[str, Any]], None] | None = None,
    *,
    resubject: bool = True,
    resign: bool = True,
    edit_statement: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """What a forger with the harness's own tools can do to a run directory: take the signed
    statement, list the evidence as it is now (`resubject`), let `edit` change the predicate,
    and sign the result with a key of the forger's own that the statement then embeds
    (`resign`; without it the new payload goes into the old envelope, whose signature no
    longer fits). statement.json and the rendered reports are rewritten to match."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from harness import report, signing
    from harness.evidence import digest_tree

    envelope_path = run_dir / "report.dsse.json"
    envelope = json.loads(envelope_path.read_text(encoding="utf-8"))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    if resubject:
        statement["subject"] = [
            {"name": name, "digest": {"sha256": digest}}
            for name, digest in digest_tree(run_dir / "evidence")
        ]
    if edit is not None:
        edit(statement["predicate"])
    if edit_statement is not None:
        edit_statement(statement)
    if resign:
        key = signing.SigningKey(Ed25519PrivateKey.generate(), run_dir / "forger.key", False)
        statement["predicate"]["signer"] = {
            "keyid": key.keyid,
            "public_key": key.public_pem(),
            "self_generated": False,
        }
        envelope = signing.sign(statement, key)
    else:
        envelope["payload"] = base64.b64encode(signing.payload_bytes(statement)).decode()
    envelope_path.write_bytes(signing.envelope_file_bytes(envelope))
    (run_dir / "statement.json").write_bytes(signing.payload_bytes(statement))
    (run_dir / "report.md").write_text(report.render_markdown(statement), encoding="utf-8")
    (run_dir / "report.html").write_text(report.render_html(statement), encoding="utf-8")
