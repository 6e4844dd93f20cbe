"""collect() of the D17 attack probes: train the targets, pick their clean items, ask the
platform for its attacks, run one metered job per (attack, target), and record everything
the checks need (see harness/probes/security/probe.py for the formats)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import sandbox
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.probes.base import CollectContext
from harness.probes.security import jobs
from harness.probes.security.args import NORMS, AttacksArgs, TargetPlan
from harness.probes.security.query_server import QueryServer
from harness.probes.sessions import open_adapter_session
from harness.refengines import security_targets
from harness.refengines.security_targets import Target, decide
from harness.refengines.security_targets.transforms import (
    PhysicalDraw,
    PhysicalFamily,
    draw_physical,
    physical,
)

REFERENCE_TARGET = "harness.refengines.art_platform:answer"


@dataclass
class Selection:
    """The clean items of one target: the same for every attack on it."""

    pool_indices: np.ndarray
    inputs: np.ndarray
    labels: np.ndarray
    claims: np.ndarray  # -1: none
    goal: np.ndarray | None  # the target's own goal per item (face verification), else None
    clean_labels: np.ndarray
    clean_scores: np.ndarray
    pool_size: int
    examined: int


def family(args: AttacksArgs) -> PhysicalFamily:
    p = args.physical
    return PhysicalFamily(
        max_rotation_deg=p.max_rotation_deg,
        scale_range=(p.scale_low, p.scale_high),
        max_blur_sigma_px=p.max_blur_sigma_px,
        brightness_range=(p.brightness_low, p.brightness_high),
        jpeg_quality_range=(p.jpeg_quality_low, p.jpeg_quality_high),
        print_noise_sd=p.print_noise_sd,
    )


def answer_batch(
    target: Target, x: np.ndarray, claims: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The target's labels and scores for items with their own claims (-1: none)."""
    labels = np.full(len(x), -1, dtype=np.int64)
    scores = np.full((len(x), target.info.classes), np.nan)
    for claim in sorted(set(int(c) for c in claims)):
        rows = np.nonzero(claims == claim)[0]
        if len(rows):
            got_labels, got_scores = decide(target, x[rows], None if claim < 0 else claim)
            labels[rows], scores[rows] = got_labels, got_scores
    return labels, scores


def select_items(target: Target, wanted: int, seed: int, salt: int) -> Selection:
    """The first `wanted` held-out inputs, in a seeded order, that the target itself gets
    right (asked in chunks, so a slow target is asked little more than it must)."""
    pool = target.pool()
    order = np.random.default_rng([seed % 2**32, 17, 23, salt]).permutation(len(pool.labels))
    claims_all = pool.claims if pool.claims is not None else np.full(len(pool.labels), -1)
    chosen: list[int] = []
    labels_seen: list[int] = []
    scores_seen: list[np.ndarray] = []
    examined = 0
    chunk = max(8, 2 * wanted)
    while len(chosen) < wanted and examined < len(order):
        rows = order[examined : examined + chunk]
        examined += len(rows)
        got, scores = answer_batch(target, pool.inputs[rows], claims_all[rows])
        for row, label, score in zip(rows, got, scores, strict=True):
            if len(chosen) < wanted and label == pool.labels[row]:
                chosen.append(int(row))
                labels_seen.append(int(label))
                scores_seen.append(score)
    idx = np.asarray(chosen, dtype=np.int64)
    return Selection(
        pool_indices=idx,
        inputs=pool.inputs[idx].astype(np.float32),
        labels=pool.labels[idx].astype(np.int64),
        claims=claims_all[idx].astype(np.int64),
        goal=None if pool.goal is None else pool.goal[idx].astype(np.int64),
        clean_labels=np.asarray(labels_seen, dtype=np.int64),
        clean_scores=np.asarray(scores_seen, dtype=np.float64).reshape(
            len(idx), target.info.classes
        ),
        pool_size=len(pool.labels),
        examined=examined,
    )


def open_platform(ctx: CollectContext) -> tuple[SutSession, bool]:
    """The submission's platform, else (no submission) the harness's reference platform
    on ART, called in-process: (session, is_reference)."""
    if ctx.session is None and ctx.sut.adapter == "local":
        from harness.adapters.callable_sut import CallableAdapter, CallableSession
        from harness.refengines import art_platform

        return CallableSession(
            CallableAdapter.Args(target=REFERENCE_TARGET), art_platform.answer
        ), True
    return open_adapter_session(ctx), False


def _ask(
    session: SutSession, index: int, document: dict[str, Any], stage: Path
) -> tuple[SampleOutput, float]:
    """One message to the platform: the dict for a callable, `{"input": dict}` for HTTP,
    the path of a JSON file holding it for a command."""
    path = stage / f"message-{index:05d}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    start = time.perf_counter()
    try:
        outputs = session.run([Sample(index, document, str(path))])
        output = (
            outputs[0]
            if len(outputs) == 1
            else SampleOutput(index, None, f"{len(outputs)} answers to one message", 0.0)
        )
    except Exception as error:  # a session must not raise; one that does fails this message
        output = SampleOutput(index, None, f"crashed: {type(error).__name__}: {error}", 0.0)
    seconds = time.perf_counter() - start
    path.unlink(missing_ok=True)
    return output, seconds


def _physical_answers(
    target: Target,
    clean: np.ndarray,
    adv: np.ndarray,
    claims: np.ndarray,
    queried: np.ndarray,
    draws: list[list[PhysicalDraw]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    info = target.info
    n, r = len(clean), len(draws[0]) if draws else 0
    clean_labels = np.full((n, r), -1, dtype=np.int64)
    adv_labels = np.full((n, r), -1, dtype=np.int64)
    adv_scores = np.full((n, r, info.classes), np.nan)
    for k in range(n):
        if not queried[k]:
            continue
        shown_clean = np.stack(
            [physical(clean[k], d, info.domain, info.channel_axis) for d in draws[k]]
        )
        shown_adv = np.stack(
            [physical(adv[k], d, info.domain, info.channel_axis) for d in draws[k]]
        )
        claim = np.full(r, claims[k])
        clean_labels[k], _ = answer_batch(target, shown_clean, claim)
        adv_labels[k], adv_scores[k] = answer_batch(target, shown_adv, claim)
    return clean_labels, adv_labels, adv_scores


def run_jobs(ctx: CollectContext) -> list[str]:
    args = ctx.args
    assert isinstance(args, AttacksArgs)
    failures: list[str] = []
    built: dict[str, tuple[Target, TargetPlan]] = {}
    skipped: dict[str, str] = {}
    for plan in args.targets:
        reason = security_targets.unavailable(plan.name)
        if reason:
            skipped[plan.name] = reason
            continue
        ctx.progress(f"train the target {plan.name}")
        try:
            target = security_targets.build(plan.name, args.target_seed)
        except Exception as error:  # a target that cannot be built here is skipped, said so
            skipped[plan.name] = f"could not be built: {type(error).__name__}: {error}"
            continue
        if args.mode == "physical" and not target.info.image:
            skipped[plan.name] = "physical transformations apply to image targets only"
            continue
        built[plan.name] = (target, plan)
    selections: dict[str, Selection] = {}
    for salt, (name, (target, _plan)) in enumerate(built.items()):
        selections[name] = select_items(target, _plan.items or args.items, ctx.seed, salt)
    views = [
        {
            **target.info.job_view(),
            "norms": plan.norms(),
            "budgets": {n: plan.budget(n) for n in plan.norms()},
            "query_budget_per_item": plan.query_budget or args.query_budget,
        }
        for target, plan in built.values()
    ]
    ctx.evidence.write_json(
        "targets.json",
        {
            "targets": {
                name: {
                    "info": target.info.job_view(),
                    "plan": plan.model_dump(),
                    "facts": target.describe(),
                    "items": len(selections[name].labels),
                    "pool": selections[name].pool_size,
                    "examined_for_items": selections[name].examined,
                    "pool_indices": selections[name].pool_indices.tolist(),
                }
                for name, (target, plan) in built.items()
            },
            "skipped": skipped,
            "seed": ctx.seed,
            "target_seed": args.target_seed,
        },
    )
    session, reference = open_platform(ctx)
    index: list[dict[str, Any]] = []
    offers: list[jobs.Offer] = []
    refused: list[str] = []
    try:
        sut = {"reference": reference, **session.describe()}
        with (
            sandbox.staging("harness-d17-jobs-") as stage_dir,
            QueryServer(args.listen_host, args.advertise_host) as server,
        ):
            stage = Path(stage_dir)
            ctx.progress("ask the platform for its attacks")
            output, seconds = _ask(session, 0, jobs.catalogue_request(args.mode, views), stage)
            if output.output is None:
                failures.append(
                    f"the platform did not answer the catalogue request: {output.error}"
                )
            else:
                offers, refused = jobs.parse_catalogue(
                    output.output, args.mode, NORMS, args.max_attacks
                )
            ctx.evidence.write_json(
                "catalogue.json",
                {
                    "offers": [o.describe() for o in offers],
                    "refused": refused,
                    "error": output.error,
                    "seconds": seconds,
                },
            )
            number = 0
            for offer in offers:
                if args.only_attacks and offer.name not in args.only_attacks:
                    index.append(
                        {"attack": offer.name, "target": "", "skipped": "not in only_attacks"}
                    )
                    continue
                for name, (target, plan) in built.items():
                    if offer.targets is not None and name not in offer.targets:
                        continue
                    budget = plan.budget(offer.norm)
                    if budget is None:
                        index.append(
                            {
                                "attack": offer.name,
                                "target": name,
                                "skipped": f"no {offer.norm} budget on {name}",
                            }
                        )
                        continue
                    number += 1
                    ctx.progress(f"{offer.name} on {name}")
                    stem = f"jobs/{number:03d}"
                    summary = _one_job(
                        ctx,
                        args,
                        server,
                        session,
                        stage,
                        number,
                        stem,
                        offer,
                        target,
                        plan,
                        selections[name],
                    )
                    index.append({"attack": offer.name, "target": name, "record": stem, **summary})
    finally:
        session.close()
    ctx.evidence.write_json("sut.json", sut)
    ctx.evidence.write_json("jobs.json", {"jobs": index, "mode": args.mode})
    failures += [f"catalogue: {r}" for r in refused[:5]]
    problems = [j for j in index if j.get("platform_error")]
    if problems:
        failures.append(
            f"{len(problems)} of {len(index)} jobs failed on the platform's side "
            f"(first: {problems[0]['attack']} on {problems[0]['target']}: "
            f"{problems[0]['platform_error']})"
        )
    return failures


def _one_job(
    ctx: CollectContext,
    args: AttacksArgs,
    server: QueryServer,
    session: SutSession,
    stage: Path,
    number: int,
    stem: str,
    offer: jobs.Offer,
    target: Target,
    plan: TargetPlan,
    sel: Selection,
) -> dict[str, Any]:
    info = target.info
    n = len(sel.labels)
    if sel.goal is not None:
        goal = sel.goal
    elif offer.targeted:
        goal = (sel.labels + 1) % info.classes
    else:
        goal = np.full(n, -1, dtype=np.int64)
    claims: list[int | None] = [None if c < 0 else int(c) for c in sel.claims]

    def answer(x: np.ndarray, claim: int | None) -> tuple[np.ndarray, np.ndarray]:
        return decide(target, x, claim)

    queries = plan.query_budget or args.query_budget
    token, urls = server.open_job(
        info.input_shape, info.domain, answer, claims, queries, args.cap_factor, id(target)
    )
    threat = {
        "norm": offer.norm,
        **(plan.budget(offer.norm) or {}),
        "targeted": bool(offer.targeted or sel.goal is not None),
        "query_budget_per_item": queries,
        "query_cap_per_item": int(queries * args.cap_factor),
    }
    document: dict[str, Any] = {
        "schema": jobs.SCHEMA,
        "task": "attacks.run",
        "job": number,
        "attack": offer.name,
        "mode": args.mode,
        "target": info.job_view(),
        "threat_model": threat,
        "items": [
            {
                "index": k,
                "endpoint": urls[k],
                "input": sel.inputs[k].tolist(),
                "label": int(sel.labels[k]),
                "target_class": None if goal[k] < 0 else int(goal[k]),
            }
            for k in range(n)
        ],
    }
    fam = family(args)
    if args.mode == "physical":
        document["physical"] = {
            "family": fam.describe(),
            "draws_per_item": args.physical.draws_per_item,
            "min_survival": args.physical.min_survival,
        }
    output, seconds = _ask(session, number, document, stage)
    meters = server.close_job(token)
    parsed = jobs.parse_answer(output.output, output.error, n, info.input_shape)
    lo, hi = info.domain
    finite = np.all(np.isfinite(parsed.adv.reshape(n, -1)), axis=1) if n else np.zeros(0, bool)
    inside = np.array(
        [
            bool(f) and float(a.min()) >= lo and float(a.max()) <= hi
            for a, f in zip(parsed.adv, finite, strict=True)
        ],
        dtype=bool,
    )
    queried = parsed.returned & finite & inside
    adv_labels = np.full(n, -1, dtype=np.int64)
    adv_scores = np.full((n, info.classes), np.nan)
    rows = np.nonzero(queried)[0]
    if len(rows):
        adv_labels[rows], adv_scores[rows] = answer_batch(
            target, parsed.adv[rows], sel.claims[rows]
        )
    r = args.physical.draws_per_item if args.mode == "physical" else 0
    draws: list[list[PhysicalDraw]] = []
    for k in range(n):
        rng = np.random.default_rng([ctx.seed % 2**32, 17, 29, number, k])
        draws.append([draw_physical(fam, rng) for _ in range(r)])
    if r:
        phys_clean, phys_adv, phys_scores = _physical_answers(
            target, sel.inputs, parsed.adv, sel.claims, queried, draws
        )
    else:
        phys_clean = np.zeros((n, 0), dtype=np.int64)
        phys_adv = np.zeros((n, 0), dtype=np.int64)
        phys_scores = np.zeros((n, 0, info.classes))
    arrays = {
        "clean": sel.inputs,
        "labels": sel.labels,
        "goal": goal.astype(np.int64),
        "claims": sel.claims,
        "clean_labels": sel.clean_labels,
        "clean_scores": sel.clean_scores,
        "adv": parsed.adv,
        "returned": parsed.returned,
        "moves": parsed.moves,
        "adv_labels": adv_labels,
        "adv_scores": adv_scores,
        "queries": np.asarray([m.queries for m in meters], dtype=np.int64),
        "requests": np.asarray([m.requests for m in meters], dtype=np.int64),
        "refused_over_cap": np.asarray([m.refused_over_cap for m in meters], dtype=np.int64),
        "bad_requests": np.asarray([m.bad_requests for m in meters], dtype=np.int64),
        "phys_clean_labels": phys_clean,
        "phys_adv_labels": phys_adv,
        "phys_adv_scores": phys_scores,
    }
    meta = {
        "job": number,
        "attack": offer.name,
        "mode": args.mode,
        "target": info.name,
        "framework": info.framework,
        "task": info.task,
        "input_shape": list(info.input_shape),
        "domain": list(info.domain),
        "channel_axis": info.channel_axis,
        "classes": info.classes,
        "threat_model": threat,
        "items": n,
        "item_reasons": parsed.reasons,
        "platform_error": parsed.error,
        "platform_notes": parsed.notes,
        "seconds": seconds,
        "physical": None
        if not r
        else {
            "family": fam.describe(),
            "draws_per_item": r,
            "min_survival": args.physical.min_survival,
            "draws": [[d.describe() for d in item] for item in draws],
        },
    }
    jobs.write_record(ctx.evidence, stem, meta, arrays)
    return {
        "platform_error": parsed.error,
        "seconds": seconds,
        "queries": int(arrays["queries"].sum()),
    }
