"""D17 risk-monitoring models (`risk.models`): the documented JSONL and CSV formats read
strictly, detection and false-alarm rates with exact bounds against scipy's beta quantiles
on lab sets a scripted platform answers by a known rule, dev-set figures never deciding,
the reference risk platform end to end (in-process and as a batch command), and platforms
that answer badly (a crash, a malformed answer, an unknown kind), each recorded with its
reason."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from probehelpers import by_id, collect_and_score, cp_lower_pct, cp_upper_pct

import harness.probes.riskmodels  # noqa: F401  (registers the probe)
from harness.adapters.protocol import Sample, SampleOutput
from harness.errors import BadInput
from harness.probes.riskmodels.models import RiskArgs, RiskModelsProbe, dev_items
from harness.probes.riskmodels.riskset import jsonl_bytes, read_riskset
from harness.refengines import risk_platform as kd
from harness.schema import SutSpec

# ---------------------------------------------------------------- the formats

JSONL_EXAMPLE = (  # the two lines of the format's docstring
    '{"id": "tx-000017", "features": {"amount": 912.5, "hour": 3, "channel": "online"}, '
    '"label": 1}\n'
    '{"id": "tx-000018", "features": {"amount": 14.2, "hour": 13, "channel": "pos"}, '
    '"label": 0}\n'
)
CSV_EXAMPLE = "id,label,amount,hour,channel\ntx-000017,1,912.5,3,online\ntx-000018,0,14.2,13,pos\n"


def test_documented_examples_read_alike(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(JSONL_EXAMPLE)
    (tmp_path / "a.csv").write_text(CSV_EXAMPLE)
    a, b = read_riskset(tmp_path / "a.jsonl"), read_riskset(tmp_path / "a.csv")
    assert a == b
    assert a[0].features == {"amount": 912.5, "hour": 3, "channel": "online"}
    assert [i.label for i in a] == [1, 0]


@pytest.mark.parametrize(
    ("name", "text", "field"),
    [
        ("a.jsonl", '{"id": "x", "features": {"a": 1}}\n', "line 1: label"),
        ("a.jsonl", '{"id": "x", "features": {"a": 1}, "label": 2}\n', "line 1: label"),
        ("a.jsonl", '{"id": "x", "features": {"a": NaN}, "label": 1}\n', "line 1"),
        ("a.jsonl", '{"id": "x", "features": {}, "label": 1}\n', "line 1: features"),
        ("a.jsonl", '{"id": "x", "features": {"a": [1]}, "label": 1}\n', "line 1: features.a"),
        (
            "a.jsonl",
            '{"id": "x", "features": {"a": 1}, "label": 1}\n'
            '{"id": "x", "features": {"a": 2}, "label": 0}\n',
            "id 'x'",
        ),
        ("a.csv", "id,label,a\nx,1\n", "line 2"),
        ("a.csv", "id,a\nx,1\n", "line 1"),
        ("a.csv", "id,label,a\nx,yes,1\n", "line 2: label"),
        ("a.txt", "id,label,a\n", None),
    ],
)
def test_bad_sets_name_file_line_and_field(
    tmp_path: Path, name: str, text: str, field: str | None
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadInput) as raised:
        read_riskset(path)
    assert raised.value.source == str(path)
    assert raised.value.field == field


# ---------------------------------------------------------------- a scripted platform


class RulePlatform:
    """Three models of kind `transaction_fraud`: `rule` (and `rule_copy`, the same rule
    with another score) flags an item when amount > 500,
    `flaky` does the same but crashes on every item whose hour is 7, answers "maybe" when
    it is 8 and gives a NaN score when it is 9."""

    models: Sequence[dict[str, str]] = (
        {"name": "rule", "kind": "transaction_fraud"},
        {"name": "flaky", "kind": "transaction_fraud"},
        {"name": "rule_copy", "kind": "transaction_fraud"},  # `rule` under another name
    )

    def describe(self) -> dict[str, Any]:
        return {"engine": "scripted rule platform"}

    def close(self) -> None:
        pass

    def _one(self, data: dict[str, Any]) -> Any:
        if data["task"] == "risk.models":
            return {"models": list(self.models)}
        assert "label" not in data and "id" not in data  # the model never sees them
        f = data["features"]
        if data["model"] == "flaky" and f["hour"] == 7:
            raise RuntimeError("model fell over")
        if data["model"] == "flaky" and f["hour"] == 8:
            return {"risky": "maybe"}
        if data["model"] == "flaky" and f["hour"] == 9:
            return {"risky": True, "score": float("nan")}
        score = f["amount"] * (2 if data["model"] == "rule_copy" else 1)
        return json.dumps({"risky": f["amount"] > 500, "score": score})

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        out = []
        for s in samples:
            try:
                out.append(SampleOutput(s.index, self._one(s.data), None, 0.0))
            except Exception as error:
                out.append(SampleOutput(s.index, None, f"crashed: {error}", 0.0))
        return out


def lab_set(path: Path, n: int = 300) -> list[dict[str, Any]]:
    lines = []
    for k in range(n):
        label = int(k % 3 == 0)
        amount = (600 + k) if label and k % 30 else (100 + k % 50)  # some risky ones small
        if not label and k % 25 == 1:
            amount = 800  # an alarm
        lines.append(
            {"id": f"lab-{k}", "features": {"amount": amount, "hour": k % 24}, "label": label}
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return lines


def test_rates_and_bounds_against_scipy(tmp_path: Path) -> None:
    lines = lab_set(tmp_path / "lab.jsonl")
    datasets = {"risk_transaction_fraud": tmp_path / "lab.jsonl"}
    args = RiskArgs(min_detection_pct=80, max_false_alarm_pct=10, expected_models=["rule", "gone"])
    failures, result = collect_and_score(
        RiskModelsProbe(), args, tmp_path / "ev", datasets, session=RulePlatform()
    )
    risky = [x for x in lines if x["label"]]
    normal = [x for x in lines if not x["label"]]
    hit = sum(x["features"]["amount"] > 500 for x in risky)
    alarms = sum(x["features"]["amount"] > 500 for x in normal)
    figures = by_id(result)
    d, fa = figures["detection_rate_rule"], figures["false_alarm_rate_rule"]
    assert d.value == pytest.approx(100 * hit / len(risky))
    assert d.ci is not None and fa.ci is not None
    assert d.ci.low == pytest.approx(cp_lower_pct(hit, len(risky)), rel=1e-9)
    assert fa.value == pytest.approx(100 * alarms / len(normal))
    assert fa.ci.high == pytest.approx(cp_upper_pct(alarms, len(normal)), rel=1e-9)
    assert not d.invalid_reason and not fa.invalid_reason
    # flaky: hour 7 crashes, 8 and 9 are malformed; each counted against it, recorded
    bad = [x for x in lines if x["features"]["hour"] in (7, 8, 9)]
    flaky_hit = sum(
        x["features"]["amount"] > 500 and x["features"]["hour"] not in (7, 8, 9) for x in risky
    )
    flaky_alarm = sum(
        x["features"]["amount"] > 500 or x["features"]["hour"] in (7, 8, 9) for x in normal
    )
    fd, ffa = figures["detection_rate_flaky"], figures["false_alarm_rate_flaky"]
    assert fd.value == pytest.approx(100 * flaky_hit / len(risky))
    assert ffa.value == pytest.approx(100 * flaky_alarm / len(normal))
    assert f"{len(bad)} of 300 items failed" in fd.invalid_reason and fd.failures_count_against
    assert any("flaky" in f and "model fell over" in f for f in failures)
    records = json.loads((tmp_path / "ev" / "answers.json").read_text())["models"][1]["records"]
    nan = [r for r in records if r["output"] == {"risky": True, "score": "NaN"}]
    assert len(nan) == sum(x["features"]["hour"] == 9 for x in lines)
    count = figures["risk_models_passing"]
    rows = count.details["models"]
    expected_pass = cp_lower_pct(hit, len(risky)) >= 80 and cp_upper_pct(alarms, len(normal)) <= 10
    assert rows["rule"]["passes"] is expected_pass
    assert rows["flaky"]["passes"] is False and "items failed" in rows["flaky"]["reason"]
    assert count.value == int(expected_pass) and not count.invalid_reason
    assert expected_pass  # so the copy below is a copy of a passing model
    assert rows["rule_copy"]["same_as"] == "rule" and not rows["rule_copy"]["passes"]
    assert {u.id for u in result.unmeasured} >= {"detection_rate_gone", "false_alarm_rate_gone"}
    # the lab's file reached the evidence byte for byte, after the answers
    assert (tmp_path / "ev" / "sets" / "transaction_fraud.jsonl").read_bytes() == (
        tmp_path / "lab.jsonl"
    ).read_bytes()


class OddPlatform(RulePlatform):
    models = (
        {"name": "rule", "kind": "transaction_fraud"},
        {"name": "weird", "kind": "weather"},  # not a kind of the task
        {"name": "mine", "kind": "custom_kind"},  # a kind of the task with no set
        {"name": "Rule Two", "kind": "spam"},
    )


def test_unknown_kinds_and_names_refused(tmp_path: Path) -> None:
    args = RiskArgs(kinds=["transaction_fraud", "custom_kind"], dev_risky=30, dev_normal=60)
    failures, result = collect_and_score(RiskModelsProbe(), args, tmp_path, session=OddPlatform())
    count = by_id(result)["risk_models_passing"]
    refused = " ".join(count.details["refused_declarations"])
    assert "'weather' is not one of the task's kinds" in refused
    assert "'Rule Two' is not a lower-case identifier" in refused
    assert "--dataset risk_custom_kind=PATH" in count.details["models"]["mine"]["reason"]
    assert any("custom_kind" in f for f in failures)
    # on the dev set every figure of `rule` says so
    assert "harness dev set" in by_id(result)["detection_rate_rule"].invalid_reason


# ---------------------------------------------------------------- the reference platform

SMALL = {"dev_risky": 60, "dev_normal": 240}


def test_reference_platform_on_dev_sets(tmp_path: Path) -> None:
    args = RiskArgs.model_validate(SMALL)
    failures, result = collect_and_score(RiskModelsProbe(), args, tmp_path)
    assert failures == []
    count = by_id(result)["risk_models_passing"]
    assert count.value >= 10, count.details["models"]
    assert set(count.details["sectors_passing"]) == {"finance", "government", "e-commerce"}
    assert "passed on a dev set" in count.invalid_reason  # dev figures never decide
    answers = json.loads((tmp_path / "answers.json").read_text())["models"]
    assert len(answers) == 12 and len({a["kind"] for a in answers}) == 12
    for run in answers:  # detection recomputed by hand from the evidence
        items = {i.id: i for i in dev_items(args, run["kind"])}
        risky = [r for r in run["records"] if items[r["id"]].label == 1]
        hit = sum(json.loads(r["output"])["risky"] for r in risky)
        m = by_id(result)[f"detection_rate_{run['name']}"]
        assert m.value == pytest.approx(100 * hit / len(risky))
        assert "harness dev set" in m.invalid_reason and not m.failures_count_against


def test_byte_copy_of_the_dev_set_is_dev(tmp_path: Path) -> None:
    args = RiskArgs.model_validate({"kinds": ["phishing_url"], **SMALL})
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(jsonl_bytes(dev_items(args, "phishing_url")))
    _, result = collect_and_score(
        RiskModelsProbe(), args, tmp_path / "ev", {"risk_phishing_url": copy}
    )
    m = by_id(result)["detection_rate_phishing_url_gbm"]
    assert "byte copy of the dev set" in m.invalid_reason
    # a lab's set holding some of the dev items (20 of 220) is dev data too
    own = kd.generate(kd.KINDS["phishing_url"], 5, 40, 160, "lab")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(jsonl_bytes([*own, *dev_items(args, "phishing_url")[:20]]))
    _, result = collect_and_score(
        RiskModelsProbe(), args, tmp_path / "ev2", {"risk_phishing_url": mixed}
    )
    m = by_id(result)["detection_rate_phishing_url_gbm"]
    assert "items of the harness's dev set" in m.invalid_reason


def test_reference_platform_as_a_batch_command(tmp_path: Path) -> None:
    """The reference platform as a `command` SUT in batch mode (one path a line), on a lab
    set of its own: 11 of its 12 models are refused (their kinds are not the task's)."""
    kind = kd.KINDS["phishing_url"]
    items = kd.generate(kind, 99, 40, 160, "lab")
    (tmp_path / "lab.jsonl").write_bytes(jsonl_bytes(items))
    args = RiskArgs(kinds=["phishing_url"], batch_size=50)
    sut = SutSpec.model_validate(
        {
            "adapter": "command",
            "argv": [sys.executable, "-m", "harness.refengines.risk_platform", "--batch"],
            "mode": "batch",
            "timeout_s": 120,
        }
    )
    failures, result = collect_and_score(
        RiskModelsProbe(),
        args,
        tmp_path / "ev",
        {"risk_phishing_url": tmp_path / "lab.jsonl"},
        sut=sut,
        sut_base_dir=tmp_path,
    )
    assert [f for f in failures if "refused" not in f] == []
    figures = by_id(result)
    count = figures["risk_models_passing"]
    assert len(count.details["refused_declarations"]) == 11
    d = figures["detection_rate_phishing_url_gbm"]
    records = json.loads((tmp_path / "ev" / "answers.json").read_text())["models"][0]["records"]
    labels = {i.id: i.label for i in items}
    hit = sum(json.loads(r["output"])["risky"] for r in records if labels[r["id"]])
    assert d.value == pytest.approx(100 * hit / 40)
    assert not d.invalid_reason
    assert count.value == int(count.details["models"]["phishing_url_gbm"]["passes"])
