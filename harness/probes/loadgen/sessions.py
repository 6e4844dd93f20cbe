"""The SUT session a task drives: the built-in null SUT, or the submission's adapter."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput, SutFailure
from harness.probes.base import CollectContext
from harness.probes.loadgen.args import LoadgenArgs
from harness.registry import adapters


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

    def close(self) -> None:
        self._answers.clear()


def open_session(ctx: CollectContext) -> SutSession:
    """The SUT session for this task: the null SUT when the args ask for it, else the
    adapter named by the submission's `sut:` block, validated with its `Args` and opened
    with `open(args, base_dir)` (base_dir: `ctx.sut_base_dir` where the context has one,
    else None). SutFailure when no such adapter exists or it cannot answer samples."""
    args = ctx.args
    if isinstance(args, LoadgenArgs) and args.null_sut:
        return NullSession()
    given = getattr(ctx, "session", None)
    if given is not None:
        return given  # type: ignore[no-any-return]
    name = ctx.sut.adapter
    adapter = adapters.get(name)
    if adapter is None:
        raise SutFailure(f"no SUT adapter named {name!r} is registered")
    opener = getattr(adapter, "open", None)
    if not callable(opener):
        raise SutFailure(
            f"SUT adapter {name!r} cannot answer samples (it has no open(args, base_dir)); "
            "inference.loadgen needs a model, command, HTTP or callable adapter"
        )
    model = getattr(adapter, "Args", None)
    raw = ctx.sut.model_dump()
    adapter_args: Any = raw
    if isinstance(model, type) and issubclass(model, BaseModel):
        if "adapter" not in model.model_fields:
            raw.pop("adapter", None)
        try:
            adapter_args = model.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadInput("sut", where or None, first["msg"]) from None
    if inspect.isclass(adapter) and not isinstance(
        inspect.getattr_static(adapter, "open"), staticmethod | classmethod
    ):
        instance: Any = adapter()
        opener = instance.open
    # relative SUT paths start at the submission's folder when the context knows it
    base_dir = getattr(ctx, "sut_base_dir", None)
    try:
        session: SutSession = opener(adapter_args, base_dir)
    except (BadInput, SutFailure):
        raise
    except Exception as error:
        raise SutFailure(
            f"SUT adapter {name!r} failed to open: {type(error).__name__}: {error}"
        ) from error
    return session
