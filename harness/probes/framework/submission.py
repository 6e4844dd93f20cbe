"""Where the reference model comes from: a submission whose `sut:` block is the `framework`
adapter (`harness.adapters.framework_sut`), else the task's suite args, else the harness's
own digits MLP; and the note on it that every measurement's method carries."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

# The module, not its names: harness.adapters.framework_sut imports this package's contracts
# (CommandSpec, ReferenceArgs, ...), so either side may be imported first.
from harness.adapters import framework_sut
from harness.adapters._support import one_line
from harness.contracts.framework import ReferenceArgs
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext

FRAMEWORK_ADAPTER = "framework"

A = TypeVar("A", bound=ReferenceArgs)


def _submitted(ctx: CollectContext) -> framework_sut.FrameworkAdapter.Args | None:
    """The submission's `sut:` block, validated with the `framework` adapter's Args, when
    that is its adapter; None otherwise (the suite's args and the defaults apply)."""
    if ctx.sut.adapter != FRAMEWORK_ADAPTER:
        return None
    return framework_sut.FrameworkAdapter.Args.model_validate(ctx.sut.model_dump())


def _with_reference(
    ctx: CollectContext, submitted: framework_sut.FrameworkAdapter.Args | None, args: A
) -> tuple[A, str]:
    """The task's args with the submission's `model`, `data` and `calibration` (absolute
    paths, from the submission's folder) in place of the suite's when the submission gives
    a model; and where the reference model comes from, for the evidence."""
    if submitted is not None and submitted.model is not None:
        label = ctx.sut_base_dir if ctx.sut_base_dir is not None else "(submission)"
        paths = framework_sut.reference_args(submitted, ctx.sut_base_dir, label)
        try:
            merged = type(args).model_validate({**args.model_dump(), **paths})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "args"
            raise ValueError(
                f"the submission's sut.model with the task's args: {where}: "
                f"{one_line(first['msg'])}"
            ) from None
        return merged, "submission (sut.model, sut.data)"
    if args.model is not None:
        return args, "suite (task args model, data)"
    return args, "harness (seeded scikit-learn digits MLP)"


def _reference_note(evidence: EvidenceReader) -> str:
    """Which reference model the evidence was measured with, for a measurement's method."""
    facts = evidence.read_json("reference.json")
    origin = facts.get("origin", facts.get("source", "unrecorded"))
    return f"Reference model: {origin}, sha256 {facts.get('model_sha256')}."
