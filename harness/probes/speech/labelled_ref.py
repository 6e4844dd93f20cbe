"""Reference SUTs for the labelled D08 tasks' dry runs, both real and measured:

- `IntentClassifier`: TF-IDF (word 1-2 grams, sublinear tf) + multinomial logistic
  regression (scikit-learn), trained at collect time on the shipped train split. Text in,
  intent label out.
- `SnrArbitrator`: for a multi-device wake event (JSON text `{"event_id", "devices": [...]}`)
  answers the device with the highest value of one field (`snr_db` by default), ties broken
  by the device name. A device without that field fails the event.

Both follow `harness.adapters.protocol`: `run()` never raises for one sample's failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from harness.adapters.protocol import Sample, SampleOutput


class IntentClassifier:
    """TF-IDF + logistic regression, trained on (text, intent) pairs with a fixed seed."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str], seed: int) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.params: dict[str, Any] = {
            "vectorizer": "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)",
            "classifier": f"LogisticRegression(C=10.0, max_iter=2000, random_state={seed})",
        }
        self.model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
            LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
        )
        started = time.perf_counter()
        self.model.fit(list(texts), list(labels))
        self.train_s = time.perf_counter() - started
        self.classes = [str(c) for c in self.model.classes_]
        self.train_size = len(texts)

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "engine": "harness reference intent classifier",
            "scikit-learn": version("scikit-learn"),
            **self.params,
            "classes": self.classes,
            "train_utterances": self.train_size,
            "train_s": round(self.train_s, 4),
        }

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outputs: list[SampleOutput] = []
        for s in samples:
            started = time.perf_counter()
            if not isinstance(s.data, str):
                outputs.append(SampleOutput(s.index, None, "bad input: expected text", 0.0))
                continue
            label = str(self.model.predict([s.data])[0])
            outputs.append(SampleOutput(s.index, label, None, time.perf_counter() - started))
        return outputs

    def close(self) -> None:
        return None


class SnrArbitrator:
    """Picks the device that heard the wake word best by one numeric field."""

    def __init__(self, by: str = "snr_db") -> None:
        self.by = by

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "harness reference arbitrator",
            "rule": f"the device with the highest {self.by}; ties: the first device name in "
            "sorted order",
        }

    def choose(self, event: Any) -> str:
        devices = event.get("devices") if isinstance(event, dict) else None
        if not isinstance(devices, list) or not devices:
            raise ValueError("the event lists no devices")
        best: tuple[float, str] | None = None
        for d in devices:
            value = d.get(self.by) if isinstance(d, dict) else None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"device {d.get('device') if isinstance(d, dict) else d!r} "
                    f"has no numeric {self.by}"
                )
            name = str(d.get("device"))
            # highest value first; among equal values the smallest name
            if best is None or value > best[0] or (value == best[0] and name < best[1]):
                best = (float(value), name)
        assert best is not None
        return best[1]

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outputs: list[SampleOutput] = []
        for s in samples:
            started = time.perf_counter()
            try:
                choice = self.choose(json.loads(s.data) if isinstance(s.data, str) else s.data)
            except (ValueError, TypeError) as error:
                outputs.append(SampleOutput(s.index, None, f"bad input: {error}", 0.0))
                continue
            outputs.append(SampleOutput(s.index, choice, None, time.perf_counter() - started))
        return outputs

    def close(self) -> None:
        return None
