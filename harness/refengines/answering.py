"""A reference engine as a SUT session that answers each Sample on its own (D14's image
and height-map detectors): `run` times each answer, and a sample whose input breaks the
engine fails alone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from harness.adapters.protocol import Sample, SampleOutput


class AnswerEachSession:
    """Subclasses give `answer` (the JSON text answering one Sample's data; raises for a
    bad input) and `describe`."""

    def answer(self, data: Any) -> str:
        raise NotImplementedError

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outputs = []
        for s in samples:
            start = time.perf_counter()
            try:
                answer: str | None = self.answer(s.data)
                error = None
            except Exception as problem:  # one bad input fails its sample only
                answer, error = None, f"crashed: {type(problem).__name__}: {problem}"
            outputs.append(SampleOutput(s.index, answer, error, time.perf_counter() - start))
        return outputs

    def close(self) -> None:
        pass
