"""The search answers of `face.search_qps`, checked: every answer given under load is parsed
with the 1:N protocol's parser (`search_inputs.parse_search`, the one `face.identify`
uses), so an engine that answers fast without searching fails its samples.

`Recorder` wraps the SUT session and keeps every answer (an append per call: nothing is
parsed inside LoadGen's timed run); after each run `AnswerCheck.summarise` parses them
(each distinct answer of a sample once) and counts, per run: answers, well formed,
malformed (not JSON, an id that was not enrolled, more than R candidates, out of order, ...),
failed by the adapter, and for mated searches whether a gallery entry of the search's
subject was among the candidates.

The reference engine's timed path answers an embedding with its candidates' index rows
(int64): rows below its synthetic background are background vectors, the rows after them
the enrolled entries in enrolment order; a row outside the index is malformed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.adapters.protocol import SampleOutput
from harness.probes.biometrics.search_inputs import output_text, parse_search
from harness.probes.sessions import Recorder

MAX_EXAMPLES = 5


@dataclass
class AnswerCheck:
    """What an answer to sample k must look like. `subjects[k]`: the subject of the search
    of sample k when it is mated (None: non-mated); `subject_of`: enrolled id -> subject;
    `rows`: for the reference engine's row answers, the enrolled ids in index order after
    `background` synthetic rows (None: answers are protocol JSON)."""

    subjects: list[str | None]
    subject_of: dict[str, str]
    candidates: int
    rows: list[str] | None = None
    background: int = 0
    _cache: dict[tuple[int, Any], tuple[str | None, bool | None]] = field(default_factory=dict)

    def _ids(self, output: Any) -> list[str | None]:
        """The reference engine's rows as ids (None: a background row)."""
        assert self.rows is not None
        rows = np.asarray(output).ravel()
        if rows.dtype.kind not in "iu":
            raise ValueError(f"expected candidate rows (integers), got {rows.dtype}")
        kept = [int(r) for r in rows.tolist() if int(r) != -1]  # -1: fewer rows than asked
        if len(kept) > self.candidates:
            raise ValueError(f"{len(kept)} candidates, more than the {self.candidates} asked for")
        if len(set(kept)) != len(kept):
            raise ValueError("a candidate row returned twice")
        size = self.background + len(self.rows)
        out: list[str | None] = []
        for r in kept:
            if not 0 <= r < size:
                raise ValueError(f"row {r} is outside the index of {size}")
            out.append(None if r < self.background else self.rows[r - self.background])
        return out

    def check(self, out: SampleOutput) -> tuple[str | None, bool | None]:
        """(why the answer is malformed or None, whether a mate is among the candidates:
        None for a non-mated search or a failure to acquire)."""
        if not 0 <= out.index < len(self.subjects):
            return f"an answer for sample {out.index}, which was not asked", None
        output = out.output
        try:
            if self.rows is not None and not isinstance(output, str | dict):
                key: Any = np.asarray(output).tobytes()
            else:
                key = output_text(output)
        except Exception as error:
            return f"sample {out.index}: unreadable answer ({type(error).__name__})", None
        cached = self._cache.get((out.index, key))
        if cached is not None:
            return cached
        result = self._check(out.index, output)
        if len(self._cache) < 100_000:
            self._cache[(out.index, key)] = result
        return result

    def _check(self, index: int, output: Any) -> tuple[str | None, bool | None]:
        subject = self.subjects[index]
        try:
            if self.rows is not None and not isinstance(output, str | dict):
                ids: list[str | None] | None = self._ids(output)
            else:
                found = parse_search(output_text(output), set(self.subject_of), self.candidates)
                ids = None if found is None else [cid for cid, _ in found]
        except ValueError as error:
            return f"sample {index}: {error}", None
        if ids is None or subject is None:
            return None, None
        return None, any(c is not None and self.subject_of.get(c) == subject for c in ids)

    def summarise(self, outs: Sequence[SampleOutput]) -> dict[str, Any]:
        """The counts of one run's answers (see the module docstring)."""
        answers = well_formed = failed = mated = mates = 0
        malformed: list[str] = []
        bad = 0
        distinct: set[int] = set()
        for o in outs:
            answers += 1
            if o.error is not None:
                failed += 1  # the driver counts these as failed samples
                continue
            why, mate = self.check(o)
            distinct.add(o.index)
            if why is not None:
                bad += 1
                if len(malformed) < MAX_EXAMPLES:
                    malformed.append(why)
                continue
            well_formed += 1
            if 0 <= o.index < len(self.subjects) and self.subjects[o.index] is not None:
                mated += 1
                mates += bool(mate)
        return {
            "answers": answers,
            "well_formed": well_formed,
            "malformed": bad,
            "failed": failed,
            "first_malformed": malformed,
            "distinct_samples_answered": len(distinct),
            "mated_answers": mated,
            "mate_among_candidates": mates,
        }


def pooled(summaries: Sequence[dict[str, Any]]) -> dict[str, int]:
    keys = ("answers", "well_formed", "malformed", "failed", "mated_answers")
    out = {k: sum(int(s[k]) for s in summaries) for k in keys}
    out["mate_among_candidates"] = sum(int(s["mate_among_candidates"]) for s in summaries)
    return out


def rate(count: int, total: int) -> float | None:
    return None if total == 0 else count / total


__all__ = ["AnswerCheck", "Recorder", "pooled", "rate"]
