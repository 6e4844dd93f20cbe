"""The fine-tuning task of `llm.finetune`: the harness's seeded text-classification task, a
lab's set, and the task the platform is handed.

The seeded task (drawn from numpy's PCG64 seeded by (run seed, 16, 7)): a vocabulary of
pronounceable pseudo-words, of which `keywords` per label are that label's and 80 are
noise; each text is 10 words: 3 keywords of its label, 1 keyword of another label and 6
noise words, shuffled. Which words belong to which label is drawn anew for every seed, so
the rule can only be learned from the training texts.

A lab's set (`--dataset finetune=PATH`): UTF-8 JSONL, one item per line, `{"id": str|int,
"text": str, "label": str, "split": "train" | "test"}`; at least 2 labels among the train
items, every test label among them. BadInput names the file, the line and the field.

What the platform is handed (the task JSON): `{"schema": "harness.finetune-task/v1",
"kind": "text-classification", "labels": [...], "train": [{"id", "text", "label"}],
"inputs": [{"id", "text"}], "time_budget_s": T, "answer": "<the answer form>"}`. The
held-out inputs carry opaque ids (`x0000`, ... in a shuffled order) and no label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import BadInput

SCHEMA = "harness.finetune-task/v1"
ANSWER_FORM = (
    'print (or answer) one JSON object: {"predictions": [{"id": <input id>, "label": <one of '
    'labels>}, ...], "manual_settings": [<the name of every setting you had to set by hand '
    "beyond your platform's defaults for this task; [] when none>]}"
)
LABELS = ("north", "south", "east", "west")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")
KEYS = ("id", "text", "label", "split")


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    label: str


def generated(seed: int, train: int, test: int, keywords: int = 15) -> tuple[list[Row], list[Row]]:
    """The seeded task's (train, test) rows (module doc)."""
    rng = np.random.default_rng([int(seed) % 2**32, 16, 7])
    words: set[str] = set()
    need = keywords * len(LABELS) + 80
    while len(words) < need:
        syllables = int(rng.integers(2, 4))
        words.add(
            "".join(
                str(_ONSETS[int(rng.integers(len(_ONSETS)))])
                + str(_VOWELS[int(rng.integers(len(_VOWELS)))])
                for _ in range(syllables)
            )
        )
    vocab = [str(w) for w in rng.permutation(sorted(words))]
    own = {lab: vocab[k * keywords : (k + 1) * keywords] for k, lab in enumerate(LABELS)}
    noise = vocab[keywords * len(LABELS) :]

    def row(k: int) -> Row:
        label = LABELS[int(rng.integers(len(LABELS)))]
        other = [x for x in LABELS if x != label][int(rng.integers(len(LABELS) - 1))]
        picked = [own[label][int(i)] for i in rng.choice(keywords, 3, replace=False)]
        picked.append(own[other][int(rng.integers(keywords))])
        picked += [noise[int(i)] for i in rng.choice(len(noise), 6, replace=False)]
        return Row(f"r{k:05d}", " ".join(str(w) for w in rng.permutation(picked)), label)

    rows = [row(k) for k in range(train + test)]
    return rows[:train], rows[train:]


def read_lab_set(path: Path) -> tuple[list[Row], list[Row]]:
    """A lab's set (module doc): (train, test)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        at_line = raw[: error.start].count(b"\n") + 1
        raise BadInput(path, f"line {at_line}", "not UTF-8") from None
    train: list[Row] = []
    test: list[Row] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(line)
        except ValueError as error:
            raise BadInput(path, where, f"not JSON ({error})") from None
        if not isinstance(obj, dict):
            raise BadInput(path, where, "expected a JSON object")
        unknown = sorted(set(obj) - set(KEYS))
        if unknown:
            raise BadInput(
                path, f"{where}: {unknown[0]}", f"unknown key (known: {', '.join(KEYS)})"
            )
        ident = obj.get("id")
        if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
            raise BadInput(path, f"{where}: id", "expected a non-empty string or an integer")
        if str(ident) in seen:
            raise BadInput(path, f"{where}: id", f"id {ident!r} appears twice")
        seen.add(str(ident))
        for key in ("text", "label"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise BadInput(path, f"{where}: {key}", "expected a non-empty string")
        split = obj.get("split")
        if split not in ("train", "test"):
            raise BadInput(path, f"{where}: split", f"expected train or test, got {split!r}")
        (train if split == "train" else test).append(Row(str(ident), obj["text"], obj["label"]))
    labels = {r.label for r in train}
    if len(labels) < 2:
        raise BadInput(path, None, "the train items hold fewer than 2 labels")
    if not test:
        raise BadInput(path, None, "the set holds no test items")
    stray = sorted({r.label for r in test} - labels)
    if stray:
        raise BadInput(path, None, f"test labels absent from the train items: {stray[:5]}")
    return train, test


def handed(
    train: list[Row], test: list[Row], budget_s: float, seed: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the task JSON the platform gets, opaque input id -> the test row's id)."""
    order = np.random.default_rng([int(seed) % 2**32, 16, 8]).permutation(len(test))
    inputs, ids = [], {}
    for k, j in enumerate(order):
        opaque = f"x{k:05d}"
        ids[opaque] = test[int(j)].id
        inputs.append({"id": opaque, "text": test[int(j)].text})
    task = {
        "schema": SCHEMA,
        "kind": "text-classification",
        "labels": sorted({r.label for r in train}),
        "train": [{"id": r.id, "text": r.text, "label": r.label} for r in train],
        "inputs": inputs,
        "time_budget_s": budget_s,
        "answer": ANSWER_FORM,
    }
    return task, ids
