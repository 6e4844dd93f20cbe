"""A reproducible noised copy of a test set's sources (the robustness check of D06).

Per segment a `random.Random` seeded with "mt.noise:v1:<run seed>:<segment id>" (so a
segment's noise does not depend on the others) applies, word by word with probability
`rate` each, one of four edits:

- typo: one letter replaced by a neighbour on a QWERTY keyboard;
- swap: two adjacent letters exchanged;
- homophone: an English word replaced by a homophone or near-homophone
  ("their" -> "there", "two" -> "too"; the table below); for a word with no entry, and
  for sources that are not English, a typo instead;
- and, once per segment with probability `rate` x 3 (capped at 1), every punctuation mark
  dropped.

Words shorter than 3 letters get no typo or swap. The operations applied are recorded per
segment; the noised source is stored in the evidence.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

VERSION = "v1"
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
HOMOPHONES: dict[str, str] = {
    "their": "there",
    "there": "their",
    "they're": "their",
    "to": "too",
    "too": "to",
    "two": "too",
    "your": "you're",
    "you're": "your",
    "its": "it's",
    "it's": "its",
    "then": "than",
    "than": "then",
    "know": "no",
    "no": "know",
    "write": "right",
    "right": "write",
    "hear": "here",
    "here": "hear",
    "by": "buy",
    "buy": "by",
    "for": "four",
    "four": "for",
    "see": "sea",
    "sea": "see",
    "one": "won",
    "eight": "ate",
    "week": "weak",
    "weather": "whether",
    "where": "wear",
    "meet": "meat",
    "new": "knew",
    "night": "knight",
    "sun": "son",
    "son": "sun",
    "flower": "flour",
    "flowers": "flours",
    "hour": "our",
    "our": "hour",
    "red": "read",
    "read": "red",
    "would": "wood",
    "piece": "peace",
    "whole": "hole",
    "made": "maid",
    "mail": "male",
    "pair": "pear",
    "plain": "plane",
    "road": "rode",
    "tea": "tee",
    "wait": "weight",
    "way": "weigh",
    "which": "witch",
}
PUNCTUATION = set(string.punctuation) | set("¿¡«»“”‘’…—–。，、？！：；")


def _neighbours(letter: str) -> str:
    low = letter.lower()
    for r, row in enumerate(KEYBOARD_ROWS):
        c = row.find(low)
        if c < 0:
            continue
        near = [row[i] for i in (c - 1, c + 1) if 0 <= i < len(row)]
        for other in (r - 1, r + 1):
            if 0 <= other < len(KEYBOARD_ROWS):
                near += [
                    KEYBOARD_ROWS[other][i]
                    for i in (c - 1, c, c + 1)
                    if 0 <= i < len(KEYBOARD_ROWS[other])
                ]
        return "".join(near)
    return ""


def _typo(word: str, rng: random.Random) -> str | None:
    spots = [i for i, ch in enumerate(word) if _neighbours(ch)]
    if len(word) < 3 or not spots:
        return None
    i = rng.choice(spots)
    new = rng.choice(_neighbours(word[i]))
    if word[i].isupper():
        new = new.upper()
    return word[:i] + new + word[i + 1 :]


def _swap(word: str, rng: random.Random) -> str | None:
    spots = [i for i in range(len(word) - 1) if word[i].isalpha() and word[i + 1].isalpha()]
    spots = [i for i in spots if word[i] != word[i + 1]]
    if len(word) < 3 or not spots:
        return None
    i = rng.choice(spots)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _homophone(word: str) -> str | None:
    core = word.strip("".join(PUNCTUATION - {"'"}))
    swap = HOMOPHONES.get(core.lower())
    if swap is None or not core:
        return None
    if core[0].isupper():
        swap = swap[0].upper() + swap[1:]
    return word.replace(core, swap, 1)


@dataclass(frozen=True)
class Noised:
    text: str
    edits: tuple[str, ...]  # "typo:house->hoise", "swap:...", "homophone:...", "punct:dropped"


def noise_text(text: str, rng: random.Random, rate: float, english: bool) -> Noised:
    edits: list[str] = []
    words = text.split(" ")
    for k, word in enumerate(words):
        if not word or rng.random() >= rate:
            continue
        kind = rng.choice(("typo", "swap", "homophone"))
        new: str | None = None
        if kind == "homophone":
            new = _homophone(word) if english else None
            if new is None:
                kind = "typo"
        if kind == "swap":
            new = _swap(word, rng)
        if kind == "typo":
            new = _typo(word, rng)
        if new is not None and new != word:
            edits.append(f"{kind}:{word}->{new}")
            words[k] = new
    out = " ".join(words)
    if rng.random() < min(1.0, 3.0 * rate):
        dropped = "".join(ch for ch in out if ch not in PUNCTUATION or ch == "'")
        dropped = " ".join(dropped.split())
        if dropped != out and dropped:
            edits.append("punct:dropped")
            out = dropped
    if not out.strip():
        return Noised(text, ())
    return Noised(out, tuple(edits))


def noise_segment(segment_id: str, text: str, seed: int, rate: float, src: str) -> Noised:
    """The noised form of one source (reproducible from the run seed and the segment id)."""
    rng = random.Random(f"mt.noise:{VERSION}:{seed}:{segment_id}")
    english = src.split("-")[0].lower() in ("en", "eng")
    return noise_text(text, rng, rate, english)
