"""Open the SUT session a task drives: the session the context hands over (the harness's
own reference engines), else the adapter named by the submission's `sut:` block."""

from __future__ import annotations

import inspect
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness import sandbox
from harness.adapters._support import UnsupportedInput, to_json
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput, SutFailure
from harness.probes.base import CollectContext
from harness.registry import adapters
from harness.schema import adapter_fields


def open_adapter_session(ctx: CollectContext) -> SutSession:
    """`ctx.session` when the task was given one, else the adapter named by the
    submission's `sut:` block, validated with its `Args` and opened with
    `open(args, base_dir)` (base_dir: `ctx.sut_base_dir` where the context has one, else
    None). SutFailure when no such adapter exists or it cannot answer samples."""
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
            "this task needs a model, command, HTTP, callable or outputs adapter"
        )
    model = getattr(adapter, "Args", None)
    raw = ctx.sut.model_dump()
    adapter_args: Any = raw
    if isinstance(model, type) and issubclass(model, BaseModel):
        raw = adapter_fields(ctx.sut, model)
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


def answer_all(
    session: SutSession, samples: Sequence[Sample], batch_size: int = 1
) -> list[SampleOutput]:
    """Every sample's answer, `batch_size` samples per `session.run` call, in order. A call
    that raises or answers the wrong number of samples fails each of its samples with the
    reason (the run goes on); an answer for another index fails its sample."""
    outputs: list[SampleOutput] = []
    for start in range(0, len(samples), max(1, batch_size)):
        chunk = list(samples[start : start + max(1, batch_size)])
        try:
            answers = list(session.run(chunk))
            if len(answers) != len(chunk):
                raise ValueError(f"session answered {len(answers)} of {len(chunk)} samples")
        except Exception as error:
            reason = f"session.run raised {type(error).__name__}: {error}"
            outputs += [SampleOutput(s.index, None, reason, 0.0) for s in chunk]
            continue
        for s, o in zip(chunk, answers, strict=True):
            if o.index != s.index:
                o = SampleOutput(s.index, None, f"answered as sample {o.index}", o.latency_s)
            outputs.append(o)
    return outputs


MAX_OUTPUT_BYTES = 1_000_000  # of one answer's JSON form; a larger one fails its sample


def output_records(ids: Sequence[str], outputs: Sequence[SampleOutput]) -> list[dict[str, Any]]:
    """The evidence of a set of answers: per sample its id, index, output (text, or the
    JSON form of what came back), error and the harness's latency."""
    if len(ids) != len(outputs):
        raise ValueError("ids and outputs differ in length")
    records: list[dict[str, Any]] = []
    for i, o in zip(ids, outputs, strict=True):
        output, error = None, o.error
        if o.output is not None:
            try:
                output = to_json(o.output)
            except UnsupportedInput as reason:
                error = f"bad output: {reason}"
            else:
                size = len(json.dumps(output, ensure_ascii=False).encode("utf-8"))
                if size > MAX_OUTPUT_BYTES:
                    output = None
                    error = (
                        f"bad output: {size} bytes, more than the {MAX_OUTPUT_BYTES} bytes the "
                        "harness keeps of one answer"
                    )
        records.append(
            {"id": i, "index": o.index, "output": output, "error": error, "latency_s": o.latency_s}
        )
    return records


def stage_inputs(paths: Sequence[Path], directory: Path) -> list[Path]:
    """Copies of input files under opaque names (`000000.wav`, ...) in a fresh folder
    under `directory` (one that holds nothing else: a temporary folder of its own), to hand
    to the SUT instead of the originals: a path into the lab's set would show the SUT where
    the set's references lie (the manifest beside the audio) and the file's own name. Each
    copy keeps its suffix; the SUT sees nothing else."""
    # a folder of its own (not inside the one the set was built in, whose other files the
    # SUT could list), readable by this user only
    stage = Path(tempfile.mkdtemp(prefix="sut-inputs-", dir=sandbox.stage_parent(directory)))
    stage.chmod(0o700)
    staged: list[Path] = []
    for k, path in enumerate(paths):
        target = stage / f"{k:06d}{path.suffix.lower()}"
        shutil.copyfile(path, target)
        staged.append(target)
    return staged


class Recorder:
    """A SUT session that keeps every answer it hands back: one list append per call (safe
    from LoadGen's driver threads), nothing parsed inside a timed run; `take()` hands the
    answers over afterwards, for a probe to check what the SUT said under load."""

    def __init__(self, session: SutSession) -> None:
        self.session = session
        self._batches: list[list[SampleOutput]] = []

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outs = self.session.run(samples)
        self._batches.append(outs)  # list.append is atomic
        return outs

    def take(self) -> list[SampleOutput]:
        """The answers since the last take, and forget them."""
        batches, self._batches = self._batches, []
        return [o for batch in batches for o in batch]

    def describe(self) -> dict[str, Any]:
        return self.session.describe()

    def close(self) -> None:
        self.session.close()

    def __getattr__(self, name: str) -> Any:  # the wrapped session's own methods
        return getattr(self.session, name)
