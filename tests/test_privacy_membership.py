"""D17 membership inference (`privacy.membership`): AUC and TPR at FPR against
sklearn.metrics (roc_auc_score, roc_curve) on hand-made scores, the bootstrap's spread
against DeLong's variance (an independent formula), the reference platform (ART + simple
baselines) end to end on small targets with every figure recomputed from the evidence with
sklearn, and platforms that answer badly (NaN, the wrong number of scores, a crash, no
method list), each recorded per item with its reason."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from probehelpers import by_id, collect_and_score
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

import harness.probes.privacy  # noqa: F401  (registers the probe)
from harness.adapters.protocol import Sample, SampleOutput
from harness.probes.privacy import membership
from harness.probes.privacy.membership import MembershipArgs, MembershipProbe
from harness.probes.privacy.targets import TargetSpec
from harness.schema import SutSpec
from harness.scoring import membership as ms


def sk_tpr(members: npt.ArrayLike, nonmembers: npt.ArrayLike, fpr: float) -> float:
    y = np.r_[np.ones(np.size(members)), np.zeros(np.size(nonmembers))]
    f, t, _ = roc_curve(y, np.r_[members, nonmembers], drop_intermediate=False)
    return float(t[f <= fpr].max())


def sk_auc(members: npt.ArrayLike, nonmembers: npt.ArrayLike) -> float:
    y = np.r_[np.ones(np.size(members)), np.zeros(np.size(nonmembers))]
    return float(roc_auc_score(y, np.r_[members, nonmembers]))


# ---------------------------------------------------------------- pure figures


def test_auc_worked_by_hand() -> None:
    # pairs (member, non-member): 3>2, 3>0, 2=2 (1/2), 2>0, 1<2, 1>0 -> 4.5 / 6
    assert ms.auc([3, 2, 1], [2, 0]) == pytest.approx(0.75, abs=1e-15)
    assert ms.auc([1, 1], [1, 1]) == 0.5
    assert ms.auc([0], [1]) == 0.0


@pytest.mark.parametrize("case", range(40))
def test_auc_and_tpr_match_sklearn(case: int) -> None:
    rng = np.random.default_rng(case)
    members = int(rng.integers(1, 80))
    nonmembers = int(rng.integers(1, 2500))
    levels = int(rng.integers(2, 40))  # few levels: many ties
    m = rng.integers(0, levels, members) + (0.3 if case % 3 else 0.0)
    n = rng.integers(0, levels, nonmembers).astype(float)
    if case % 4 == 0:
        m, n = rng.normal(0.4, 1.0, members), rng.normal(0.0, 1.0, nonmembers)
    assert ms.auc(m, n) == pytest.approx(sk_auc(m, n), abs=1e-12)
    for fpr in (0.001, 0.003, 0.01, 0.1, 0.5, 1.0):
        assert ms.tpr_at_fpr(m, n, fpr) == pytest.approx(sk_tpr(m, n, fpr), abs=1e-12)


def test_tpr_at_low_fpr_by_hand() -> None:
    # 1000 non-members 0..999, FPR 0.1 % allows one: threshold above 998
    n = np.arange(1000.0)
    m = np.array([999.5, 999.0, 998.5, 10.0])
    assert ms.tpr_at_fpr(m, n, 0.001) == pytest.approx(0.75)  # 999.5, 999.0, 998.5 > 998
    assert ms.tpr_at_fpr(m, n, 0.0) == pytest.approx(0.25)  # only 999.5 > 999
    assert ms.nonmembers_needed(0.001) == 1000
    assert ms.nonmembers_needed(0.01) == 100


def test_bad_scores_refused() -> None:
    with pytest.raises(ValueError):
        ms.auc([1.0, math.nan], [0.0])
    with pytest.raises(ValueError):
        ms.auc([], [0.0])


def delong_se(m: np.ndarray, n: np.ndarray) -> float:
    """DeLong's standard error of the AUC (structural components; independent of the
    bootstrap)."""
    v10 = np.array([(np.sum(x > n) + 0.5 * np.sum(x == n)) / n.size for x in m])
    v01 = np.array([(np.sum(m > y) + 0.5 * np.sum(m == y)) / m.size for y in n])
    return float(math.sqrt(v10.var(ddof=1) / m.size + v01.var(ddof=1) / n.size))


def test_bootstrap_spread_agrees_with_delong() -> None:
    rng = np.random.default_rng(3)
    m, n = rng.normal(0.5, 1.0, 400), rng.normal(0.0, 1.0, 900)
    b = ms.mean_auc_interval([(m, n)], 0.95, resamples=2000, seed=1)
    assert b.value == pytest.approx(sk_auc(m, n), abs=1e-12)
    z = stats.norm.ppf(0.95)
    se = delong_se(m, n)
    assert (b.value - b.low) / z == pytest.approx(se, rel=0.15)
    assert (b.high - b.value) / z == pytest.approx(se, rel=0.15)
    # the mean of two independent targets: variances add, over 2^2
    m2, n2 = rng.normal(0.2, 1.0, 300), rng.normal(0.0, 1.0, 1200)
    b2 = ms.mean_auc_interval([(m, n), (m2, n2)], 0.95, resamples=2000, seed=1)
    assert b2.value == pytest.approx((sk_auc(m, n) + sk_auc(m2, n2)) / 2, abs=1e-12)
    se2 = math.sqrt(se**2 + delong_se(m2, n2) ** 2) / 2
    assert (b2.value - b2.low) / z == pytest.approx(se2, rel=0.15)


def test_bootstrap_tpr_and_seeds() -> None:
    rng = np.random.default_rng(4)
    m, n = rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 2000)
    b = ms.mean_tpr_interval([(m, n)], 0.01, 0.95, resamples=500, seed=7)
    assert b.value == pytest.approx(sk_tpr(m, n, 0.01), abs=1e-12)
    assert b.low <= b.value <= b.high and b.low < b.high
    again = ms.mean_tpr_interval([(m, n)], 0.01, 0.95, resamples=500, seed=7)
    assert again == b
    # perfect separation: every resample gives 1
    assert ms.mean_auc_interval([([5.0, 6.0], [1.0, 2.0])], 0.95, 200).low == 1.0


def test_rank_correlation_against_scipy() -> None:
    rng = np.random.default_rng(8)
    for _ in range(10):
        a = rng.integers(0, 6, 300).astype(float)  # ties
        b = a + rng.normal(0, 2.0, 300)
        assert ms.rank_correlation(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert ms.rank_correlation([1.0, 1.0], [1.0, 2.0]) == 0.0
    x = rng.normal(size=200)
    same = ms.same_methods({"a": [x], "b": [np.exp(x)], "c": [-x], "d": [x + 1e-9]}, 0.99)
    assert same == {"a": None, "b": "a", "c": None, "d": "a"}


# ---------------------------------------------------------------- the reference platform


@pytest.fixture(autouse=True)
def fixed_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """The split seed comes from `secrets` in a run; fixed here so the tests repeat."""
    monkeypatch.setattr(membership.secrets, "randbits", lambda bits: 20240917)


SYNTH = TargetSpec(name="synthetic-torch-mlp", members=200, nonmembers=400, shadow=100)
SMALL = [
    TargetSpec(name="digits-mlp", members=200, shadow=300),
    TargetSpec(name="breast-cancer-rf"),
    TargetSpec(name="synthetic-torch-mlp", members=300, nonmembers=1000, shadow=300),
]


def recomputed(root: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(method, target) -> (member scores, non-member scores) from the evidence alone."""
    truth = {t["id"]: t for t in json.loads((root / "truth.json").read_text())["targets"]}
    out = {}
    for item in json.loads((root / "answers.json").read_text())["items"]:
        output = item["output"]
        output = json.loads(output) if isinstance(output, str) else output
        scores = np.asarray(output["scores"])
        member = np.asarray(truth[item["target"]]["is_member"], bool)
        out[(item["method"], item["target"])] = (scores[member], scores[~member])
    return out


def test_reference_platform_end_to_end(tmp_path: Path) -> None:
    args = MembershipArgs(targets=SMALL, resamples=300, expected_methods=["loss_threshold"])
    failures, result = collect_and_score(MembershipProbe(), args, tmp_path)
    assert failures == []
    figures = by_id(result)
    count = figures["membership_methods_passing"]
    assert count.value >= 3, count.details["methods"]
    rows = count.details["methods"]
    # ART's LabelOnlyGapAttack is its rule-based attack under another name: counted once
    assert rows["art_label_only_gap"]["same_as"] == "art_rule_based"
    assert not rows["art_label_only_gap"]["passes"]
    groups = recomputed(tmp_path)
    for method, row in rows.items():
        aucs = [sk_auc(*groups[(method, t)]) for t in ("t1", "t2", "t3")]
        auc = figures[f"auc_{method}"]
        assert auc.value == pytest.approx(float(np.mean(aucs)), abs=1e-12)
        assert auc.ci is not None and auc.ci.low is not None
        assert row["passes"] == (auc.ci.low >= 0.55 and row["same_as"] is None)
        # breast cancer has 200 non-members: left out of TPR at 0.1 % (needs 1000), kept at 1 %
        low = figures[f"tpr_at_fpr_0_1pct_{method}"]
        assert low.details["targets_used"] == ["t1", "t3"]
        assert "need 1000" in low.details["targets_short_of_nonmembers"]["t2"]
        expected = np.mean([sk_tpr(*groups[(method, t)], 0.001) for t in ("t1", "t3")])
        assert low.value == pytest.approx(100 * expected, abs=1e-9)
        one = figures[f"tpr_at_fpr_1pct_{method}"]
        expected = np.mean([sk_tpr(*groups[(method, t)], 0.01) for t in ("t1", "t2", "t3")])
        assert one.value == pytest.approx(100 * expected, abs=1e-9)
        assert not auc.invalid_reason and not one.invalid_reason
    # the platform reached the targets through the metered endpoint only
    items = json.loads((tmp_path / "answers.json").read_text())["items"]
    assert all(i["meter"]["records"] >= 1 for i in items)
    assert all(i["meter"]["records"] <= i["query_budget_records"] for i in items)
    labels_only = [i for i in items if i["access"] == "labels"]
    assert labels_only and all(i["method"] == "art_label_only_gap" for i in labels_only)
    # re-scoring the same evidence gives the same figures
    from probehelpers import score_context

    from harness.evidence import EvidenceReader

    again = MembershipProbe().score(EvidenceReader(tmp_path), score_context(args))
    assert again.measurements == result.measurements


# ---------------------------------------------------------------- platforms that answer badly


class BadPlatform:
    """Lists six methods: `good` (the negated loss, through the query endpoint), `nan`
    (one score NaN), `short` (a score missing), `crash` (raises), `ties` (every score
    the same: a method that answers but detects nothing) and `good_again` (`good`'s scores
    through exp: the same method under another name). Notes whether the truth was in
    the evidence while it answered."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.truth_seen = False

    def describe(self) -> dict[str, Any]:
        return {"engine": "scripted bad platform"}

    def close(self) -> None:
        pass

    def _one(self, data: dict[str, Any]) -> Any:
        self.truth_seen |= (self.root / "truth.json").exists()
        if data["task"] == "membership.methods":
            names = ["good", "nan", "short", "crash", "ties", "good_again"]
            return {"methods": [{"name": n, "access": "probabilities"} for n in names]}
        x, y = data["candidates"]["x"], data["candidates"]["y"]
        method = data["method"]
        if method == "crash":
            raise RuntimeError("platform fell over")
        if method == "ties":
            return {"scores": [0.5] * len(y)}
        body = json.dumps({"x": x}).encode()
        request = urllib.request.Request(
            data["target"]["query_url"], body, {"Content-Type": "application/json"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as reply:
            p = np.asarray(json.loads(reply.read())["probabilities"])
        scores = [float(v) for v in np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None))]
        if method == "nan":
            scores[3] = math.nan
        if method == "short":
            scores = scores[:-1]
        if method == "good_again":  # the same detector, its scores through a monotone map
            scores = [float(np.exp(v)) for v in scores]
        return {"scores": scores}

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            try:
                out.append(SampleOutput(s.index, self._one(s.data), None, 0.0))
            except Exception as error:
                out.append(SampleOutput(s.index, None, f"crashed: {error}", 0.0))
        return out


def test_bad_answers_are_recorded_per_item(tmp_path: Path) -> None:
    args = MembershipArgs(targets=[SYNTH], resamples=200)
    platform = BadPlatform(tmp_path)
    failures, result = collect_and_score(MembershipProbe(), args, tmp_path, session=platform)
    assert not platform.truth_seen  # the truth reached the evidence after the answers
    assert failures and "3 of 6" in failures[0]
    rows = by_id(result)["membership_methods_passing"].details["methods"]
    assert rows["good"]["passes"] is True
    assert "score 3 of 600 is 'NaN'" in rows["nan"]["failed_targets"]["t1"]
    assert "599 scores for 600 candidates" in rows["short"]["failed_targets"]["t1"]
    assert "platform fell over" in rows["crash"]["failed_targets"]["t1"]
    assert rows["ties"]["passes"] is False and rows["ties"]["auc"] == 0.5
    assert rows["good_again"]["same_as"] == "good" and not rows["good_again"]["passes"]
    assert by_id(result)["auc_good_again"].value == by_id(result)["auc_good"].value
    assert by_id(result)["membership_methods_passing"].value == 1
    missing = {u.id: u.reason for u in result.unmeasured}
    assert "NaN" in missing["auc_nan"] and "crashed" in missing["auc_crash"]
    # the NaN reached the evidence as text, the rest of the answer with it
    items = json.loads((tmp_path / "answers.json").read_text())["items"]
    nan_item = next(i for i in items if i["method"] == "nan")
    assert nan_item["output"]["scores"][3] == "NaN" and len(nan_item["output"]["scores"]) == 600


class NoList(BadPlatform):
    def _one(self, data: dict[str, Any]) -> Any:
        return {"methods": [{"name": "Bad Name"}, {"name": "x", "access": "logits"}]}


def test_no_method_list(tmp_path: Path) -> None:
    args = MembershipArgs(targets=[TargetSpec(name="breast-cancer-rf")], resamples=200)
    failures, result = collect_and_score(
        MembershipProbe(), args, tmp_path, session=NoList(tmp_path)
    )
    assert failures and "no acceptable method" in failures[0]
    assert result.measurements == []
    assert "not a lower-case identifier" in result.unmeasured[0].reason


def test_callable_adapter_reaches_the_reference_platform(tmp_path: Path) -> None:
    """The reference platform through the `callable` adapter (the README's form)."""
    args = MembershipArgs(targets=[TargetSpec(name="breast-cancer-rf")], resamples=200)
    sut = SutSpec.model_validate(
        {"adapter": "callable", "target": "harness.refengines.privacy_platform:answer"}
    )
    failures, result = collect_and_score(MembershipProbe(), args, tmp_path, sut=sut)
    assert failures == []
    assert json.loads((tmp_path / "sut.json").read_text())["reference"] is False
    auc = by_id(result)["auc_loss_threshold"]
    groups = recomputed(tmp_path)
    assert auc.value == pytest.approx(sk_auc(*groups[("loss_threshold", "t1")]), abs=1e-12)


def test_target_sizes_checked() -> None:
    with pytest.raises(ValueError, match="more than the 569 records"):
        TargetSpec(name="breast-cancer-rf", members=400, nonmembers=200)


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_query_endpoint_meters_and_refuses() -> None:
    from harness.probes.privacy.query_server import QueryServer

    def predict(x: np.ndarray) -> np.ndarray:  # two classes: p(1) = the first feature
        return np.c_[1.0 - x[:, 0], x[:, 0]]

    with QueryServer() as server:
        url = server.open(predict, 2, "probabilities", budget_records=5)
        labels = server.open(predict, 2, "labels", budget_records=5)
        assert post(url, b'{"x": [[0.25, 0], [0.75, 1], [0.5, 2]]}') == (
            200,
            {"probabilities": [[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]]},
        )
        status, reply = post(url, b'{"x": [[0.1, 0], [0.2, 0], [0.3, 0]]}')  # 3 + 3 > 5
        assert status == 429 and "budget" in reply["error"]
        assert post(url, b'{"x": [[0.1]]}')[0] == 400  # one feature short
        assert post(url, b'{"x": [[NaN, 1]]}')[0] == 400
        assert post(labels, b'{"x": [[0.9, 0], [0.1, 0]]}') == (200, {"labels": [1, 0]})
        meter = server.close_endpoint(url)
        assert meter == {
            "requests": 1,
            "records": 3,
            "refused_requests": 1,
            "refused_records": 3,
            "bad_requests": 2,
        }
        assert post(url, b'{"x": [[0.1, 0]]}')[0] == 404  # closed
