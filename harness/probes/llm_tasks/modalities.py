"""`llm.modalities`: which of multilingual text, speech, image and video the model behind an
OpenAI-compatible endpoint really takes in and answers right.

SUT: `sut: {adapter: http, url, model?, headers?, timeout_s?}` (harness.probes
.llm_tasks.endpoint); `local` drives the harness's reference server (a dry run, text only:
its figures are invalid).

collect: the harness makes every medium itself, with a question whose answer it knows
(harness.probes.llm_tasks.media), and sends one non-streamed request per item to
`/v1/chat/completions`, `temperature` 0, `max_tokens` 16; the user message is:
- text: the question as a plain string (in each of `languages`, `items_per_modality`
  questions per language: two numbers written as words of the language, the sum asked);
- image: content parts `[{"type": "text", "text": Q}, {"type": "image_url", "image_url":
  {"url": "data:image/png;base64,..."}}]` (count the circles);
- speech: `[{"type": "text", ...}, {"type": "input_audio", "input_audio": {"data":
  "<base64 WAV>", "format": "wav"}}]` (the number spoken, by festival by default; or beeps
  to count with `speech_source: tones`);
- video: `video_form: frames` (default), the text part then one `image_url` part per frame,
  in order (OpenAI's way of giving a video to a chat model); or `video_form: video_url`,
  the harness's documented extension `{"type": "video_url", "video_url": {"url":
  "data:image/gif;base64,..."}}` (the frames as one animated GIF, 2 frames/s) (the
  direction the square moves).
Evidence: `items.json` (question, expected answer, media files), `media/*` (the exact
bytes sent), `requests.jsonl` (each request body with its media by reference, the sha256
of the bytes sent, status, answer body, latency, failure; harness.probes.llm_tasks
.records), `sut.json`.

score (evidence only; each body re-made from its template and media and its digest
checked): an item is right when its answer's first integer (numbers) or first direction
word (video) equals the expected one (harness.probes.llm_tasks.answers); a failed request
or another answer is wrong, with its reason. A modality is counted when at least
`min_correct_fraction` (default all) of its items are right; multilingual text when at
least `min_languages` (default 2) languages each pass that rule.
- `modalities` (count, exact): modalities counted, of text, speech, image, video;
- `languages` (count, exact): languages whose questions were answered right.
Details list every item with its request id, expected and parsed answer and reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.llm_tasks import media
from harness.probes.llm_tasks.answers import first_integer, first_word
from harness.probes.llm_tasks.client import answer_text
from harness.probes.llm_tasks.common import failure_summary, joined
from harness.probes.llm_tasks.endpoint import REFERENCE_REASON, endpoint, is_reference, target_of
from harness.probes.llm_tasks.records import (
    REQUESTS,
    body_mismatches,
    chat_body,
    media_ref,
    post,
    read_jsonl,
    write_jsonl,
)
from harness.registry import probes
from harness.schema import Measurement, SutSpec, Unmeasured

Modality = Literal["text", "speech", "image", "video"]
MODALITIES: tuple[Modality, ...] = ("text", "speech", "image", "video")
EXACT = "an exact count of the modalities whose items were answered right"
IMAGE_Q = "How many circles are in this image? Answer with digits only."
SPEECH_Q = "What number is spoken in this recording? Answer with digits only."
TONES_Q = "How many beeps are in this recording? Answer with digits only."
VIDEO_Q = (
    "These images are the frames of a short video, in order. In which direction does the "
    "red square move: left, right, up or down? Answer with one word."
)
VIDEO_URL_Q = (
    "In which direction does the red square in this video move: left, right, up or down? "
    "Answer with one word."
)


class ModalitiesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    modalities: list[Modality] = Field(default_factory=lambda: list(MODALITIES), min_length=1)
    languages: list[str] = Field(default_factory=lambda: ["en", "zh", "es"], min_length=1)
    min_languages: int = Field(default=2, ge=1)
    items_per_modality: int = Field(default=3, ge=1, le=100)
    min_correct_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    speech_source: Literal["festival", "espeak-ng", "tones"] = "festival"
    video_form: Literal["frames", "video_url"] = "frames"
    video_frames: int = Field(default=4, ge=2, le=6)
    max_tokens: int = Field(default=16, ge=1, le=100_000)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)
    reference_layers: int = Field(default=2, ge=1, le=12)
    reference_hidden: int = Field(default=64, ge=16, le=1024)

    @field_validator("languages")
    @classmethod
    def _known(cls, languages: list[str]) -> list[str]:
        unknown = [x for x in languages if x not in media.NUMBER_WORDS]
        if unknown or len(set(languages)) != len(languages):
            raise ValueError(
                f"languages are distinct ones of {', '.join(sorted(media.NUMBER_WORDS))}"
            )
        return languages


def needed(items: int, fraction: float) -> int:
    """Right items a capability needs to be counted."""
    return max(1, math.ceil(fraction * items - 1e-9))


def make_items(args: ModalitiesArgs, seed: int) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The items (question, expected answer, how the answer is read, the content template)
    and their media bytes by evidence path."""
    items: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    n = args.items_per_modality
    for modality in args.modalities:
        for k in range(n if modality != "text" else 0):
            ident = f"{modality}-{k}"
            if modality == "image":
                png, count = media.circles(seed, k)
                path = f"media/{ident}.png"
                files[path] = png
                content: Any = [
                    {"type": "text", "text": IMAGE_Q},
                    {"type": "image_url", "image_url": {"url": media_ref(path, "image/png")}},
                ]
                items.append(_item(ident, modality, IMAGE_Q, count, "integer", content, [path]))
            elif modality == "speech":
                if args.speech_source == "tones":
                    wav, count = media.beeps(seed, k)
                    question = TONES_Q
                else:
                    wav, count = media.spoken_number(seed, k, args.speech_source)
                    question = SPEECH_Q
                path = f"media/{ident}.wav"
                files[path] = wav
                content = [
                    {"type": "text", "text": question},
                    {"type": "input_audio",
                     "input_audio": {"data": media_ref(path, None), "format": "wav"}},
                ]  # fmt: skip
                items.append(_item(ident, modality, question, count, "integer", content, [path]))
            else:
                clip = media.moving_square(seed, k, args.video_frames)
                if args.video_form == "frames":
                    paths = [f"media/{ident}-frame{j}.png" for j in range(len(clip.frames))]
                    files.update(zip(paths, clip.frames, strict=True))
                    content = [{"type": "text", "text": VIDEO_Q}] + [
                        {"type": "image_url", "image_url": {"url": media_ref(p, "image/png")}}
                        for p in paths
                    ]
                    question = VIDEO_Q
                else:
                    paths = [f"media/{ident}.gif"]
                    files[paths[0]] = clip.gif
                    content = [
                        {"type": "text", "text": VIDEO_URL_Q},
                        {"type": "video_url",
                         "video_url": {"url": media_ref(paths[0], "image/gif")}},
                    ]  # fmt: skip
                    question = VIDEO_URL_Q
                items.append(
                    _item(ident, modality, question, clip.direction, "direction", content, paths)
                )
        if modality == "text":
            for language in args.languages:
                for k in range(n):
                    question, total = media.sum_question(seed, language, k)
                    item = _item(
                        f"text-{language}-{k}", "text", question, total, "integer", question, []
                    )
                    items.append({**item, "language": language})
    return items, files


def _item(
    ident: str,
    modality: str,
    question: str,
    expected: int | str,
    read: str,
    content: Any,
    paths: list[str],
) -> dict[str, Any]:
    return {
        "id": ident,
        "modality": modality,
        "question": question,
        "expected": expected,
        "read": read,
        "content": content,
        "media": paths,
    }


def judge_item(item: Mapping[str, Any], record: Mapping[str, Any]) -> tuple[bool, Any, str]:
    """(right, the parsed answer, the reason when wrong)."""
    if record["error"]:
        return False, None, str(record["error"])
    text, reason = answer_text(record["answer"], "chat")
    if text is None:
        return False, None, reason
    got: Any = (
        first_integer(text) if item["read"] == "integer" else first_word(text, media.DIRECTIONS)
    )
    shown = " ".join(text.split())[:60]
    if got is None:
        return False, None, f"unparsed: no {item['read']} in the answer {shown!r}"
    if got != item["expected"]:
        return False, got, f"wrong: answered {got!r} ({shown!r}), expected {item['expected']!r}"
    return True, got, ""


@probes.register("llm.modalities")
class ModalitiesProbe:
    name: ClassVar[str] = "llm.modalities"
    Args: ClassVar[type[BaseModel]] = ModalitiesArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return {"modalities": "count", "languages": "count"}

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, ModalitiesArgs)
        return 2 + len(args.modalities)

    def check_sut(self, args: BaseModel, sut: SutSpec, base_dir: Path | None) -> None:
        if sut.adapter != "local":
            target_of(sut, self.name)

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ModalitiesArgs)
        ctx.progress("make the media")
        items, files = make_items(args, ctx.seed)
        records = []
        with endpoint(
            ctx, self.name, args.timeout_s, args.reference_layers, args.reference_hidden
        ) as (target, sut):
            url = target.url("chat")
            for item in items:
                ctx.progress(f"ask {item['id']}")
                body = chat_body(target, item["content"], args.max_tokens, args.temperature)
                fields = {"id": item["id"], "modality": item["modality"]}
                records.append(post(target, url, body, files, fields))
        for path, data in files.items():
            ctx.evidence.write_bytes(path, data)
        ctx.evidence.write_json("items.json", {"seed": ctx.seed, "items": items})
        write_jsonl(ctx.evidence, REQUESTS, records)
        ctx.evidence.write_json("sut.json", sut)
        return failure_summary(records, refusals_are_answers=True)

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ModalitiesArgs)
        items = evidence.read_json("items.json")["items"]
        records = read_jsonl(evidence, REQUESTS)
        by_id = {r["id"]: r for r in records}
        sut = evidence.read_json("sut.json")
        bad = set(body_mismatches(evidence, records))
        rows = []
        for item in items:
            record = by_id.get(item["id"])
            if record is None:
                raise ValueError(f"requests.jsonl holds no request for {item['id']}")
            if _content_of(record) != item["content"]:
                bad.add(item["id"])
            ok, got, reason = judge_item(item, record)
            rows.append(
                {
                    "id": item["id"],
                    "modality": item["modality"],
                    "language": item.get("language"),
                    "expected": item["expected"],
                    "answered": got,
                    "right": ok,
                    "reason": reason,
                    "status": record["status"],
                }
            )
        per: dict[str, Any] = {}
        for modality in args.modalities:
            mine = [r for r in rows if r["modality"] == modality]
            right = sum(r["right"] for r in mine)
            entry: dict[str, Any] = {"items": len(mine), "right": right}
            if modality == "text":
                languages = {}
                for language in args.languages:
                    theirs = [r for r in mine if r["language"] == language]
                    hits = sum(r["right"] for r in theirs)
                    languages[language] = {
                        "items": len(theirs),
                        "right": hits,
                        "passes": hits >= needed(len(theirs), args.min_correct_fraction),
                    }
                passing = sorted(x for x, v in languages.items() if v["passes"])
                entry.update(languages=languages, languages_passing=passing)
                entry["counted"] = len(passing) >= args.min_languages
            else:
                entry["counted"] = bool(mine) and right >= needed(
                    len(mine), args.min_correct_fraction
                )
            entry["rows"] = mine
            per[modality] = entry
        counted = [m for m in args.modalities if per[m]["counted"]]
        invalid = joined(
            REFERENCE_REASON if is_reference(sut) else "",
            f"{len(bad)} recorded requests do not match their items or digests "
            f"({', '.join(sorted(bad)[:5])})"
            if bad
            else "",
        )
        rule = (
            f"a modality counts when >= {args.min_correct_fraction:.0%} of its "
            f"{args.items_per_modality} items are answered right (multilingual text: >= "
            f"{args.min_languages} languages each passing that rule); answers read strictly "
            "(first integer / first direction word); a failed request counts wrong"
        )
        measurements = [
            Measurement(
                id="modalities",
                value=float(len(counted)),
                unit="count",
                n=len(rows),
                repeats=1,
                method=f"llm.modalities: modalities counted of {', '.join(args.modalities)}; "
                f"{rule}",
                details={"counted": counted, "modalities": per},
                invalid_reason=invalid,
                exact=EXACT,
            )
        ]
        unmeasured = []
        if "text" in per:
            passing = per["text"]["languages_passing"]
            measurements.append(
                Measurement(
                    id="languages",
                    value=float(len(passing)),
                    unit="count",
                    n=per["text"]["items"],
                    repeats=1,
                    method=f"llm.modalities: languages of {', '.join(args.languages)} whose "
                    f"questions were answered right; {rule}",
                    details={"passing": passing, "languages": per["text"]["languages"]},
                    invalid_reason=invalid,
                    exact="an exact count of languages",
                )
            )
        else:
            unmeasured.append(Unmeasured(id="languages", reason="the task asks no text items"))
        return ScoreResult(measurements, unmeasured)


def _content_of(record: Mapping[str, Any]) -> Any:
    body = record.get("body")
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict):
        return None
    return messages[0].get("content")
