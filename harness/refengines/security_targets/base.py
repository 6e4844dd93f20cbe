"""What every D17 reference target is: a model the harness trains at collect time on offline
data (seeded, seconds on two CPU cores), the facts the attack job shows of it, a held-out
pool of clean inputs with their true labels, and `scores(x, claim)`: the model's class
scores for a batch of inputs (float32, shape (n, *input_shape), in the domain)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

Task = Literal["classification", "face_verification"]


@dataclass(frozen=True)
class TargetInfo:
    name: str
    framework: str  # the framework the model was trained with and runs in
    task: Task
    input_shape: tuple[int, ...]
    domain: tuple[float, float]  # every input element lies in [lo, hi]
    class_names: tuple[str, ...]
    # the axis of one input that holds colour channels (L0 counts positions over the other
    # axes), None when there is none (tabular features, grey images)
    channel_axis: int | None
    image: bool  # spatial and physical transformations apply
    description: str

    @property
    def classes(self) -> int:
        return len(self.class_names)

    def job_view(self) -> dict[str, Any]:
        """What an attack job shows of the target (its model stays behind the endpoint)."""
        return {
            "name": self.name,
            "framework": self.framework,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "dtype": "float32",
            "domain": list(self.domain),
            "classes": self.classes,
            "class_names": list(self.class_names),
            "channel_axis": self.channel_axis,
            "image": self.image,
            "description": self.description,
        }


@dataclass(frozen=True)
class Pool:
    """Held-out clean inputs (never trained on) with their true labels; `claims` (face
    verification) is the enrolled identity each input is verified against, and
    `goal` the class an attack on it must reach (-1: any class but the true one)."""

    inputs: np.ndarray  # (n, *input_shape) float32
    labels: np.ndarray  # (n,) int64
    claims: np.ndarray | None = None  # (n,) int64
    goal: np.ndarray | None = None  # (n,) int64
    source: dict[str, Any] = field(default_factory=dict)


class Target(Protocol):
    info: TargetInfo

    def scores(self, x: np.ndarray, claim: int | None = None) -> np.ndarray:
        """(n, classes) float64 class scores of a float32 batch (n, *input_shape)."""
        ...

    def pool(self) -> Pool: ...

    def describe(self) -> dict[str, Any]:
        """Facts for the evidence: framework version, training data, held-out accuracy."""
        ...


def decide(
    target: Target, x: np.ndarray, claim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The target's answer to a batch: (labels (n,) int64, scores (n, classes) float64). A
    classifier's label is the arg-max of its scores (ties to the lower class); a target with
    its own decision rule (`decide`, face verification) gives it."""
    own = getattr(target, "decide", None)
    if callable(own):
        labels, scores = own(x, claim)
        return np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    scores = np.asarray(target.scores(x, claim), dtype=np.float64)
    return np.argmax(scores, axis=1).astype(np.int64), scores


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def held_out_accuracy(target: Target, inputs: np.ndarray, labels: np.ndarray) -> float:
    predicted = np.argmax(target.scores(inputs), axis=1)
    return float(np.mean(predicted == labels))


def split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train / held-out split of range(n)."""
    order = np.random.default_rng([seed % 2**32, 17, 7]).permutation(n)
    cut = round(n * (1.0 - test_fraction))
    return np.sort(order[:cut]), np.sort(order[cut:])
