"""`callable`: a Python function, imported and called in-process with each sample's data.

    sut:
      adapter: callable
      target: mypkg.serve:predict   # importable from the harness's Python path
      timeout_s: 5                  # optional: give up on a call after this long

`target(sample.data)` returns the sample's output, whatever it is. An exception raised by
the call (SystemExit included) becomes that sample's error, "crashed: <Type>: <message>",
and the run goes on.

With `timeout_s`, calls run on a worker thread and the harness waits at most `timeout_s` for
each; a late call is recorded as "timeout after X s". Python cannot kill a thread: the
abandoned call keeps running in the background (holding the GIL at times, using CPU or a
device) until it returns on its own, and its result is thrown away. Later samples get a
fresh worker thread, but they may be measured while the abandoned call still competes with
them; `describe()["abandoned_calls_running"]` says how many are still running. Without
`timeout_s` calls run on the caller's thread and a hung call hangs the run: use the
`command` adapter for a SUT that must be killable.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.adapters._support import crashed, import_target, source_label, timeout_message
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput
from harness.registry import adapters

_FAILURES = (Exception, SystemExit)


@adapters.register("callable")
class CallableAdapter:
    """An importable Python function called in-process with each sample's data."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "callable"
        target: str
        timeout_s: float | None = Field(default=None, gt=0)

    description: ClassVar[str] = "a Python function called in-process ('package.module:fn')"

    def check(self, args: Args, base_dir: Path | None, source: str | Path | None = None) -> None:
        """Raise BadInput naming `sut.target` if the target is malformed, cannot be imported
        (its module's code runs here) or is not callable."""
        try:
            import_target(args.target)
        except ValueError as error:
            raise BadInput(source_label(source, base_dir), "sut.target", str(error)) from None

    def open(self, args: Args, base_dir: Path | None) -> SutSession:
        self.check(args, base_dir)
        return CallableSession(args, import_target(args.target))


class _Worker:
    """One daemon thread answering calls one at a time through its own pair of queues, so a
    late answer from an abandoned worker can never be taken for another sample's."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        self.requests: queue.Queue[tuple[Any] | None] = queue.Queue()
        self.replies: queue.Queue[tuple[Any, BaseException | None, float]] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="harness-callable-sut", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            request = self.requests.get()
            if request is None:
                return
            start = time.perf_counter()
            try:
                output, failure = self.function(request[0]), None
            except _FAILURES as error:
                output, failure = None, error
            self.replies.put((output, failure, time.perf_counter() - start))

    def stop(self) -> None:
        """Let the thread end once its current call (if any) returns."""
        self.requests.put(None)


class CallableSession:
    def __init__(self, args: CallableAdapter.Args, function: Callable[[Any], Any]) -> None:
        self.args = args
        self.function = function
        self._worker: _Worker | None = None
        self._abandoned: list[_Worker] = []

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "callable",
            "target": self.args.target,
            "module_file": getattr(_module_of(self.function), "__file__", None),
            "timeout_s": self.args.timeout_s,
            "isolation": "none: the target runs inside the harness's own process",
            "abandoned_calls_running": sum(w.thread.is_alive() for w in self._abandoned),
        }

    def _direct(self, sample: Sample) -> SampleOutput:
        start = time.perf_counter()
        try:
            output = self.function(sample.data)
        except _FAILURES as error:
            return SampleOutput(sample.index, None, crashed(error), time.perf_counter() - start)
        return SampleOutput(sample.index, output, None, time.perf_counter() - start)

    def _threaded(self, sample: Sample, timeout_s: float) -> SampleOutput:
        if self._worker is None:
            self._worker = _Worker(self.function)
        worker = self._worker
        start = time.perf_counter()
        worker.requests.put((sample.data,))
        try:
            output, failure, latency = worker.replies.get(timeout=timeout_s)
        except queue.Empty:
            worker.stop()
            self._abandoned.append(worker)
            self._worker = None
            waited = time.perf_counter() - start
            return SampleOutput(sample.index, None, timeout_message(timeout_s), waited)
        if failure is not None:
            return SampleOutput(sample.index, None, crashed(failure), latency)
        return SampleOutput(sample.index, output, None, latency)

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        timeout_s = self.args.timeout_s
        if timeout_s is None:
            return [self._direct(sample) for sample in samples]
        return [self._threaded(sample, timeout_s) for sample in samples]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


def _module_of(function: Callable[..., Any]) -> Any:
    import sys

    return sys.modules.get(getattr(function, "__module__", "") or "")
