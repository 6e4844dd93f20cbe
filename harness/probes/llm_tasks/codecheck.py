"""The code service's tasks and their harness test.

Each task asks for one Python function; the answer's code (harness.probes.llm_tasks
.answers.code_of) must parse (`ast.parse`) and pass the task's cases. The test runs in a
fresh folder: `solution.py` (the code) and `check.py` (below), started as `python -I
check.py <nonce>` in the SUT sandbox (harness.sandbox: bubblewrap where installed), with a
timeout. `check.py` imports the solution, calls the function on every case's arguments
(the expected values are not in it) and prints one line
`<nonce> {"results": [{"value": ...} | {"error": "..."}]}` (or `{"import_error"}`); the
nonce (fresh per run) keeps the solution's own prints apart. A case passes when the
value's JSON equals the expected value's JSON (so True is not 1)."""

from __future__ import annotations

import ast
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import sandbox
from harness.adapters._support import one_line

TIMEOUT_S = 10.0
STDOUT_BYTES = 65_536
_ANSWER = " Answer with the Python code only."
TASKS: list[dict[str, Any]] = [
    {
        "id": "code-digit-sum",
        "function": "digit_sum",
        "prompt": "Write a Python function `digit_sum(n: int) -> int` that returns the sum of "
        "the decimal digits of the non-negative integer n." + _ANSWER,
        "cases": [[[0], 0], [[7], 7], [[12345], 15], [[909], 18]],
    },
    {
        "id": "code-reverse-words",
        "function": "reverse_words",
        "prompt": "Write a Python function `reverse_words(s: str) -> str` that returns the "
        "words of s (separated by whitespace) in reverse order, joined by single spaces." + _ANSWER,
        "cases": [[["hello big world"], "world big hello"], [["  one  "], "one"], [[""], ""]],
    },
    {
        "id": "code-is-prime",
        "function": "is_prime",
        "prompt": "Write a Python function `is_prime(n: int) -> bool` that returns True when "
        "the integer n is a prime number and False otherwise." + _ANSWER,
        "cases": [[[1], False], [[2], True], [[9], False], [[13], True], [[97], True],
                  [[100], False]],
    },
]  # fmt: skip

CHECK = """import importlib, json, sys
sys.path.insert(0, __file__.rsplit("/", 1)[0])
NONCE = sys.argv[1]
FUNCTION = {function!r}
CASES = json.loads({cases!r})
try:
    fn = getattr(importlib.import_module("solution"), FUNCTION)
except BaseException as error:
    print(NONCE, json.dumps({{"import_error": (type(error).__name__ + ": " + str(error))[:300]}}))
    sys.stdout.flush()
    raise SystemExit(0)
out = []
for args in CASES:
    try:
        value = fn(*args)
        json.dumps(value)
        out.append({{"value": value}})
    except BaseException as error:
        out.append({{"error": (type(error).__name__ + ": " + str(error))[:300]}})
print(NONCE, json.dumps({{"results": out}}), flush=True)
"""


def check_script(task: dict[str, Any]) -> str:
    return CHECK.format(
        function=task["function"], cases=json.dumps([args for args, _expected in task["cases"]])
    )


def parses(code: str) -> str:
    """ "" when the code parses as Python, else the reason."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError) as error:
        return f"does not parse as Python: {type(error).__name__}: {one_line(error)}"
    return ""


def run_check(task: dict[str, Any], code: str) -> dict[str, Any]:
    """Run the task's test on `code` (module doc): the run's record for the evidence."""
    nonce = secrets.token_hex(16)
    script = check_script(task)
    with sandbox.staging("harness-d16-code-") as tmp:
        folder = Path(tmp)
        (folder / "solution.py").write_text(code, encoding="utf-8")
        (folder / "check.py").write_text(script, encoding="utf-8")
        argv, how = sandbox.wrap([sys.executable, "-I", str(folder / "check.py"), nonce], folder)
        try:
            done = subprocess.run(
                argv, cwd=folder, capture_output=True, timeout=TIMEOUT_S, check=False
            )
            code_rc: int | None = done.returncode
            stdout = done.stdout[:STDOUT_BYTES].decode("utf-8", errors="replace")
            stderr = done.stderr[-2000:].decode("utf-8", errors="replace")
            error = ""
        except subprocess.TimeoutExpired:
            code_rc, stdout, stderr = None, "", ""
            error = f"timeout after {TIMEOUT_S:g} s"
    return {
        "nonce": nonce,
        "check_py": script,
        "returncode": code_rc,
        "stdout": stdout,
        "stderr_tail": stderr,
        "error": error,
        "sandbox": how,
    }


def verdict(task: dict[str, Any], run: dict[str, Any]) -> tuple[bool, str, int]:
    """(every case passed, the reason otherwise, cases passed), from a recorded run."""
    if run["error"]:
        return False, run["error"], 0
    line = next(
        (x for x in reversed(run["stdout"].splitlines()) if x.startswith(run["nonce"] + " ")),
        None,
    )
    if line is None:
        return False, f"the test printed no result line (exit {run['returncode']})", 0
    try:
        result = json.loads(line[len(run["nonce"]) + 1 :])
    except ValueError:
        return False, "the test's result line is not JSON", 0
    if "import_error" in result:
        return False, f"the solution does not import: {result['import_error']}", 0
    results = result.get("results")
    cases = task["cases"]
    if not isinstance(results, list) or len(results) != len(cases):
        return False, "the test's results do not cover the cases", 0
    passed = 0
    first = ""
    for (args, expected), got in zip(cases, results, strict=True):
        if (
            isinstance(got, dict)
            and "value" in got
            and json.dumps(got["value"]) == json.dumps(expected)
        ):
            passed += 1
        elif not first:
            shown = got.get("error") if isinstance(got, dict) and "error" in got else got
            first = f"{task['function']}{tuple(args)!r} gave {shown!r}, expected {expected!r}"
    if passed < len(cases):
        return False, f"{passed} of {len(cases)} cases passed (first failing: {first})", passed
    return True, "", passed
