"""D17 black-box attacks (`security.attacks`, `security.physical`): the budget checks at one
float32 ulp against norms worked out by hand, hostile platforms as `callable` SUTs (clean
inputs back, examples over the budget, NaN, the wrong shape, outside the domain, queries past
the budget and the endpoint's cap, declared attacks answered with nothing, a crash, another
item's adversarial example, another class's clean input), success rates pooled over targets
with exact bounds against scipy's beta quantiles and every item re-checked by hand from the
evidence with the targets' own answers, the floor and the framework count, re-scoring and
`harness audit` of a run through the CLI (a changed evidence byte, re-signed evidence), the
reference platform (ART), the TensorFlow target, and the physical rule (examples that fool
the target only digitally; items the transformations alone defeat)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clihelpers import flip_byte, forge, run_cli
from probehelpers import by_id, collect_and_score, cp_lower_pct, cp_upper_pct, score_context

import harness.probes.security  # noqa: F401  (registers the probes)
from harness.evidence import EvidenceReader
from harness.probes.base import ScoreResult
from harness.probes.security import checks
from harness.probes.security.args import AttacksArgs, PhysicalArgs, PhysicalAttacksArgs, TargetPlan
from harness.probes.security.checks import ThreatModel, perturbation_reason
from harness.probes.security.jobs import parse_answer, parse_catalogue
from harness.probes.security.probe import DigitalAttacksProbe, PhysicalAttacksProbe
from harness.probes.security.score import item_reasons
from harness.refengines import security_targets
from harness.refengines.security_targets import decide
from harness.refengines.security_targets.transforms import (
    PhysicalDraw,
    SpatialMove,
    physical,
    spatial,
)
from harness.schema import Measurement, SutSpec

F32 = np.float32
DOMAIN = (0.0, 1.0)


def up(x: float) -> np.float32:
    """The next float32 above x (x taken as float32)."""
    return np.nextafter(F32(x), F32(np.inf))


def down(x: float) -> np.float32:
    return np.nextafter(F32(x), F32(-np.inf))


# ---------------------------------------------------------------- the checks at one ulp


def test_linf_at_the_budget_and_one_ulp_over() -> None:
    clean = np.array([0.5, 0.25, 0.0, 1.0], dtype=F32)
    linf = ThreatModel("linf", epsilon=0.25)
    at = np.array([0.75, 0.0, 0.25, 0.75], dtype=F32)  # every |change| exactly 0.25
    assert float(np.max(np.abs(at.astype(np.float64) - clean))) == 0.25
    assert perturbation_reason(clean, at, linf, DOMAIN, None) == ""
    over = at.copy()
    over[0] = up(0.75)  # 0.75 + 2^-24: the change is 0.25000006
    assert np.abs(over.astype(np.float64) - clean).max() == 0.25 + 2.0**-24
    reason = perturbation_reason(clean, over, linf, DOMAIN, None)
    assert reason.startswith("L-inf 0.25000006") and "> epsilon 0.25" in reason
    # epsilon 0.1 is not a float32: float32(0.1) = 0.10000000149 is over it, the float32
    # below it (0.099999994) is inside
    tenth = ThreatModel("linf", epsilon=0.1)
    zero = np.zeros(4, dtype=F32)
    assert float(F32(0.1)) > 0.1 > float(down(0.1))
    assert perturbation_reason(zero, np.array([0.1, 0, 0, 0], F32), tenth, DOMAIN, None)
    assert perturbation_reason(zero, np.array([down(0.1), 0, 0, 0], F32), tenth, DOMAIN, None) == ""


def test_l2_at_the_budget_and_one_ulp_over() -> None:
    clean = np.zeros((2, 2), dtype=F32)
    at = np.array([[0.375, 0.0], [0.0, 0.5]], dtype=F32)  # a 3-4-5 triangle: L2 0.625
    assert float(np.linalg.norm(at.astype(np.float64).ravel())) == 0.625
    l2 = ThreatModel("l2", epsilon=0.625)
    assert perturbation_reason(clean, at, l2, DOMAIN, None) == ""
    over = at.copy()
    over[1, 1] = up(0.5)
    assert float(np.linalg.norm(over.astype(np.float64).ravel())) > 0.625
    assert perturbation_reason(clean, over, l2, DOMAIN, None).startswith("L2 0.62500")
    # the sign of a change does not matter, nor does its place
    flipped = np.array([[0.0, 0.375], [0.5, 0.0]], dtype=F32)
    assert perturbation_reason(np.full((2, 2), 0.5, F32), 0.5 - flipped, l2, DOMAIN, None) == ""


def test_l0_counts_positions_and_one_ulp_more_is_one_position_more() -> None:
    rng = np.random.default_rng(1)
    clean = rng.uniform(0.2, 0.8, (8, 8)).astype(F32)
    l0 = ThreatModel("l0", epsilon=4)
    adv = clean.copy()
    adv.flat[[0, 9, 30, 63]] = [0.0, 1.0, 0.0, 1.0]  # four pixels, changed all the way
    assert int(np.count_nonzero(adv != clean)) == 4
    assert perturbation_reason(clean, adv, l0, DOMAIN, None) == ""
    adv.flat[40] = np.nextafter(clean.flat[40], F32(1))  # a fifth, by one ulp
    assert perturbation_reason(clean, adv, l0, DOMAIN, None) == "L0 5 positions > 4"
    # with colour channels a position is a pixel: three channels of one pixel are one
    image = rng.uniform(0.2, 0.8, (3, 4, 4)).astype(F32)
    moved = image.copy()
    moved[:, 1, 2] = 0.0
    moved[0, 3, 3] = 1.0
    one = ThreatModel("l0", epsilon=1)
    assert perturbation_reason(image, moved, ThreatModel("l0", epsilon=2), DOMAIN, 0) == ""
    assert perturbation_reason(image, moved, one, DOMAIN, 0) == "L0 2 positions > 1"
    # a patch: the changes in a 3 x 3 box pass a 3-wide patch, one ulp outside it does not
    patch = ThreatModel("patch", epsilon=3)
    boxed = image.copy()
    boxed[:, 1:4, 0:3] = 0.5
    assert perturbation_reason(image, boxed, patch, DOMAIN, 0) == ""
    boxed[2, 0, 0] = np.nextafter(image[2, 0, 0], F32(0))
    assert "span 4 x 3 positions" in perturbation_reason(image, boxed, patch, DOMAIN, 0)


def test_domain_shape_and_finite_checked_first() -> None:
    clean = np.array([0.0, 1.0], dtype=F32)
    wide = ThreatModel("linf", epsilon=0.5)
    assert perturbation_reason(clean, np.array([0.0, 1.0], F32), wide, DOMAIN, None) == ""
    over_top = np.array([0.0, up(1.0)], F32)
    assert "leave the domain [0, 1]" in perturbation_reason(clean, over_top, wide, DOMAIN, None)
    below = np.array([down(0.0), 1.0], F32)
    assert "leave the domain" in perturbation_reason(clean, below, wide, DOMAIN, None)
    nan = np.array([np.nan, 1.0])
    assert perturbation_reason(clean, nan, wide, DOMAIN, None) == "1 values are not finite"
    # a float64 value that overflows float32 is not finite either (the targets take float32)
    huge = np.array([0.0, 1e39])
    with np.errstate(over="ignore"):
        assert "not finite" in perturbation_reason(clean, huge, wide, DOMAIN, None)
    shape = perturbation_reason(clean, np.zeros(3, F32), wide, DOMAIN, None)
    assert shape == "shape [3], expected [2]"


def test_spatial_move_within_and_beyond_the_budget() -> None:
    rng = np.random.default_rng(2)
    clean = rng.uniform(0.0, 1.0, (8, 8)).astype(F32)
    threat = ThreatModel("spatial", max_rotation_deg=20.0, max_shift_px=1.0)
    edge = SpatialMove(20.0, (1.0, -1.0))  # exactly at the budget
    adv = spatial(clean, edge, DOMAIN, None)
    assert perturbation_reason(clean, adv, threat, DOMAIN, None, edge) == ""
    turned = SpatialMove(float(np.nextafter(20.0, 21.0)), (0.0, 0.0))
    reason = perturbation_reason(
        clean, spatial(clean, turned, DOMAIN, None), threat, DOMAIN, None, turned
    )
    assert reason.startswith("rotation 20") and "beyond +/- 20" in reason
    shifted = SpatialMove(0.0, (0.0, float(np.nextafter(-1.0, -2.0))))
    reason = perturbation_reason(
        clean, spatial(clean, shifted, DOMAIN, None), threat, DOMAIN, None, shifted
    )
    assert reason.startswith("shift [0.0, -1.0000000000000002] px beyond +/- 1")
    # the example must be the declared move: the clean input moved by another one is not
    other = spatial(clean, SpatialMove(-20.0, (0.0, 1.0)), DOMAIN, None)
    assert "differs from the declared move" in perturbation_reason(
        clean, other, threat, DOMAIN, None, edge
    )
    assert "no move" in perturbation_reason(clean, adv, threat, DOMAIN, None, None)
    # an image with channels moves in its plane, each channel alike
    rgb = rng.uniform(0.0, 1.0, (3, 8, 8)).astype(F32)
    moved = spatial(rgb, edge, DOMAIN, 0)
    assert np.array_equal(moved[1], spatial(rgb[1], edge, DOMAIN, None))
    assert perturbation_reason(rgb, moved, threat, DOMAIN, 0, edge) == ""


def test_success_is_the_goal_class_or_any_wrong_one() -> None:
    assert checks.succeeded(3, 1, -1) and not checks.succeeded(1, 1, -1)
    assert checks.succeeded(2, 1, 2) and not checks.succeeded(3, 1, 2)


# ---------------------------------------------------------------- scripted platforms

SELF = __name__  # how the callable adapter imports this module (pytest's name for it)


def post(url: str, batch: np.ndarray) -> tuple[int, dict[str, Any]]:
    """POST a batch to an item endpoint as .npy: (status, reply)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(batch, dtype=F32), allow_pickle=False)
    request = urllib.request.Request(url, buffer.getvalue(), {"Content-Type": "application/x-npy"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as reply:
            return int(reply.status), json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def inside_linf(clean: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """`x` as float32, each value moved towards the clean one ulp by ulp where the float32
    change is over `eps` (as the harness measures it)."""
    c = np.asarray(clean, dtype=F32)
    out = np.asarray(x, dtype=F32)
    while True:
        over = np.abs(out.astype(np.float64) - c.astype(np.float64)) > eps
        if not over.any():
            return out
        out = np.where(over, np.nextafter(out, c), out).astype(F32)


def candidates(message: dict[str, Any], k: int, count: int) -> np.ndarray:
    """`count` inputs within item k's L-inf budget: steps of epsilon towards the other
    items of another class, then random signs (seeded by the job and item)."""
    eps = float(message["threat_model"]["epsilon"])
    lo, hi = message["target"]["domain"]
    items = message["items"]
    clean = np.asarray(items[k]["input"], dtype=F32)
    others = [np.asarray(i["input"], F32) for i in items if i["label"] != items[k]["label"]]
    rows = [clean + eps * np.sign(o - clean) for o in others]
    rng = np.random.default_rng([int(message["job"]), k])
    while len(rows) < count:
        rows.append(clean + eps * rng.choice([-1.0, 1.0], clean.shape))
    return np.stack([inside_linf(clean, np.clip(r, lo, hi), eps) for r in rows[:count]])


def wins(item: dict[str, Any], labels: list[int]) -> list[int]:
    goal = item["target_class"]
    return [
        j for j, g in enumerate(labels) if (g == goal if goal is not None else g != item["label"])
    ]


def search(message: dict[str, Any], k: int, count: int = 40) -> np.ndarray | None:
    """An honest black-box search for item k: one batch of `count` candidates through its
    endpoint; the first that fools the target (None if none does)."""
    item = message["items"][k]
    batch = candidates(message, k, count)
    status, reply = post(item["endpoint"], batch)
    hit = wins(item, reply["labels"]) if status == 200 else []
    return batch[hit[0]] if hit else None


def catalogue(names: dict[str, str], mode: str = "digital", **extra: Any) -> dict[str, Any]:
    return {
        "attacks": [{"name": n, "mode": mode, "norm": norm, **extra} for n, norm in names.items()]
    }


def as_lists(examples: Sequence[np.ndarray | None]) -> list[Any]:
    return [None if e is None else np.asarray(e, dtype=F32).tolist() for e in examples]


HOSTILE = {
    "clean": "linf",  # (a) the clean inputs back
    "over": "linf",  # (b) every value moved by 2 epsilon
    "nan": "linf",  # (c)
    "shape": "linf",  # (d) flattened
    "outside": "linf",  # (e) one value a little outside [0, 1], within epsilon
    "greedy": "linf",  # (f) past the query budget, then the cap; adversarial examples
    "nulls": "linf",  # (g) null for every item
    "nothing": "linf",  # (g) no answer at all
    "crash": "linf",  # (h)
    "shuffled": "linf",  # (i) item k gets item k+1's adversarial example
    "precomputed": "linf",  # (j) another class's clean input
    "huge": "linf",  # a value no float holds (an int of 401 digits)
    "spin": "spatial",  # the clean input rotated by 25 degrees, the budget 20
    "wild_move": "spatial",  # a rotation no float holds
}


def hostile(message: dict[str, Any]) -> Any:
    if message["task"] == "attacks.catalogue":
        return catalogue(HOSTILE)
    attack, items = message["attack"], message["items"]
    clean = [np.asarray(i["input"], dtype=F32) for i in items]
    eps = float(message["threat_model"].get("epsilon") or 0.0)
    n = len(items)
    if attack == "clean":
        return {"examples": as_lists(list(clean))}
    if attack == "over":  # each value 2 epsilon away, towards the farther end of [0, 1]
        return {"examples": as_lists([np.where(c < 0.5, c + 2 * eps, c - 2 * eps) for c in clean])}
    if attack == "nan":  # the clean input with one value NaN (as JSON numbers: float('nan'))
        broken = [c.astype(np.float64) for c in clean]
        for e in broken:
            e.flat[0] = np.nan
        return {"examples": [e.tolist() for e in broken]}
    if attack == "shape":
        return {"examples": [c.ravel().tolist() for c in clean]}
    if attack == "outside":
        out = []
        for c in clean:
            low = c.copy()
            low.flat[int(np.flatnonzero(c == 0.0)[0])] = -eps / 2  # within epsilon, below 0
            out.append(low)
        return {"examples": as_lists(out)}
    if attack == "greedy":
        budget = int(message["threat_model"]["query_budget_per_item"])
        cap = int(message["threat_model"]["query_cap_per_item"])
        examples: list[np.ndarray | None] = []
        statuses: list[list[int]] = []
        for k, item in enumerate(items):
            first = candidates(message, k, budget + 10)  # over the budget, under the cap
            status, reply = post(item["endpoint"], first)
            hit = wins(item, reply["labels"]) if status == 200 else []
            second, _ = post(item["endpoint"], candidates(message, k, cap - budget))  # past the cap
            examples.append(first[hit[0]] if hit else None)
            statuses.append([status, second, reply.get("queries_used", -1)])
        return {"examples": as_lists(examples), "notes": {"statuses": statuses}}
    if attack == "huge":
        lists = [c.tolist() for c in clean]
        for e in lists:
            e[0][0] = 10**400
        return {"examples": lists}
    if attack in ("spin", "wild_move"):
        turn = 25.0 if attack == "spin" else 10**400
        move = SpatialMove(25.0, (0.0, 0.0))
        examples_ = [spatial(c, move, DOMAIN, None) for c in clean]
        moves = [{"rotation_deg": turn, "shift_px": [0, 0]}] * n
        return {"examples": as_lists(examples_), "moves": moves}
    if attack == "nulls":
        return {"examples": [None] * n}
    if attack == "nothing":
        return None
    if attack == "crash":
        raise RuntimeError("the platform fell over")
    found = [search(message, k) for k in range(n)]
    if attack == "shuffled":  # the next item's example (the next one found, past a miss)
        given = [
            next(found[j % n] for j in range(k + 1, k + n) if found[j % n] is not None)
            for k in range(n)
        ]
        return {"examples": as_lists(given), "notes": {"found": as_lists(found)}}
    if attack == "precomputed":
        other = [
            next(c for c, i in zip(clean, items, strict=True) if i["label"] != it["label"])
            for it in items
        ]
        return {"examples": as_lists(other)}
    return {"error": f"no attack {attack}"}


def honest(message: dict[str, Any]) -> Any:
    """`search`: an honest random search on digits_sklearn; on any other target the clean
    inputs back."""
    if message["task"] == "attacks.catalogue":
        return catalogue({"search": "linf"})
    n = len(message["items"])
    if message["target"]["name"] != "digits_sklearn":
        return {"examples": [i["input"] for i in message["items"]]}
    return {"examples": as_lists([search(message, k) for k in range(n)])}


_FOUND: dict[bytes, list[Any]] = {}


def renamed(message: dict[str, Any]) -> Any:
    """`search` on digits_sklearn, then `search_again`: the same examples under a second
    name (the same items go to every attack on a target)."""
    if message["task"] == "attacks.catalogue":
        return catalogue({"search": "linf", "search_again": "linf"})
    key = json.dumps([i["input"] for i in message["items"]]).encode()
    if message["attack"] == "search":
        _FOUND[key] = as_lists([search(message, k) for k in range(len(message["items"]))])
    return {"examples": _FOUND[key]}


def callable_sut(function: Callable[[Any], Any]) -> SutSpec:
    return SutSpec.model_validate({"adapter": "callable", "target": f"{SELF}:{function.__name__}"})


# ---------------------------------------------------------------- reading the evidence by hand


def records(root: Path) -> dict[tuple[str, str], tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(attack, target) -> the job's json and npz, read with json and numpy alone."""
    out = {}
    for entry in json.loads((root / "jobs.json").read_text())["jobs"]:
        if "record" in entry:
            meta = json.loads((root / f"{entry['record']}.json").read_text())
            with np.load(root / f"{entry['record']}.npz") as data:
                out[(entry["attack"], entry["target"])] = (meta, {k: data[k] for k in data.files})
    return out


def by_hand(meta: dict[str, Any], a: dict[str, np.ndarray]) -> list[bool]:
    """Each item's verdict recomputed from the evidence with numpy and the target itself
    (rebuilt here, queried here): returned, finite, in [lo, hi], within the L-inf / L2
    budget (spatial: the declared move within it and rendered), queries within budget,
    the target's label off the true one (or on the goal)."""
    threat = meta["threat_model"]
    norm, eps, budget = threat["norm"], threat.get("epsilon"), threat["query_budget_per_item"]
    lo, hi = meta["domain"]
    target = security_targets.build(meta["target"], 0)
    out = []
    for k in range(meta["items"]):
        adv, clean = a["adv"][k].astype(np.float64), a["clean"][k].astype(np.float64)
        ok = bool(a["returned"][k]) and bool(np.all(np.isfinite(adv)))
        ok = ok and adv.min() >= lo and adv.max() <= hi and int(a["queries"][k]) <= budget
        if ok and norm == "spatial":
            rotation, *shift = a["moves"][k].tolist()
            ok = abs(rotation) <= threat["max_rotation_deg"]
            ok = ok and max(abs(v) for v in shift) <= threat["max_shift_px"]
            move = SpatialMove(rotation, (shift[0], shift[1]))
            ok = ok and np.abs(spatial(a["clean"][k], move, DOMAIN, None) - adv).max() <= 1e-4
        elif ok:
            d = (adv - clean).ravel()
            ok = bool((np.abs(d).max() if norm == "linf" else np.linalg.norm(d)) <= eps)
        if ok:
            label = int(decide(target, a["adv"][k][np.newaxis].astype(F32))[0][0])
            goal = int(a["goal"][k])
            ok = label == goal if goal >= 0 else label != int(a["labels"][k])
        out.append(bool(ok))
    return out


def save_npz(path: Path, arrays: dict[str, Any]) -> None:
    np.savez_compressed(path, **arrays)


def reasons_of(root: Path, attack: str, target: str = "digits_sklearn") -> list[str]:
    meta, arrays = records(root)[(attack, target)]
    return item_reasons(meta, arrays, 0.5)


def assert_rate(m: Measurement, successes: int, n: int) -> None:
    assert m.n == n
    assert m.value == pytest.approx(100.0 * successes / n, abs=1e-12)
    assert m.ci is not None and m.ci.low is not None and m.ci.high is not None
    assert m.ci.low == pytest.approx(cp_lower_pct(successes, n), rel=1e-9, abs=1e-9)
    assert m.ci.high == pytest.approx(cp_upper_pct(successes, n), rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------- hostile platforms

HOSTILE_ITEMS = 5
HOSTILE_BUDGET = 60


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], ScoreResult]:
    root = tmp_path_factory.mktemp("hostile")
    args = AttacksArgs(
        targets=[TargetPlan(name="digits_sklearn", linf=0.25, max_rotation_deg=20, max_shift_px=1)],
        items=HOSTILE_ITEMS,
        query_budget=HOSTILE_BUDGET,
        cap_factor=2.0,
    )
    failures, result = collect_and_score(
        DigitalAttacksProbe(), args, root, sut=callable_sut(hostile)
    )
    return root, failures, result


def test_hostile_platform_passes_nothing(hostile_run: tuple[Path, list[str], ScoreResult]) -> None:
    root, _, result = hostile_run
    figures = by_id(result)
    count = figures["digital_attacks_passing"]
    assert count.value == 0 and count.ci is not None and count.ci.low == 0
    assert count.details["passing"] == [] and count.details["observed_above_floor"] == []
    assert figures["frameworks_attacked"].value == 0
    for attack in HOSTILE:
        assert_rate(figures[f"success_rate_{attack}"], 0, HOSTILE_ITEMS)
        assert "the submitted platform" in figures[f"success_rate_{attack}"].method
    assert json.loads((root / "sut.json").read_text())["reference"] is False
    for (_, _), (meta, arrays) in records(root).items():  # and by hand, from the evidence
        assert not any(by_hand(meta, arrays)), meta["attack"]


@pytest.mark.parametrize(
    ("attack", "needle"),
    [
        ("clean", "the target still answers the true class"),
        ("over", "L-inf 0.5 > epsilon 0.25"),
        ("nan", "1 values are not finite"),
        ("shape", "shape [64], expected [8, 8]"),
        ("outside", "leave the domain [0, 1]"),
        ("nulls", "no example returned"),
        ("nothing", "the platform failed: no answer"),
        ("crash", "the platform failed: crashed: RuntimeError: the platform fell over"),
        ("shuffled", "L-inf"),
        ("precomputed", "L-inf"),
        ("huge", "not an array of numbers"),
        ("spin", "rotation 25 deg beyond +/- 20"),
        ("wild_move", "the move needs rotation_deg (a number)"),
    ],
)
def test_each_hostile_answer_fails_with_its_reason(
    hostile_run: tuple[Path, list[str], ScoreResult], attack: str, needle: str
) -> None:
    root, _, result = hostile_run
    reasons = reasons_of(root, attack)
    assert len(reasons) == HOSTILE_ITEMS
    assert all(needle in r for r in reasons), reasons
    m = by_id(result)[f"success_rate_{attack}"]
    assert m.value == 0.0 and sum(m.details["refused"].values()) == HOSTILE_ITEMS


def test_platform_errors_are_recorded_not_raised(
    hostile_run: tuple[Path, list[str], ScoreResult],
) -> None:
    _, failures, result = hostile_run
    jobs = {r["attack"]: r for r in by_id(result)["digital_attacks_passing"].details["jobs"]}
    assert "crashed: RuntimeError: the platform fell over" in jobs["crash"]["platform_error"]
    assert "no answer" in jobs["nothing"]["platform_error"]
    assert jobs["clean"]["platform_error"] == "" and jobs["nulls"]["platform_error"] == ""
    assert any(f"2 of {len(HOSTILE)} jobs failed on the platform's side" in f for f in failures), (
        failures
    )


def test_adversarial_examples_of_other_items_fail_the_budget(
    hostile_run: tuple[Path, list[str], ScoreResult],
) -> None:
    """(i) and (j): the examples do fool the target (the harness's own answers say so), but
    they are far from their own item's clean input."""
    root, _, _ = hostile_run
    runs = records(root)
    meta, a = runs[("shuffled", "digits_sklearn")]
    found = meta["platform_notes"]["found"]
    assert sum(f is not None for f in found) >= HOSTILE_ITEMS - 1  # the search mostly works
    for k in range(HOSTILE_ITEMS):
        j = next(
            j % HOSTILE_ITEMS for j in range(k + 1, k + HOSTILE_ITEMS) if found[j % HOSTILE_ITEMS]
        )
        assert np.array_equal(a["adv"][k], np.asarray(found[j], F32))  # item j's example
        assert a["adv_labels"][k] != a["labels"][j]  # which fools the target on item j
        assert np.abs(a["adv"][k] - a["clean"][k]).max() > 0.25
    meta, a = runs[("precomputed", "digits_sklearn")]
    assert np.all(a["adv_labels"] != a["labels"])  # every one fools the target
    assert all(np.abs(a["adv"][k] - a["clean"][k]).max() > 0.25 for k in range(HOSTILE_ITEMS))


def test_queries_past_the_budget_and_the_cap(
    hostile_run: tuple[Path, list[str], ScoreResult],
) -> None:
    """(f): the endpoint answers past the budget (metered), refuses past the cap (429, not
    counted), and an item over its budget fails even with an adversarial example."""
    root, _, result = hostile_run
    meta, a = records(root)[("greedy", "digits_sklearn")]
    budget, cap = HOSTILE_BUDGET, 2 * HOSTILE_BUDGET
    assert meta["threat_model"]["query_cap_per_item"] == cap
    for first, second, used in meta["platform_notes"]["statuses"]:
        assert (first, second, used) == (200, 429, budget + 10)
    assert np.all(a["queries"] == budget + 10)
    assert np.all(a["refused_over_cap"] == cap - budget)
    assert np.all(a["requests"] == 1)
    returned = np.flatnonzero(a["returned"])
    assert len(returned) >= HOSTILE_ITEMS - 1
    assert np.all(a["adv_labels"][returned] != a["labels"][returned])  # adversarial
    assert np.all(np.abs(a["adv"][returned] - a["clean"][returned]).max(axis=(1, 2)) <= 0.25)
    reasons = reasons_of(root, "greedy")
    for k in returned:
        assert reasons[k] == f"{budget + 10} queries metered, over the budget of {budget}"
    assert by_id(result)["success_rate_greedy"].details["refused"]["queries"] == len(returned)


def npy_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode()


def test_unreadable_answers_are_reasons_not_crashes() -> None:
    """Whatever comes back, the answer is read into per-item reasons: nothing raises."""
    deep = "[" * 100_000  # JSON nested deeper than Python's decoder recurses
    assert parse_answer(deep, None, 1, (2,)).error.startswith("bad output: not JSON")
    offers, refused = parse_catalogue('{"attacks": ' + deep, "digital", ("linf",), 5)
    assert offers == [] and refused[0].startswith("the catalogue is not JSON")
    huge = parse_answer({"examples": [[10**400, 0.5], [0.5, 0.5]]}, None, 2, (2,))
    assert huge.reasons == ["not an array of numbers", ""] and huge.returned.tolist() == [
        False,
        True,
    ]
    wild = {"rotation_deg": 10**400, "shift_px": [0, 0]}
    moved = parse_answer({"examples": [[0.5, 0.5]], "moves": [wild]}, None, 1, (2,))
    assert not moved.returned[0] and moved.reasons[0].startswith("the move needs rotation_deg")
    assert parse_answer({"examples": "x"}, None, 1, (2,)).error == (
        "bad output: no list of examples for 1 items"
    )
    assert (
        parse_answer({"examples": []}, None, 1, (2,)).error == "bad output: 0 examples for 1 items"
    )
    assert parse_answer({"error": "out of memory"}, None, 1, (2,)).error == (
        "the platform returned no examples: out of memory"
    )
    bad64 = parse_answer({"examples_npy_b64": "not base64!"}, None, 1, (2,))
    assert bad64.error.startswith("bad output: examples_npy_b64 is not a base64 .npy")
    # the .npy form, as documented: the values as sent, `returned` per item
    sent = np.array([[0.25, 0.5], [np.nan, 1.0]], dtype=F32)
    read = parse_answer(
        {"examples_npy_b64": npy_b64(sent), "returned": [True, False]}, None, 2, (2,)
    )
    assert np.array_equal(read.adv, sent, equal_nan=True) and read.returned.tolist() == [
        True,
        False,
    ]
    assert read.reasons == ["", "no example returned"]
    wrong = parse_answer({"examples_npy_b64": npy_b64(sent[:1])}, None, 2, (2,))
    assert wrong.error == "bad output: examples of shape [1, 2], expected [2, 2]"


def test_query_endpoint_refusals() -> None:
    from harness.probes.security.query_server import QueryServer

    def answer(x: np.ndarray, claim: int | None) -> tuple[np.ndarray, np.ndarray]:
        scores = np.c_[1.0 - x.reshape(len(x), -1)[:, 0], x.reshape(len(x), -1)[:, 0]]
        return np.argmax(scores, axis=1), scores

    with QueryServer() as server:
        token, (url,) = server.open_job((2,), (0.0, 1.0), answer, [None], budget=3, cap_factor=2.0)
        assert post(url, np.array([[0.9, 0.0], [0.1, 0.0]]))[1]["labels"] == [1, 0]
        assert post(url, np.zeros((4, 2)))[1]["queries_used"] == 6  # over the budget, at the cap
        status, reply = post(url, np.zeros((1, 2)))
        assert status == 429 and "cap of 6" in reply["error"]
        assert post(url, np.array([[np.nan, 0.0]]))[0] == 400
        assert post(url, np.array([[1.5, 0.0]]))[0] == 400
        assert post(url, np.zeros((1, 3)))[0] == 400
        assert post(url.replace("/items/0", "/items/1"), np.zeros((1, 2)))[0] == 404
        (meter,) = server.close_job(token)
        assert (meter.queries, meter.requests, meter.refused_over_cap, meter.bad_requests) == (
            6,
            2,
            1,
            3,
        )
        assert post(url, np.zeros((1, 2)))[0] == 410


# ---------------------------------------------------------------- an honest platform

HONEST_ITEMS = 8


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AttacksArgs, ScoreResult]:
    root = tmp_path_factory.mktemp("honest")
    args = AttacksArgs(
        targets=[
            TargetPlan(name="digits_sklearn", linf=0.25),
            TargetPlan(name="breast_cancer_onnx", linf=0.2),
        ],
        items=HONEST_ITEMS,
        query_budget=HOSTILE_BUDGET,
    )
    failures, result = collect_and_score(
        DigitalAttacksProbe(), args, root, sut=callable_sut(honest)
    )
    assert failures == []
    return root, args, result


def test_rate_pooled_over_targets_with_exact_bounds(
    honest_run: tuple[Path, AttacksArgs, ScoreResult],
) -> None:
    root, _, result = honest_run
    runs = records(root)
    digits = by_hand(*runs[("search", "digits_sklearn")])
    cancer = by_hand(*runs[("search", "breast_cancer_onnx")])
    assert sum(digits) >= HONEST_ITEMS - 1 and sum(cancer) == 0
    m = by_id(result)["success_rate_search"]
    assert_rate(m, sum(digits) + sum(cancer), 2 * HONEST_ITEMS)  # pooled, not averaged
    assert m.details["by_target"] == {
        "breast_cancer_onnx": {"successes": 0, "items": HONEST_ITEMS},
        "digits_sklearn": {"successes": sum(digits), "items": HONEST_ITEMS},
    }
    # the harness's reasons agree with the hand check item by item
    assert [r == "" for r in reasons_of(root, "search")] == digits


def test_an_attack_counts_when_its_bound_clears_the_floor(
    honest_run: tuple[Path, AttacksArgs, ScoreResult],
) -> None:
    root, args, _ = honest_run
    meta, a = records(root)[("search", "digits_sklearn")]
    wins_, n = sum(by_hand(meta, a)), 2 * HONEST_ITEMS
    low = cp_lower_pct(wins_, n)
    rate = 100.0 * wins_ / n

    def count(floor: float) -> Measurement:
        again = DigitalAttacksProbe().score(
            EvidenceReader(root), score_context(args.model_copy(update={"floor_pct": floor}))
        )
        return by_id(again)["digital_attacks_passing"]

    below = count(low - 1e-6)  # the bound clears it: counted, figure and bound
    assert below.value == 1 and below.ci is not None and below.ci.low == 1
    assert below.details["passing"] == ["search"]
    above = count(low + 1e-6)  # the rate clears it, the bound does not: the figure only
    assert above.value == 1 and above.ci is not None and above.ci.low == 0
    assert above.details["passing"] == [] and "search" in above.ci.need
    at_rate = count(rate)  # a rate equal to the floor is not above it
    assert at_rate.value == 0 and at_rate.details["observed_above_floor"] == []


def test_frameworks_attacked_counts_where_the_bound_clears(
    honest_run: tuple[Path, AttacksArgs, ScoreResult],
) -> None:
    root, _, result = honest_run
    digits = by_hand(*records(root)[("search", "digits_sklearn")])
    fw = by_id(result)["frameworks_attacked"]
    assert fw.details["targets"] == {
        "digits_sklearn": "scikit-learn",
        "breast_cancer_onnx": "onnxruntime",
    }
    per = by_id(result)["success_rate_search"].details["by_framework"]
    assert per["scikit-learn"]["low_pct"] == pytest.approx(
        cp_lower_pct(sum(digits), HONEST_ITEMS), rel=1e-9
    )
    assert per["onnxruntime"] == {
        "successes": 0,
        "items": HONEST_ITEMS,
        "low_pct": 0.0,
        "clears": False,
    }
    clears = cp_lower_pct(sum(digits), HONEST_ITEMS) > 50.0
    assert clears  # 7 or 8 of 8: the bound is above 50 %
    assert fw.value == 1 and fw.ci is not None and fw.ci.low == 1
    assert fw.details["frameworks"] == {"scikit-learn": ["search"]}
    # the attack itself, pooled over both frameworks (at most 8 of 16), clears nothing
    count = by_id(result)["digital_attacks_passing"]
    assert count.value == 0 and count.details["passing"] == []


def test_rescoring_the_evidence_gives_the_same_figures(
    honest_run: tuple[Path, AttacksArgs, ScoreResult], tmp_path: Path
) -> None:
    root, args, result = honest_run
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for where in (root, copy):
        again = DigitalAttacksProbe().score(EvidenceReader(where), score_context(args))
        assert again.measurements == result.measurements
        assert again.unmeasured == result.unmeasured
    # a success edited into a failure in the npz (the target's recorded answer on the
    # example set to the true class) changes the figure
    meta, a = records(copy)[("search", "digits_sklearn")]
    k = int(np.flatnonzero(by_hand(meta, a))[0])
    a["adv_labels"][k] = a["labels"][k]
    save_npz(copy / f"jobs/{meta['job']:03d}.npz", a)
    edited = DigitalAttacksProbe().score(EvidenceReader(copy), score_context(args))
    before = by_id(result)["success_rate_search"]
    after = by_id(edited)["success_rate_search"]
    assert after.value == pytest.approx(before.value - 100.0 / (2 * HONEST_ITEMS))
    assert f"digits_sklearn item {k}: the target still answers the true class" in " ".join(
        after.details["refusal_examples"]
    )


# ---------------------------------------------------------------- a run through the CLI

SUITE = """\
schema: harness.suite/v1
id: tiny-d17-attacks
version: 0.0.1
direction: D17
title: One small D17 digital attack task
source: "tests/test_security_attacks.py"
confidence: 0.95
tasks:
  - id: digital
    probe: security.attacks
    title: Square on the digits target
    args:
      items: 3
      targets: [{name: digits_sklearn, linf: 0.25}]
      only_attacks: [square]
      report_attacks: [square]
indicators:
  - id: digital_attacks
    title: Digital attacks that really work
    metric: digital.digital_attacks_passing
    op: ">="
    target: 1
    unit: count
    source: "tests: one attack"
"""


def test_audit_of_a_security_run_and_of_changed_evidence(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    run = tmp_path / "run"
    made = run_cli("run", suite, "--out", run)
    assert made.code == 0, made.stdout + made.stderr
    audited = run_cli("audit", run)
    assert audited.code == 0 and audited.stdout.startswith("OK: verified"), (
        audited.stdout + audited.stderr
    )
    npz = run / "evidence" / "tasks" / "digital" / "jobs" / "001.npz"
    statement = json.loads((run / "statement.json").read_text())
    rate = next(
        m
        for m in statement["predicate"]["measurements"]
        if m["id"] == "digital.success_rate_square"
    )
    assert rate["value"] > 0 and "reference platform" in rate["method"]
    # one changed byte: the digest no longer matches
    flipped = tmp_path / "flipped"
    shutil.copytree(run, flipped)
    flip_byte(flipped / npz.relative_to(run))
    result = run_cli("audit", flipped)
    assert result.code == 1 and "jobs/001.npz" in result.stderr and "sha256" in result.stderr
    # the examples moved out of the budget, the evidence listed again and re-signed:
    # the digests hold, the re-scoring does not
    forged = tmp_path / "forged"
    shutil.copytree(run, forged)
    path = forged / npz.relative_to(run)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    clean = arrays["clean"]
    arrays["adv"] = np.where(clean < 0.5, clean + 0.5, clean - 0.5).astype(F32)
    save_npz(path, arrays)
    forge(forged)
    result = run_cli("audit", forged)
    assert result.code == 1 and result.stdout.startswith("MISMATCH"), result.stdout + result.stderr
    assert "success_rate_square" in result.stdout


# ---------------------------------------------------------------- the reference platform


def test_reference_platform_attacks_digits(tmp_path: Path) -> None:
    args = AttacksArgs(
        targets=[TargetPlan(name="digits_sklearn", linf=0.25, l2=1.5)],
        items=4,
        only_attacks=["square", "simba"],
    )
    failures, result = collect_and_score(DigitalAttacksProbe(), args, tmp_path)
    assert failures == []
    assert json.loads((tmp_path / "sut.json").read_text())["reference"] is True
    offered = {o["name"] for o in json.loads((tmp_path / "catalogue.json").read_text())["offers"]}
    assert {"square", "simba", "hop_skip_jump", "boundary"} <= offered
    runs = records(tmp_path)
    assert {a for a, _ in runs} == {"square", "simba"}  # only these were run
    total = 0
    for attack in ("square", "simba"):
        m = by_id(result)[f"success_rate_{attack}"]
        verdicts = by_hand(*runs[(attack, "digits_sklearn")])
        assert_rate(m, sum(verdicts), 4)
        assert "the harness's reference platform (adversarial-robustness-toolbox)" in m.method
        total += sum(verdicts)
    assert total > 0


# ---------------------------------------------------------------- the TensorFlow target


def probe_once(message: dict[str, Any]) -> Any:
    """`probe`: one query of each item through its endpoint, the clean inputs back."""
    if message["task"] == "attacks.catalogue":
        return catalogue({"probe": "linf"}, targets=["signs_keras"])
    labels = [
        post(i["endpoint"], np.asarray([i["input"]], F32))[1]["labels"][0] for i in message["items"]
    ]
    return {"examples": [i["input"] for i in message["items"]], "notes": {"labels": labels}}


def test_tensorflow_target_builds_and_answers(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    target = security_targets.build("signs_keras", 0)
    assert target.info.framework == "tensorflow" and target.info.input_shape == (3, 32, 32)
    assert target.describe()["held_out_accuracy"] > 0.8
    args = AttacksArgs(targets=[TargetPlan(name="signs_keras", linf=0.1)], items=2, query_budget=5)
    failures, result = collect_and_score(
        DigitalAttacksProbe(), args, tmp_path, sut=callable_sut(probe_once)
    )
    assert failures == []
    meta, a = records(tmp_path)[("probe", "signs_keras")]
    assert meta["framework"] == "tensorflow"
    assert meta["platform_notes"]["labels"] == a["labels"].tolist()  # the endpoint answered right
    assert a["queries"].tolist() == [1, 1]
    pool = target.pool()
    assert np.array_equal(
        decide(target, pool.inputs[:8])[0], np.argmax(target.scores(pool.inputs[:8]), axis=1)
    )
    assert_rate(by_id(result)["success_rate_probe"], 0, 2)


# ---------------------------------------------------------------- physical attacks


def fragile(message: dict[str, Any]) -> Any:
    """`edge`: for each item, the point just past the target's decision boundary on the line
    from the clean input to an adversarial candidate (bisection through the endpoint): it
    fools the target as sent with a perturbation no larger than needed, which the physical
    transformations mostly undo."""
    if message["task"] == "attacks.catalogue":
        return catalogue({"edge": "linf"}, mode="physical")
    eps = float(message["threat_model"]["epsilon"])
    examples: list[np.ndarray | None] = []
    for k, item in enumerate(message["items"]):
        found = search(message, k, 30)
        if found is None:
            examples.append(None)
            continue
        clean = np.asarray(item["input"], F32)
        low, high = 0.0, 1.0
        for _ in range(12):
            mid = (low + high) / 2
            x = inside_linf(clean, clean + mid * (found - clean), eps)
            _, reply = post(item["endpoint"], x[np.newaxis])
            if wins(item, reply["labels"]):
                high = mid
            else:
                low = mid
        examples.append(inside_linf(clean, clean + high * (found - clean), eps))
    return {"examples": as_lists(examples)}


def test_physical_examples_that_fool_only_the_digital_target(tmp_path: Path) -> None:
    """Examples just past the decision boundary fool the target as sent; physically only
    those that fool it on at least half the transformed copies (whose clean copy it gets
    right) count: recomputed here from the recorded draws, transformed and queried again."""
    items = 8
    args = PhysicalAttacksArgs(
        targets=[TargetPlan(name="digits_sklearn", linf=0.25)],
        items=items,
        query_budget=60,
        physical=PhysicalArgs(draws_per_item=8),
    )
    failures, result = collect_and_score(
        PhysicalAttacksProbe(), args, tmp_path, sut=callable_sut(fragile)
    )
    assert failures == []
    meta, a = records(tmp_path)[("edge", "digits_sklearn")]
    assert a["phys_adv_labels"].shape == (items, 8)
    target = security_targets.build("digits_sklearn", 0)
    digital = by_hand(meta, a)  # valid, and fooling the target as sent
    survived = []
    for k in range(items):
        draws = [PhysicalDraw.from_record(d) for d in meta["physical"]["draws"][k]]
        if not a["returned"][k]:
            survived.append(False)
            continue
        shown = [physical(x, d, DOMAIN, None) for x in (a["clean"][k], a["adv"][k]) for d in draws]
        labels = decide(target, np.stack(shown))[0]
        clean_right, fooled = labels[:8] == a["labels"][k], labels[8:] != a["labels"][k]
        assert np.array_equal(labels[:8], a["phys_clean_labels"][k])  # what the harness saw
        assert np.array_equal(labels[8:], a["phys_adv_labels"][k])
        counted = (
            2 * clean_right.sum() >= 8 and (fooled & clean_right).sum() >= 0.5 * clean_right.sum()
        )
        survived.append(bool(digital[k] and counted))
    assert sum(digital) >= 5
    assert (
        sum(d and not s for d, s in zip(digital, survived, strict=True)) >= 2
    )  # fooled digitally only
    assert_rate(by_id(result)["success_rate_edge"], sum(survived), items)
    reasons = item_reasons(meta, a, 0.5)
    assert [r == "" for r in reasons] == survived
    assert all(
        r.startswith("survived ")
        for r, d, s in zip(reasons, digital, survived, strict=True)
        if d and not s
    )
    count = by_id(result)["physical_attacks_passing"]
    assert count.value == int(100 * sum(survived) > 50 * items)


def physical_record(
    clean_labels: list[list[int]], adv_labels: list[list[int]], label: int = 1, goal: int = -1
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A physical job's record made by hand: items whose examples are valid and fool the
    target as sent; the labels of the transformed copies as given."""
    n, draws = len(clean_labels), len(clean_labels[0])
    clean = np.full((n, 4), 0.5, dtype=F32)
    meta = {
        "threat_model": {"norm": "linf", "epsilon": 0.1, "query_budget_per_item": 10},
        "domain": [0.0, 1.0],
        "channel_axis": None,
        "items": n,
        "item_reasons": [""] * n,
        "physical": {"draws_per_item": draws, "min_survival": 0.5},
    }
    arrays = {
        "clean": clean,
        "adv": clean + F32(0.05),
        "labels": np.full(n, label),
        "goal": np.full(n, goal),
        "clean_labels": np.full(n, label),
        "returned": np.ones(n, dtype=bool),
        "moves": np.full((n, 3), np.nan),
        "queries": np.full(n, 10),
        "adv_labels": np.full(n, 0),
        "phys_clean_labels": np.asarray(clean_labels),
        "phys_adv_labels": np.asarray(adv_labels),
    }
    return meta, arrays


def test_physical_rule_on_constructed_records() -> None:
    right, wrong = 1, 0
    meta, a = physical_record(
        [
            [right] * 8,  # 0: every clean copy right; the example survives 4 of 8: counts
            [right] * 8,  # 1: survives 3 of 8: fails
            [wrong] * 5 + [right] * 3,  # 2: the transformations alone defeat 5 of 8 clean copies
            [wrong] * 4 + [right] * 4,  # 3: half defeated: judged on the 4 others, survives 2
            [wrong] * 4 + [right] * 4,  # 4: fooled only where the clean copy is wrong too: 0
        ],
        [
            [wrong] * 4 + [right] * 4,
            [wrong] * 3 + [right] * 5,
            [wrong] * 8,
            [right] * 4 + [wrong] * 2 + [right] * 2,
            [wrong] * 4 + [right] * 4,
        ],
    )
    reasons = item_reasons(meta, a, 0.5)
    assert reasons[0] == ""
    assert reasons[1] == (
        "survived 3 of the 8 transformed copies whose clean copy the target gets right (needs 50%)"
    )
    assert reasons[2] == "the transformations alone defeat the clean input in 5 of 8 draws"
    assert reasons[3] == ""
    assert reasons[4].startswith("survived 0 of the 4 transformed copies")
    # a targeted attack survives only where the copy lands on the goal class
    meta, a = physical_record([[1] * 4], [[2, 2, 0, 0]], label=1, goal=2)
    assert item_reasons(meta, a, 0.5) == [""]
    assert item_reasons(meta, a, 0.75)[0].startswith("survived 2 of the 4")
    # and the digital checks still come first: over the budget is over the budget
    meta, a = physical_record([[1] * 4], [[0] * 4])
    a["adv"] = a["clean"] + F32(0.25)
    assert item_reasons(meta, a, 0.5)[0].startswith("L-inf 0.25 > epsilon 0.1")


def test_one_attack_under_two_names_counts_once(tmp_path: Path) -> None:
    args = AttacksArgs(
        targets=[TargetPlan(name="digits_sklearn", linf=0.25)],
        items=HONEST_ITEMS,
        query_budget=HOSTILE_BUDGET,
    )
    failures, result = collect_and_score(
        DigitalAttacksProbe(), args, tmp_path, sut=callable_sut(renamed)
    )
    assert failures == []
    figures = by_id(result)
    wins_ = sum(by_hand(*records(tmp_path)[("search", "digits_sklearn")]))
    assert wins_ >= HONEST_ITEMS - 1
    # both rates are reported, as measured; the count holds the attack once
    assert figures["success_rate_search"].value == figures["success_rate_search_again"].value
    count = figures["digital_attacks_passing"]
    assert count.value == 1
    assert count.details["attacks"]["search_again"]["same_as"] == "search"
    assert count.details["attacks"]["search"]["same_as"] == ""
