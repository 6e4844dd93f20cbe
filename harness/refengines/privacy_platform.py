"""The harness's reference privacy platform: membership-inference methods behind the
`privacy.membership` protocol (D17 dry run, README example, integration test).

It answers `{"task": "membership.methods"}` with its methods and
`{"task": "membership.infer", ...}` with one score per candidate, reaching the target
only through the task's `query_url` (POST `{"x": [...]}`; batches of `QUERY_BATCH`).

- `loss_threshold` (probabilities): log p(true class), the negated cross-entropy loss
  (Yeom et al. 2018);
- `confidence_threshold` (probabilities): the top class probability;
- `calibrated_logit` (probabilities): log p(y) - log(1 - p(y)) (the rest summed, so no
  precision is lost near 1), z-scored per class against the shadow set's (known
  non-members);
- `modified_entropy` (probabilities): minus the modified prediction entropy (Song and
  Mittal 2021);
- `art_shadow_blackbox` (probabilities): ART `ShadowModels` (3 shadow models of the
  target's declared family trained on the shadow set) and `MembershipInferenceBlackBox`
  (a random-forest attack model on the shadow models' outputs), its membership
  probability;
- `art_rule_based` (probabilities): ART `MembershipInferenceBlackBoxRuleBased`, 1 when the
  target's top class is the true class;
- `art_label_only_gap` (labels): ART `LabelOnlyGapAttack` on the target's labels only.

ART is `adversarial-robustness-toolbox` (it imports `packaging`, which it does not
declare). Use it as a SUT in three ways: in-process (the probe's default, or
`ReferencePrivacySession`), as a callable (`target:
harness.refengines.privacy_platform:answer`), or as a command (`argv: [python3, -m,
harness.refengines.privacy_platform, "{input}"]`: the path of the task's JSON file).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.refengines.answering import AnswerEachSession

QUERY_BATCH = 1000
SHADOW_MODELS = 3


@dataclass(frozen=True)
class Task:
    url: str
    access: str
    classes: int
    features: int
    model: dict[str, Any]
    xc: np.ndarray
    yc: np.ndarray
    xs: np.ndarray
    ys: np.ndarray

    def query(self, x: np.ndarray) -> np.ndarray:
        """The target's answer for records x: probabilities (n x classes) or labels (n)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        parts = []
        for start in range(0, len(x), QUERY_BATCH):
            body = json.dumps({"x": np.asarray(x[start : start + QUERY_BATCH]).tolist()})
            request = urllib.request.Request(
                self.url, body.encode("utf-8"), {"Content-Type": "application/json"}
            )
            with opener.open(request, timeout=120) as reply:
                answer = json.loads(reply.read())
            key = "labels" if self.access == "labels" else "probabilities"
            parts.append(np.asarray(answer[key], dtype=np.float64 if key != "labels" else np.int64))
        return np.concatenate(parts)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        if self.access != "probabilities":
            raise ValueError("this method needs probability access")
        return self.query(x)

    def one_hot_labels(self, x: np.ndarray) -> np.ndarray:
        labels = self.query(x) if self.access == "labels" else np.argmax(self.query(x), axis=1)
        return np.eye(self.classes)[labels]


def _true_class(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p(true class) and the sum of the other classes' probabilities."""
    rows = np.arange(len(y))
    py = p[rows, y]
    rest = p.copy()
    rest[rows, y] = 0.0
    return py, rest.sum(axis=1)


def loss_threshold(t: Task) -> np.ndarray:
    py, _ = _true_class(t.probabilities(t.xc), t.yc)
    return np.log(np.clip(py, 1e-300, None))


def confidence_threshold(t: Task) -> np.ndarray:
    return np.asarray(t.probabilities(t.xc).max(axis=1))


def _logit(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    py, rest = _true_class(p, y)
    return np.asarray(np.log(np.clip(py, 1e-300, None)) - np.log(np.clip(rest, 1e-300, None)))


def calibrated_logit(t: Task) -> np.ndarray:
    score = _logit(t.probabilities(t.xc), t.yc)
    reference = _logit(t.probabilities(t.xs), t.ys) if len(t.ys) else score
    out = np.empty_like(score)
    for c in np.unique(t.yc):
        ref = reference[t.ys == c] if np.count_nonzero(t.ys == c) >= 3 else reference
        mean, sd = float(np.mean(ref)), float(np.std(ref)) + 1e-9
        out[t.yc == c] = (score[t.yc == c] - mean) / sd
    return out


def modified_entropy(t: Task) -> np.ndarray:
    p = np.clip(t.probabilities(t.xc), 1e-300, 1.0)
    py, rest = _true_class(p, t.yc)
    one_minus = np.clip(1.0 - p, 1e-300, 1.0)
    others = (p * np.log(one_minus)).sum(axis=1) - py * np.log(np.clip(rest, 1e-300, None))
    mentr = -(np.clip(rest, 1e-300, None)) * np.log(py) - others
    return np.asarray(-mentr)


def _shadow_template(t: Task) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPClassifier

    model = t.model
    if model.get("family") == "random_forest":
        return RandomForestClassifier(
            n_estimators=int(model.get("n_estimators", 100)), random_state=0
        )
    hidden = tuple(int(h) for h in model.get("hidden_layers", [128]))
    return MLPClassifier(
        hidden,
        alpha=float(model.get("alpha", 1e-6)),
        max_iter=min(500, int(model.get("max_iter", 300))),
        random_state=0,
    )


def _art_classifier(t: Task, labels_only: bool) -> Any:
    from art.estimators.classification import BlackBoxClassifier

    predict: Callable[[np.ndarray], np.ndarray] = (
        t.one_hot_labels if labels_only else t.probabilities
    )
    return BlackBoxClassifier(predict, input_shape=(t.features,), nb_classes=t.classes)


def art_shadow_blackbox(t: Task) -> np.ndarray:
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        ShadowModels,
    )
    from art.estimators.classification import SklearnClassifier
    from sklearn.ensemble import RandomForestClassifier

    if len(t.ys) < 20:
        raise ValueError("the shadow set is too small to train shadow models")
    onehot = np.eye(t.classes)
    template = SklearnClassifier(_shadow_template(t))
    # ART's clone needs the class count a fit gives: a fit on one record of each class
    first = [int(np.flatnonzero(t.ys == c)[0]) for c in np.unique(t.ys)]
    template.fit(t.xs[first], onehot[t.ys[first]])
    shadows = ShadowModels(template, num_shadow_models=SHADOW_MODELS, random_state=0)
    (mx, my, mp), (nx, ny, npred) = shadows.generate_shadow_dataset(t.xs, onehot[t.ys], 0.5)
    attack = MembershipInferenceBlackBox(
        _art_classifier(t, labels_only=False), attack_model_type="rf"
    )
    # a seeded forest in place of ART's unseeded default (ART's check of a supplied model
    # asks an unfitted forest for its length, which fails)
    attack.attack_model = RandomForestClassifier(n_estimators=100, random_state=0)
    attack.fit(mx, my, nx, ny, mp, npred)
    pred = t.probabilities(t.xc)
    inferred = attack.infer(t.xc, onehot[t.yc], pred=pred, probabilities=True)
    return np.asarray(inferred, dtype=np.float64).reshape(len(t.yc), -1)[:, -1]


def art_rule_based(t: Task) -> np.ndarray:
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBoxRuleBased

    attack = MembershipInferenceBlackBoxRuleBased(_art_classifier(t, labels_only=False))
    return np.asarray(attack.infer(t.xc, t.yc), dtype=np.float64).ravel()


def art_label_only_gap(t: Task) -> np.ndarray:
    from art.attacks.inference.membership_inference import LabelOnlyGapAttack

    attack = LabelOnlyGapAttack(_art_classifier(t, labels_only=True))
    return np.asarray(attack.infer(t.xc, t.yc), dtype=np.float64).ravel()


METHODS: dict[str, tuple[str, Callable[[Task], np.ndarray]]] = {
    "loss_threshold": ("probabilities", loss_threshold),
    "confidence_threshold": ("probabilities", confidence_threshold),
    "calibrated_logit": ("probabilities", calibrated_logit),
    "modified_entropy": ("probabilities", modified_entropy),
    "art_shadow_blackbox": ("probabilities", art_shadow_blackbox),
    "art_rule_based": ("probabilities", art_rule_based),
    "art_label_only_gap": ("labels", art_label_only_gap),
}


def _task(data: dict[str, Any]) -> Task:
    target = data["target"]
    shadow = data.get("shadow") or {"x": [], "y": []}
    features = int(target["features"])
    return Task(
        url=str(target["query_url"]),
        access=str(target["access"]),
        classes=int(target["classes"]),
        features=features,
        model=dict(target.get("model") or {}),
        xc=np.asarray(data["candidates"]["x"], dtype=np.float64).reshape(-1, features),
        yc=np.asarray(data["candidates"]["y"], dtype=np.int64),
        xs=np.asarray(shadow["x"], dtype=np.float64).reshape(-1, features),
        ys=np.asarray(shadow["y"], dtype=np.int64),
    )


def answer(data: Any, methods: Sequence[str] | None = None) -> dict[str, Any]:
    """The platform's answer to one task (a dict, or a JSON file's path or text)."""
    if isinstance(data, str):
        text = Path(data).read_text(encoding="utf-8") if not data.lstrip().startswith("{") else data
        data = json.loads(text)
    names = list(METHODS) if methods is None else list(methods)
    if data.get("task") == "membership.methods":
        return {"methods": [{"name": n, "access": METHODS[n][0]} for n in names]}
    if data.get("task") != "membership.infer":
        raise ValueError(f"unknown task {data.get('task')!r}")
    name = str(data["method"])
    if name not in names:
        raise ValueError(f"no method named {name!r}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # small models: one BLAS thread is faster under load
        scores = METHODS[name][1](_task(data))
    return {"scores": [float(s) for s in scores]}


class ReferencePrivacySession(AnswerEachSession):
    """The reference platform as an in-process SUT session."""

    def __init__(self, methods: Sequence[str] | None = None) -> None:
        self.methods = list(METHODS) if methods is None else list(methods)

    def answer(self, data: Any) -> str:
        return json.dumps(answer(data, self.methods))

    def describe(self) -> dict[str, Any]:
        try:
            from importlib.metadata import version

            art = version("adversarial-robustness-toolbox")
        except Exception:  # not installed: the ART methods will fail, each with its reason
            art = "not installed"
        return {
            "engine": "harness reference privacy platform (harness.refengines.privacy_platform)",
            "methods": ", ".join(self.methods),
            "adversarial_robustness_toolbox": art,
        }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--batch"]:  # a command SUT's batch mode: one message path a line
        for line in sys.stdin:
            try:
                result = answer(line.strip())
            except Exception as error:  # one bad message fails that message only
                result = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(result), flush=True)
        return 0
    if len(args) != 1:
        print(
            "usage: python -m harness.refengines.privacy_platform TASK.json | --batch",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(answer(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
