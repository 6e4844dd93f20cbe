"""The `inference.loadgen` probe: collect and score, registered by name."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.collect import collect_evidence
from harness.probes.loadgen.score import metric_names, score_evidence
from harness.registry import probes


@probes.register("inference.loadgen")
class LoadgenProbe:
    name: ClassVar[str] = "inference.loadgen"
    Args: ClassVar[type[BaseModel]] = LoadgenArgs
    # it sends the samples to the submission's SUT adapter and scores what comes back
    reads_sut_outputs: ClassVar[bool] = True
    # its `local` adapter is the machine the harness runs on (the chip under test running the
    # reference models), not an engine of the harness's standing in for the product
    local_is_reference: ClassVar[bool] = False

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, LoadgenArgs)
        return metric_names(args)

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, LoadgenArgs)
        steps = 1 + args.performance_runs  # warm-up, performance runs
        if args.compliance:
            steps += 2
        if args.accuracy or args.compliance:
            steps += 1
        if args.server_search:
            steps += 4 + args.search_steps
        return steps

    def collect(self, ctx: CollectContext) -> list[str]:
        return collect_evidence(ctx)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        return score_evidence(evidence, ctx)
