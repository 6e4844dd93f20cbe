"""The SUT session a task drives: the built-in null SUT, or the submission's adapter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.probes.base import CollectContext
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.sessions import open_adapter_session


class TokenSession(Protocol):
    """A session that serves LLM-style answers for LoadGen's token latencies
    (`use_token_latencies`): `run_tokens` answers every sample in order like `run`, each
    output a 1-D array of token ids, and calls `first_token(position, token)` (position in
    `samples`, the first token as a 1-element array) the moment each sample's first token
    is ready, before it returns."""

    def run_tokens(
        self, samples: Sequence[Sample], first_token: Callable[[int, Any], None]
    ) -> list[SampleOutput]: ...


class NullSession:
    """Answers every sample at once with its input as the output (the `null_sut` hook).
    Answers are kept per Sample object (a dict key, so the object stays alive)."""

    def __init__(self) -> None:
        self._answers: dict[Sample, SampleOutput] = {}

    def describe(self) -> dict[str, Any]:
        return {"adapter": "null", "outputs": "the input, unchanged, at once"}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        answers = self._answers
        try:
            return list(map(answers.__getitem__, samples))
        except KeyError:
            for s in samples:
                if s not in answers:
                    answers[s] = SampleOutput(s.index, s.data, None, 0.0)
            return [answers[s] for s in samples]

    def run_tokens(
        self, samples: Sequence[Sample], first_token: Callable[[int, Any], None]
    ) -> list[SampleOutput]:
        """The input's elements as the tokens, the first one at once."""
        outs = self.run(samples)
        for position, out in enumerate(outs):
            first_token(position, np.asarray(out.output).reshape(-1)[:1])
        return outs

    def close(self) -> None:
        self._answers.clear()


def open_session(ctx: CollectContext) -> SutSession:
    """The SUT session for this task: the null SUT when the args ask for it, else
    `open_adapter_session` (the context's session or the submission's adapter)."""
    args = ctx.args
    if isinstance(args, LoadgenArgs) and args.null_sut:
        return NullSession()
    return open_adapter_session(ctx)
