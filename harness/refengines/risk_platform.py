"""The harness's reference risk platform and the D17 risk kinds with their seeded dev-set
generators.

The kinds (`KINDS`): the risk-monitoring / early-warning models the D17 suite knows, each
with a seeded dev-set generator (`generate`; made at collect time: their labels are
public, so their figures never decide a verdict).

Three generator styles:
- `classification`: two Gaussian clusters per class in half the dimensions (plus noise
  dimensions), mixed linearly and scaled per feature, under the kind's feature names; the
  structure (centres, mixing, scales) is fixed per kind, the draws seeded per part;
- `transactions`: rule-based card-transaction fraud patterns (card testing: bursts of small
  online payments; night-time large payments at risky, distant merchants; new foreign
  cards spending large online) against everyday spending, with overlapping noise;
- `urls`: phishing-like URLs (IP hosts, `@`, brand look-alikes, long random tokens,
  suspicious TLDs, punycode, plain http) against ordinary ones, with some overlap.

The platform: twelve small scikit-learn risk-monitoring models, one per kind the D17
suite knows (finance, government services, e-commerce), behind the
`risk.models` protocol (dry run, README example, integration test).

Each model is trained, on first use, on the TRAIN part of its kind's dev generator
(`generate`, seed 0; the probe's dev sets are the TEST parts, another
seed stream), 75 % fitting the model and 25 % setting its threshold (the score above
which an item is risky: the 97th percentile of the held-out normal items' scores, for
about 3 % false alarms). Features: numbers as they are (missing ones the training median),
true/false as 1/0, strings one-hot over the values seen in training; URLs through a dozen
hand-made URL features (length, digits, dots, `@`, an IP host, https, suspicious TLDs and
words, punycode, ...).

Answers `{"task": "risk.models"}` with its models and `{"task": "risk.score", "model",
"features"}` with `{"risky": bool, "score": p}`. As a SUT: in-process (the probe's default,
`ReferenceRiskSession`), a callable (`harness.refengines.risk_platform:answer`), or a
command (`python3 -m harness.refengines.risk_platform {input}`, or `--batch` reading one
task path or JSON line per stdin line).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.adapters.protocol import Sample, SampleOutput

# ---------------------------------------------------------------- kinds and dev sets

GENERATOR_VERSION = "risk-dev/1"


@dataclass(frozen=True)
class Kind:
    id: str
    sector: str
    title: str
    style: Literal["classification", "transactions", "urls"]
    features: tuple[str, ...]


def _c(id: str, sector: str, title: str, *features: str) -> Kind:
    return Kind(id, sector, title, "classification", features)


KINDS: dict[str, Kind] = {
    k.id: k
    for k in [
        Kind(
            "transaction_fraud",
            "finance",
            "card transaction fraud",
            "transactions",
            (
                "amount",
                "hour",
                "merchant_risk",
                "distance_km",
                "card_age_days",
                "tx_last_hour",
                "foreign",
                "channel",
            ),
        ),
        _c(
            "loan_default",
            "finance",
            "loan default early warning",
            "income",
            "debt_to_income",
            "credit_history_years",
            "open_loans",
            "late_payments_2y",
            "loan_amount",
            "employment_years",
            "utilisation",
        ),
        _c(
            "money_laundering",
            "finance",
            "anti-money-laundering account monitoring",
            "tx_count_30d",
            "cash_share",
            "cross_border_share",
            "round_amount_share",
            "counterparties",
            "structuring_score",
            "account_age_days",
            "velocity_change",
        ),
        _c(
            "insurance_claim_fraud",
            "finance",
            "insurance claim fraud",
            "claim_amount",
            "policy_age_days",
            "prior_claims",
            "days_to_report",
            "witness_count",
            "repair_shop_risk",
            "claimant_age",
            "police_report",
        ),
        _c(
            "tax_evasion",
            "government",
            "tax evasion risk",
            "declared_income",
            "expense_ratio",
            "cash_business_share",
            "related_party_tx",
            "filing_delay_days",
            "invoice_gap",
            "audit_history",
            "sector_risk",
        ),
        _c(
            "benefit_fraud",
            "government",
            "social benefit fraud",
            "declared_income",
            "household_size",
            "address_changes_1y",
            "claims_other_regions",
            "bank_inflow_gap",
            "employment_signals",
            "duplicate_identity_score",
            "application_edits",
        ),
        _c(
            "procurement_collusion",
            "government",
            "public procurement bid collusion",
            "bid_spread",
            "winner_rotation",
            "bidders",
            "price_to_estimate",
            "same_address_bidders",
            "late_withdrawals",
            "subcontract_to_loser",
            "tender_duration_days",
        ),
        _c(
            "fake_review",
            "e-commerce",
            "fake product reviews",
            "rating",
            "text_length",
            "account_age_days",
            "reviews_last_day",
            "verified_purchase",
            "photo_count",
            "sentiment_extremity",
            "similarity_to_others",
        ),
        _c(
            "promo_abuse",
            "e-commerce",
            "promotion and coupon abuse",
            "coupons_used_30d",
            "accounts_per_device",
            "shipping_address_reuse",
            "order_value",
            "cancellation_rate",
            "new_account_days",
            "payment_methods",
            "referral_chain_depth",
        ),
        _c(
            "account_takeover",
            "e-commerce",
            "account takeover",
            "login_failures_1h",
            "new_device",
            "geo_velocity_kmh",
            "password_reset_recent",
            "session_hour",
            "ip_reputation",
            "shipping_change",
            "mfa_disabled",
        ),
        Kind("phishing_url", "e-commerce", "phishing URLs", "urls", ("url",)),
        _c(
            "spam",
            "e-commerce",
            "marketplace message spam",
            "links_count",
            "caps_ratio",
            "sender_age_days",
            "recipients_count",
            "repeat_ratio",
            "keyword_score",
            "reply_rate",
            "attachment",
        ),
    ]
}


@dataclass(frozen=True)
class Item:
    id: str
    features: dict[str, Any]
    label: int  # 1 risky, 0 normal


def part_seed(kind: str, seed: int, part: str) -> int:
    """The generator seed of one part ("train" or "test") of one kind's dev set."""
    digest = hashlib.sha256(f"{GENERATOR_VERSION}|{kind}|{seed}|{part}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _structure(kind: Kind) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """A classification kind's fixed structure (the same for every seed and part): each
    class's two cluster centres in the informative dimensions, a mixing matrix, and each
    feature's scale and offset."""
    rng = np.random.default_rng(part_seed(kind.id, 0, "structure"))
    width = len(kind.features)
    informative = max(2, width // 2 + 1)
    vertices = rng.choice([-1.0, 1.0], size=(4, informative)) * 1.6
    vertices[2:] += rng.normal(0.0, 0.3, size=(2, informative))
    centres = vertices.reshape(2, 2, informative)  # class 0: rows 0-1, class 1: rows 2-3
    centres[1] = -centres[0] + rng.normal(0.0, 0.5, size=(2, informative))
    mixing = np.eye(width) + rng.normal(0.0, 0.3, size=(width, width))
    scales = 10.0 ** rng.uniform(0.0, 2.0, size=width)
    offsets = rng.uniform(0.0, 50.0, size=width)
    return centres, mixing, scales, offsets, informative


def _classification(
    kind: Kind, rng: np.random.Generator, risky: int, normal: int
) -> list[tuple[dict[str, Any], int]]:
    centres, mixing, scales, offsets, informative = _structure(kind)
    width = len(kind.features)
    out: list[tuple[dict[str, Any], int]] = []
    for label, count in ((1, risky), (0, normal)):
        cluster = rng.integers(0, 2, size=count)
        z = rng.normal(0.0, 1.0, size=(count, width))
        z[:, :informative] += centres[label][cluster]
        x = (z @ mixing) * scales + offsets
        out += [
            ({n: round(float(v), 4) for n, v in zip(kind.features, row, strict=True)}, label)
            for row in x
        ]
    return out


def _transactions(
    rng: np.random.Generator, risky: int, normal: int
) -> list[tuple[dict[str, Any], int]]:
    out: list[tuple[dict[str, Any], int]] = []
    channels = ["pos", "online", "atm"]
    for _ in range(normal):
        out.append(
            (
                {
                    "amount": round(float(rng.lognormal(3.5, 1.0)), 2),
                    "hour": int(rng.choice(24, p=_day_hours())),
                    "merchant_risk": round(float(rng.beta(2, 8)), 3),
                    "distance_km": round(float(rng.exponential(15.0)), 1),
                    "card_age_days": int(rng.integers(30, 3000)),
                    "tx_last_hour": int(rng.poisson(0.5)),
                    "foreign": bool(rng.random() < 0.05),
                    "channel": str(rng.choice(channels, p=[0.6, 0.3, 0.1])),
                },
                0,
            )
        )
    for _ in range(risky):
        pattern = int(rng.integers(3))
        if pattern == 0:  # card testing: a burst of small online payments
            features = {
                "amount": round(float(rng.uniform(0.5, 6.0)), 2),
                "hour": int(rng.integers(24)),
                "merchant_risk": round(float(rng.beta(4, 4)), 3),
                "distance_km": round(float(rng.exponential(200.0)), 1),
                "card_age_days": int(rng.integers(30, 3000)),
                "tx_last_hour": int(rng.integers(4, 15)),
                "foreign": bool(rng.random() < 0.3),
                "channel": "online",
            }
        elif pattern == 1:  # a large night-time payment at a risky, distant merchant
            features = {
                "amount": round(float(rng.lognormal(6.0, 0.8)), 2),
                "hour": int(rng.integers(0, 6)),
                "merchant_risk": round(float(rng.beta(6, 3)), 3),
                "distance_km": round(float(rng.exponential(600.0)), 1),
                "card_age_days": int(rng.integers(30, 3000)),
                "tx_last_hour": int(rng.poisson(1.5)),
                "foreign": bool(rng.random() < 0.4),
                "channel": str(rng.choice(channels, p=[0.3, 0.5, 0.2])),
            }
        else:  # a new foreign card spending large online
            features = {
                "amount": round(float(rng.lognormal(5.5, 0.9)), 2),
                "hour": int(rng.choice(24, p=_day_hours())),
                "merchant_risk": round(float(rng.beta(3, 5)), 3),
                "distance_km": round(float(rng.exponential(900.0)), 1),
                "card_age_days": int(rng.integers(0, 20)),
                "tx_last_hour": int(rng.poisson(1.0)),
                "foreign": True,
                "channel": "online",
            }
        out.append((features, 1))
    return out


def _day_hours() -> np.ndarray:
    weights = np.array(
        [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 4, 4, 4, 5, 4, 4, 4, 4, 5, 5, 5, 4, 3, 2, 1.5]
    )
    return np.asarray(weights / weights.sum())


_WORDS = [
    "shop",
    "news",
    "mail",
    "bank",
    "cloud",
    "store",
    "travel",
    "music",
    "photo",
    "city",
    "market",
    "health",
    "school",
    "sport",
    "food",
    "home",
    "auto",
    "book",
    "games",
    "jobs",
]
_BRANDS = ["paypal", "alipay", "taobao", "icbc", "amazon", "apple", "wechat", "jd", "boc", "visa"]
_TLDS = ["com", "org", "net", "cn", "com.cn", "gov.cn", "edu"]
_BAD_TLDS = ["xyz", "top", "info", "click", "tk", "ml", "work"]


def _token(rng: np.random.Generator, n: int) -> str:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
    return "".join(rng.choice(letters, size=n))


def _urls(rng: np.random.Generator, risky: int, normal: int) -> list[tuple[dict[str, Any], int]]:
    out: list[tuple[dict[str, Any], int]] = []
    for _ in range(normal):
        scheme = "http" if rng.random() < 0.15 else "https"
        host = f"www.{rng.choice(_WORDS)}{rng.choice(_WORDS) if rng.random() < 0.3 else ''}"
        if rng.random() < 0.1:
            host = f"www.{rng.choice(_BRANDS)}"  # the real brands have real sites
        path = "/".join(str(rng.choice(_WORDS)) for _ in range(int(rng.integers(0, 4))))
        query = f"?id={int(rng.integers(1, 999999))}" if rng.random() < 0.8 else ""
        out.append(({"url": f"{scheme}://{host}.{rng.choice(_TLDS)}/{path}{query}"}, 0))
    for _ in range(risky):
        scheme = "https" if rng.random() < 0.35 else "http"
        brand = str(rng.choice(_BRANDS))
        pattern = int(rng.integers(5))
        if pattern == 0:  # a bare IP host
            ip = ".".join(str(int(v)) for v in rng.integers(1, 255, size=4))
            url = f"{scheme}://{ip}/{brand}/login.php"
        elif pattern == 1:  # the userinfo trick
            url = f"{scheme}://{brand}.com@{_token(rng, 8)}.{rng.choice(_BAD_TLDS)}/verify"
        elif pattern == 2:  # a look-alike brand among subdomains
            fake = brand.replace("a", "4").replace("o", "0").replace("l", "1")
            host = f"secure-{fake}-login.{_token(rng, 5)}.{rng.choice(_BAD_TLDS)}"
            url = f"{scheme}://{host}/account/update"
        elif pattern == 3:  # a long random token host
            host = f"{_token(rng, 24)}.{rng.choice(_TLDS + _BAD_TLDS)}"
            url = f"{scheme}://{host}/{brand}/signin?session={_token(rng, 16)}"
        else:  # punycode
            url = f"{scheme}://xn--{_token(rng, 10)}.{rng.choice(_TLDS)}/{brand}-verify"
        out.append(({"url": url}, 1))
    return out


def generate(kind: Kind, seed: int, risky: int, normal: int, part: str) -> list[Item]:
    """`risky` + `normal` items of `kind`, shuffled, with ids `<part>-<kind>-<n>`."""
    rng_seed = part_seed(kind.id, seed, part)
    rng = np.random.default_rng(rng_seed)
    if kind.style == "transactions":
        rows = _transactions(rng, risky, normal)
    elif kind.style == "urls":
        rows = _urls(rng, risky, normal)
    else:
        rows = _classification(kind, rng, risky, normal)
    order = rng.permutation(len(rows))
    return [Item(f"{part}-{kind.id}-{n:05d}", rows[k][0], rows[k][1]) for n, k in enumerate(order)]


# ---------------------------------------------------------------- the platform

TRAIN_SEED = 0
TRAIN_RISKY = 600
TRAIN_NORMAL = 1800
FALSE_ALARM_QUANTILE = 0.97


def _estimator(kind: str) -> Any:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    makers: dict[str, Callable[[], Any]] = {
        "lr": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "rf": lambda: RandomForestClassifier(n_estimators=150, random_state=0, n_jobs=1),
        "et": lambda: ExtraTreesClassifier(n_estimators=150, random_state=0, n_jobs=1),
        "gbm": lambda: HistGradientBoostingClassifier(random_state=0),
    }
    return makers[MODELS[kind][1]]()


# kind -> (model name, estimator family)
MODELS: dict[str, tuple[str, str]] = {
    "transaction_fraud": ("card_fraud_gbm", "gbm"),
    "loan_default": ("loan_default_lr", "lr"),
    "money_laundering": ("aml_rf", "rf"),
    "insurance_claim_fraud": ("claim_fraud_gbm", "gbm"),
    "tax_evasion": ("tax_risk_lr", "lr"),
    "benefit_fraud": ("benefit_fraud_rf", "rf"),
    "procurement_collusion": ("bid_collusion_gbm", "gbm"),
    "fake_review": ("fake_review_et", "et"),
    "promo_abuse": ("promo_abuse_lr", "lr"),
    "account_takeover": ("takeover_rf", "rf"),
    "phishing_url": ("phishing_url_gbm", "gbm"),
    "spam": ("spam_et", "et"),
}

_IP_HOST = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_SUSPICIOUS_TLDS = (".xyz", ".top", ".info", ".click", ".tk", ".ml", ".work")
_BAD_WORDS = ("login", "verify", "secure", "account", "update", "signin", "session")


def url_features(url: str) -> list[float]:
    lowered = url.lower()
    rest = lowered.split("://", 1)[-1]
    host = rest.split("/", 1)[0].split("@")[-1]
    return [
        float(len(url)),
        float(sum(c.isdigit() for c in url)),
        float(host.count(".")),
        float("@" in url),
        float(bool(_IP_HOST.match(host))),
        float(lowered.startswith("https://")),
        float(host.endswith(_SUSPICIOUS_TLDS)),
        float(sum(w in lowered for w in _BAD_WORDS)),
        float("xn--" in host),
        float(host.count("-")),
        float(len(host)),
        float(max((len(p) for p in re.split(r"[./\-?=]", rest)), default=0)),
    ]


@dataclass
class Vectoriser:
    """Feature dicts -> a float matrix, fitted on the training items."""

    numeric: list[str]
    medians: list[float]
    categories: dict[str, list[str]]
    url: bool

    @classmethod
    def fit(cls, kind: Kind, rows: Sequence[dict[str, Any]]) -> Vectoriser:
        if kind.style == "urls":
            return cls([], [], {}, True)
        numeric, medians, categories = [], [], {}
        for name in kind.features:
            values = [r.get(name) for r in rows]
            if any(isinstance(v, str) for v in values):
                categories[name] = sorted({v for v in values if isinstance(v, str)})
            else:
                numeric.append(name)
                known = [float(v) for v in values if isinstance(v, int | float)]
                medians.append(float(np.median(known)) if known else 0.0)
        return cls(numeric, medians, categories, False)

    def row(self, features: dict[str, Any]) -> list[float]:
        if not isinstance(features, dict):
            raise ValueError("features must be an object")
        if self.url:
            url = features.get("url")
            if not isinstance(url, str):
                raise ValueError("a phishing_url item needs a string feature 'url'")
            return url_features(url)
        out = []
        for name, median in zip(self.numeric, self.medians, strict=True):
            v = features.get(name)
            if v is None:
                out.append(median)
            elif isinstance(v, bool | int | float) and math.isfinite(float(v)):
                out.append(float(v))
            else:
                raise ValueError(f"feature {name!r} is {v!r}, not a number")
        for name, values in self.categories.items():
            v = features.get(name)
            out += [float(v == c) for c in values]
        return out


@dataclass
class RiskModel:
    name: str
    kind: str
    vectoriser: Vectoriser
    estimator: Any
    threshold: float
    facts: dict[str, Any]

    def scores(self, rows: list[list[float]]) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            p = self.estimator.predict_proba(np.asarray(rows))[:, 1]
        return np.asarray(p, dtype=np.float64)


def train(kind_id: str) -> RiskModel:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # small models: one thread is faster under load
        return _train(kind_id)


def _train(kind_id: str) -> RiskModel:
    kind = KINDS[kind_id]
    start = time.perf_counter()
    items = generate(kind, TRAIN_SEED, TRAIN_RISKY, TRAIN_NORMAL, "train")
    cut = int(0.75 * len(items))
    fit, held = items[:cut], items[cut:]
    vectoriser = Vectoriser.fit(kind, [i.features for i in fit])
    estimator = _estimator(kind_id)
    estimator.fit(
        np.asarray([vectoriser.row(i.features) for i in fit]), np.asarray([i.label for i in fit])
    )
    held_scores = estimator.predict_proba(np.asarray([vectoriser.row(i.features) for i in held]))[
        :, 1
    ]
    normal = held_scores[np.asarray([i.label for i in held]) == 0]
    threshold = float(np.quantile(normal, FALSE_ALARM_QUANTILE))
    name, family = MODELS[kind_id]
    facts = {
        "family": family,
        "train_items": len(fit),
        "threshold_items": len(held),
        "threshold": threshold,
        "train_s": time.perf_counter() - start,
    }
    return RiskModel(name, kind_id, vectoriser, estimator, threshold, facts)


class Platform:
    """The twelve models, each trained on first use (thread-safe)."""

    def __init__(self, kinds: Sequence[str] | None = None) -> None:
        self.kinds = list(MODELS) if kinds is None else list(kinds)
        self._models: dict[str, RiskModel] = {}
        self._lock = threading.Lock()
        self._by_name = {MODELS[k][0]: k for k in self.kinds}

    def listing(self) -> dict[str, Any]:
        return {
            "models": [
                {"name": MODELS[k][0], "kind": k, "sector": KINDS[k].sector} for k in self.kinds
            ]
        }

    def model(self, name: str) -> RiskModel:
        kind = self._by_name.get(name)
        if kind is None:
            raise ValueError(f"no model named {name!r}")
        with self._lock:
            if name not in self._models:
                self._models[name] = train(kind)
            return self._models[name]

    def answer_many(self, tasks: Sequence[Any]) -> list[dict[str, Any] | Exception]:
        """One answer (or the exception it raised) per task, the scoring batched per model."""
        out: list[dict[str, Any] | Exception] = [ValueError("not answered")] * len(tasks)
        pending: dict[str, list[tuple[int, list[float]]]] = {}
        for k, raw in enumerate(tasks):
            try:
                task = _decoded(raw)
                if task.get("task") == "risk.models":
                    out[k] = self.listing()
                    continue
                if task.get("task") != "risk.score":
                    raise ValueError(f"unknown task {task.get('task')!r}")
                model = self.model(str(task.get("model")))
                pending.setdefault(model.name, []).append(
                    (k, model.vectoriser.row(task["features"]))
                )
            except Exception as error:
                out[k] = error
        for name, rows in pending.items():
            model = self.model(name)
            try:
                scores = model.scores([r for _, r in rows])
            except Exception as error:
                for k, _ in rows:
                    out[k] = error
                continue
            for (k, _), score in zip(rows, scores, strict=True):
                out[k] = {"risky": bool(score > model.threshold), "score": float(score)}
        return out


def _decoded(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        text = raw if raw.lstrip().startswith("{") else Path(raw).read_text(encoding="utf-8")
        raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("a task is a JSON object")
    return raw


_PLATFORM: Platform | None = None


def answer(data: Any) -> dict[str, Any]:
    """The callable SUT: one task (a dict, or a JSON file's path or text)."""
    global _PLATFORM
    if _PLATFORM is None:
        _PLATFORM = Platform()
    (result,) = _PLATFORM.answer_many([data])
    if isinstance(result, Exception):
        raise result
    return result


class ReferenceRiskSession:
    """The reference platform as an in-process SUT session (a batch scored per model)."""

    def __init__(self, kinds: Sequence[str] | None = None) -> None:
        self.platform = Platform(kinds)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "harness reference risk platform (harness.refengines.risk_platform)",
            "models": ", ".join(f"{MODELS[k][0]} ({k})" for k in self.platform.kinds),
        }

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        start = time.perf_counter()
        results = self.platform.answer_many([s.data for s in samples])
        each = (time.perf_counter() - start) / max(1, len(samples))
        out = []
        for s, r in zip(samples, results, strict=True):
            if isinstance(r, Exception):
                out.append(SampleOutput(s.index, None, f"crashed: {type(r).__name__}: {r}", each))
            else:
                out.append(SampleOutput(s.index, json.dumps(r), None, each))
        return out

    def close(self) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    platform = Platform()
    if args == ["--batch"]:
        for line in sys.stdin:
            (result,) = platform.answer_many([line.strip()])
            text = json.dumps({"error": str(result)} if isinstance(result, Exception) else result)
            print(text, flush=True)
        return 0
    if len(args) != 1:
        print(
            "usage: python -m harness.refengines.risk_platform TASK.json | --batch", file=sys.stderr
        )
        return 2
    (result,) = platform.answer_many([args[0]])
    if isinstance(result, Exception):
        print(f"{type(result).__name__}: {result}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
