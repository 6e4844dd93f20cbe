"""How an answer's text is read, strictly (the rules each probe's docstring cites).

- choice letter (`choice_index`): surrounding whitespace dropped; then one leading
  `Answer:` / `The answer is` (any case, `:` or `：` optional); then one pair of
  surrounding parentheses or brackets and one final `.`/`。`; what is left must be exactly
  one letter, A-Z in either case, among the item's choice letters (A for the first choice).
  Anything else ("B and C", "I think B", "") is unparsed and counts wrong.
- first integer (`first_integer`): full-width digits folded to ASCII; the first run of
  decimal digits in the text, as a number ("The answer is 12." -> 12; "twelve" -> none).
- first word (`first_word`): of the allowed words, the one whose first whole-word
  occurrence (case-insensitive) comes first in the text ("up, not left" -> up).
- exact match (`exact_form`): Unicode NFC, surrounding whitespace and one final `.`/`。`
  dropped, case-folded; two answers match when their forms are equal; an integer answer
  is compared as its decimal string.
- code (`code_of`): the first fenced block (```python ... ``` or ``` ... ```) when the
  answer holds one, else the whole text.
"""

from __future__ import annotations

import re
import string
import unicodedata

_PREFIX = re.compile(r"^(?:the\s+answer\s+is|answer)\s*[:：]?\s*", re.IGNORECASE)
_WRAPPED = re.compile(r"^[(\[](.*)[)\]]$", re.DOTALL)
_FULL_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_DIGITS = re.compile(r"[0-9]+")
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+.-]*[ \t]*\r?\n(.*?)```", re.DOTALL)
LETTERS = string.ascii_uppercase


def choice_index(text: str, choices: int) -> int | str:
    """The 0-based choice the answer names, else the reason it names none (module doc)."""
    s = text.strip()
    s = _PREFIX.sub("", s, count=1).strip()
    if s[-1:] in (".", "。"):
        s = s[:-1].strip()
    wrapped = _WRAPPED.match(s)
    if wrapped:
        s = wrapped.group(1).strip()
    if len(s) != 1 or s.upper() not in LETTERS:
        shown = " ".join(text.split())[:60]
        return f"unparsed: not one choice letter: {shown!r}"
    k = LETTERS.index(s.upper())
    if k >= choices:
        return f"unparsed: {s!r} is not one of the {choices} choices"
    return k


def first_integer(text: str) -> int | None:
    match = _DIGITS.search(text.translate(_FULL_DIGITS))
    return int(match.group(0)) if match else None


def first_word(text: str, words: tuple[str, ...]) -> str | None:
    lowered = text.lower()
    best: tuple[int, str] | None = None
    for word in words:
        match = re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", lowered)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), word)
    return None if best is None else best[1]


def exact_form(value: str | int) -> str:
    s = unicodedata.normalize("NFC", str(value)).strip()
    if s[-1:] in (".", "。"):
        s = s[:-1].strip()
    return s.casefold()


def code_of(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1) if match else text
