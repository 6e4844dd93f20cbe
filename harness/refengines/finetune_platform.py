"""The harness's reference fine-tuning platform (D16 `llm.finetune` dry run and tests): one
command that takes a task and answers it with no setting chosen by hand.

    python finetune_platform.py TASK.json

TASK.json is the harness's task (harness.probes.llm_tasks.finetune_task: `labels`, `train`
rows with their labels, `inputs` without, `time_budget_s`). The platform fine-tunes a small
scikit-learn text classifier: word unigram and bigram TF-IDF features feeding a ridge
classifier whose regularisation strength the platform chooses itself (efficient
leave-one-out cross-validation over its fixed grid, `RidgeClassifierCV`), so nothing is
tuned by hand.
It prints one JSON line: `{"predictions": [{"id", "label"}], "manual_settings": [],
"platform": {...}}`. It imports nothing from the harness (it runs as a SUT, sandboxed).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)  # the platform's own grid, not a per-task setting


def fine_tune(task: dict[str, Any]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline

    warnings.simplefilter("ignore", FutureWarning)  # scikit-learn's notices of new defaults
    start = time.perf_counter()
    texts = [r["text"] for r in task["train"]]
    labels = [r["label"] for r in task["train"]]
    features = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)
    model = make_pipeline(features, RidgeClassifierCV(alphas=ALPHAS))
    model.fit(texts, labels)
    inputs = task["inputs"]
    predicted = model.predict([r["text"] for r in inputs]) if inputs else []
    chosen = float(model[-1].alpha_)
    return {
        "predictions": [
            {"id": r["id"], "label": str(p)} for r, p in zip(inputs, predicted, strict=True)
        ],
        "manual_settings": [],
        "platform": {
            "engine": "harness reference fine-tuning platform (scikit-learn TF-IDF + "
            "RidgeClassifierCV)",
            "chosen_by_cross_validation": {"alpha": chosen, "grid": list(ALPHAS)},
            "train_rows": len(texts),
            "seconds": time.perf_counter() - start,
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: finetune_platform.py TASK.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        task = json.load(handle)
    print(json.dumps(fine_tune(task)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
