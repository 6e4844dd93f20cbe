"""`mt.quality`: BLEU, chrF and TER per language pair, noise robustness, domain transfer and
coverage (D06).

collect: reads the test set (`--dataset test=PATH`, else the shipped dev set; format in
`testset.py`), the out-of-domain set (`--dataset ood=PATH`, else the shipped one) and makes
the noised copy of the test sources (`noise.py`, from the run seed). Every source goes to
the system for its pair (`suts.py`), `batch_size` per call; every answer (with its error
and the harness's latency) goes to the evidence, then, once every session is closed (so a
SUT cannot read the references there while it answers), the sets byte for byte with their
sha256 and status (`suts.InputFile`: a lab set, or the shipped dev set by its pinned
digest) and the noised sources with their edits. Sample indices: the test set's segment k
(file order) is k, its noised copy N + k, the out-of-domain segment j is 2N + j
(N = test segments), so a pre-computed `outputs` file can hold all three.

score (evidence only, re-parsing the sets' byte copies after checking their sha256): per
pair, sacrebleu BLEU / chrF / TER with their signatures and seeded bootstrap bounds
(`harness.scoring.translation`), no bounds below `min_segments` segments; a segment that
failed is scored as an empty translation (counted, and the figure marked invalid with
`failures_count_against`: an empty translation only makes it worse). Every figure on the
shipped dev set is invalid (its references are public). The noised-copy drop is a paired
bootstrap (same segments, same references), with sacrebleu's own paired bootstrap and
approximate randomisation p-values stored; the out-of-domain drop (clean score of the pair
minus its out-of-domain score) is an unpaired bootstrap, the sets being different
segments. Aggregates over pairs for the indicators: the lowest BLEU / chrF and the highest
TER and drops, each with that extreme's bounds (each pair bounded at the suite's
confidence, no multiplicity correction). Coverage: the distinct pairs (canonical
languages; shared source texts count once) whose every segment was answered, each with
at least `min_segments` segments.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
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
from harness.probes.translation.testset import (
    Segment,
    by_pair,
    canonical_language,
    parse_testset,
    read_testset,
)
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
    # a pair with fewer segments gets no bound (and is not counted as covered): a bootstrap
    # over a handful of segments says nothing
    min_segments: int = Field(default=30, ge=1, le=100_000)


def pair_id(pair: str) -> str:
    return pair.lower().replace("-", "_")


def _read_set(evidence: EvidenceReader, name: str) -> tuple[list[Segment], str]:
    """score(): the set `name` ("test", "ood") re-parsed from its byte copy in the evidence
    (its sha256 checked against the one collect recorded), and why figures on it cannot
    decide a verdict ("" for a lab set)."""
    facts = evidence.read_json(f"{name}.json")
    copy = str(facts["copy"])
    data = evidence.path(copy).read_bytes()
    suts.check_copy(data, facts, copy)
    return parse_testset(data, evidence.path(copy)), suts.invalid_reason(facts, name)


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
        test_in = suts.read_input(ctx, "test", "test.jsonl")
        test = parse_testset(test_in.data, test_in.path)
        sets: dict[str, list[tuple[int, Segment, str]]] = {
            "test": [(k, s, s.source) for k, s in enumerate(test)]
        }
        n = len(test)
        noised = []
        if args.noise:
            noised = [noise_segment(s.id, s.source, ctx.seed, args.noise_rate, s.src) for s in test]
            sets["noised"] = [
                (n + k, s, x.text) for k, (s, x) in enumerate(zip(test, noised, strict=True))
            ]
        ood_in = None
        if args.ood:
            ood_in = suts.read_input(ctx, "ood", "ood.jsonl")
            ood = parse_testset(ood_in.data, ood_in.path)
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
        # the sets hold the references: written only now, every session closed, so a SUT
        # cannot read them from the run's evidence folder while it answers
        ctx.evidence.write_bytes("test.jsonl", test_in.data)
        ctx.evidence.write_json("test.json", {"seed": ctx.seed, **test_in.facts("test.jsonl")})
        if args.noise:
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
        if ood_in is not None:
            ctx.evidence.write_bytes("ood.jsonl", ood_in.data)
            ctx.evidence.write_json("ood.json", ood_in.facts("ood.jsonl"))
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, QualityArgs)
        conf = ctx.confidence
        test, dev_reason = _read_set(evidence, "test")
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        clean_stats: dict[str, dict[str, mt.SegmentStats]] = {}
        clean_hyps: dict[str, list[str]] = {}
        clean_failed: dict[str, int] = {}
        per_pair: dict[str, dict[str, Measurement]] = {}
        status: dict[str, str] = {}
        seed = _seed(evidence)
        for pair, segs in by_pair(test).items():
            hyps, failed, reason = _hypotheses(evidence, "test", pair, segs)
            if hyps is None:
                status[pair] = reason
                for m in mt.METRICS:
                    unmeasured.append(Unmeasured(id=f"{pair_id(pair)}.{m}", reason=reason))
                continue
            if failed:
                status[pair] = f"{failed} of {len(segs)} segments failed"
            elif len(segs) < args.min_segments:
                status[pair] = f"{len(segs)} segments, fewer than the {args.min_segments} needed"
            else:
                status[pair] = "scored"
            refs = [list(s.references) for s in segs]
            clean_hyps[pair] = hyps
            clean_failed[pair] = failed
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
                measurement = _score_measurement(
                    pair, score, failed, segs[0].tgt, args.min_segments, dev_reason
                )
                per_pair[pair][m] = measurement
                measurements.append(measurement)
        measurements += _extremes(per_pair, unmeasured, status)
        measurements.append(_coverage(status, by_pair(test), dev_reason))
        if args.noise:
            measurements += self._noise(
                evidence,
                args,
                conf,
                seed,
                test,
                clean_hyps,
                clean_stats,
                clean_failed,
                dev_reason,
                unmeasured,
            )
        if args.ood:
            measurements += self._ood(
                evidence, args, conf, seed, clean_stats, clean_failed, dev_reason, unmeasured
            )
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
        clean_failed: dict[str, int],
        dev_reason: str,
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
                    _Validity(
                        dev_reason,
                        clean_failed[pair],
                        failed,
                        len(segs),
                        args.min_segments,
                    ),
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
        clean_failed: dict[str, int],
        dev_reason: str,
        unmeasured: list[Unmeasured],
    ) -> list[Measurement]:
        ood, ood_reason = _read_set(evidence, "ood")
        reasons = "; ".join(r for r in (dev_reason, ood_reason) if r)
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
                in_domain = len(clean_stats[pair][m].stats)
                measurement = _drop_measurement(
                    f"ood.{pair_id(pair)}.{m}_drop",
                    diff,
                    f"{SHOWN[m]} on the in-domain test set minus {SHOWN[m]} on the "
                    f"out-of-domain set ({pair}, {in_domain} and "
                    f"{len(segs)} segments); {diff.method}",
                    {
                        "out_of_domain_score": ood_score.score,
                        "out_of_domain_text": ood_score.text,
                        "signature": ood_score.signature,
                        "failed_out_of_domain_segments": failed,
                    },
                    _Validity(
                        reasons,
                        clean_failed[pair],
                        failed,
                        min(in_domain, len(segs)),
                        args.min_segments,
                    ),
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


@dataclass(frozen=True)
class _Validity:
    """What keeps a figure from deciding a verdict: the set being the shipped dev set,
    failed segments (scored as empty translations), too few segments for a bound."""

    dev_reason: str
    failed_in_favour: int  # failures that can only make the figure look better
    failed_against: int  # failures that can only make it look worse
    segments: int
    min_segments: int

    @property
    def reason(self) -> str:
        reasons = [self.dev_reason] if self.dev_reason else []
        failed = self.failed_in_favour + self.failed_against
        if failed:
            reasons.append(f"{failed} segment(s) failed and were scored as empty translations")
        return "; ".join(reasons)

    @property
    def count_against(self) -> bool:
        """Only failures, each counted against the figure: one that misses FAILs even so
        (not below `min_segments`: too few segments decide nothing either way)."""
        return (
            not self.dev_reason
            and self.failed_against > 0
            and not self.failed_in_favour
            and not self.too_few
        )

    @property
    def too_few(self) -> str:
        if self.segments >= self.min_segments:
            return ""
        return (
            f"at least {self.min_segments} segments per pair for a bound (this pair has "
            f"{self.segments})"
        )


def _score_measurement(
    pair: str, s: mt.MetricScore, failed: int, tgt: str, min_segments: int, dev_reason: str
) -> Measurement:
    tokenizer, why = mt.tokenizer_for(tgt)
    # an empty translation lowers BLEU/chrF and raises TER: failures count against all three
    validity = _Validity(dev_reason, 0, failed, s.segments, min_segments)
    too_few = validity.too_few
    return Measurement(
        id=f"{pair_id(pair)}.{s.metric}",
        value=s.score,
        unit="points",
        n=s.segments,
        repeats=1,
        ci=Interval(
            low=None if too_few else s.low,
            high=None if too_few else s.high,
            confidence=s.confidence,
            method=f"bootstrap over {s.segments} segments on sacrebleu's sufficient statistics, "
            f"{s.resamples} resamples, seed {s.seed}, one-sided percentile bounds",
            need=too_few or "a larger test set narrows the bootstrap bounds",
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
            "bootstrap_bounds": [s.low, s.high],
        },
        invalid_reason=validity.reason,
        failures_count_against=validity.count_against,
    )


def _combined_validity(ms: list[Measurement]) -> dict[str, Any]:
    """invalid_reason / failures_count_against of a figure taken over several pairs' ones."""
    reasons = list(dict.fromkeys(m.invalid_reason for m in ms if m.invalid_reason))
    invalid = [m for m in ms if m.invalid_reason]
    return {
        "invalid_reason": "; ".join(reasons),
        "failures_count_against": bool(invalid) and all(m.failures_count_against for m in invalid),
    }


def _bound(values: list[float | None], pick: Any) -> float | None:
    return None if any(v is None for v in values) else pick(values)


def _extremes(
    per_pair: dict[str, dict[str, Measurement]],
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
        worst = pick(scores, key=lambda p: scores[p].value)
        s = scores[worst]
        assert s.ci is not None
        cis = [v.ci for v in scores.values() if v.ci is not None]
        needs = list(
            dict.fromkeys(
                f"{p}: {v.ci.need}"
                for p, v in scores.items()
                if v.ci and (v.ci.low is None or v.ci.high is None)
            )
        )
        out.append(
            Measurement(
                id=agg,
                value=s.value,
                unit="points",
                n=sum(v.n for v in scores.values()),
                repeats=1,
                ci=Interval(
                    low=_bound([c.low for c in cis], pick),
                    high=_bound([c.high for c in cis], pick),
                    confidence=s.ci.confidence,
                    method="per pair a seeded bootstrap over segments; the worst pair's figure "
                    "with the worst bound over the pairs (each at the confidence, no "
                    "multiplicity correction)",
                    need="; ".join(needs),
                ),
                method=f"the {'lowest' if pick is min else 'highest'} {s.method.split(' (')[0]} "
                f"over the {len(scores)} scored pair(s): {worst}; {s.method}",
                details={"per_pair": {p: v.value for p, v in scores.items()}, "worst_pair": worst},
                **_combined_validity(list(scores.values())),
            )
        )
    return out


def _source_key(segs: list[Segment]) -> tuple[str, ...]:
    return tuple(
        sorted({" ".join(unicodedata.normalize("NFKC", s.source).casefold().split()) for s in segs})
    )


def _coverage(
    status: dict[str, str], pairs: dict[str, list[Segment]], dev_reason: str
) -> Measurement:
    """Distinct language pairs scored: by canonical language (`eng-spa` is `en-es`, `zh-CN`
    is `zh`), and a pair whose sources are the same texts as a counted pair's, into the same
    target language, counts once (one English set into Spanish and into Chinese is two
    pairs: a multi-way test set)."""
    scored = [p for p, s in status.items() if s == "scored"]  # test-set order
    # union-find: two pairs are one when they share canonical languages, or source texts
    # and the target language
    parent = {p: p for p in scored}

    def root(p: str) -> str:
        while parent[p] != p:
            p = parent[p]
        return p

    merged: dict[str, str] = {}
    first_langs: dict[tuple[str, str], str] = {}
    first_sources: dict[tuple[tuple[str, ...], str], str] = {}
    for p in scored:
        segs = pairs[p]
        langs = (canonical_language(segs[0].src), canonical_language(segs[0].tgt))
        sources = (_source_key(segs), langs[1])
        for other, why in (
            (first_langs.get(langs), f"the same languages ({langs[0]}-{langs[1]})"),
            (first_sources.get(sources), f"the same source texts into {langs[1]}"),
        ):
            if other is not None and root(other) != root(p):
                parent[root(p)] = root(other)
                merged.setdefault(p, f"{why} as {other}")
        first_langs.setdefault(langs, p)
        first_sources.setdefault(sources, p)
    counted = [p for p in scored if root(p) == p]
    return Measurement(
        id="pairs_scored",
        value=float(len(counted)),
        unit="count",
        n=len(status),
        repeats=1,
        method="distinct language pairs of the test set (by canonical language; a pair with "
        "another counted pair's source texts into the same target counts once) whose every "
        "segment was answered and scored, each with enough segments for a bound",
        details={"pairs": counted, "merged": merged, "status": dict(sorted(status.items()))},
        invalid_reason=dev_reason,
    )


def _drop_measurement(
    metric_id: str, diff: mt.Difference, method: str, details: dict[str, Any], validity: _Validity
) -> Measurement:
    too_few = validity.too_few
    return Measurement(
        id=metric_id,
        value=diff.value,
        unit="points",
        n=diff.items,
        repeats=1,
        ci=Interval(
            low=None if too_few else diff.low,
            high=None if too_few else diff.high,
            confidence=diff.confidence,
            method=f"{diff.method}; one-sided bounds at the confidence",
            need=too_few or "a larger test set narrows the bootstrap bounds",
        ),
        method=method,
        details={
            **details,
            "p_value_bootstrap": diff.p_value,
            "paired": diff.paired,
            "failed_clean_segments": validity.failed_in_favour,
            "bootstrap_bounds": [diff.low, diff.high],
        },
        invalid_reason=validity.reason,
        failures_count_against=validity.count_against,
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
        cis = [d.ci for d in have.values() if d.ci is not None]
        needs = list(
            dict.fromkeys(
                f"{p}: {d.ci.need}"
                for p, d in have.items()
                if d.ci and (d.ci.low is None or d.ci.high is None)
            )
        )
        out.append(
            w.model_copy(
                update={
                    "id": agg,
                    "ci": w.ci.model_copy(
                        update={
                            "high": _bound([c.high for c in cis], max),
                            "low": _bound([c.low for c in cis], max),
                            "need": "; ".join(needs) or w.ci.need,
                        }
                    ),
                    "method": f"the largest {SHOWN[m]} drop over {len(have)} pair(s) "
                    f"({worst}): {w.method}",
                    "details": {
                        **w.details,
                        "worst_pair": worst,
                        "per_pair": {p: d.value for p, d in have.items()},
                    },
                    **_combined_validity(list(have.values())),
                }
            )
        )
    return out
