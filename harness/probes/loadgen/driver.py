"""LoadGen's SUT and QSL callbacks over one `SutSession`."""

from __future__ import annotations

import operator
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.probes.loadgen.logs import MAX_REASONS
from harness.probes.loadgen.outputs import encode_output


@dataclass
class RunStats:
    answered: int = 0
    failed: int = 0
    reasons: list[str] = field(default_factory=list)
    formats: dict[int, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"answered": self.answered, "failed": self.failed, "first_failures": self.reasons}


class Driver:
    """LoadGen's SUT and QSL callbacks over one session."""

    def __init__(
        self,
        lg: Any,
        session: SutSession,
        batch_size: int,
        workers: int,
        whole_query: bool = False,
        tokens: bool = False,
    ) -> None:
        self.lg = lg
        self.session = session
        self.batch_size = batch_size
        self.workers = workers
        # Offline: complete a query's samples in one call after its last batch. LoadGen's
        # Offline figure is the sample count over the time to the last completion, which
        # completing earlier samples later can only lower, never raise; it saves LoadGen
        # its per-call completion work inside the timed run.
        self.whole_query = whole_query
        self.samples: list[Sample] = []
        self.table: list[Sample | None] = []
        self.stats = RunStats()
        self.record_formats = False
        # per sample index: (the SampleOutput last answered for it, pointer, size) once it
        # was validated and encoded without a copy; a session that hands back the very same
        # SampleOutput again (a cached answer) skips all of that. The strong reference keeps
        # the encoded buffer alive, for at most one output per sample.
        self._known: list[SampleOutput | None] = []  # per slot: the SampleOutput encoded
        self._pointer: list[int] = []  # its buffer's address, as LoadGen reads it
        self._size: list[int] = []  # its size in bytes
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[list[int], list[int]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        if tokens:
            # LLM serving: first tokens reported apart, token counts with every answer
            self._serve = self._serve_tokens  # type: ignore[method-assign]

    # ---------------------------------------------------------------- per run

    def begin(self, samples: list[Sample], record_formats: bool) -> None:
        if len(samples) != len(self.samples) or any(
            a is not b for a, b in zip(samples, self.samples, strict=False)
        ):
            # another sample set: nothing is known
            self._known = [None] * len(samples)
            self._pointer = [0] * len(samples)
            self._size = [0] * len(samples)
        self.samples = samples
        self.table = [None] * len(samples)
        self.stats = RunStats()
        self.record_formats = record_formats
        self._threads = [
            threading.Thread(target=self._serve_queue, name=f"loadgen-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def end(self) -> RunStats:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        self.table = []
        return self.stats

    # ---------------------------------------------------------------- QSL

    def load(self, indices: list[int]) -> None:
        table, samples = self.table, self.samples
        for i in indices:
            table[i] = samples[i]

    def unload(self, indices: list[int]) -> None:
        table = self.table
        for i in indices:
            table[i] = None

    # ---------------------------------------------------------------- SUT

    def issue(self, ids: list[int], indices: list[int]) -> None:
        if self._threads:
            self._queue.put((ids, indices))
        else:
            # LoadGen calls this from its one issue thread (the harness never sets
            # server_num_issue_query_threads): nothing else writes the count
            self.stats.answered += len(ids)
            self._serve(ids, indices)

    def flush(self) -> None:
        pass

    def _serve_queue(self) -> None:
        # each worker counts on its own and adds its count once, under the lock, when it
        # stops (end() joins every worker before it hands the stats back): `+=` on a shared
        # attribute is a read and a write that another worker can come between
        answered = 0
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                answered += len(item[0])
                self._serve(*item)
        finally:
            with self._lock:
                self.stats.answered += answered

    def _serve(self, ids: list[int], indices: list[int]) -> None:
        size = self.batch_size
        complete = self.lg.QuerySamplesComplete
        if len(ids) <= size:
            responses: list[Any] = []
            keep: list[Any] = []
            self._answer(ids, indices, responses, keep)
            complete(responses)
            return
        responses, keep = [], []
        try:
            for start in range(0, len(ids), size):
                chunk = slice(start, start + size)
                self._answer(ids[chunk], indices[chunk], responses, keep)
                if not self.whole_query:
                    complete(responses)
                    responses, keep = [], []
        finally:
            if self.whole_query:
                # whatever happened, every id gets its response (a missing one hangs LoadGen)
                response = self.lg.QuerySampleResponse
                responses += [response(i, 0, 0) for i in ids[len(responses) :]]
                complete(responses)
        del keep  # LoadGen has copied what it logs

    def _fail(self, count: int, reason: str) -> None:
        with self._lock:
            self.stats.failed += count
            if len(self.stats.reasons) < MAX_REASONS:
                self.stats.reasons.append(reason)

    def _answer(
        self, ids: list[int], indices: list[int], responses: list[Any], keep: list[Any]
    ) -> None:
        """Answer one chunk into `responses` (the buffers they point at held in `keep` until
        the caller has completed them): a response for every id whatever happens (an
        exception escaping into LoadGen's thread would end the process, a missing response
        would hang the run)."""
        lg = self.lg
        response = lg.QuerySampleResponse
        pick = _picker(indices)
        try:
            samples = cast("list[Sample]", list(pick(self.table)))
            outs = self.session.run(samples)
            if len(outs) != len(samples):
                raise ValueError(f"session answered {len(outs)} of {len(samples)} samples")
        except Exception as error:
            self._fail(len(ids), f"session.run raised {type(error).__name__}: {error}")
            responses += [response(i, 0, 0) for i in ids]
            return
        # the hot path: every answer is the very SampleOutput answered (validated and
        # encoded) for its sample before; checked and built in C-speed passes
        # (SampleOutput equality is identity, so this list comparison is an identity check
        # per sample in C, without a Python call per sample)
        if not self.record_formats and list(pick(self._known)) == outs:
            responses += map(response, ids, pick(self._pointer), pick(self._size))
            return
        append = responses.append
        if self.record_formats:
            self._answer_recording(ids, samples, outs, responses, keep)
        else:
            known, pointer, size = self._known, self._pointer, self._size
            for rid, x, s, o in zip(ids, indices, samples, outs, strict=True):
                if known[x] is o:
                    append(response(rid, pointer[x], size[x]))
                else:
                    self._encode(rid, x, s, o, append, keep)

    def _remember(self, slot: int, o: SampleOutput, pointer: int, size: int) -> None:
        self._known[slot], self._pointer[slot], self._size[slot] = o, pointer, size

    def _encode(
        self,
        rid: int,
        slot: int,
        s: Sample,
        o: SampleOutput,
        append: Callable[[Any], None],
        keep: list[Any],
    ) -> None:
        """Validate and encode one answer; remember it under its QSL slot when no copy was
        made (so the same SampleOutput again needs neither)."""
        response = self.lg.QuerySampleResponse
        if o.error is not None or o.index != s.index:
            self._fail(1, _failure(s, o))
            append(response(rid, 0, 0))
            return
        out = o.output
        if out is None:
            self._remember(slot, o, 0, 0)
            append(response(rid, 0, 0))
            return
        try:
            pointer, size, hold, _ = encode_output(out)
        except Exception as error:
            self._fail(1, f"sample {s.index}: {type(error).__name__}: {error}")
            append(response(rid, 0, 0))
            return
        if hold is out:  # no copy was made: o keeps the buffer alive as long as it lives
            self._remember(slot, o, pointer, size)
        keep.append(hold)
        append(response(rid, pointer, size))

    def _answer_recording(
        self,
        ids: list[int],
        samples: list[Sample],
        outs: Sequence[SampleOutput],
        responses: list[Any],
        keep: list[Any],
    ) -> None:
        response = self.lg.QuerySampleResponse
        formats = self.stats.formats
        for rid, s, o in zip(ids, samples, outs, strict=True):
            if o.error is not None or o.index != s.index:
                self._fail(1, _failure(s, o))
                formats[s.index] = {"kind": "failed"}
                responses.append(response(rid, 0, 0))
                continue
            if o.output is None:
                formats[s.index] = {"kind": "none"}
                responses.append(response(rid, 0, 0))
                continue
            try:
                pointer, size, hold, desc = encode_output(o.output)
            except Exception as error:
                self._fail(1, f"sample {s.index}: {type(error).__name__}: {error}")
                formats[s.index] = {"kind": "failed"}
                responses.append(response(rid, 0, 0))
                continue
            formats[s.index] = desc
            keep.append(hold)
            responses.append(response(rid, pointer, size))

    # ---------------------------------------------------------------- token latencies

    def _serve_tokens(self, ids: list[int], indices: list[int]) -> None:
        """Answer through the session's `run_tokens` (see `TokenSession`): each first token
        goes to LoadGen's FirstTokenComplete as it comes, each answer (its tokens) to
        QuerySamplesComplete with its token count. A sample whose first token never came
        is reported failed (its first token is then taken as its answer's arrival)."""
        size = self.batch_size
        for start in range(0, len(ids), size):
            self._answer_tokens(ids[start : start + size], indices[start : start + size])

    def _answer_tokens(self, ids: list[int], indices: list[int]) -> None:
        lg = self.lg
        response = lg.QuerySampleResponse
        samples = cast("list[Sample]", [self.table[i] for i in indices])
        keep: list[Any] = []
        firsts = [False] * len(ids)

        def first_token(position: int, token: Any) -> None:
            if not 0 <= position < len(ids) or firsts[position]:
                return
            firsts[position] = True
            try:
                pointer, nbytes, hold, _ = encode_output(token)
                keep.append(hold)
            except Exception:
                pointer = nbytes = 0
            lg.FirstTokenComplete([response(ids[position], pointer, nbytes, 1)])

        run_tokens = getattr(self.session, "run_tokens", None)
        try:
            if run_tokens is None:
                raise TypeError("the session has no run_tokens (needed for token latencies)")
            outs = run_tokens(samples, first_token)
            if len(outs) != len(samples):
                raise ValueError(f"session answered {len(outs)} of {len(samples)} samples")
        except Exception as error:
            self._fail(len(ids), f"session.run_tokens raised {type(error).__name__}: {error}")
            self._complete_tokens(ids, [None] * len(ids), firsts, keep)
            return
        answers: list[tuple[int, int, int] | None] = []
        formats = self.stats.formats
        for s, o in zip(samples, outs, strict=True):
            if o.error is not None or o.index != s.index or o.output is None:
                self._fail(
                    1,
                    _failure(s, o)
                    if o.output is not None or o.error
                    else f"sample {s.index}: the session answered no tokens",
                )
                answers.append(None)
                if self.record_formats:
                    formats[s.index] = {"kind": "failed"}
                continue
            try:
                pointer, nbytes, hold, desc = encode_output(o.output)
                count = int(getattr(hold, "size", 0)) if desc["kind"] == "array" else 0
                if count < 1:
                    raise ValueError("an answer of tokens needs at least one token")
            except Exception as error:
                self._fail(1, f"sample {s.index}: {type(error).__name__}: {error}")
                answers.append(None)
                if self.record_formats:
                    formats[s.index] = {"kind": "failed"}
                continue
            keep.append(hold)
            answers.append((pointer, nbytes, count))
            if self.record_formats:
                formats[s.index] = {**desc, "tokens": count}
        missing = [s.index for s, seen in zip(samples, firsts, strict=True) if not seen]
        if missing:
            self._fail(len(missing), f"samples {missing[:MAX_REASONS]}: no first token reported")
        self._complete_tokens(ids, answers, firsts, keep)

    def _complete_tokens(
        self,
        ids: list[int],
        answers: list[tuple[int, int, int] | None],
        firsts: list[bool],
        keep: list[Any],
    ) -> None:
        """Every id gets a first token (when none came) and its completion."""
        lg = self.lg
        response = lg.QuerySampleResponse
        late = [response(rid, 0, 0, 1) for rid, seen in zip(ids, firsts, strict=True) if not seen]
        if late:
            lg.FirstTokenComplete(late)
        lg.QuerySamplesComplete(
            [
                response(rid, 0, 0, 1) if a is None else response(rid, a[0], a[1], a[2])
                for rid, a in zip(ids, answers, strict=True)
            ]
        )
        del keep


def _picker(indices: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function that takes the items at `indices` out of a sequence, as a tuple, in one
    C call (operator.itemgetter, which returns a bare item for one index)."""
    if len(indices) == 1:
        only = indices[0]
        return lambda seq: (seq[only],)
    if not indices:
        return lambda seq: ()
    return operator.itemgetter(*indices)


def _failure(sample: Sample, out: SampleOutput) -> str:
    if out.error is not None:
        return f"sample {sample.index}: {out.error}"
    return f"sample {sample.index}: the session answered it as sample {out.index}"
