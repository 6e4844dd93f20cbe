"""score() of the D17 attack probes: every returned example checked again from the evidence
(harness/probes/security/checks.py), success rates per attack with exact bounds, and the
counts of attacks and frameworks that clear the floor."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.evidence import EvidenceReader
from harness.probes.security import jobs
from harness.probes.security.args import AttacksArgs
from harness.probes.security.checks import ThreatModel, perturbation_reason, succeeded
from harness.schema import Interval, Measurement, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.stats import clopper_pearson

MAX_LISTED = 20


def metric_of(attack: str) -> str:
    return f"success_rate_{attack}"


def item_reasons(meta: dict[str, Any], a: dict[str, np.ndarray], min_survival: float) -> list[str]:
    """'' for each item whose example passes every check, else why it does not count."""
    threat = ThreatModel.from_record(meta["threat_model"])
    budget = int(meta["threat_model"]["query_budget_per_item"])
    domain = (float(meta["domain"][0]), float(meta["domain"][1]))
    channel_axis = meta["channel_axis"]
    out: list[str] = []
    for k in range(int(meta["items"])):
        label, goal = int(a["labels"][k]), int(a["goal"][k])
        if int(a["clean_labels"][k]) != label:
            out.append("the target did not get the clean input right (not an item)")
            continue
        if not bool(a["returned"][k]):
            out.append(meta["item_reasons"][k] or "no example returned")
            continue
        move = jobs.move_of(a["moves"][k])
        reason = perturbation_reason(a["clean"][k], a["adv"][k], threat, domain, channel_axis, move)
        if reason:
            out.append(reason)
            continue
        used = int(a["queries"][k])
        if used > budget:
            out.append(f"{used} queries metered, over the budget of {budget}")
            continue
        if meta["physical"] is None:
            got = int(a["adv_labels"][k])
            if got < 0:
                out.append("the harness has no answer of the target for it")
            elif not succeeded(got, label, goal):
                out.append(
                    f"the target answers {got}, not the target class {goal}"
                    if goal >= 0
                    else f"the target still answers the true class {label}"
                )
            else:
                out.append("")
            continue
        clean_right = a["phys_clean_labels"][k] == label
        draws = len(clean_right)
        valid = int(clean_right.sum())
        if 2 * valid < draws:
            out.append(
                "the transformations alone defeat the clean input in "
                f"{draws - valid} of {draws} draws"
            )
            continue
        hits = sum(
            succeeded(int(g), label, goal)
            for g, ok in zip(a["phys_adv_labels"][k], clean_right, strict=True)
            if ok
        )
        if hits < min_survival * valid:
            out.append(
                f"survived {hits} of the {valid} transformed copies whose clean copy the target "
                f"gets right (needs {min_survival:.0%})"
            )
        else:
            out.append("")
    return out


@dataclass
class Tally:
    successes: int = 0
    items: int = 0
    by_target: dict[str, list[int]] = field(default_factory=dict)  # target -> [successes, items]
    by_framework: dict[str, list[int]] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)
    queries: int = 0
    norm: str = ""
    # (target, item) -> sha256 of the verified example's float32 bytes (and its move)
    wins: dict[tuple[str, int], str] = field(default_factory=dict)


def _kind(reason: str) -> str:
    for word in (
        "L-inf",
        "L2",
        "L0",
        "patch",
        "span",
        "domain",
        "finite",
        "shape",
        "queries",
        "survived",
        "true class",
        "target class",
        "no example",
        "platform",
        "bad output",
        "move",
        "rotation",
        "shift",
    ):
        if word in reason:
            return word
    return reason.split(":")[0][:40]


def tally(
    evidence: EvidenceReader, min_survival: float
) -> tuple[dict[str, Tally], list[dict[str, Any]]]:
    index = evidence.read_json("jobs.json")["jobs"]
    tallies: dict[str, Tally] = {}
    rows: list[dict[str, Any]] = []
    for entry in index:
        if "record" not in entry:
            continue
        meta, arrays = jobs.read_record(evidence, entry["record"])
        reasons = item_reasons(meta, arrays, min_survival)
        wins = sum(1 for r in reasons if not r)
        t = tallies.setdefault(meta["attack"], Tally(norm=meta["threat_model"]["norm"]))
        t.successes += wins
        t.items += len(reasons)
        t.queries += int(arrays["queries"].sum())
        for key, book in ((meta["target"], t.by_target), (meta["framework"], t.by_framework)):
            pair = book.setdefault(key, [0, 0])
            pair[0] += wins
            pair[1] += len(reasons)
        for k, r in enumerate(reasons):
            if not r:
                t.wins[(meta["target"], k)] = _example_digest(arrays, k)
            if r:
                t.refusals[_kind(r)] += 1
                if len(t.examples) < MAX_LISTED:
                    t.examples.append(f"{meta['target']} item {k}: {r}")
        rows.append(
            {
                "attack": meta["attack"],
                "target": meta["target"],
                "framework": meta["framework"],
                "successes": wins,
                "items": len(reasons),
                "queries": int(arrays["queries"].sum()),
                "platform_error": meta["platform_error"],
                "seconds": meta["seconds"],
            }
        )
    return tallies, rows


def _example_digest(arrays: dict[str, np.ndarray], k: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(arrays["adv"][k], dtype=np.float32).tobytes())
    digest.update(repr(arrays["moves"][k].tolist()).encode())
    return digest.hexdigest()


def same_examples_as(wins: dict[tuple[str, int], str], earlier: dict[str, Tally]) -> str:
    """The earlier attack whose verified examples this attack's repeat byte for byte on at
    least half of this attack's verified items ('' when none): one attack under two names
    (the same items go to every attack on a target, so a platform could otherwise return
    one attack's examples under ten names)."""
    for name, other in earlier.items():
        same = sum(1 for key, d in wins.items() if other.wins.get(key) == d)
        if wins and 2 * same >= len(wins):
            return name
    return ""


def _clears(successes: int, items: int, floor_pct: float, confidence: float) -> tuple[bool, float]:
    if items == 0:
        return False, 0.0
    low = 100.0 * clopper_pearson(successes, items, confidence).lower
    return low > floor_pct, low


def score_attacks(
    evidence: EvidenceReader, args: AttacksArgs, confidence: float, metrics: dict[str, str]
) -> tuple[list[Measurement], list[Unmeasured]]:
    catalogue = evidence.read_json("catalogue.json") if evidence.exists("catalogue.json") else None
    sut = evidence.read_json("sut.json")
    targets = evidence.read_json("targets.json")
    count_id = f"{args.mode}_attacks_passing"
    if catalogue is None or (catalogue["error"] and not catalogue["offers"]):
        why = catalogue["error"] if catalogue else "no record"
        reason = f"the platform did not answer the catalogue request: {why}"
        return [], [Unmeasured(id=m, reason=reason) for m in metrics]
    if not targets["targets"]:
        reason = "no reference target could be built here: " + "; ".join(
            f"{k}: {v}" for k, v in targets["skipped"].items()
        )
        return [], [Unmeasured(id=m, reason=reason) for m in metrics]
    tallies, rows = tally(evidence, args.physical.min_survival)
    who = (
        "the harness's reference platform (adversarial-robustness-toolbox)"
        if sut.get("reference")
        else "the submitted platform"
    )
    check = (
        "every returned example checked by the harness: finite float32, inside the domain, the "
        "perturbation within the job's budget, the item's metered queries within budget, and "
        + (
            "the target's own answer (queried by the harness) off the true class or on the "
            "target class"
            if args.mode == "digital"
            else "the target wrong (or on the target class) on at least "
            f"{args.physical.min_survival:.0%} of {args.physical.draws_per_item} seeded physical "
            "transformations of it (rotation, scale, blur, brightness, JPEG, print noise) "
            "among those whose clean copy it gets right"
        )
    )
    measurements: list[Measurement] = []
    unmeasured: list[Unmeasured] = []
    passing: list[str] = []  # lower bound above the floor
    observed: list[str] = []  # observed rate above the floor
    table: dict[str, Any] = {}
    frameworks: dict[str, list[str]] = defaultdict(list)
    frameworks_observed: dict[str, list[str]] = defaultdict(list)
    for offer in catalogue["offers"]:
        name = offer["name"]
        if args.only_attacks and name not in args.only_attacks:
            continue
        t = tallies.get(name)
        if t is None or t.items == 0:
            unmeasured.append(
                Unmeasured(
                    id=metric_of(name),
                    reason=f"{name} was run on no target (none it names has a "
                    f"{offer['norm']} budget or was built)",
                )
            )
            table[name] = {"passes": False, "items": 0}
            continue
        ok, low = _clears(t.successes, t.items, args.floor_pct, confidence)
        twin = same_examples_as(t.wins, {n: tallies[n] for n in observed})
        if twin:  # counted once, under its first name; its own rate is still reported
            ok = False
        if ok:
            passing.append(name)
        if _above(t.successes, t.items, args.floor_pct) and not twin:
            observed.append(name)
        per_framework = {}
        for fw, (wins, n) in sorted(t.by_framework.items()):
            fw_ok, fw_low = _clears(wins, n, args.floor_pct, confidence)
            per_framework[fw] = {"successes": wins, "items": n, "low_pct": fw_low, "clears": fw_ok}
            if fw_ok:
                frameworks[fw].append(name)
            if _above(wins, n, args.floor_pct):
                frameworks_observed[fw].append(name)
        table[name] = {
            "norm": t.norm,
            "successes": t.successes,
            "items": t.items,
            "low_pct": low,
            "passes": ok,
            "same_as": twin,
            "by_target": {
                k: {"successes": w, "items": n} for k, (w, n) in sorted(t.by_target.items())
            },
            "by_framework": per_framework,
            "refused": dict(t.refusals),
            "queries": t.queries,
        }
        measurements.append(
            accuracy_percent(
                metric_of(name),
                t.successes,
                t.items,
                confidence,
                f"{args.mode} attack {name} ({t.norm}) by {who}: items whose returned example "
                f"passes every check, of the {t.items} items of its jobs on "
                f"{', '.join(sorted(t.by_target))}; {check}",
                {
                    "by_target": table[name]["by_target"],
                    "by_framework": per_framework,
                    "refused": dict(t.refusals),
                    "refusal_examples": t.examples,
                    "queries_metered": t.queries,
                },
                counted="verified successes",
                noun="attacked items",
            )
        )
    for name in args.report_attacks:
        if name not in table:
            unmeasured.append(
                Unmeasured(
                    id=metric_of(name), reason=f"the platform does not offer {name} ({args.mode})"
                )
            )
    floor = (
        f"its exact one-sided {confidence:.0%} Clopper-Pearson lower bound above "
        f"{args.floor_pct:g} % ({args.floor_source})"
    )
    total = sum(t.items for t in tallies.values())
    undecided = [n for n in observed if n not in passing]
    measurements.append(
        Measurement(
            id=count_id,
            value=float(len(observed)),
            unit="count",
            n=total,
            repeats=1,
            ci=_count_bound(len(passing), confidence, "attacks", undecided),
            method=f"{args.mode} black-box attacks offered by {who}: the figure counts those "
            f"whose verified success rate (pooled over their jobs) is above {args.floor_pct:g} %, "
            f"its bound those with {floor}; {check}; declared attacks count for nothing, and one "
            "whose verified examples repeat an earlier counted attack's byte for byte on half "
            "its verified items or more counts once (same_as)",
            details={
                "passing": passing,
                "observed_above_floor": observed,
                "attacks": table,
                "catalogue_refused": catalogue["refused"],
                "jobs": rows,
                "targets_skipped": targets["skipped"],
            },
        )
    )
    fw_undecided = sorted(f for f in frameworks_observed if f not in frameworks)
    measurements.append(
        Measurement(
            id="frameworks_attacked",
            value=float(len(frameworks_observed)),
            unit="count",
            n=total,
            repeats=1,
            ci=_count_bound(len(frameworks), confidence, "frameworks", fw_undecided),
            method=f"frameworks of the reference targets on which at least one {args.mode} attack "
            f"by {who} has a verified success rate (over its items on that framework's targets) "
            f"above {args.floor_pct:g} % (the figure), with {floor} (its bound)",
            details={
                "frameworks": {k: sorted(v) for k, v in sorted(frameworks.items())},
                "frameworks_observed": {
                    k: sorted(v) for k, v in sorted(frameworks_observed.items())
                },
                "targets": {k: v["info"]["framework"] for k, v in targets["targets"].items()},
                "targets_skipped": targets["skipped"],
            },
        )
    )
    return measurements, unmeasured


def _above(successes: int, items: int, floor_pct: float) -> bool:
    """The observed rate above the floor (exact in integers: 100 * s / n > floor)."""
    return items > 0 and 100.0 * successes > floor_pct * items


def _count_bound(cleared: int, confidence: float, noun: str, undecided: list[str]) -> Interval:
    """The bound of a count: the members whose own lower bound clears the floor (each at
    `confidence`); the figure is the members whose observed rate does."""
    need = ""
    if undecided:
        need = (
            f"{len(undecided)} {noun} ({', '.join(undecided)}) have verified rates above the "
            "floor whose lower bounds are not: more items per job (the task's `items`) would "
            "decide them"
        )
    return Interval(
        low=float(cleared),
        high=None,
        confidence=confidence,
        method=f"{noun} whose own exact one-sided Clopper-Pearson lower bound clears the floor",
        need=need,
    )
