"""The harness's membership-inference targets: classifiers it trains itself at collect time
on a member / non-member / shadow split only it knows.

- `digits-mlp`: scikit-learn digits (1797 8x8 images, pixels / 16), a scikit-learn MLP
  (one hidden layer of 256, alpha 1e-6, 800 iterations); 250 members, 1000 non-members,
  547 shadow records by default;
- `breast-cancer-rf`: scikit-learn breast cancer (569 x 30), a scikit-learn random forest
  (100 fully grown trees); 200 / 200 / 169;
- `synthetic-torch-mlp`: `make_classification` (30 features, 10 informative, 5 classes,
  5 % label noise, random_state 7), a torch MLP 30-128-128-5 (full-batch Adam, 300
  steps); 1000 / 2000 / 2000.

The split is drawn from a seed the harness takes from the operating system's random source
at collect time (`secrets`), so no one can work it out from the run's public seed; the seed
reaches the evidence (truth.json) only after the platform has answered, and trains the
target too (the model's own seeds come from it). Members train the target; non-members and
members, shuffled together, are the candidates the platform scores; the shadow set is
drawn from the same data, disjoint from both, and the platform is told so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from threadpoolctl import threadpool_limits

TargetName = Literal["digits-mlp", "breast-cancer-rf", "synthetic-torch-mlp"]
SYNTHETIC_DATA = {
    "n_features": 30,
    "n_informative": 10,
    "n_redundant": 5,
    "n_classes": 5,
    "n_clusters_per_class": 2,
    "flip_y": 0.05,
    "class_sep": 1.0,
    "random_state": 7,
}


@dataclass(frozen=True)
class Catalogued:
    data: str
    size: int | None  # records in the data set (None: generated to the size asked for)
    defaults: tuple[int, int, int]  # members, non-members, shadow
    public: dict[str, Any]  # what the platform is told about the target


CATALOGUE: dict[str, Catalogued] = {
    "digits-mlp": Catalogued(
        "digits",
        1797,
        (250, 1000, 547),
        {
            "task": "digit classification: scikit-learn digits, 8x8 grey images as 64 pixel "
            "values in [0, 1] (the 0-16 pixels / 16)",
            "framework": "scikit-learn",
            "model": {
                "family": "mlp",
                "hidden_layers": [256],
                "alpha": 1e-6,
                "max_iter": 800,
                "activation": "relu",
                "solver": "adam",
            },
            "classes": 10,
            "features": 64,
        },
    ),
    "breast-cancer-rf": Catalogued(
        "breast_cancer",
        569,
        (200, 200, 169),
        {
            "task": "tumour diagnosis: scikit-learn breast cancer (Wisconsin), 30 raw features",
            "framework": "scikit-learn",
            "model": {"family": "random_forest", "n_estimators": 100, "max_depth": None},
            "classes": 2,
            "features": 30,
        },
    ),
    "synthetic-torch-mlp": Catalogued(
        "synthetic",
        None,
        (1000, 2000, 2000),
        {
            "task": "tabular classification: scikit-learn make_classification "
            + ", ".join(f"{k}={v}" for k, v in SYNTHETIC_DATA.items()),
            "framework": "torch",
            "model": {
                "family": "mlp",
                "hidden_layers": [128, 128],
                "activation": "relu",
                "optimizer": "adam, full batch, lr 3e-3",
                "steps": 300,
            },
            "classes": 5,
            "features": 30,
        },
    ),
}


class TargetSpec(BaseModel):
    """One target of the task; sizes left out take the catalogue's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: TargetName
    members: int | None = Field(default=None, ge=10)
    nonmembers: int | None = Field(default=None, ge=10)
    shadow: int | None = Field(default=None, ge=0)

    def sizes(self) -> tuple[int, int, int]:
        m, n, s = CATALOGUE[self.name].defaults
        return (
            self.members if self.members is not None else m,
            self.nonmembers if self.nonmembers is not None else n,
            self.shadow if self.shadow is not None else s,
        )

    @model_validator(mode="after")
    def _fits(self) -> TargetSpec:
        size = CATALOGUE[self.name].size
        total = sum(self.sizes())
        if size is not None and total > size:
            raise ValueError(
                f"{self.name}: members + non-members + shadow = {total}, more than the "
                f"{size} records of its data set"
            )
        if size is None and total > 100_000:
            raise ValueError(f"{self.name}: at most 100000 records in all, asked for {total}")
        return self


def load_data(spec: TargetSpec) -> tuple[np.ndarray, np.ndarray]:
    """The target's whole data set (features float64, labels int64), before the split."""
    from sklearn import datasets

    kind = CATALOGUE[spec.name].data
    if kind == "digits":
        bunch = datasets.load_digits()
        return np.asarray(bunch.data, dtype=np.float64) / 16.0, np.asarray(bunch.target, np.int64)
    if kind == "breast_cancer":
        bunch = datasets.load_breast_cancer()
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, np.int64)
    x, y = datasets.make_classification(n_samples=sum(spec.sizes()), **SYNTHETIC_DATA)  # type: ignore[arg-type]
    # float32 values (what the torch model computes in), carried as float64
    return np.asarray(x, dtype=np.float32).astype(np.float64), np.asarray(y, dtype=np.int64)


Predict = Callable[[np.ndarray], np.ndarray]  # records -> class probabilities (float64)


@dataclass(frozen=True)
class Target:
    """A trained target and its split (`is_member` in candidate order)."""

    id: str
    spec: TargetSpec
    predict: Predict
    candidates_x: np.ndarray
    candidates_y: np.ndarray
    is_member: np.ndarray  # bool, per candidate
    candidate_rows: list[int]  # each candidate's row in the data set
    shadow_x: np.ndarray
    shadow_y: np.ndarray
    shadow_rows: list[int]
    facts: dict[str, Any] = field(default_factory=dict)  # training facts (truth.json)

    def public(self) -> dict[str, Any]:
        """What the platform is told about the target (no word of the split)."""
        return {"id": self.id, "name": self.spec.name, **CATALOGUE[self.spec.name].public}


def _sklearn_mlp(x: np.ndarray, y: np.ndarray, seed: int) -> Predict:
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier((256,), alpha=1e-6, max_iter=800, random_state=seed)
    model.fit(x, y)
    return lambda records: np.asarray(model.predict_proba(records), dtype=np.float64)


def _sklearn_forest(x: np.ndarray, y: np.ndarray, seed: int) -> Predict:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    model.fit(x, y)
    return lambda records: np.asarray(model.predict_proba(records), dtype=np.float64)


def _torch_mlp(x: np.ndarray, y: np.ndarray, seed: int, classes: int) -> Predict:
    import torch
    from torch import nn

    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)  # a small model: one thread is faster, and steady under load
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Linear(x.shape[1], 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, classes),
        )
        optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
        inputs = torch.tensor(x, dtype=torch.float32)
        labels = torch.tensor(y, dtype=torch.int64)
        for _ in range(300):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(net(inputs), labels)
            loss.backward()
            optimiser.step()
        torch.set_num_threads(threads)
    net.eval()

    def predict(records: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = net(torch.tensor(np.asarray(records), dtype=torch.float32)).double()
            return torch.softmax(logits, dim=1).numpy()

    return predict


def _accuracy(predict: Predict, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(predict(x), axis=1) == y)) if len(y) else math.nan


def build(spec: TargetSpec, index: int, split_seed: int) -> Target:
    """Split the target's data with `split_seed` (and its place `index` in the task), train
    the model on the members, and hand back the candidates in a shuffled order."""
    x, y = load_data(spec)
    members, nonmembers, shadow = spec.sizes()
    rng = np.random.default_rng([split_seed, index])
    rows = rng.permutation(len(y))
    member_rows = rows[:members]
    nonmember_rows = rows[members : members + nonmembers]
    shadow_rows = rows[members + nonmembers : members + nonmembers + shadow]
    candidate_rows = np.concatenate([member_rows, nonmember_rows])
    is_member = np.concatenate([np.ones(members, bool), np.zeros(nonmembers, bool)])
    order = rng.permutation(len(candidate_rows))
    candidate_rows, is_member = candidate_rows[order], is_member[order]
    model_seed = int(rng.integers(0, 2**31 - 1))
    classes = int(CATALOGUE[spec.name].public["classes"])
    start = time.perf_counter()
    family = CATALOGUE[spec.name].data
    # small models: one BLAS thread is faster, and steady on a busy machine
    with threadpool_limits(limits=1):
        if family == "digits":
            predict = _sklearn_mlp(x[member_rows], y[member_rows], model_seed)
        elif family == "breast_cancer":
            predict = _sklearn_forest(x[member_rows], y[member_rows], model_seed)
        else:
            predict = _torch_mlp(x[member_rows], y[member_rows], model_seed, classes)
    train_s = time.perf_counter() - start
    facts = {
        "model_seed": model_seed,
        "train_s": train_s,
        "train_accuracy": _accuracy(predict, x[member_rows], y[member_rows]),
        "nonmember_accuracy": _accuracy(predict, x[nonmember_rows], y[nonmember_rows]),
    }
    return Target(
        id=f"t{index + 1}",
        spec=spec,
        predict=predict,
        candidates_x=x[candidate_rows],
        candidates_y=y[candidate_rows],
        is_member=is_member,
        candidate_rows=[int(r) for r in candidate_rows],
        shadow_x=x[shadow_rows],
        shadow_y=y[shadow_rows],
        shadow_rows=[int(r) for r in shadow_rows],
        facts=facts,
    )
