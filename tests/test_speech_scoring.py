"""harness.scoring.speech_text: the normalisers on cases worked out by hand, corpus rates
against jiwer called directly on already-normalised text, the bootstrap's determinism and
the paired test on a real and a null difference."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

from harness.scoring.speech_text import (
    ErrorCounts,
    corpus_error_counts,
    corpus_rate,
    is_language_tag,
    metric_for,
    normaliser_for,
    paired_rate_test,
    rate_interval,
    stratified_mean_interval,
    variety,
)

# ------------------------------------------------------------------ normalisers


def test_zh_v1_folds_width_converts_traditional_and_reads_digits() -> None:
    norm = normaliser_for("zh-CN", {})
    # full-width ３ -> 3 -> 三; 們個蘋 -> 们个苹; ，「」！ removed
    assert norm("我們有３個蘋果，「好」！") == "我们有三个苹果好"
    assert norm("50%的人") == "百分之五十的人"
    assert norm("2021年5月") == "二零二一年五月"
    assert norm("今天 天气\u3000好") == "今天天气好"
    assert norm("。，、？！：；“”‘’（）《》…—") == ""
    assert norm("ok, ABC!") == "okABC"  # ASCII punctuation and spaces go; case is kept


def test_zh_v1_options_keep_digits_and_traditional() -> None:
    norm = normaliser_for("zh-TW", {"t2s": False, "digits": "keep"})
    assert norm("我們有３個，ＡＢＣ") == "我們有3個ABC"
    assert norm.signature("cer") == "cer|norm:zh-v1|punct:strip|digits:keep|t2s:no"


def test_signatures() -> None:
    assert (
        normaliser_for("cmn", {"t2s": True, "digits": "cn2an"}).signature("cer")
        == "cer|norm:zh-v1|punct:strip|digits:cn2an|t2s:yes"
    )
    assert normaliser_for("en-US").signature("wer") == "wer|norm:en-v1|case:lower|punct:strip"
    # Japanese: CER, width and punctuation rules, but no Chinese conversion
    assert normaliser_for("ja", {}).signature("cer") == (
        "cer|norm:zh-v1|punct:strip|digits:keep|t2s:no"
    )


def test_en_v1() -> None:
    norm = normaliser_for("en-GB")
    assert norm("Hello, World!  It’s a well-known fact; isn't it? 42") == (
        "hello world it's a well known fact isn't it 42"
    )


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown normaliser option"):
        normaliser_for("zh", {"traditional": True})
    with pytest.raises(ValueError, match="digits"):
        normaliser_for("zh", {"digits": "roman"})


@pytest.mark.parametrize(
    ("tag", "metric"),
    [
        ("zh", "cer"),
        ("zh-CN", "cer"),
        ("cmn-Hans-CN", "cer"),
        ("yue", "cer"),
        ("ja", "cer"),
        ("th-TH", "cer"),
        ("en-US", "wer"),
        ("de", "wer"),
        ("fr-CA", "wer"),
    ],
)
def test_metric_by_language(tag: str, metric: str) -> None:
    assert metric_for(tag) == metric


def test_language_tags_and_varieties() -> None:
    assert is_language_tag("zh-Hans-CN") and is_language_tag("en")
    assert not is_language_tag("Chinese!") and not is_language_tag("z") and not is_language_tag("")
    assert variety("zh-CN") == variety("cmn-Hans") == "cmn"
    assert variety("en-US") == variety("en-GB") == "en"
    assert variety("zh-yue") == variety("yue-HK") == "yue"


def test_one_language_is_one_variety_however_it_is_tagged() -> None:
    """H8: en-US, eng, en-abcde, en-1abc counted as four varieties; eng-x-fghij passed as
    a tag. ISO 639-2/3 codes fold to 639-1, variants are dropped, private use refused."""
    assert {variety(t) for t in ("en-US", "eng", "en-abcde", "en-1abc", "eng-GB")} == {"en"}
    assert not is_language_tag("eng-x-fghij") and not is_language_tag("en-x-a")
    assert variety("deu") == variety("ger") == variety("de-CH-1901") == "de"
    assert variety("fra") == variety("fre") == "fr" and variety("spa") == "es"
    assert variety("jpn") == "ja" and variety("kor") == "ko"
    assert variety("zho") == variety("zh") == variety("cmn") == "cmn"
    assert variety("yue") == variety("zho-yue") == "yue"
    assert variety("wuu") == "wuu" and variety("nan") == "nan" and variety("hak") == "hak"


# ------------------------------------------------------------------ corpus rates vs jiwer


REFS_EN = ["the cat sat on the mat", "hello world", "a b c d e f g h i j", "one"]
HYPS_EN = ["the cat sat on mat", "hello there world", "a b c d e f g h i j", ""]


def test_wer_counts_match_jiwer() -> None:
    counts = corpus_error_counts(REFS_EN, HYPS_EN, "word")
    expected = jiwer.process_words(REFS_EN, HYPS_EN)
    assert corpus_rate(counts) == pytest.approx(jiwer.wer(REFS_EN, HYPS_EN), abs=1e-12)
    assert sum(c.substitutions for c in counts) == expected.substitutions
    assert sum(c.deletions for c in counts) == expected.deletions
    assert sum(c.insertions for c in counts) == expected.insertions
    # the empty hypothesis is all deletions of its reference
    assert counts[3] == ErrorCounts(1, 1, 0, 1, 0)


def test_cer_counts_match_jiwer_on_normalised_chinese() -> None:
    norm = normaliser_for("zh")
    refs = [norm(t) for t in ["今天天气很好。", "打开客厅的灯", "把空调调到26度"]]
    hyps = [norm(t) for t in ["今天天氣很好", "打开客厅灯", "把空调调到二十七度吧"]]
    counts = corpus_error_counts(refs, hyps, "char")
    assert corpus_rate(counts) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    # by hand: 0 edits / 6; 1 deletion / 6; 六->七 and 吧 inserted: 2 / 9
    assert [c.edits for c in counts] == [0, 1, 2]
    assert [c.ref_len for c in counts] == [6, 6, 9]
    assert corpus_rate(counts) == pytest.approx(3 / 21)
    # jiwer's WER of an unsegmented Chinese line is 0 or 1: the reason CER is used
    assert jiwer.wer(refs[2], hyps[2]) == 1.0


@pytest.mark.parametrize("unit", ["word", "char"])
def test_every_utterance_count_matches_jiwer_on_random_pairs(unit: str) -> None:
    """Per utterance (not only in total), substitutions, deletions and insertions agree with
    jiwer's own alignment, on 400 random pairs with empty hypotheses among them."""
    import random

    rng = random.Random(4)
    alphabet = ["a", "bb", "c", "dd", "e"] if unit == "word" else list("的一是不了人我")
    joiner = " " if unit == "word" else ""
    refs = [joiner.join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(400)]
    hyps = [
        "" if k % 37 == 0 else joiner.join(rng.choices(alphabet, k=rng.randint(1, 12)))
        for k in range(400)
    ]
    counts = corpus_error_counts(refs, hyps, unit)  # type: ignore[arg-type]
    for ref, hyp, got in zip(refs, hyps, counts, strict=True):
        if unit == "word":
            want = jiwer.process_words(ref, hyp)
        else:
            want = jiwer.process_characters(ref, hyp)
        assert (got.substitutions, got.deletions, got.insertions) == (
            want.substitutions,
            want.deletions,
            want.insertions,
        ), (ref, hyp)
        assert got.ref_len == len(want.references[0])


def test_corpus_rate_is_not_a_mean_of_rates() -> None:
    refs = ["a b c d e f g h i j", "k"]
    hyps = ["a b c d e f g h i j", "x"]
    counts = corpus_error_counts(refs, hyps, "word")
    mean_of_rates = float(np.mean([jiwer.wer(r, h) for r, h in zip(refs, hyps, strict=True)]))
    assert corpus_rate(counts) == pytest.approx(1 / 11)
    assert corpus_rate(counts) == pytest.approx(jiwer.wer(refs, hyps))
    assert mean_of_rates == pytest.approx(0.5)


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="not aligned"):
        corpus_error_counts(["a", "b"], ["a"], "word")
    with pytest.raises(ValueError, match="undefined"):
        corpus_rate([ErrorCounts(1, 0, 0, 0, 1)])


# ------------------------------------------------------------------ bootstrap


def _counts(edits: np.ndarray, lengths: np.ndarray) -> list[ErrorCounts]:
    return [ErrorCounts(int(e), int(n), int(e), 0, 0) for e, n in zip(edits, lengths, strict=True)]


def test_bootstrap_is_deterministic_and_brackets_the_rate() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(5, 20, size=200)
    counts = _counts(rng.binomial(lengths, 0.1), lengths)
    a = rate_interval(counts, 0.95, resamples=500, seed=3)
    b = rate_interval(counts, 0.95, resamples=500, seed=3)
    c = rate_interval(counts, 0.95, resamples=500, seed=4)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low < a.value < a.high
    assert a.value == pytest.approx(sum(x.edits for x in counts) / sum(lengths))


def test_paired_test_detects_a_real_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(11)
    lengths = rng.integers(5, 20, size=300)
    a = _counts(rng.binomial(lengths, 0.15), lengths)
    better = _counts(rng.binomial(lengths, 0.05), lengths)
    same = _counts(rng.binomial(lengths, 0.15), lengths)
    real = paired_rate_test(a, better, 0.95, resamples=1000, seed=0)
    null = paired_rate_test(a, same, 0.95, resamples=1000, seed=0)
    assert real.significant and real.low > 0
    assert not null.significant and null.low < 0 < null.high


def test_scene_mean_resamples_within_scenes() -> None:
    home = [ErrorCounts(1, 36, 1, 0, 0)]
    car = [ErrorCounts(3, 22, 3, 0, 0), ErrorCounts(0, 10, 0, 0, 0)]
    m = stratified_mean_interval({"home": home, "car": car}, 0.95, resamples=400, seed=0)
    assert m.value == pytest.approx((1 / 36 + 3 / 32) / 2)
    assert m.per_stratum == pytest.approx({"home": 1 / 36, "car": 3 / 32})
    # home has one utterance, so it never moves; car's rate ranges over 0, 3/32 and 3/22
    assert m.low >= (1 / 36 + 0) / 2 - 1e-12
    assert m.high <= (1 / 36 + 3 / 22) / 2 + 1e-12
    again = stratified_mean_interval({"car": car, "home": home}, 0.95, resamples=400, seed=0)
    assert again == m
