"""The prompts of `llm.serving`: a lab's JSONL list or the harness's seeded dev set.

A lab's list (`--dataset prompts=PATH`) is UTF-8 JSON Lines, one object per request:

    {"prompt": "Summarise the following ...", "max_tokens": 128, "id": "q-0001"}

`prompt` is a non-empty string (sent as the completion prompt, or as one user message to
the chat API); `max_tokens` (optional, an integer >= 1) caps that request's output, else
the task's `max_tokens`; `id` (optional, unique) names the request in the evidence, else
`line-<N>`. Blank lines are skipped; anything else is refused naming the line and field.

The dev set is made at collect time: sentences of words drawn, with the run's seed, from
a fixed list, of 8 to 80 words each. It is public and predictable (a server could cache
it), so its figures never decide a verdict.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BadInput

_WORD_TEXT = (
    "the a model server token request answer latency stream time first second every "
    "system language large small fast slow river mountain city garden window table light "
    "water stone paper number letter story question reason measure report market engine "
    "signal network memory cache layer weight value order random quiet bright early late "
    "north south east west winter summer morning evening music colour circle square line "
    "point field forest ocean island bridge road train station ticket letter market price "
    "explain describe compare summarise translate list write count name give show"
)
WORDS = tuple(_WORD_TEXT.split())
DEV_MIN_WORDS = 8
DEV_MAX_WORDS = 80


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    max_tokens: int

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "max_tokens": self.max_tokens}


def dev_prompts(count: int, max_tokens: int, seed: int) -> list[Prompt]:
    rng = random.Random(f"llm.serving dev prompts {seed}")
    out: list[Prompt] = []
    for k in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(DEV_MIN_WORDS, DEV_MAX_WORDS))]
        text = " ".join(words).capitalize() + "."
        out.append(Prompt(f"dev-{k:05d}", text, max_tokens))
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_prompts(path: Path, default_max_tokens: int) -> list[Prompt]:
    """Every prompt of a lab's JSONL list. BadInput naming the file, line and field."""
    if not path.is_file():
        raise BadInput(path, None, "prompt list not found (expected a JSONL file)")
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for number, chunk in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput(path, f"line {number}", f"not UTF-8 ({error.reason})") from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if not text.strip():
            continue
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except ValueError as error:
            raise BadInput(path, f"line {number}", f"not JSON: {error}") from None
        if not isinstance(value, dict):
            raise BadInput(path, f"line {number}", 'expected a JSON object {"prompt": ...}')
        unknown = sorted(set(value) - {"prompt", "max_tokens", "id"})
        if unknown:
            raise BadInput(
                path,
                f"line {number}: {unknown[0]}",
                "unknown field (known: prompt, max_tokens, id)",
            )
        prompt = value.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadInput(path, f"line {number}: prompt", "expected a non-empty string")
        max_tokens = value.get("max_tokens", default_max_tokens)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadInput(path, f"line {number}: max_tokens", "expected an integer >= 1")
        ident = value.get("id", f"line-{number}")
        if not isinstance(ident, str) or not ident.strip() or "\n" in ident:
            raise BadInput(path, f"line {number}: id", "expected a non-empty one-line string")
        if ident in seen:
            raise BadInput(path, f"line {number}: id", f"{ident!r} repeats line {seen[ident]}")
        seen[ident] = number
        prompts.append(Prompt(ident, prompt, max_tokens))
    if not prompts:
        raise BadInput(path, None, "empty prompt list: no JSON object in it")
    return prompts


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
