"""D07 large-gallery search throughput (`face.search_qps`): MLPerf LoadGen's Server scenario
(Poisson arrivals, a p99 latency bound) against the 1:N engine, with the gallery size N
the engine reports.

The SUT is enrolled with the gallery under the 1:N protocol (docs/suites/
d07-3d-face.inputs.md) and reports its whole gallery size N in the enrol answer (a lab's
engine holds its own large gallery; the enrolled entries come on top). Each LoadGen query
is one search sample `{"search": image, "candidates": R}` answered through the session
(harness.probes.loadgen.driver.Driver). Figures:

- `server_max_valid_qps`: the highest Server target QPS whose short trial met LoadGen's
  latency constraint (bracketing from `target_qps`, the guide's 150, by doubling or
  halving, then bisection), confirmed by `performance_runs` full runs at that target
  (their LoadGen validity decides the figure's; the order-statistic bound on their median
  completed QPS, capped at the target, is its lower bound);
- `server_qps` and `latency_p50` / `latency_p90` / `latency_p99` of those runs, and in the
  details whether the latency constraint held at `target_qps` itself (the first trial).

The guide's condition is a gallery of ten million: a figure carries an invalid_reason
naming N when the gallery is smaller than `required_gallery` as the engine reports it, or
when the harness itself enrolled fewer entries than that from the lab's gallery (what an
engine holds beyond what the harness enrolled is its own claim, never verified); and so
does one on the built-in dev set.

Every answer is checked (harness.probes.biometrics.search_answers): the answers of each
LoadGen run are kept and parsed after it with the 1:N protocol's parser (identify's); a
malformed answer (not JSON, an id the harness did not enrol, ...) fails its sample, and a
trial with a failed sample fails; malformed answers in the performance runs make the
figures invalid. Before LoadGen, the first `unloaded_samples` searches are answered one at a
time: the share of mated searches with a mate among the candidates there is the engine's
rate without load; under load (pooled over the performance runs) a rate of 0, or below
`min_mate_ratio` (0.9) of the unloaded one, makes the figures invalid ("the engine does not
return mates under load"). The details also hold the share of well-formed answers per run,
the gallery size reported against what was enrolled (for the reference engine: enrolled
plus its synthetic background, a mismatch invalid; for a SUT both are recorded), and the
queries per run against the distinct search inputs (a run repeats inputs when it issues
more queries than there are searches: an engine caching answers by input is not detected).

Dry run (`sut.adapter: local`): the reference engine (harness.refengines.face_search) is a
faiss exact flat index over `gallery_size` seeded random unit vectors plus the enrolled
dev faces' dlib embeddings; the search embeddings are computed before LoadGen starts, so
the figure is the index's search alone (the methods say so).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness import sandbox
from harness.adapters.protocol import Sample, SutSession
from harness.errors import BadInput
from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.biometrics.search_answers import AnswerCheck, Recorder, pooled, rate
from harness.probes.biometrics.search_inputs import (
    GALLERY_COPY,
    SEARCHES_COPY,
    check_sets,
    dev_data_reason,
    image_digests,
    image_path,
    parse_enrol,
    read_pair,
    read_set,
    source_of,
    sut_id,
    write_dev_set,
)
from harness.probes.loadgen.args import LoadgenArgs
from harness.probes.loadgen.driver import Driver
from harness.probes.loadgen.figures import repeats_reason, scenario_measurements
from harness.probes.loadgen.logs import (
    PERFORMANCE,
    LoadgenLog,
    Run,
    ns_to_ms,
    performance_repeats,
    read_runs,
    trial_passed,
)
from harness.probes.loadgen.rate_search import highest_passing_rate
from harness.probes.loadgen.runner import Runner
from harness.probes.loadgen.settings import loadgen_settings
from harness.probes.sessions import answer_all, open_adapter_session, output_records, stage_inputs
from harness.probes.speech.records import checked_copy
from harness.registry import probes
from harness.schema import Interval, Measurement, Unmeasured
from harness.stats import median_bounds

GUIDE_GALLERY = 10_000_000
ANSWERS_JSON = "answers.json"  # the check of every search answer, per run
PERCENTILES = (("latency_p50", "50.00"), ("latency_p90", "90.00"), ("latency_p99", "99.00"))
METRICS = ("server_max_valid_qps", "server_qps", "latency_p50", "latency_p90", "latency_p99")
REFERENCE_QUERIES = (
    "search embeddings (dlib, computed before LoadGen starts): the figure is the index's search"
)
SUT_QUERIES = "search requests {search: image, candidates: R} (the SUT embeds and searches)"
_SEED_KEYS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")


class SearchQpsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    gallery: str = "gallery"
    searches: str = "searches"
    candidates: int = Field(default=20, ge=1, le=1000)
    target_qps: float = Field(default=150.0, gt=0)  # the guide's; the search starts here
    # LoadGen's Server bound on the p99 latency: a harness default (the guide states none)
    target_latency_ms: float = Field(default=100.0, gt=0)
    min_duration_s: float = Field(default=2.0, gt=0)  # of each performance run
    performance_runs: int = Field(default=5, ge=1)
    search_trial_s: float = Field(default=1.0, gt=0)
    search_steps: int = Field(default=4, ge=0)
    search_tolerance: float = Field(default=0.1, gt=0)
    required_gallery: int = Field(default=GUIDE_GALLERY, ge=1)  # the guide's ten million
    # the reference engine (dry run): its synthetic background and threads
    gallery_size: int = Field(default=100_000, ge=0, le=50_000_000)
    background_seed: int = 0
    faiss_threads: int = Field(default=1, ge=1)
    dev_enrolled: int = Field(default=20, ge=1, le=99)
    dev_nonmated: int = Field(default=10, ge=1, le=99)
    dev_seed: int = 0
    batch_size: int = Field(default=1, ge=1)  # most samples per session.run call
    workers: int = Field(default=0, ge=0)  # Driver threads (0: LoadGen's issue thread)
    warmup_samples: int = Field(default=16, ge=1)
    # searches answered one at a time before LoadGen: the mate rate without load
    unloaded_samples: int = Field(default=200, ge=1)
    # under load a mate rate below this share of the unloaded one makes the figures invalid
    min_mate_ratio: float = Field(default=0.9, ge=0.0, le=1.0)


def loadgen_args(args: SearchQpsArgs) -> LoadgenArgs:
    """The LoadGen task arguments these map to (for the shared runner and figures)."""
    return LoadgenArgs(
        scenario="Server",
        target_qps=args.target_qps,
        latency_bound_ms=args.target_latency_ms,
        min_duration_s=args.min_duration_s,
        performance_runs=args.performance_runs,
        batch_size=args.batch_size,
        workers=args.workers,
        server_search=True,
        search_trial_s=args.search_trial_s,
        search_steps=args.search_steps,
        search_tolerance=args.search_tolerance,
    )


def _seeds(seed: int, name: str) -> dict[str, int]:
    import random

    rng = random.Random(f"face.search_qps:{seed}:{name}")
    return {k: rng.getrandbits(63) for k in _SEED_KEYS}


def server_values(
    args: SearchQpsArgs, qps: float, duration_s: float, seeds: dict[str, int]
) -> dict[str, Any]:
    return loadgen_settings(
        "Server",
        "PerformanceOnly",
        server_target_qps=qps,
        server_target_latency_ns=round(args.target_latency_ms * 1e6),
        min_duration_ms=round(duration_s * 1000),
        # a bounded run: LoadGen stops at 4x the minimum (then INVALID if short of queries)
        max_duration_ms=round(duration_s * 4000),
        **seeds,
    )


BACKLOG_RATIO = 0.95  # a trial completing fewer than this share of its scheduled queries/s fails


def trial_ok(log: LoadgenLog, failed: int) -> tuple[bool, str]:
    """A search trial passes when LoadGen found its latency constraint met (no error, every
    sample answered: `trial_passed`) and the engine kept up: completed queries/s at least
    BACKLOG_RATIO of the scheduled ones (a short trial can meet the bound while a queue
    builds up that a full run would not survive)."""
    passed, why = trial_passed(log, failed)
    if not passed:
        return passed, why
    scheduled = float(log.get("result_scheduled_samples_per_sec") or 0.0)
    completed = float(log.get("result_completed_samples_per_sec") or 0.0)
    if scheduled > 0 and completed < BACKLOG_RATIO * scheduled:
        return False, (
            f"backlog: {completed:.4g} queries/s completed of {scheduled:.4g} scheduled "
            f"(below {BACKLOG_RATIO:g})"
        )
    return True, f"latency constraint met, {completed:.4g} of {scheduled:.4g} queries/s completed"


def find_max_qps(
    args: SearchQpsArgs,
    runner: Runner,
    samples: list[Sample],
    seed: int,
    after: Callable[[str], int] | None = None,
) -> float | None:
    """Bracket (double while passing, halve while failing), then bisect, the highest Server
    target QPS whose trial meets the latency bound; None when none did. `after(name)`: the
    samples of the run just done that failed the answer check (they fail the trial)."""
    trial = 0

    def attempt(q: float) -> bool:
        nonlocal trial
        trial += 1
        name = f"search-{trial:02d}"
        log, stats = runner.run(
            name, samples, server_values(args, q, args.search_trial_s, _seeds(seed, name))
        )
        bad = after(name) if after is not None else 0
        return trial_ok(log, stats.failed + bad)[0]

    return highest_passing_rate(args.target_qps, attempt, args.search_steps, args.search_tolerance)


def _reference_queries(
    engine: Any, searches_path: Path, searches: list[Any]
) -> tuple[list[Sample], int, list[int]]:
    """The search embeddings (computed now, outside the timed runs) as samples; how many
    searches had no face found (left out); and the search row of each sample."""
    from harness.refengines.face import load_image

    samples: list[Sample] = []
    rows: list[int] = []
    missed = 0
    embedder = engine.face_embedder()
    for k, s in enumerate(searches):
        vector = embedder.embed(load_image(image_path(searches_path, s.image)))
        if vector is None:
            missed += 1
            continue
        samples.append(Sample(len(samples), np.asarray(vector, dtype=np.float32).reshape(1, -1)))
        rows.append(k)
    return samples, missed, rows


def answer_check(
    gallery: list[Any], searches: list[Any], rows: list[int], candidates: int, engine: Any
) -> AnswerCheck:
    """The check of the answers to the samples of searches[rows[k]] (sample k); `engine`:
    the reference engine (its row answers), or None for a SUT."""
    subject_of = {sut_id(k): str(e.subject) for k, e in enumerate(gallery)}
    enrolled = set(subject_of.values())
    subjects = [searches[r].subject if searches[r].subject in enrolled else None for r in rows]
    if engine is None:
        return AnswerCheck(subjects, subject_of, candidates)
    return AnswerCheck(
        subjects, subject_of, candidates, list(engine.flat.ids), int(engine.flat.background)
    )


@probes.register("face.search_qps")
class SearchQpsProbe:
    name: ClassVar[str] = "face.search_qps"
    Args: ClassVar[type[BaseModel]] = SearchQpsArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {
            "server_max_valid_qps": "queries/s",
            "server_qps": "queries/s",
            **{m: "ms" for m, _ in PERCENTILES},
        }

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, SearchQpsArgs)
        return 3 + args.performance_runs + 4 + args.search_steps

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, SearchQpsArgs)
        check_sets(args.gallery, args.searches, datasets)

    def collect(self, ctx: CollectContext) -> list[str]:
        import mlperf_loadgen as lg

        args = ctx.args
        assert isinstance(args, SearchQpsArgs)
        failures: list[str] = []
        with sandbox.staging("face-qps-") as tmp:
            dev: dict[str, Any] | None = None
            if args.gallery in ctx.datasets:
                gallery_path = ctx.datasets[args.gallery]
                searches_path = ctx.datasets[args.searches]
            else:
                ctx.progress("build the dev gallery and searches")
                folder = Path(tmp) / "dev"
                folder.mkdir()
                gallery_path, searches_path, dev = write_dev_set(
                    folder, args.dev_enrolled, args.dev_nonmated, args.dev_seed
                )
            gallery_bytes, searches_bytes = gallery_path.read_bytes(), searches_path.read_bytes()
            gallery, searches = read_pair(gallery_path, searches_path)
            digests = image_digests(gallery_path, gallery, searches_path, searches)
            reference = ctx.session is None and ctx.sut.adapter == "local"
            session: SutSession
            if reference:
                ctx.progress(f"index {args.gallery_size} synthetic vectors")
                from harness.refengines.face_search import FaceSearchEngine

                session = FaceSearchEngine(
                    background=args.gallery_size,
                    seed=args.background_seed,
                    threads=args.faiss_threads,
                    vector_candidates=args.candidates,
                )
            else:
                session = open_adapter_session(ctx)
            try:
                ctx.progress(f"enrol {len(gallery)}")
                stage = Path(tmp) / "stage"
                stage.mkdir()
                staged = stage_inputs(
                    [image_path(gallery_path, e.image) for e in gallery]
                    + [image_path(searches_path, s.image) for s in searches],
                    stage,
                )
                request = json.dumps(
                    {
                        "enrol": [
                            {"id": sut_id(k), "image": str(staged[k])} for k in range(len(gallery))
                        ]
                    },
                    sort_keys=True,
                )
                started = time.perf_counter()
                enrol = output_records(["enrol"], answer_all(session, [Sample(0, request)], 1))[0]
                enrol["wall_s"] = time.perf_counter() - started
                missed = 0
                if reference:
                    samples, missed, rows = _reference_queries(session, searches_path, searches)
                    queries = REFERENCE_QUERIES
                else:
                    rows = list(range(len(searches)))
                    samples = [
                        Sample(
                            k,
                            json.dumps(
                                {
                                    "search": str(staged[len(gallery) + k]),
                                    "candidates": args.candidates,
                                },
                                sort_keys=True,
                            ),
                        )
                        for k in range(len(searches))
                    ]
                    queries = SUT_QUERIES
                sut = {"reference": reference, **session.describe()}
                if not samples:
                    raise BadInput(
                        searches_path, None, "no search could be embedded (no face found in any)"
                    )
                check = answer_check(
                    gallery, searches, rows, args.candidates, session if reference else None
                )
                recorder = Recorder(session)
                failures += self._timed(ctx, args, lg, recorder, samples, check)
            finally:
                session.close()
        ctx.evidence.write_bytes(GALLERY_COPY, gallery_bytes)
        ctx.evidence.write_bytes(SEARCHES_COPY, searches_bytes)
        ctx.evidence.write_json(
            "items.json",
            {
                "gallery": source_of(gallery_path, gallery_bytes),
                "searches": source_of(searches_path, searches_bytes),
                "dev_set": dev,
                "image_sha256": digests,
                "enrolled": len(gallery),
                "queries": {"count": len(samples), "kind": queries, "no_face_found": missed},
            },
        )
        ctx.evidence.write_json("sut.json", sut)
        ctx.evidence.write_json("enrol.json", enrol)
        try:
            parse_enrol(enrol["output"]) if not enrol["error"] else None
        except ValueError as error:
            failures.append(f"enrolment answer malformed: {error}")
        if enrol["error"]:
            failures.append(f"enrolment failed: {enrol['error']}")
        return failures

    def _timed(
        self,
        ctx: CollectContext,
        args: SearchQpsArgs,
        lg: Any,
        session: Recorder,
        samples: list[Sample],
        check: AnswerCheck,
    ) -> list[str]:
        failures: list[str] = []
        ctx.progress("warm-up and unloaded searches")
        warm = []
        for s in samples[: max(args.warmup_samples, args.unloaded_samples)]:
            t0 = time.perf_counter()
            session.run([s])
            warm.append(time.perf_counter() - t0)
        unloaded = check.summarise(session.take())
        warm = warm[: args.warmup_samples]
        ctx.evidence.write_json(
            "warmup.json", {"single_latency_s": warm, "median_s": statistics.median(warm)}
        )
        checked: dict[str, dict[str, Any]] = {}

        def after(name: str) -> int:
            checked[name] = check.summarise(session.take())
            return int(checked[name]["malformed"])

        lgargs = loadgen_args(args)
        driver = Driver(lg, session, args.batch_size, args.workers)
        sut = lg.ConstructFastSUT(driver.issue, driver.flush)
        try:
            runner = Runner(ctx, lgargs, lg, driver, sut, failures)
            found = find_max_qps(args, runner, samples, ctx.seed, after)
            confirm = found if found is not None else args.target_qps
            for k in range(1, args.performance_runs + 1):
                name = f"{PERFORMANCE}-{k}"
                session.take()
                runner.run(
                    name,
                    samples,
                    server_values(args, confirm, args.min_duration_s, _seeds(ctx.seed, name)),
                    repeat=(k, args.performance_runs),
                )
                after(name)
        finally:
            lg.DestroyFastSUT(sut)
        ctx.evidence.write_json(
            ANSWERS_JSON,
            {"distinct_inputs": len(samples), "unloaded": unloaded, "runs": checked},
        )
        bad = {n: c for n, c in checked.items() if c["malformed"]}
        if bad or unloaded["malformed"]:
            first = next(iter(bad.values()), unloaded)
            failures.append(
                f"malformed search answers in {len(bad)} of {len(checked)} LoadGen runs and "
                f"{unloaded['malformed']} of {unloaded['answers']} unloaded searches (first: "
                f"{(first['first_malformed'] or ['?'])[0]})"
            )
        return failures

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, SearchQpsArgs)
        items = evidence.read_json("items.json")
        sut = evidence.read_json("sut.json")
        enrol = evidence.read_json("enrol.json")
        # the sets' byte copies, re-parsed: how many entries and searches they hold
        gallery = read_set(
            checked_copy(evidence.path(GALLERY_COPY), items["gallery"]["sha256"]),
            "gallery",
            check_images=False,
        )
        searches = read_set(
            checked_copy(evidence.path(SEARCHES_COPY), items["searches"]["sha256"]),
            "search set",
            check_images=False,
        )
        given = args.gallery in ctx.datasets and args.searches in ctx.datasets
        dev = dev_data_reason(items, gallery, searches, given)
        unmeasured: list[Unmeasured] = []
        if sut.get("adapter") == "outputs":
            reason = (
                "pre-computed outputs (sut.adapter: outputs): the harness did not drive the "
                "engine, so no search throughput is measured"
            )
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        reasons: list[str] = []
        reported: int | None = None
        if enrol["error"]:
            reasons.append(f"enrolment failed: {enrol['error']}")
        else:
            try:
                reported, _ = parse_enrol(enrol["output"])
            except ValueError as error:
                reasons.append(f"enrolment answer malformed: {error}")
        # what the harness enrolled is the gallery copy's length, not a count a file states
        enrolled = len(gallery)
        if items.get("enrolled") != enrolled:
            raise ValueError(
                f"items.json says {items.get('enrolled')} entries enrolled, the gallery copy "
                f"holds {enrolled}"
            )
        if reported is not None and reported < args.required_gallery:
            reasons.append(
                f"gallery size N = {reported:,} as reported by the engine, below the "
                f"{args.required_gallery:,} the guide's figure is for"
            )
        elif enrolled < args.required_gallery:
            # what the engine holds beyond what the harness enrolled is its own claim
            reasons.append(
                f"the harness enrolled {enrolled:,} gallery entries: the "
                f"{args.required_gallery:,} the guide's figure is for must be enrolled by the "
                f"harness from the lab's gallery (the engine reports "
                f"{reported if reported is not None else 'no'} entries, not verified)"
            )
        not_enrolled: list[str] = []
        if reported is not None:
            not_enrolled = parse_enrol(enrol["output"])[1]
        gallery_check = _gallery_check(sut, enrolled, not_enrolled, reported)
        if gallery_check.get("mismatch"):
            reasons.append(gallery_check["mismatch"])
        if dev:
            reasons.append(dev)
        lgargs = loadgen_args(args)
        runs = read_runs(evidence)
        perfs = performance_repeats(runs)
        checked = evidence.read_json(ANSWERS_JSON) if evidence.exists(ANSWERS_JSON) else None
        bad = {n: int(c["malformed"]) for n, c in (checked or {}).get("runs", {}).items()}
        answers, answer_reasons, repeats_text = _answers(args, checked, perfs)
        reasons += answer_reasons
        kind = items["queries"]["kind"]
        where = (
            f"; gallery size N = {reported if reported is not None else 'unknown'} as reported "
            f"by the engine ({items['enrolled']} enrolled by the harness); each query one "
            f"search of {args.candidates} candidates: {kind}; every answer parsed with the 1:N "
            "protocol's parser after its run (a malformed one fails its sample and its trial)"
            f"{repeats_text}"
        )
        extra = "; ".join(reasons)
        measurements: list[Measurement] = []
        wanted = {"server_qps", "latency_p99"}
        measurements += _max_qps(args, runs, perfs, ctx.confidence, unmeasured, bad)
        measurements += scenario_measurements(lgargs, perfs, [], ctx.confidence, unmeasured, wanted)
        measurements += _percentiles(perfs, wanted_pct=("latency_p50", "latency_p90"))
        first = next((run for name, run in runs.items() if name.startswith("search-")), None)
        at_target = None
        if first is not None:
            passed, why = trial_ok(first.log, first.stats["failed"] + bad.get(first.run["name"], 0))
            at_target = {
                "target_qps": first.run["settings"]["server_target_qps"],
                "passed": passed,
                "why": why,
            }
        out: list[Measurement] = []
        for m in measurements:
            invalid = "; ".join(r for r in (m.invalid_reason, extra) if r)
            details = {
                **m.details,
                "gallery_size_reported": reported,
                "required_gallery": args.required_gallery,
                "enrolled": items["enrolled"],
                "queries": items["queries"],
                "latency_constraint_at_target": at_target,
                "answers": answers,
                "gallery_check": gallery_check,
                "target_latency_ms_source": "harness default (the guide states no latency bound)",
            }
            out.append(
                m.model_copy(
                    update={
                        "method": m.method + where,
                        "details": details,
                        "invalid_reason": invalid,
                    }
                )
            )
        return ScoreResult(out, unmeasured)


def _gallery_check(
    sut: dict[str, Any], enrolled: int, not_enrolled: list[str], reported: int | None
) -> dict[str, Any]:
    """The reported gallery size against what was enrolled: the reference engine's must be
    the entries enrolled plus its synthetic background (else `mismatch` says so); for a SUT
    both are recorded (what it holds beyond the enrolled entries is its own claim)."""
    held = enrolled - len(not_enrolled)
    out: dict[str, Any] = {
        "enrolled": enrolled,
        "not_enrolled": len(not_enrolled),
        "gallery_size_reported": reported,
    }
    if reported is None:
        return out
    if sut.get("reference"):
        background = int(sut.get("synthetic_background") or 0)
        out["engine_background"] = background
        if reported != held + background:
            out["mismatch"] = (
                f"the reference engine reports a gallery of {reported:,}, not the {held:,} "
                f"entries enrolled plus its {background:,} synthetic background vectors"
            )
    else:
        out["engine_own_entries_claimed"] = reported - held
    return out


def _answers(
    args: SearchQpsArgs, checked: dict[str, Any] | None, perfs: list[Run]
) -> tuple[dict[str, Any], list[str], str]:
    """The answer check's details, the reasons it gives for invalid figures, and the
    method's words on repeated inputs."""
    if checked is None:
        return {}, ["the evidence holds no check of the search answers (answers.json)"], ""
    runs = checked["runs"]
    unloaded = checked["unloaded"]
    distinct = int(checked["distinct_inputs"])
    reasons: list[str] = []
    per_run = {
        name: {
            "well_formed_share": rate(int(c["well_formed"]), int(c["answers"]) - int(c["failed"])),
            "mate_rate": rate(int(c["mate_among_candidates"]), int(c["mated_answers"])),
            **c,
        }
        for name, c in runs.items()
    }
    done = [runs[r.run["name"]] for r in perfs if r.run["name"] in runs]
    loaded = pooled(done) if done else None
    if loaded is not None and loaded["malformed"]:
        first = next((c["first_malformed"][0] for c in done if c["first_malformed"]), "?")
        reasons.append(
            f"{loaded['malformed']} of {loaded['answers']} answers in the performance runs "
            f"malformed (first: {first})"
        )
    unloaded_rate = rate(int(unloaded["mate_among_candidates"]), int(unloaded["mated_answers"]))
    loaded_rate = (
        None if loaded is None else rate(loaded["mate_among_candidates"], loaded["mated_answers"])
    )
    if loaded_rate is not None and (
        loaded_rate == 0.0
        or (unloaded_rate is not None and loaded_rate < args.min_mate_ratio * unloaded_rate)
    ):
        reasons.append(
            f"the engine does not return mates under load: a mate among the candidates of "
            f"{loaded['mate_among_candidates'] if loaded else 0} of "
            f"{loaded['mated_answers'] if loaded else 0} mated searches in the performance "
            f"runs ({loaded_rate:.1%}), against "
            + (
                f"{unloaded_rate:.1%} answered one at a time"
                if unloaded_rate is not None
                else "no mated search answered one at a time"
            )
        )
    queries = [int(r.log.get("result_query_count") or 0) for r in perfs]
    repeats_text = ""
    if queries and max(queries) > distinct:
        repeats_text = (
            f"; each performance run issued up to {max(queries):,} queries over {distinct:,} "
            "distinct search inputs, so inputs repeat (an engine caching answers by input "
            "would not be detected)"
        )
    details = {
        "unloaded": {**unloaded, "mate_rate": unloaded_rate},
        "performance_runs_pooled": None if loaded is None else {**loaded, "mate_rate": loaded_rate},
        "per_run": per_run,
        "distinct_search_inputs": distinct,
        "queries_per_performance_run": queries,
        "inputs_repeat": bool(queries) and max(queries) > distinct,
        "min_mate_ratio": args.min_mate_ratio,
    }
    return details, reasons, repeats_text


def _max_qps(
    args: SearchQpsArgs,
    runs: dict[str, Run],
    perfs: list[Run],
    confidence: float,
    unmeasured: list[Unmeasured],
    bad: dict[str, int],
) -> list[Measurement]:
    """The highest target QPS whose trial passed (`trial_ok`), bounded below by the
    order-statistic bound on the confirmation runs' median completed QPS, capped at it."""
    trials = []
    for name, run in runs.items():
        if name.startswith("search-"):
            malformed = bad.get(name, 0)
            passed, why = trial_ok(run.log, run.stats["failed"] + malformed)
            if malformed:
                why = f"{malformed} answers malformed: {why}"
            trials.append(
                {
                    "trial": name,
                    "target_qps": run.run["settings"]["server_target_qps"],
                    "passed": passed,
                    "why": why,
                    "p99_ms": ns_to_ms(run.log.get("result_99.00_percentile_latency_ns", 0)),
                    "completed_qps": run.log.get("result_completed_samples_per_sec"),
                }
            )
    passing = [float(t["target_qps"]) for t in trials if t["passed"]]
    done = [run for run in perfs if "result_validity" in run.log.values]
    if not passing or not done:
        tried = ", ".join(f"{t['target_qps']:.4g}" for t in trials) or "none"
        why = (
            f"no Server trial met the {args.target_latency_ms:g} ms p99 bound without a "
            f"backlog (target QPS tried: {tried})"
            if not passing
            else "LoadGen wrote no result for any confirmation run"
        )
        unmeasured.append(Unmeasured(id="server_max_valid_qps", reason=why))
        return []
    best = max(passing)
    completed = [float(run.log.get("result_completed_samples_per_sec") or 0.0) for run in done]
    bounds = median_bounds(completed, confidence)
    need = (
        ""
        if bounds.low is not None
        else f"need at least {bounds.min_n} confirmation runs for a {confidence:.0%} bound "
        f"(have {len(done)})"
    )
    return [
        Measurement(
            id="server_max_valid_qps",
            value=best,
            unit="queries/s",
            n=sum(int(run.log.get("result_query_count") or 0) for run in done),
            repeats=len(done),
            ci=Interval(
                low=None if bounds.low is None else min(bounds.low, best),
                high=None,
                confidence=confidence,
                method=f"distribution-free one-sided order-statistic bound on the median "
                f"completed QPS of {len(done)} confirmation runs at the found target, capped "
                "at the target",
                need=need,
            ),
            method=f"MLPerf LoadGen Server, p99 latency bound {args.target_latency_ms:g} ms "
            f"(a harness default): the highest target QPS whose {args.search_trial_s:g} s "
            f"trial met LoadGen's latency constraint with at least {BACKLOG_RATIO:g} of its "
            f"scheduled queries completed (bracketing from {args.target_qps:g} QPS, then "
            f"bisection), confirmed by {len(done)} performance runs of at least "
            f"{args.min_duration_s:g} s at {best:.4g} QPS (their LoadGen validity decides "
            "this figure's)",
            details={
                "trials": trials,
                "confirmation_runs": [run.dir for run in done],
                "confirmation_completed_qps": completed,
            },
            invalid_reason=repeats_reason(perfs, []),
        )
    ]


def _percentiles(perfs: list[Run], wanted_pct: tuple[str, ...]) -> list[Measurement]:
    done = [run for run in perfs if "result_validity" in run.log.values]
    if not done:
        return []
    out = []
    for metric, pct in PERCENTILES:
        if metric not in wanted_pct:
            continue
        values = [ns_to_ms(run.log.get(f"result_{pct}_percentile_latency_ns") or 0) for run in done]
        out.append(
            Measurement(
                id=metric,
                value=statistics.median(values),
                unit="ms",
                n=sum(int(run.log.get("result_query_count") or 0) for run in done),
                repeats=len(done),
                method=f"MLPerf LoadGen Server: p{pct.split('.')[0]} sample latency at the "
                f"confirmed target QPS, the median over {len(done)} performance runs",
                details={"per_run_ms": values, "runs": [run.dir for run in done]},
                invalid_reason=repeats_reason(perfs, []),
            )
        )
    return out


__all__ = ["SearchQpsArgs", "SearchQpsProbe", "find_max_qps", "loadgen_args"]
