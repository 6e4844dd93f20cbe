"""Apertium as the reference MT system of the dry run (Debian `apertium` + `apertium-eng-spa`).

`apertium -u eng-spa` is not line-buffered: it answers only when its input ends (checked
on apertium 3.8.3; `-z` null-flush did not flush through the `apertium` wrapper either),
so it cannot sit behind the `command` adapter's batch mode, which needs one answer line
per input line at once. This session runs one `apertium -u DIRECTION` process per
`run()` call instead: every sample of the call is one input line, the output must come
back with exactly as many lines (checked; a count that differs fails every sample of the
call with the reason, never a shifted alignment). Called with one sample per `run()` (as
the modes task does for latency), each answer is one whole process run: the latency is a
real one-sentence pipeline latency, process start included. With several samples per
call, each sample's latency_s is the call's wall time divided by the samples (stated in
`describe()`).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.adapters.protocol import Sample, SampleOutput

# BCP-47 primary subtags -> the Apertium language codes of the installed pairs
APERTIUM_CODES = {"en": "eng", "eng": "eng", "es": "spa", "spa": "spa"}
MODES_DIR = Path("/usr/share/apertium/modes")


def apertium_direction(src: str, tgt: str) -> str | None:
    """The Apertium direction ("eng-spa") for a language pair, None when no installed
    Apertium pair translates it."""
    a = APERTIUM_CODES.get(src.split("-")[0].lower())
    b = APERTIUM_CODES.get(tgt.split("-")[0].lower())
    if a is None or b is None or a == b:
        return None
    direction = f"{a}-{b}"
    return direction if (MODES_DIR / f"{direction}.mode").is_file() else None


def apertium_version() -> str:
    program = shutil.which("apertium")
    if program is None:
        return ""
    done = subprocess.run([program, "-V"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def _package_version(name: str) -> str:
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


class ApertiumSession:
    """A SUT session translating text samples with `apertium -u DIRECTION`."""

    def __init__(self, direction: str, timeout_s: float = 120.0) -> None:
        program = shutil.which("apertium")
        if program is None:
            raise FileNotFoundError("apertium is not installed (Debian package apertium)")
        mode = MODES_DIR / f"{direction}.mode"
        if not mode.is_file():
            raise FileNotFoundError(f"no Apertium mode {direction} ({mode})")
        self.program = program
        self.direction = direction
        self.timeout_s = timeout_s
        self.mode_sha256 = hashlib.sha256(mode.read_bytes()).hexdigest()
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "apertium (reference MT of the dry run)",
            "argv": [self.program, "-u", self.direction],
            "version": apertium_version(),
            "package": "apertium-eng-spa " + _package_version("apertium-eng-spa"),
            "mode_file_sha256": self.mode_sha256,
            "input": "one apertium process per run() call, one line per sample; the output "
            "must have as many lines; latency_s = the call's wall time / samples in the call",
            "calls": self.calls,
        }

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        lines: list[str] = []
        for s in samples:
            if not isinstance(s.data, str):
                reason = f"bad input: text expected, got {type(s.data).__name__}"
                return [SampleOutput(x.index, None, reason, 0.0) for x in samples]
            if "\n" in s.data or "\r" in s.data:
                reason = f"bad input: sample {s.index} holds a line break"
                return [SampleOutput(x.index, None, reason, 0.0) for x in samples]
            lines.append(s.data)
        if not samples:
            return []
        self.calls += 1
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [self.program, "-u", self.direction],
                input=("\n".join(lines) + "\n").encode("utf-8"),
                capture_output=True,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            waited = time.perf_counter() - start
            reason = f"timeout after {self.timeout_s:g} s"
            return [SampleOutput(s.index, None, reason, waited / len(samples)) for s in samples]
        latency = (time.perf_counter() - start) / len(samples)
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
            reason = f"crashed: exit {done.returncode}: {' '.join(tail)}".rstrip(": ")
            return [SampleOutput(s.index, None, reason, latency) for s in samples]
        try:
            text = done.stdout.decode("utf-8")
        except UnicodeDecodeError as error:
            reason = f"bad output: not UTF-8 ({error.reason})"
            return [SampleOutput(s.index, None, reason, latency) for s in samples]
        answers = text.split("\n")
        if answers and answers[-1] == "":
            answers.pop()
        if len(answers) != len(samples):
            reason = (
                f"bad output: apertium answered {len(answers)} lines for {len(samples)} "
                "input lines (alignment lost)"
            )
            return [SampleOutput(s.index, None, reason, latency) for s in samples]
        return [
            SampleOutput(s.index, a.strip(), None, latency)
            for s, a in zip(samples, answers, strict=True)
        ]

    def close(self) -> None:
        return None
