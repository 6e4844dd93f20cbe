"""`command`: a SUT driven as an external program.

    sut:
      adapter: command
      argv: [./predict, --input, "{input}"]  # no shell; "{input}" is replaced per sample
      mode: per-sample                       # or batch
      timeout_s: 60                          # per sample (default 60)
      cwd: work                              # optional; relative to the submission file
      env: {OMP_NUM_THREADS: "8"}            # optional; added to the harness's environment

The working directory is `cwd` if given (relative to the submission file's folder), else
the submission file's folder (the harness's own working directory for the local default).
A relative `argv[0]` with a slash in it is taken relative to that directory; a bare name is
looked up on PATH (with `env`'s PATH, if it sets one).

per-sample (the default): one process per sample. Every "{input}" in argv (whole element
or part of one, "--file={input}") is replaced by the sample's text if its data is text,
else by its file path (`Sample.path`), else by the path of a temporary file the harness
writes: a numpy array as .npy (numpy.save), bytes as they are, anything else as JSON. argv
MUST contain "{input}" in this mode: a command line that does not change with the sample
could not be answering it (BadInput otherwise; use batch mode for a program that reads its
inputs from stdin). stdin is empty. The output is stdout, decoded as UTF-8 and stripped. A
non-zero exit fails the sample ("crashed: exit N: <last stderr line>"), stdout that is not
UTF-8 fails it ("bad output: ..."), and a process still running after `timeout_s` is killed
with its whole process group ("timeout after X s"). The latency includes process start-up.

batch: one long-lived process, started at `open()`. Each sample is written to its stdin as
one line (the sample's text, which must not contain a newline, or else its `Sample.path`;
other data is refused: "bad input: ..."), and the process must answer each input line with
exactly one line on stdout, flushed at once (in Python: print(..., flush=True)). The output
is that line, stripped. argv must NOT contain "{input}" in this mode. If no line comes back
within `timeout_s` the process (group) is killed and the sample fails with "timeout after
X s"; if the process exits, the sample fails with "crashed: exit N: <last stderr line>"; if
it wrote lines nobody asked for, it is out of step and is killed too ("bad output: ...").
After such a failure every later sample of the same `run()` call fails with "not run: ..."
naming the reason, and the process is started afresh at the next call, so the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harness import sandbox
from harness.adapters._support import (
    UnsupportedInput,
    crashed,
    one_line,
    resolve_path,
    source_label,
    timeout_message,
    to_json,
)
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput, SutFailure
from harness.registry import adapters

PLACEHOLDER = "{input}"
POSIX = os.name == "posix"
GRACE_S = 2.0  # how long to wait for a killed or closed process to go


@adapters.register("command")
class CommandAdapter:
    """An external program: one process per sample, or one long-lived line-per-sample one."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "command"
        mode: Literal["per-sample", "batch"] = "per-sample"  # before argv: its check uses it
        argv: list[str] = Field(min_length=1)
        timeout_s: float = Field(default=60.0, gt=0)
        cwd: str | None = None
        env: dict[str, str] | None = None

        @field_validator("argv")
        @classmethod
        def _placeholder(cls, argv: list[str], info: ValidationInfo) -> list[str]:
            if not argv[0]:
                raise ValueError("argv[0], the program, is empty")
            if PLACEHOLDER in argv[0]:
                raise ValueError("argv[0], the program, cannot hold '{input}'")
            mode = info.data.get("mode")
            has_placeholder = any(PLACEHOLDER in part for part in argv[1:])
            if mode == "per-sample" and not has_placeholder:
                raise ValueError(
                    "per-sample mode needs '{input}' in argv (the sample's text or path); "
                    "for a program that reads stdin, use mode: batch"
                )
            if mode == "batch" and has_placeholder:
                raise ValueError("batch mode sends inputs on stdin; argv must not hold '{input}'")
            return argv

        @field_validator("env")
        @classmethod
        def _env_names(cls, env: dict[str, str] | None) -> dict[str, str] | None:
            for name, value in (env or {}).items():
                if not name or "=" in name or "\0" in name or "\0" in value:
                    raise ValueError(f"not a usable environment variable: {name!r}")
            return env

    description: ClassVar[str] = "an external program (per-sample processes or a batch process)"

    def check(self, args: Args, base_dir: Path | None, source: str | Path | None = None) -> None:
        """Raise BadInput for a `cwd` that is not a directory (`sut.cwd`) or a program that
        cannot be found or is not executable (`sut.argv`). (The "{input}" rule is part of
        `Args` validation, also reported as `sut.argv`.)"""
        label = source_label(source, base_dir)
        cwd = working_dir(args, base_dir)
        if cwd is not None and not cwd.is_dir():
            raise BadInput(label, "sut.cwd", f"not a directory: {cwd}")
        try:
            find_program(args, cwd)
        except ValueError as error:
            raise BadInput(label, "sut.argv", str(error)) from None

    def open(self, args: Args, base_dir: Path | None) -> SutSession:
        """Check; in batch mode also start the process (SutFailure if it cannot start)."""
        self.check(args, base_dir)
        if args.mode == "batch":
            return BatchSession(args, base_dir)
        return PerSampleSession(args, base_dir)


def working_dir(args: CommandAdapter.Args, base_dir: Path | None) -> Path | None:
    if args.cwd is not None:
        return resolve_path(args.cwd, base_dir)
    return base_dir.resolve() if base_dir is not None else None


def environment(args: CommandAdapter.Args) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(args.env or {})
    return merged


def find_program(args: CommandAdapter.Args, cwd: Path | None) -> str:
    """argv[0] as an absolute path; ValueError saying why not."""
    program = args.argv[0]
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(program).expanduser()
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        if not path.is_file():
            raise ValueError(f"program not found: {path}")
        if not os.access(path, os.X_OK):
            raise ValueError(f"program is not executable: {path}")
        return os.path.abspath(path)  # not resolved: a venv's bin/python is a symlink
    found = shutil.which(program, path=environment(args).get("PATH"))
    if found is None:
        raise ValueError(f"program {program!r} not found on PATH")
    return found


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the process and, on POSIX, every process in its group (its children)."""
    if POSIX:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def exit_reason(returncode: int, stderr_tail: str) -> str:
    if returncode < 0:
        try:
            what = f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            what = f"signal {-returncode}"
    else:
        what = f"exit {returncode}"
    return f"crashed: {what}: {stderr_tail}" if stderr_tail else f"crashed: {what}"


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else ""


class _Base:
    def __init__(self, args: CommandAdapter.Args, base_dir: Path | None) -> None:
        self.args = args
        self.cwd = working_dir(args, base_dir)
        self.program = find_program(args, self.cwd)
        self.env = environment(args)
        # what harness.sandbox does for its processes (the masks as they stand now)
        self.sandbox = sandbox.wrap([self.program], Path(self.cwd) if self.cwd else Path.cwd())[1]

    def _argv(self, replacement: str | None = None) -> list[str]:
        rest = self.args.argv[1:]
        if replacement is not None:
            rest = [part.replace(PLACEHOLDER, replacement) for part in rest]
        return [self.program, *rest]

    def _popen(self, argv: list[str], stdin: int) -> subprocess.Popen[bytes]:
        argv, self.sandbox = sandbox.wrap(argv, Path(self.cwd) if self.cwd else Path.cwd())
        return subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.cwd,
            env=self.env,
            start_new_session=POSIX,  # its own process group, killed as a whole
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "adapter": "command",
            "mode": self.args.mode,
            "argv": list(self.args.argv),
            "program": self.program,
            "program_realpath": os.path.realpath(self.program),
            "cwd": str(self.cwd) if self.cwd is not None else os.getcwd(),
            "env_added": sorted(self.args.env or {}),
            "timeout_s": self.args.timeout_s,
            "sandbox": self.sandbox,
        }


class PerSampleSession(_Base):
    def __init__(self, args: CommandAdapter.Args, base_dir: Path | None) -> None:
        super().__init__(args, base_dir)
        # the temporary input files lie where a sandboxed SUT can read them
        self._tmp = tempfile.TemporaryDirectory(
            prefix="harness-command-", dir=sandbox.stage_parent(None)
        )

    def describe(self) -> dict[str, Any]:
        facts = self._describe()
        facts["input"] = (
            "'{input}' = the sample's text, else its path, else a temp file "
            "(.npy for arrays, .bin for bytes, .json otherwise)"
        )
        return facts

    def _input(self, sample: Sample) -> tuple[str, Path | None]:
        """What replaces {input}, and the temp file to delete afterwards (if one)."""
        data = sample.data
        if isinstance(data, str):
            return data, None
        if sample.path is not None:
            return sample.path, None
        folder = Path(self._tmp.name)
        if isinstance(data, np.ndarray):
            path = folder / f"sample-{sample.index}.npy"
            np.save(path, data, allow_pickle=False)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            path = folder / f"sample-{sample.index}.bin"
            path.write_bytes(bytes(data))
        else:
            path = folder / f"sample-{sample.index}.json"
            path.write_text(json.dumps(to_json(data), allow_nan=False), encoding="utf-8")
        return str(path), path

    def _one(self, sample: Sample) -> SampleOutput:
        timeout_s = self.args.timeout_s
        temp: Path | None = None
        try:
            replacement, temp = self._input(sample)
            argv = self._argv(replacement)
            start = time.perf_counter()
            process = self._popen(argv, subprocess.DEVNULL)
        except (UnsupportedInput, ValueError, TypeError) as error:
            self._remove(temp)
            return SampleOutput(sample.index, None, f"bad input: {one_line(error)}", 0.0)
        except OSError as error:
            self._remove(temp)
            message = f"crashed: cannot start: {one_line(error)}"
            return SampleOutput(sample.index, None, message, 0.0)
        try:
            try:
                stdout, stderr = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                waited = time.perf_counter() - start
                kill_group(process)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.communicate(timeout=GRACE_S)
                return SampleOutput(sample.index, None, timeout_message(timeout_s), waited)
            latency = time.perf_counter() - start
        finally:
            self._remove(temp)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        if process.returncode != 0:
            tail = last_line(stderr.decode("utf-8", errors="replace"))
            return SampleOutput(sample.index, None, exit_reason(process.returncode, tail), latency)
        try:
            text = stdout.decode("utf-8")
        except UnicodeDecodeError as error:
            return SampleOutput(
                sample.index, None, f"bad output: stdout is not UTF-8 ({error.reason})", latency
            )
        return SampleOutput(sample.index, text.strip(), None, latency)

    @staticmethod
    def _remove(path: Path | None) -> None:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        results = []
        for sample in samples:
            try:
                results.append(self._one(sample))
            except Exception as error:  # a harness-side surprise still fails one sample only
                results.append(SampleOutput(sample.index, None, crashed(error), 0.0))
        return results

    def close(self) -> None:
        self._tmp.cleanup()


class _Process:
    """The batch process with its three helper threads: one writes queued lines to stdin
    (so a process that stops reading cannot block the harness), one queues stdout lines
    (None at end of file), one keeps the last lines of stderr."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._to_write: queue.Queue[bytes | None] = queue.Queue()
        assert process.stdin and process.stdout and process.stderr
        self._threads = [
            threading.Thread(target=self._write, args=(process.stdin,), daemon=True),
            threading.Thread(target=self._read, args=(process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _write(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):  # the process went; the reader sees it
            while (line := self._to_write.get()) is not None:
                stream.write(line)
                stream.flush()
        with contextlib.suppress(OSError, ValueError):
            stream.close()

    def _read(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in iter(stream.readline, b""):
                self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in iter(stream.readline, b""):
                self.stderr_tail.append(line.decode("utf-8", errors="replace"))

    def send(self, line: bytes) -> None:
        self._to_write.put(line)

    def exit_reason(self) -> str:
        """Why the process ended, once its stdout has closed."""
        try:
            returncode = self.process.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            kill_group(self.process)
            returncode = self.process.wait()
            return f"crashed: the process closed its stdout (killed, exit {returncode})"
        self._threads[2].join(timeout=GRACE_S)
        return exit_reason(returncode, last_line("".join(self.stderr_tail)))

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, kill: bool) -> None:
        """End the process: killed at once, or (kill=False) stdin closed and a grace period."""
        self._to_write.put(None)
        if kill:
            kill_group(self.process)
        try:
            self.process.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            kill_group(self.process)
            self.process.wait()
        for thread in self._threads:
            thread.join(timeout=GRACE_S)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class BatchSession(_Base):
    def __init__(self, args: CommandAdapter.Args, base_dir: Path | None) -> None:
        super().__init__(args, base_dir)
        self.starts = 0
        self._process: _Process | None = None
        try:
            self._process = self._start()
        except OSError as error:
            raise SutFailure(f"cannot start {self.program}: {one_line(error)}") from None

    def _start(self) -> _Process:
        process = _Process(self._popen(self._argv(), subprocess.PIPE))
        self.starts += 1
        return process

    def describe(self) -> dict[str, Any]:
        facts = self._describe()
        facts["input"] = "one line per sample on stdin (text, or the sample's path)"
        facts["process_starts"] = self.starts
        facts["pid"] = self._process.process.pid if self._process is not None else None
        return facts

    @staticmethod
    def _line(sample: Sample) -> bytes:
        data = sample.data
        if isinstance(data, str):
            if "\n" in data or "\r" in data:
                raise UnsupportedInput(
                    "batch mode sends one line per sample; this text holds a line break"
                )
            return data.encode("utf-8") + b"\n"
        if sample.path is not None:
            return sample.path.encode("utf-8") + b"\n"
        raise UnsupportedInput(
            f"batch mode sends one line per sample, text or the sample's file path; this "
            f"sample has {type(data).__name__} data and no path (use mode: per-sample)"
        )

    def _ensure_process(self) -> _Process | str:
        if self._process is not None and self._process.alive():
            return self._process
        if self._process is not None:
            self._process.stop(kill=True)
            self._process = None
        try:
            self._process = self._start()
        except OSError as error:
            return f"crashed: cannot start {self.program}: {one_line(error)}"
        return self._process

    def _ask(self, process: _Process, line: bytes) -> tuple[bytes | None, str | None, float]:
        """(answer line, failure that stops the process, latency)."""
        timeout_s = self.args.timeout_s
        if not process.lines.empty():
            extra = process.lines.get_nowait()
            if extra is None:
                return None, process.exit_reason(), 0.0
            return None, "bad output: the process wrote a line nobody asked for (out of step)", 0.0
        start = time.perf_counter()
        process.send(line)
        try:
            answer = process.lines.get(timeout=timeout_s)
        except queue.Empty:
            return None, timeout_message(timeout_s), time.perf_counter() - start
        latency = time.perf_counter() - start
        if answer is None:
            return None, process.exit_reason(), latency
        return answer, None, latency

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        results: list[SampleOutput] = []
        ensured = self._ensure_process()
        stopped: str | None = None if isinstance(ensured, _Process) else ensured
        for sample in samples:
            if stopped is not None:
                results.append(SampleOutput(sample.index, None, f"not run: {stopped}", 0.0))
                continue
            assert isinstance(ensured, _Process)
            try:
                line = self._line(sample)
            except (UnsupportedInput, ValueError) as error:  # ValueError: not encodable
                message = f"bad input: {one_line(error)}"
                results.append(SampleOutput(sample.index, None, message, 0.0))
                continue
            answer, failure, latency = self._ask(ensured, line)
            if failure is not None:
                results.append(SampleOutput(sample.index, None, failure, latency))
                stopped = f"the batch process failed on sample {sample.index}: {failure}"
                ensured.stop(kill=True)
                self._process = None
                continue
            assert answer is not None
            try:
                text = answer.decode("utf-8")
            except UnicodeDecodeError as error:
                message = f"bad output: the answer line is not UTF-8 ({error.reason})"
                results.append(SampleOutput(sample.index, None, message, latency))
                continue
            results.append(SampleOutput(sample.index, text.strip(), None, latency))
        return results

    def close(self) -> None:
        if self._process is not None:
            self._process.stop(kill=False)
            self._process = None
