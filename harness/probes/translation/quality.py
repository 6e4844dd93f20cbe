"""`mt.quality`: BLEU, chrF and TER per language pair, noise robustness, domain transfer and
coverage (D06).

collect: reads the test set (`--dataset test=PATH`, else the shipped dev set; format in
`testset.py`), the out-of-domain set (`--dataset ood=PATH`, else the shipped one) and makes
the noised copy of the test sources (`noise.py`, from the run seed). Every source goes to
the system for its pair (`suts.py`), `batch_size` per call; the sets, the noised sources
with their edits and every answer (with its error and the harness's latency) go to the
evidence. Sample indices: the test set's segment k (file order) is k, its noised copy
N + k, the out-of-domain segment j is 2N + j (N = test segments), so a pre-computed
`outputs` file can hold all three.

score (evidence only): per pair, sacrebleu BLEU / chrF / TER with their signatures and
seeded bootstrap bounds (`harness.scoring.translation`); a segment that failed is scored
as an empty translation (and counted). The noised-copy drop is a paired bootstrap (same
segments, same references), with sacrebleu's own paired bootstrap and approximate
randomisation p-values stored; the out-of-domain drop (clean score of the pair minus its
out-of-domain score) is an unpaired bootstrap, the sets being different segments.
Aggregates over pairs for the indicators: the lowest BLEU / chrF and the highest TER and
drops, each with that extreme's bounds (each pair bounded at the suite's confidence, no
multiplicity correction). Coverage: the pairs whose every segment was answered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.adapters.protocol import Sample
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.sessions import answer_all, output_records
from harness.probes.translation import suts
from harness.probes.translation.noise import VERSION as NOISE_VERSION
from harness.probes.translation.noise import noise_segment
from harness.probes.translation.testset import Segment, by_pair, read_testset
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring import translation as mt

SETS = ("test", "noised", "ood")
DROP_METRICS: tuple[mt.MetricName, ...] = ("bleu", "chrf")
SHOWN = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}


class QualityArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    sacrebleu_bootstrap: int = Field(default=1000, ge=0, le=100_000)
    paired_ar_trials: int = Field(default=10_000, ge=0, le=1_000_000)
    noise_rate: float = Field(default=0.1, gt=0, le=1)
    noise: bool = True
    ood: bool = True
    batch_size: int = Field(default=64, ge=1, le=100_000)


def pair_id(pair: str) -> str:
    return pair.lower().replace("-", "_")


def _segments_json(path: Path, shipped: bool, segments: list[Segment]) -> dict[str, Any]:
    return {
        "file": str(path),
        "shipped_dev_set": shipped,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "segments": [
            {
                "id": s.id,
                "source": s.source,
                "references": list(s.references),
                "src": s.src,
                "tgt": s.tgt,
            }
            for s in segments
        ],
    }


def _segments(record: dict[str, Any]) -> list[Segment]:
    return [
        Segment(str(s["id"]), str(s["source"]), tuple(s["references"]), s["src"], s["tgt"])
        for s in record["segments"]
    ]


@probes.register("mt.quality")
class QualityProbe:
    name: ClassVar[str] = "mt.quality"
    Args: ClassVar[type[BaseModel]] = QualityArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        assert isinstance(args, QualityArgs)
        names = {"bleu_min": "points", "chrf_min": "points", "ter_max": "points"}
        names["pairs_scored"] = "count"
        if args.noise:
            names |= {"noise_bleu_drop_max": "points", "noise_chrf_drop_max": "points"}
        if args.ood:
            names |= {"ood_bleu_drop_max": "points", "ood_chrf_drop_max": "points"}
        return names

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, QualityArgs)
        return 1 + 1 + int(args.noise) + int(args.ood)

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        """Refuse a bad test or out-of-domain file before anything runs (BadInput)."""
        for name in ("test", "ood"):
            if name in datasets:
                read_testset(datasets[name])

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, QualityArgs)
        ctx.progress("read the test sets")
        test_path, test_shipped = suts.dataset_path(ctx, "test", "test.jsonl")
        test = read_testset(test_path)
        ctx.evidence.write_json(
            "test.json", {"seed": ctx.seed, **_segments_json(test_path, test_shipped, test)}
        )
        sets: dict[str, list[tuple[int, Segment, str]]] = {
            "test": [(k, s, s.source) for k, s in enumerate(test)]
        }
        n = len(test)
        if args.noise:
            noised = [noise_segment(s.id, s.source, ctx.seed, args.noise_rate, s.src) for s in test]
            ctx.evidence.write_json(
                "noise.json",
                {
                    "generator": f"harness.probes.translation.noise {NOISE_VERSION}",
                    "seed": ctx.seed,
                    "rate": args.noise_rate,
                    "segments": [
                        {"id": s.id, "noised": x.text, "edits": list(x.edits)}
                        for s, x in zip(test, noised, strict=True)
                    ],
                },
            )
            sets["noised"] = [
                (n + k, s, x.text) for k, (s, x) in enumerate(zip(test, noised, strict=True))
            ]
        if args.ood:
            ood_path, ood_shipped = suts.dataset_path(ctx, "ood", "ood.jsonl")
            ood = read_testset(ood_path)
            ctx.evidence.write_json("ood.json", _segments_json(ood_path, ood_shipped, ood))
            sets["ood"] = [(2 * n + j, s, s.source) for j, s in enumerate(ood)]
        failures: list[str] = []
        systems: dict[str, Any] = {}
        for set_name, items in sets.items():
            ctx.progress(f"translate the {set_name} set")
            groups: dict[str, list[tuple[int, Segment, str]]] = {}
            for item in items:
                groups.setdefault(item[1].pair, []).append(item)
            for pair, group in groups.items():
                src, tgt = group[0][1].src, group[0][1].tgt
                ids = [s.id for _, s, _ in group]
                try:
                    session = suts.open_mt(ctx, src, tgt)
                except Exception as error:
                    reason = f"{set_name} {pair}: {type(error).__name__}: {error}"
                    failures.append(reason)
                    ctx.evidence.write_json(
                        f"outputs/{set_name}/{pair}.json", {"status": "not_run", "reason": reason}
                    )
                    continue
                try:
                    samples = [Sample(index, text) for index, _, text in group]
                    outputs = answer_all(session, samples, args.batch_size)
                    described = session.describe()
                finally:
                    if ctx.session is None:
                        session.close()
                systems.setdefault(pair, described)
                records = output_records(ids, outputs)
                errors = sum(1 for r in records if r["error"] is not None or r["output"] is None)
                if errors:
                    failures.append(
                        f"{set_name} {pair}: {errors} of {len(records)} segments failed"
                    )
                ctx.evidence.write_json(
                    f"outputs/{set_name}/{pair}.json",
                    {"status": "ran", "session": described, "records": records},
                )
        ctx.evidence.write_json("systems.json", systems)
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, QualityArgs)
        conf = ctx.confidence
        test = _segments(evidence.read_json("test.json"))
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        clean_stats: dict[str, dict[str, mt.SegmentStats]] = {}
        clean_hyps: dict[str, list[str]] = {}
        per_pair: dict[str, dict[str, mt.MetricScore]] = {}
        status: dict[str, str] = {}
        seed = _seed(evidence)
        for pair, segs in by_pair(test).items():
            hyps, failed, reason = _hypotheses(evidence, "test", pair, segs)
            if hyps is None:
                status[pair] = reason
                for m in mt.METRICS:
                    unmeasured.append(Unmeasured(id=f"{pair_id(pair)}.{m}", reason=reason))
                continue
            status[pair] = "scored" if not failed else f"{failed} of {len(segs)} segments failed"
            refs = [list(s.references) for s in segs]
            clean_hyps[pair] = hyps
            clean_stats[pair] = {}
            per_pair[pair] = {}
            for m in mt.METRICS:
                score, stats = mt.score_set(
                    m,
                    hyps,
                    refs,
                    segs[0].tgt,
                    conf,
                    args.resamples,
                    seed,
                    args.sacrebleu_bootstrap,
                )
                clean_stats[pair][m] = stats
                per_pair[pair][m] = score
                measurements.append(_score_measurement(pair, score, failed, segs[0].tgt))
        measurements += _extremes(per_pair, unmeasured, status)
        measurements.append(_coverage(status))
        if args.noise:
            measurements += self._noise(
                evidence, args, conf, seed, test, clean_hyps, clean_stats, unmeasured
            )
        if args.ood:
            measurements += self._ood(evidence, args, conf, seed, clean_stats, unmeasured)
        return ScoreResult(measurements, unmeasured)

    def _noise(
        self,
        evidence: EvidenceReader,
        args: QualityArgs,
        conf: float,
        seed: int,
        test: list[Segment],
        clean_hyps: dict[str, list[str]],
        clean_stats: dict[str, dict[str, mt.SegmentStats]],
        unmeasured: list[Unmeasured],
    ) -> list[Measurement]:
        noise = {s["id"]: s for s in evidence.read_json("noise.json")["segments"]}
        drops: dict[str, dict[str, Measurement]] = {}
        out: list[Measurement] = []
        for pair, segs in by_pair(test).items():
            if pair not in clean_stats:
                continue
            hyps, failed, reason = _hypotheses(evidence, "noised", pair, segs)
            if hyps is None:
                for m in DROP_METRICS:
                    unmeasured.append(
                        Unmeasured(id=f"noise.{pair_id(pair)}.{m}_drop", reason=reason)
                    )
                continue
            refs = [list(s.references) for s in segs]
            tgt = segs[0].tgt
            tests = mt.sacrebleu_paired_tests(
                clean_hyps[pair], hyps, refs, tgt, args.sacrebleu_bootstrap, args.paired_ar_trials
            )
            edited = sum(1 for s in segs if noise[s.id]["edits"])
            drops[pair] = {}
            for m in DROP_METRICS:
                noised_stats = mt.segment_stats(m, hyps, refs, tgt)
                diff = mt.difference(
                    clean_stats[pair][m], noised_stats, conf, args.resamples, seed + 1, paired=True
                )
                name = clean_stats[pair][m].scorer.get_signature().format()
                measurement = _drop_measurement(
                    f"noise.{pair_id(pair)}.{m}_drop",
                    diff,
                    f"{SHOWN[m]} on the test set minus {SHOWN[m]} on its noised copy "
                    f"({pair}, {len(segs)} segments, {edited} with edits, noise rate "
                    f"{args.noise_rate:g}, seed from the run); {diff.method}",
                    {
                        "signature": name,
                        "failed_noised_segments": failed,
                        "segments_with_edits": edited,
                        "sacrebleu_paired_tests": {
                            t: {
                                "samples": r["samples"],
                                **{
                                    k: v
                                    for k, v in r["metrics"].items()
                                    if k.lower().startswith(m[:3])
                                },
                            }
                            for t, r in tests.items()
                        },
                    },
                )
                drops[pair][m] = measurement
                out.append(measurement)
        out += _max_drop("noise", drops, unmeasured)
        return out

    def _ood(
        self,
        evidence: EvidenceReader,
        args: QualityArgs,
        conf: float,
        seed: int,
        clean_stats: dict[str, dict[str, mt.SegmentStats]],
        unmeasured: list[Unmeasured],
    ) -> list[Measurement]:
        ood = _segments(evidence.read_json("ood.json"))
        drops: dict[str, dict[str, Measurement]] = {}
        out: list[Measurement] = []
        for pair, segs in by_pair(ood).items():
            if pair not in clean_stats:
                reason = f"the out-of-domain pair {pair} has no in-domain score to compare with"
                for m in DROP_METRICS:
                    unmeasured.append(Unmeasured(id=f"ood.{pair_id(pair)}.{m}_drop", reason=reason))
                continue
            hyps, failed, reason = _hypotheses(evidence, "ood", pair, segs)
            if hyps is None:
                for m in DROP_METRICS:
                    unmeasured.append(Unmeasured(id=f"ood.{pair_id(pair)}.{m}_drop", reason=reason))
                continue
            refs = [list(s.references) for s in segs]
            drops[pair] = {}
            for m in DROP_METRICS:
                ood_score, ood_stats = mt.score_set(
                    m,
                    hyps,
                    refs,
                    segs[0].tgt,
                    conf,
                    args.resamples,
                    seed + 2,
                )
                diff = mt.difference(
                    clean_stats[pair][m], ood_stats, conf, args.resamples, seed + 3, paired=False
                )
                measurement = _drop_measurement(
                    f"ood.{pair_id(pair)}.{m}_drop",
                    diff,
                    f"{SHOWN[m]} on the in-domain test set minus {SHOWN[m]} on the "
                    f"out-of-domain set ({pair}, {len(clean_stats[pair][m].stats)} and "
                    f"{len(segs)} segments); {diff.method}",
                    {
                        "out_of_domain_score": ood_score.score,
                        "out_of_domain_text": ood_score.text,
                        "signature": ood_score.signature,
                        "failed_out_of_domain_segments": failed,
                    },
                )
                drops[pair][m] = measurement
                out.append(measurement)
        out += _max_drop("ood", drops, unmeasured)
        return out


def _seed(evidence: EvidenceReader) -> int:
    """The run seed (the bootstraps' seeds derive from it)."""
    return int(evidence.read_json("test.json")["seed"])


def _hypotheses(
    evidence: EvidenceReader, set_name: str, pair: str, segs: list[Segment]
) -> tuple[list[str] | None, int, str]:
    """The pair's translations in segment order (failed ones as ""), the count that failed,
    or None and the reason when the set did not run."""
    name = f"outputs/{set_name}/{pair}.json"
    if not evidence.exists(name):
        return None, 0, f"{set_name} {pair}: no outputs recorded"
    record = evidence.read_json(name)
    if record.get("status") != "ran":
        return None, 0, str(record.get("reason", "not run"))
    rows = record["records"]
    if [r["id"] for r in rows] != [s.id for s in segs]:
        raise ValueError(f"{name}: the recorded ids are not the set's segments in order")
    hyps: list[str] = []
    failed = 0
    for r in rows:
        out = r["output"]
        if r["error"] is not None or not isinstance(out, str):
            failed += 1
            hyps.append("")
        else:
            hyps.append(out)
    if failed == len(rows):
        return None, failed, f"{set_name} {pair}: every segment failed ({rows[0]['error']})"
    return hyps, failed, ""


def _interval(low: float, high: float, conf: float, method: str, need: str = "") -> Interval:
    return Interval(low=low, high=high, confidence=conf, method=method, need=need)


def _score_measurement(pair: str, s: mt.MetricScore, failed: int, tgt: str) -> Measurement:
    tokenizer, why = mt.tokenizer_for(tgt)
    return Measurement(
        id=f"{pair_id(pair)}.{s.metric}",
        value=s.score,
        unit="points",
        n=s.segments,
        repeats=1,
        ci=_interval(
            s.low,
            s.high,
            s.confidence,
            f"bootstrap over {s.segments} segments on sacrebleu's sufficient statistics, "
            f"{s.resamples} resamples, seed {s.seed}, one-sided percentile bounds",
            "a larger test set narrows the bootstrap bounds",
        ),
        method=f"sacrebleu {s.name} ({pair}), {s.segments} segments; signature "
        f"{s.harness_signature}",
        details={
            "signature": s.signature,
            "harness_signature": s.harness_signature,
            "score_text": s.text,
            "tokenizer": tokenizer if s.metric == "bleu" else "",
            "tokenizer_reason": why if s.metric == "bleu" else "",
            "sacrebleu_bootstrap_95": s.sacrebleu_bootstrap,
            "failed_segments_scored_empty": failed,
        },
    )


def _extremes(
    per_pair: dict[str, dict[str, mt.MetricScore]],
    unmeasured: list[Unmeasured],
    status: dict[str, str],
) -> list[Measurement]:
    out: list[Measurement] = []
    for m, agg in (("bleu", "bleu_min"), ("chrf", "chrf_min"), ("ter", "ter_max")):
        if not per_pair:
            reason = "no language pair was scored: " + "; ".join(
                f"{p}: {r}" for p, r in status.items()
            )
            unmeasured.append(Unmeasured(id=agg, reason=reason))
            continue
        scores = {p: v[m] for p, v in per_pair.items()}
        pick = min if mt.HIGHER_IS_BETTER[m] else max  # type: ignore[index]
        worst = pick(scores, key=lambda p: scores[p].score)
        s = scores[worst]
        out.append(
            Measurement(
                id=agg,
                value=s.score,
                unit="points",
                n=sum(v.segments for v in scores.values()),
                repeats=1,
                ci=_interval(
                    pick(v.low for v in scores.values()),
                    pick(v.high for v in scores.values()),
                    s.confidence,
                    "per pair a seeded bootstrap over segments; the worst pair's figure with "
                    "the worst bound over the pairs (each at the confidence, no multiplicity "
                    "correction)",
                ),
                method=f"the {'lowest' if pick is min else 'highest'} sacrebleu {s.name} over "
                f"the {len(scores)} scored pair(s): {worst}; signature {s.harness_signature}",
                details={"per_pair": {p: v.score for p, v in scores.items()}, "worst_pair": worst},
            )
        )
    return out


def _coverage(status: dict[str, str]) -> Measurement:
    scored = sorted(p for p, s in status.items() if s == "scored")
    return Measurement(
        id="pairs_scored",
        value=float(len(scored)),
        unit="count",
        n=len(status),
        repeats=1,
        method="language pairs of the test set whose every segment was answered and scored",
        details={"pairs": scored, "status": dict(sorted(status.items()))},
    )


def _drop_measurement(
    metric_id: str, diff: mt.Difference, method: str, details: dict[str, Any]
) -> Measurement:
    return Measurement(
        id=metric_id,
        value=diff.value,
        unit="points",
        n=diff.items,
        repeats=1,
        ci=_interval(
            diff.low,
            diff.high,
            diff.confidence,
            f"{diff.method}; one-sided bounds at the confidence",
            need="a larger test set narrows the bootstrap bounds",
        ),
        method=method,
        details={**details, "p_value_bootstrap": diff.p_value, "paired": diff.paired},
    )


def _max_drop(
    kind: str, drops: dict[str, dict[str, Measurement]], unmeasured: list[Unmeasured]
) -> list[Measurement]:
    out: list[Measurement] = []
    for m in DROP_METRICS:
        agg = f"{kind}_{m}_drop_max"
        have = {p: d[m] for p, d in drops.items() if m in d}
        if not have:
            unmeasured.append(Unmeasured(id=agg, reason=f"no {kind} drop was measured"))
            continue
        worst = max(have, key=lambda p: have[p].value)
        w = have[worst]
        assert w.ci is not None
        highs = [d.ci.high for d in have.values() if d.ci is not None and d.ci.high is not None]
        lows = [d.ci.low for d in have.values() if d.ci is not None and d.ci.low is not None]
        out.append(
            w.model_copy(
                update={
                    "id": agg,
                    "ci": w.ci.model_copy(update={"high": max(highs), "low": max(lows)}),
                    "method": f"the largest {SHOWN[m]} drop over {len(have)} pair(s) "
                    f"({worst}): {w.method}",
                    "details": {
                        **w.details,
                        "worst_pair": worst,
                        "per_pair": {p: d.value for p, d in have.items()},
                    },
                }
            )
        )
    return out
