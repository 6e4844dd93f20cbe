"""Speech recognition scoring: versioned text normalisers, corpus WER/CER from jiwer's
alignments, and bootstrap intervals over utterances. Pure functions, no I/O.

The rules (they are what a signature names, so two reports compare only when their
signatures agree):

- `zh-v1` (Chinese, and with `t2s: no`, `digits: keep` forced, Japanese and Thai):
  1. full-width ASCII letters, digits and signs (U+FF01..U+FF5E) folded to half-width and
     the ideographic space U+3000 to a space (only these: not a whole NFKC);
  2. Traditional -> Simplified with `opencc` (config `t2s`) when `t2s: yes`;
  3. numbers: `digits: cn2an` reads every run of Arabic digits (with its decimal point,
     percent sign and the like) as Chinese with `cn2an.transform(text, "an2cn")`
     ("3个" -> "三个", "2021年" -> "二零二一年", "50%" -> "百分之五十"); `digits: keep` leaves
     them;
  4. punctuation removed: 。，、？！：；“”‘’（）《》…— and also 「」『』【】〔〕〈〉·～, and every
     ASCII punctuation character;
  5. every whitespace character removed.
- `en-v1` (every other language): lower-case; the typographic apostrophe ’ folded to ';
  hyphens and dashes become a space; every other Unicode punctuation character except the
  apostrophe removed; whitespace collapsed to single spaces and stripped; numbers kept.

Rates are corpus rates: the sum of edits over the corpus divided by the sum of reference
lengths (words for WER, characters for CER), never a mean of per-utterance rates. jiwer
aligns (through rapidfuzz, the library jiwer aligns with: `corpus_error_counts`);
it keeps each utterance's counts so the bootstrap can resample
utterances.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.scoring.bootstrap import (
    DEFAULT_RESAMPLES,
    BootstrapInterval,
    PairedBootstrap,
    paired_ratio_test,
    ratio_interval,
)

Metric = Literal["cer", "wer"]
Unit = Literal["char", "word"]

# BCP-47 shape: a 2-3 letter ISO 639 primary language subtag, then subtags of 1-8
# letters/digits (extlang, script, region, variants); "x-" private use is refused
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
CER_LANGUAGES = frozenset({"zh", "cmn", "yue", "wuu", "nan", "hak", "ja", "th"})
CHINESE_LANGUAGES = frozenset({"zh", "cmn", "yue", "wuu", "nan", "hak"})
MANDARIN_LANGUAGES = frozenset({"zh", "cmn"})

ZH_PUNCTUATION = "。，、？！：；“”‘’（）《》…—「」『』【】〔〕〈〉·～"
_ZH_DROP = re.compile("[" + re.escape(ZH_PUNCTUATION + string.punctuation) + r"\s]+")
_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")
_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_DIGIT = re.compile(r"[0-9]")
_DIGIT_READING = str.maketrans("0123456789", "零一二三四五六七八九")
_BLOCK_ITEMS = 4_000_000  # resampled indices drawn at once in the stratified bootstrap


# ISO 639-2/3 codes of languages that have an ISO 639-1 code, folded to it so that one
# language is one variety (`eng` and `en` are English); Chinese varieties keep their own
# 639-3 codes (`cmn`, `yue`, `wuu`, `nan`, `hak`), and `zh`/`zho`/`chi` count as `cmn`
ISO639_TO_1 = {
    "eng": "en", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es",
    "ita": "it", "por": "pt", "nld": "nl", "dut": "nl", "rus": "ru", "jpn": "ja",
    "kor": "ko", "ara": "ar", "hin": "hi", "tha": "th", "vie": "vi", "tur": "tr",
    "pol": "pl", "swe": "sv", "dan": "da", "nor": "no", "nob": "nb", "fin": "fi",
    "ces": "cs", "cze": "cs", "ell": "el", "gre": "el", "heb": "he", "ind": "id",
    "msa": "ms", "may": "ms", "ukr": "uk", "ron": "ro", "rum": "ro", "hun": "hu",
    "fas": "fa", "per": "fa", "ben": "bn", "tam": "ta", "urd": "ur", "zho": "zh",
    "chi": "zh", "cat": "ca", "bul": "bg", "hrv": "hr", "srp": "sr", "slk": "sk",
    "slo": "sk", "slv": "sl", "lit": "lt", "lav": "lv", "est": "et",
}  # fmt: skip


def is_language_tag(tag: str) -> bool:
    """Whether `tag` has the shape of a BCP-47 language tag (en, en-US, zh-Hans-CN, cmn)."""
    return bool(LANGUAGE_TAG.match(tag)) and "x" not in tag.lower().split("-")


def primary_language(tag: str) -> str:
    """The language a tag names, lower-case and folded to ISO 639-1 where it has one
    (`eng` -> `en`): its primary subtag, or for `zh-yue`-style extended-language tags the
    extlang (`zh-yue` -> `yue`)."""
    parts = tag.lower().split("-")
    extlang = len(parts) > 1 and len(parts[1]) == 3 and parts[1].isalpha()
    if extlang and parts[0] in ("zh", "zho", "chi"):
        return parts[1]
    return ISO639_TO_1.get(parts[0], parts[0])


def variety(tag: str) -> str:
    """The variety a tag counts as, for "languages and dialects": the language alone
    (`zh` counts as `cmn`, Mandarin), with script, region and every variant subtag dropped
    (a variant such as `en-abcde` is anyone's to invent: a dialect counts only through its
    own language code, e.g. yue, wuu, nan, hak): `zh-CN`, `cmn-Hans` -> `cmn`; `en-US`,
    `eng`, `en-1abc` -> `en`; `yue`, `zh-yue` -> `yue`."""
    lang = primary_language(tag)
    return "cmn" if lang == "zh" else lang


def is_mandarin(tag: str) -> bool:
    return primary_language(tag) in MANDARIN_LANGUAGES


def metric_for(language: str) -> Metric:
    """CER for languages written without spaces between words (Chinese varieties, Japanese,
    Thai), WER for the others."""
    return "cer" if primary_language(language) in CER_LANGUAGES else "wer"


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _t2s_triggers() -> frozenset[str] | None:
    """Every character that opencc's t2s can change: the Traditional characters of
    TSCharacters and, in each TSPhrases entry that changes, the characters that differ. A
    text holding none of them is its own t2s conversion (every change needs one), so the
    converter (slow in pure Python) runs only on texts that hold one. None when the
    dictionaries are not where opencc-python-reimplemented keeps them: always convert."""
    import opencc

    folder = Path(opencc.__file__).parent / "dictionary"
    triggers: set[str] = set()
    try:
        for name in ("TSCharacters.txt", "TSPhrases.txt"):
            for line in (folder / name).read_text(encoding="utf-8").splitlines():
                key, _, values = line.partition("\t")
                first = values.split(" ")[0]
                if not key or first == key:
                    continue
                if len(key) == 1 or len(key) != len(first):
                    triggers.update(key)
                else:
                    triggers.update(k for k, v in zip(key, first, strict=True) if k != v)
    except OSError:
        return None
    return frozenset(triggers)


def to_simplified(text: str) -> str:
    """opencc t2s, skipped for a text holding no character it could change."""
    triggers = _t2s_triggers()
    if triggers is not None and triggers.isdisjoint(text):
        return text
    return str(_t2s().convert(text))


def _an2cn(text: str) -> str:
    """Arabic numerals read as Chinese by cn2an; where cn2an cannot parse a number, each
    remaining digit is read on its own (0 -> 零 ... 9 -> 九), so the rule never fails."""
    import cn2an

    try:
        converted = str(cn2an.transform(text, "an2cn"))
    except Exception:  # cn2an raises on shapes it does not know (e.g. "1.2.3")
        converted = text
    return converted.translate(_DIGIT_READING)


@dataclass(frozen=True)
class Normaliser:
    """A versioned text normaliser: `name` (zh, en), `version` (v1) and its options (as
    (key, value) pairs in signature order). Call it on a text."""

    name: str
    version: str
    options: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:
        return f"{self.name}-{self.version}"

    def option(self, key: str) -> str:
        return dict(self.options)[key]

    def signature(self, metric: Metric) -> str:
        """e.g. `cer|norm:zh-v1|punct:strip|digits:cn2an|t2s:yes`."""
        return "|".join([metric, f"norm:{self.id}", *(f"{k}:{v}" for k, v in self.options)])

    @cached_property
    def _zh(self) -> tuple[bool, str]:
        return self.option("t2s") == "yes", self.option("digits")

    def __call__(self, text: str) -> str:
        if self.name == "zh":
            return _normalise_zh(text, *self._zh)
        return _normalise_en(text)


def _normalise_zh(text: str, t2s: bool, digits: str) -> str:
    if _FULL_WIDTH.search(text):
        text = text.translate(_WIDTH)
    if t2s:
        text = to_simplified(text)
    if digits == "cn2an" and _DIGIT.search(text):
        text = _an2cn(text)
    return _ZH_DROP.sub("", text)  # punctuation and whitespace: both are deleted


def _normalise_en(text: str) -> str:
    return " ".join(text.lower().translate(_en_table()).split())


@lru_cache(maxsize=1)
def _en_table() -> dict[int, str | None]:
    """en-v1 in one str.translate: ’ -> ', hyphens and dashes -> space, every other
    Unicode punctuation character (category P*) and ASCII punctuation sign removed."""
    import sys
    import unicodedata

    table: dict[int, str | None] = {
        cp: None
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)).startswith("P")
    }
    table.update({ord(c): None for c in string.punctuation})
    table.update({cp: " " for cp in (0x2D, *range(0x2010, 0x2016), 0x2212)})
    table[ord("'")] = "'"
    table[0x2019] = "'"
    return table


ZH_OPTIONS = {"t2s": (True, False), "digits": ("cn2an", "keep")}


def normaliser_for(language: str, options: Mapping[str, Any] | None = None) -> Normaliser:
    """The normaliser for a BCP-47 language: `zh-v1` for CER languages, `en-v1` otherwise.

    options (Chinese only; others refuse them): `t2s` (bool, default True: Traditional ->
    Simplified), `digits` ("cn2an", the default, or "keep"). Japanese and Thai get `zh-v1`
    with `t2s: no` and `digits: keep` whatever is asked. ValueError for an unknown option.
    """
    given = dict(options or {})
    unknown = sorted(set(given) - set(ZH_OPTIONS))
    if unknown:
        raise ValueError(f"unknown normaliser option(s) {unknown} (known: t2s, digits)")
    if metric_for(language) == "wer":
        return Normaliser("en", "v1", (("case", "lower"), ("punct", "strip")))
    t2s = given.get("t2s", True)
    digits = given.get("digits", "cn2an")
    if t2s not in ZH_OPTIONS["t2s"]:
        raise ValueError(f"t2s must be true or false, got {t2s!r}")
    if digits not in ZH_OPTIONS["digits"]:
        raise ValueError(f"digits must be 'cn2an' or 'keep', got {digits!r}")
    if primary_language(language) not in CHINESE_LANGUAGES:
        t2s, digits = False, "keep"
    return Normaliser(
        "zh", "v1", (("punct", "strip"), ("digits", str(digits)), ("t2s", "yes" if t2s else "no"))
    )


# ---------------------------------------------------------------- corpus error counts


@dataclass(frozen=True)
class ErrorCounts:
    """One utterance's alignment: edits = substitutions + deletions + insertions."""

    edits: int
    ref_len: int
    substitutions: int
    deletions: int
    insertions: int


def corpus_error_counts(
    references: Sequence[str], hypotheses: Sequence[str], unit: Unit
) -> list[ErrorCounts]:
    """Per utterance, the alignment counts of already-normalised texts: `word` splits on
    whitespace (jiwer's WER tokens for a stripped, collapsed text), `char` takes every
    character as a token (jiwer's CER tokens; a zh-v1 text holds no spaces). An empty
    hypothesis is all deletions; an empty reference counts its hypothesis as insertions.

    The alignment is rapidfuzz's Levenshtein edit script, the very one jiwer builds its
    alignments from (jiwer.process_words calls rapidfuzz's opcodes on the same tokens), taken
    directly: jiwer's per-utterance Python objects cost five times the alignment itself. The
    tests check every count against jiwer's own."""
    from rapidfuzz.distance import Levenshtein

    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references and {len(hypotheses)} hypotheses: not aligned"
        )
    if unit not in ("char", "word"):
        raise ValueError(f"unit must be 'char' or 'word', got {unit!r}")
    editops = Levenshtein.editops
    counts: list[ErrorCounts] = []
    append = counts.append
    chars = unit == "char"
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref: Any = reference.strip() if chars else reference.split()
        hyp: Any = hypothesis.strip() if chars else hypothesis.split()
        s = d = i = 0
        for op in editops(ref, hyp):
            tag = op.tag
            if tag == "replace":
                s += 1
            elif tag == "delete":
                d += 1
            else:
                i += 1
        append(ErrorCounts(s + d + i, len(ref), s, d, i))
    return counts


def unit_for(metric: Metric) -> Unit:
    return "char" if metric == "cer" else "word"


def corpus_rate(counts: Sequence[ErrorCounts]) -> float:
    """Sum of edits / sum of reference lengths (ValueError when there is no reference)."""
    total = sum(c.ref_len for c in counts)
    if total <= 0:
        raise ValueError("no reference tokens: the rate is undefined")
    return sum(c.edits for c in counts) / total


def totals(counts: Sequence[ErrorCounts]) -> dict[str, int]:
    return {
        "utterances": len(counts),
        "reference_tokens": sum(c.ref_len for c in counts),
        "edits": sum(c.edits for c in counts),
        "substitutions": sum(c.substitutions for c in counts),
        "deletions": sum(c.deletions for c in counts),
        "insertions": sum(c.insertions for c in counts),
    }


def rate_interval(
    counts: Sequence[ErrorCounts],
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> BootstrapInterval:
    """The corpus rate with one-sided bootstrap bounds over utterances."""
    return ratio_interval(
        [c.edits for c in counts], [c.ref_len for c in counts], confidence, resamples, seed
    )


def paired_rate_test(
    counts_a: Sequence[ErrorCounts],
    counts_b: Sequence[ErrorCounts],
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedBootstrap:
    """Paired bootstrap of rate(A) - rate(B) for two systems on the same utterances."""
    if len(counts_a) != len(counts_b):
        raise ValueError("the two systems answered different numbers of utterances")
    if any(a.ref_len != b.ref_len for a, b in zip(counts_a, counts_b, strict=True)):
        raise ValueError("the two systems were scored against different references")
    return paired_ratio_test(
        [c.edits for c in counts_a],
        [c.edits for c in counts_b],
        [c.ref_len for c in counts_a],
        confidence,
        resamples,
        seed,
    )


@dataclass(frozen=True)
class StratifiedMean:
    """The mean over strata (scenes) of each stratum's corpus rate, with one-sided bounds
    from a bootstrap that resamples utterances within each stratum."""

    value: float
    low: float
    high: float
    per_stratum: dict[str, float]
    confidence: float
    resamples: int
    seed: int

    @property
    def method(self) -> str:
        return (
            f"mean over {len(self.per_stratum)} scenes of each scene's corpus rate; bootstrap "
            f"resampling utterances within each scene, {self.resamples} resamples, seed "
            f"{self.seed}, percentile bounds"
        )


def stratified_mean_interval(
    strata: Mapping[str, Sequence[ErrorCounts]],
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> StratifiedMean:
    """Mean of per-stratum corpus rates; every resample draws each stratum's utterances
    with replacement from that stratum alone (numpy PCG64, seeded), so each scene weighs
    the same in every resample as in the figure."""
    if not strata:
        raise ValueError("no strata")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    rng = np.random.Generator(np.random.PCG64(seed))
    per: dict[str, float] = {}
    sums = np.zeros(resamples)
    for name in sorted(strata):
        counts = strata[name]
        edits = np.array([c.edits for c in counts], dtype=np.float64)
        refs = np.array([c.ref_len for c in counts], dtype=np.float64)
        if refs.sum() <= 0:
            raise ValueError(f"scene {name!r} holds no reference tokens")
        per[name] = float(edits.sum() / refs.sum())
        block = max(1, _BLOCK_ITEMS // len(counts))  # resamples drawn at once: memory stays small
        for start in range(0, resamples, block):
            rows = min(block, resamples - start)
            idx = rng.integers(0, len(counts), size=(rows, len(counts)), dtype=np.int32)
            den = refs[idx].sum(axis=1)
            # a resample whose references are all empty keeps the stratum's own rate
            sums[start : start + rows] += np.where(
                den > 0, edits[idx].sum(axis=1) / np.where(den > 0, den, 1), per[name]
            )
    means = sums / len(strata)
    value = float(np.mean(list(per.values())))
    return StratifiedMean(
        value,
        float(np.quantile(means, 1.0 - confidence)),
        float(np.quantile(means, confidence)),
        per,
        confidence,
        resamples,
        seed,
    )
