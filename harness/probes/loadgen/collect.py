"""`inference.loadgen`'s collect: the dataset, the session, the warm-up, then every
LoadGen run the task asks for, in order."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np

from harness.adapters import precomputed
from harness.adapters.protocol import Sample, SutSession
from harness.errors import BadInput
from harness.probes.base import CollectContext
from harness.probes.loadgen.args import TEST01_RNG_SEED, TEST04_SAME_INDEX, LoadgenArgs
from harness.probes.loadgen.datasets import LABELS_FILE, Labels, build_dataset, read_labels
from harness.probes.loadgen.driver import Driver
from harness.probes.loadgen.logs import MAX_REASONS, PERFORMANCE, trial_passed
from harness.probes.loadgen.rate_search import highest_passing_rate
from harness.probes.loadgen.runner import Runner
from harness.probes.loadgen.sessions import open_session
from harness.probes.loadgen.settings import (
    MLPERF_FILE,
    MlperfMode,
    Plan,
    make_plan,
    mlperf_mode,
    scenario_settings,
)


def collect_evidence(ctx: CollectContext) -> list[str]:
    """Everything score() needs into the evidence; returns the recorded failures."""
    import mlperf_loadgen as lg

    args = ctx.args
    assert isinstance(args, LoadgenArgs)
    try:
        samples = build_dataset(args.dataset, args.sample_count, ctx.seed)
    except (OSError, ValueError) as error:
        raise BadInput("dataset", args.dataset.get("kind"), str(error)) from None
    labels = _labels_for(args, len(samples))
    try:
        mlperf = mlperf_mode(args, ctx.sut_base_dir, ctx.quick)
        if mlperf is not None:
            wants = bool(mlperf.configured.get("use_token_latencies"))
            if wants != args.use_token_latencies:
                raise ValueError(
                    f"LoadGen's mlperf.conf {'sets' if wants else 'does not set'} "
                    f"use_token_latencies for {mlperf.model}: set use_token_latencies: "
                    f"{str(wants).lower()}"
                )
    except (OSError, ValueError) as error:
        raise BadInput(
            "user_conf" if args.user_conf else "mlperf_model",
            args.user_conf or args.mlperf_model,
            str(error),
        ) from None
    # a SUT that only replays pre-computed outputs is timed for nothing: collect makes only
    # the runs whose outputs are scored (one performance run for TEST01, the accuracy run)
    replayed = precomputed(ctx.sut)
    session = open_session(ctx)
    failures: list[str] = []
    try:
        ctx.evidence.write_json(
            "config.json",
            {
                "args": args.model_dump(mode="json"),
                "performance_runs": 1 if replayed else args.performance_runs,
                "precomputed_outputs": replayed,
                "quick": ctx.quick,
                "seed": ctx.seed,
                "dataset": _dataset_facts(samples, args.dataset),
                "session": _describe(session),
                "loadgen": _loadgen_version(),
                "serial_sut": args.workers == 0,
            },
        )
        if mlperf is not None:
            ctx.evidence.write_json(MLPERF_FILE, mlperf.record())
        if labels is not None:
            # score() reads these, never the dataset: keyed by sample (= qsl) index
            ctx.evidence.write_json(
                LABELS_FILE,
                {
                    "metric": args.accuracy_metric,
                    "kind": labels.kind,
                    "count": len(labels.values),
                    "source": labels.source,
                    "labels": {str(i): v for i, v in enumerate(labels.values)},
                },
            )
        driver = Driver(
            lg,
            session,
            args.batch_size,
            args.workers,
            whole_query=args.scenario == "Offline",
            tokens=args.use_token_latencies,
        )
        sut = lg.ConstructFastSUT(driver.issue, driver.flush)
        try:
            _collect(ctx, args, lg, driver, sut, samples, failures, replayed, mlperf)
        finally:
            lg.DestroyFastSUT(sut)
    finally:
        session.close()
    return failures


def _collect(
    ctx: CollectContext,
    args: LoadgenArgs,
    lg: Any,
    driver: Driver,
    sut: Any,
    samples: list[Sample],
    failures: list[str],
    replayed: bool,
    mlperf: MlperfMode | None,
) -> None:
    ctx.progress("warm-up")
    warm = min(args.warmup_samples, max(1, len(samples) // 4))
    pilot = _warm_up(driver.session, samples, warm, args)
    repeats = 1 if replayed else args.performance_runs
    duration_s = None
    if mlperf is not None and not mlperf.quick:
        duration_s = mlperf.configured["min_duration_ms"] / 1000
    plan = make_plan(args, pilot, ctx.seed, len(samples) - warm, repeats, duration_s)
    ctx.evidence.write_json("warmup.json", {**pilot, "plan": plan.__dict__})
    if pilot["failed"]:
        failures.append(
            f"warm-up: {pilot['failed']} of {pilot['answered']} samples failed "
            f"(first: {pilot['first_failures'][0]})"
        )
    runs = Runner(ctx, args, lg, driver, sut, failures, mlperf)

    target_qps = plan.target_qps
    if args.server_search and not replayed:
        target_qps = _search(args, runs, samples, plan) or target_qps

    def settings(seeds: dict[str, int]) -> dict[str, Any]:
        values = scenario_settings(args, plan, target_qps, args.min_duration_s, mlperf)
        # MLPerf mode keeps LoadGen's official seeds in every run
        return values if mlperf is not None else values | seeds

    # the search ran once; the figure's runs are repeated, each with its own seeds (in
    # MLPerf mode all with the official ones); nothing else rides on them
    for k, repeat_seeds in enumerate(plan.performance_seeds, start=1):
        runs.run(
            f"{PERFORMANCE}-{k}",
            samples,
            settings(repeat_seeds),
            repeat=(k, len(plan.performance_seeds)),
        )

    if args.compliance:
        # MLPerf's compliance tests, each a run of its own with performance-1's settings
        # (and seeds): TEST01 logs a seeded sample of its outputs (audit.config's
        # accuracy_log_sampling_target and accuracy_log_rng_seed); TEST04 issues one
        # sample (index 3) for the whole run
        first = settings(plan.seeds)
        runs.run(
            "test01",
            samples,
            first
            | {
                "accuracy_log_sampling_target": args.test01_samples,
                "accuracy_log_rng_seed": TEST01_RNG_SEED,
            },
        )
        if not replayed:
            count = min(len(samples), runs.performance_count(first))
            runs.run(
                "test04",
                samples,
                first
                | {
                    "performance_issue_unique": False,
                    "performance_issue_same": True,
                    "performance_issue_same_index": TEST04_SAME_INDEX % count,
                },
            )

    if args.accuracy or args.compliance:
        accuracy = settings(plan.seeds)
        accuracy["mode"] = "AccuracyOnly"
        runs.run("accuracy", samples, accuracy, record_formats=True)


def _search(args: LoadgenArgs, runs: Runner, samples: list[Sample], plan: Plan) -> float | None:
    """Bracket, then bisect, the highest Server QPS whose short trial meets the latency
    bound; returns it (None when no trial did)."""
    trial = 0

    def attempt(q: float) -> bool:
        nonlocal trial
        trial += 1
        values = scenario_settings(args, plan, q, args.search_trial_s)
        values.pop("min_query_count", None)
        log, stats = runs.run(f"search-{trial:02d}", samples, values)
        return trial_passed(log, stats.failed)[0]

    return highest_passing_rate(plan.target_qps, attempt, args.search_steps, args.search_tolerance)


def _labels_for(args: LoadgenArgs, count: int) -> Labels | None:
    """The labels accuracy_metric scores against (None without one); BadInput when the
    dataset's labels cannot be read or cannot serve the metric."""
    if args.accuracy_metric is None:
        return None
    kind = args.dataset.get("kind")
    try:
        labels = read_labels(args.dataset, count)
    except (OSError, ValueError) as error:
        raise BadInput("dataset", kind, f"labels: {error}") from None
    if args.accuracy_metric == "top1" and labels.kind != "int":
        raise BadInput(
            "dataset",
            kind,
            "accuracy_metric top1 compares class ids, and these labels are text: "
            "use exact_match, or integer labels",
        )
    return labels


def _describe(session: SutSession) -> dict[str, Any]:
    try:
        facts = session.describe()
        return json.loads(json.dumps(facts, default=str))  # type: ignore[no-any-return]
    except Exception as error:
        return {"describe_failed": f"{type(error).__name__}: {error}"}


def _loadgen_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlcommons-loadgen")
    except PackageNotFoundError:
        return "unknown"


def _dataset_facts(samples: list[Sample], spec: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for s in samples:
        if isinstance(s.data, np.ndarray):
            digest.update(s.data.tobytes())
        else:
            digest.update(str(s.data).encode("utf-8"))
        digest.update(b"\x00")
    first = samples[0].data
    facts: dict[str, Any] = {"spec": spec, "count": len(samples), "sha256": digest.hexdigest()}
    if isinstance(first, np.ndarray):
        facts.update(shape=list(first.shape), dtype=first.dtype.name)
    return facts


def _warm_up(
    session: SutSession, samples: list[Sample], count: int, args: LoadgenArgs
) -> dict[str, Any]:
    """Single-sample calls (latency), then for batching scenarios two batch calls
    (throughput), all outside LoadGen."""
    latencies: list[float] = []
    answered = failed = 0
    reasons: list[str] = []

    def call(batch: list[Sample]) -> float:
        nonlocal answered, failed
        t0 = time.perf_counter()
        try:
            outs = session.run(batch)
            errors = [o.error for o in outs if o.error is not None]
            errors += ["session answered too few samples"] * (len(batch) - len(outs))
        except Exception as error:
            errors = [f"session.run raised {type(error).__name__}: {error}"] * len(batch)
        elapsed = time.perf_counter() - t0
        answered += len(batch)
        failed += len(errors)
        reasons.extend(str(e) for e in errors[: MAX_REASONS - len(reasons)])
        return elapsed

    for s in samples[:count]:
        latencies.append(call([s]))
    batch_s: list[float] = []
    size = min(len(samples), args.batch_size)
    if args.scenario == "MultiStream":
        size = min(len(samples), args.samples_per_query)
    if args.scenario in ("Offline", "MultiStream", "Server"):
        batch = samples[:size]
        batch_s = [call(batch) for _ in range(2)]
    return {
        "single_latency_s": latencies,
        "batch_size": size if batch_s else 0,
        "batch_s": batch_s,
        "answered": answered,
        "failed": failed,
        "first_failures": reasons,
    }
