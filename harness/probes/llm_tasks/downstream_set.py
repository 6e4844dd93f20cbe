"""The downstream task set format of `llm.downstream` (`--dataset downstream_<name>=PATH`),
its strict reader, and the seeded dev set.

A set is UTF-8 JSONL, one item per line (blank lines skipped):

    {"id": "q1", "prompt": "Which planet is largest?", "choices": ["Mars", "Jupiter"], "answer": 1}
    {"id": "q2", "prompt": "What is 6 x 7? Answer with the number only.", "answer": "42"}
    {"id": "t1", "prompt": "Translate to German: good morning", "reference": "Guten Morgen",
     "metric": "bleu", "language": "de"}
    {"id": "z1", "prompt": "把这句话翻译成中文：good morning", "reference": "早上好",
     "metric": "cer"}

- `id` (string or integer, unique in the set), `prompt` (non-empty string): required;
- `choices`: 2 to 26 strings, a multiple-choice item; its `answer` is the 0-based index of
  the right choice, or its letter ("A" for the first);
- `answer`: a string or an integer, the expected answer (exact match when no choices);
- `reference`: the reference text, scored by BLEU (D06 scorer) or CER (D08 scorer);
- `metric`: `accuracy` (needs `answer`), `bleu` or `cer` (need `reference`); default:
  accuracy when the item has `answer`, else bleu;
- `language`: the BCP-47 language of the answer (BLEU's tokenizer and CER's normaliser
  follow it); default `en` for bleu, `zh` for cer. The bleu items of one set share one
  language, as do its cer items.
Any other key, a line that is not a JSON object, a missing or mistyped field: BadInput
naming the file, the line and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.errors import BadInput
from harness.probes.llm_tasks.answers import LETTERS
from harness.scoring.speech_text import is_language_tag

Metric = Literal["accuracy", "bleu", "cer"]
KEYS = ("id", "prompt", "choices", "answer", "reference", "metric", "language")
DEFAULT_LANGUAGE = {"bleu": "en", "cer": "zh"}


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str
    metric: Metric
    choices: tuple[str, ...] | None = None
    answer: str | int | None = None  # a choice item: the index (letters are read as one)
    reference: str | None = None
    language: str = ""


def read_set(path: Path, data: bytes | None = None) -> list[Item]:
    """Every item of the set at `path` (or of `data`, its bytes, read as from `path`)."""
    raw = path.read_bytes() if data is None else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        at_line = raw[: error.start].count(b"\n") + 1
        raise BadInput(path, f"line {at_line}", "not UTF-8") from None
    items: list[Item] = []
    seen: set[str] = set()
    languages: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = _item(path, number, line)
        if item.id in seen:
            raise BadInput(path, f"line {number}: id", f"id {item.id!r} appears twice")
        seen.add(item.id)
        if item.metric in ("bleu", "cer"):
            first = languages.setdefault(item.metric, (item.language, number))
            if first[0] != item.language:
                raise BadInput(
                    path,
                    f"line {number}: language",
                    f"the {item.metric} items of one set share one language: line {first[1]} "
                    f"has {first[0]!r}, this one {item.language!r}",
                )
        items.append(item)
    if not items:
        raise BadInput(path, None, "the set holds no items")
    return items


def _item(path: Path, number: int, line: str) -> Item:
    where = f"line {number}"
    try:
        obj = json.loads(line)
    except ValueError as error:
        raise BadInput(path, where, f"not JSON ({error})") from None
    if not isinstance(obj, dict):
        raise BadInput(path, where, "expected a JSON object")
    unknown = sorted(set(obj) - set(KEYS))
    if unknown:
        raise BadInput(path, f"{where}: {unknown[0]}", f"unknown key (known: {', '.join(KEYS)})")

    def bad(key: str, message: str) -> BadInput:
        return BadInput(path, f"{where}: {key}", message)

    ident = obj.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
        raise bad("id", "expected a non-empty string or an integer")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad("prompt", "expected a non-empty string")
    choices = obj.get("choices")
    if choices is not None and (
        not isinstance(choices, list)
        or not 2 <= len(choices) <= len(LETTERS)
        or not all(isinstance(c, str) and c.strip() for c in choices)
    ):
        raise bad("choices", f"expected 2 to {len(LETTERS)} non-empty strings")
    answer = obj.get("answer")
    if answer is not None and (isinstance(answer, bool) or not isinstance(answer, str | int)):
        raise bad("answer", "expected a string or an integer")
    reference = obj.get("reference")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise bad("reference", "expected a non-empty string")
    metric = obj.get("metric", "accuracy" if answer is not None else "bleu")
    if metric not in ("accuracy", "bleu", "cer"):
        raise bad("metric", f"expected accuracy, bleu or cer, got {metric!r}")
    if metric == "accuracy" and answer is None:
        raise bad("answer", "an accuracy item needs its answer")
    if metric in ("bleu", "cer") and reference is None:
        raise bad("reference", f"a {metric} item needs its reference text")
    if choices is not None and metric != "accuracy":
        raise bad("metric", "a multiple-choice item is scored by accuracy")
    if choices is not None:
        answer = _choice_answer(answer, len(choices), bad)
    language = obj.get("language", DEFAULT_LANGUAGE.get(str(metric), ""))
    if not isinstance(language, str) or (language and not is_language_tag(language)):
        raise bad("language", f"expected a BCP-47 language tag, got {language!r}")
    return Item(
        id=str(ident),
        prompt=prompt,
        metric=metric,
        choices=tuple(choices) if choices is not None else None,
        answer=answer,
        reference=reference,
        language=language,
    )


def _choice_answer(answer: Any, n: int, bad: Any) -> int:
    if isinstance(answer, int):
        if not 0 <= answer < n:
            raise bad("answer", f"index {answer} is not one of the {n} choices (0-based)")
        return answer
    letter = str(answer).strip().upper()
    if len(letter) != 1 or letter not in LETTERS[:n]:
        raise bad("answer", f"expected a choice index or one of the letters {LETTERS[:n]}")
    return LETTERS.index(letter)


# ------------------------------------------------------------------------- the dev set

_WORDS = [
    ("the", "cat", "sat", "on", "the", "mat"),
    ("my", "brother", "reads", "a", "book", "every", "night"),
    ("we", "walked", "to", "the", "station", "in", "the", "rain"),
    ("she", "bought", "three", "red", "apples", "at", "the", "market"),
    ("the", "old", "man", "fixed", "his", "bicycle", "yesterday"),
    ("children", "play", "football", "after", "school"),
]
_ZH = ["今天天气很好", "我们明天去北京", "这本书非常有意思", "他每天早上喝茶", "妈妈在厨房做饭"]


def dev_set(seed: int, per_kind: int) -> bytes:
    """The seeded dev set as JSONL bytes: `per_kind` items of each kind: arithmetic and
    word-order multiple choice, products answered by exact match, English sentences to
    repeat (BLEU) and Chinese ones (CER)."""
    rng = np.random.default_rng([int(seed) % 2**32, 16, 1])
    lines: list[dict[str, Any]] = []
    for k in range(per_kind):
        a, b = (int(x) for x in rng.integers(2, 50, size=2))
        right = a + b
        options = {right}
        while len(options) < 4:
            options.add(right + int(rng.integers(-9, 10)))
        choices = [str(v) for v in rng.permutation(sorted(options))]
        lines.append(
            {"id": f"add-{k}", "prompt": f"What is {a} + {b}?", "choices": choices,
             "answer": choices.index(str(right))}
        )  # fmt: skip
    for k in range(per_kind):
        words = list(_WORDS[k % len(_WORDS)])
        sentence = " ".join(words).capitalize() + "."
        ordered = [sentence]
        while len(ordered) < 4:
            shuffled = " ".join(str(w) for w in rng.permutation(words)).capitalize() + "."
            if shuffled not in ordered:
                ordered.append(shuffled)
        order = [int(i) for i in rng.permutation(4)]
        choices = [ordered[i] for i in order]
        lines.append(
            {"id": f"order-{k}", "choices": choices, "answer": order.index(0),
             "prompt": "Which sentence has its words in the right order?"}
        )  # fmt: skip
    for k in range(per_kind):
        a, b = (int(x) for x in rng.integers(2, 13, size=2))
        lines.append(
            {"id": f"mul-{k}", "answer": str(a * b),
             "prompt": f"What is {a} times {b}? Answer with the number only."}
        )  # fmt: skip
    for k in range(per_kind):
        sentence = " ".join(_WORDS[(k + 2) % len(_WORDS)]).capitalize() + "."
        lines.append(
            {"id": f"repeat-en-{k}", "metric": "bleu", "language": "en", "reference": sentence,
             "prompt": f"Repeat this sentence exactly: {sentence}"}
        )  # fmt: skip
    for k in range(per_kind):
        sentence = _ZH[k % len(_ZH)] + "。"
        lines.append(
            {"id": f"repeat-zh-{k}", "metric": "cer", "language": "zh", "reference": sentence,
             "prompt": f"请原样重复这句话：{sentence}"}
        )  # fmt: skip
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
