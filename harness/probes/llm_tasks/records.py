"""The evidence of the D16 task probes' requests: one JSON object per request in a JSONL
file, holding the request body as sent (media parts by reference to their evidence file),
the sha256 of the exact bytes sent, the answer's status, body and latency, and the failure
reason. `score` re-makes each body from its template and the media files, checks the
digest, and reads the answer from the record alone.

A template is the JSON body with every media string (a `data:` URI, a bare base64 string)
replaced by `{"$media": "<evidence path>", "as": "data:<mime>;base64" | "base64"}`."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from harness.adapters.http_sut import redacted
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.llm_tasks.client import Reply, encode_body, send
from harness.probes.llm_tasks.endpoint import Api, Target

MEDIA_KEY = "$media"
REQUESTS = "requests.jsonl"


def media_ref(path: str, mime: str | None) -> dict[str, str]:
    """The template's stand-in for a media string: a data URI of `mime`, or (None) bare
    base64 (OpenAI's `input_audio.data`)."""
    return {MEDIA_KEY: path, "as": f"data:{mime};base64" if mime else "base64"}


def build_body(template: Any, media: Callable[[str], bytes]) -> Any:
    """The body a template stands for, with each media reference encoded from `media`."""
    if isinstance(template, dict):
        if MEDIA_KEY in template:
            encoded = base64.b64encode(media(str(template[MEDIA_KEY]))).decode("ascii")
            how = str(template["as"])
            return encoded if how == "base64" else f"{how},{encoded}"
        return {k: build_body(v, media) for k, v in template.items()}
    if isinstance(template, list):
        return [build_body(v, media) for v in template]
    return template


def chat_body(target: Target, content: Any, max_tokens: int, temperature: float) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if target.model:
        body["model"] = target.model
    body["messages"] = [{"role": "user", "content": content}]
    body["max_tokens"] = max_tokens
    body["temperature"] = temperature
    body["stream"] = False
    return body


def completion_body(
    target: Target, prompt: str, max_tokens: int, temperature: float
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if target.model:
        body["model"] = target.model
    body["prompt"] = prompt
    body["max_tokens"] = max_tokens
    body["temperature"] = temperature
    body["stream"] = False
    return body


def text_body(
    target: Target, api: Api, prompt: str, max_tokens: int, temperature: float
) -> dict[str, Any]:
    """A plain-text request of either API."""
    if api == "chat":
        return chat_body(target, prompt, max_tokens, temperature)
    return completion_body(target, prompt, max_tokens, temperature)


def post(
    target: Target,
    url: str,
    template: dict[str, Any],
    media: Mapping[str, bytes],
    fields: dict[str, Any],
) -> dict[str, Any]:
    """POST the body a template stands for; the record (module doc), `fields` first."""
    data = encode_body(build_body(template, media.__getitem__))
    reply = send("POST", url, data, target.headers, target.timeout_s)
    return record_of(fields, "POST", url, template, hashlib.sha256(data).hexdigest(), reply)


def get(target: Target, url: str, fields: dict[str, Any]) -> dict[str, Any]:
    reply = send("GET", url, None, target.headers, target.timeout_s)
    return record_of(fields, "GET", url, None, None, reply)


def record_of(
    fields: dict[str, Any],
    method: str,
    url: str,
    template: Any,
    digest: str | None,
    reply: Reply,
) -> dict[str, Any]:
    return {
        **fields,
        "method": method,
        "url": redacted(url),
        "body": template,
        "body_sha256": digest,
        "status": reply.status,
        "answer": reply.body,
        "answer_sha256": hashlib.sha256(reply.body.encode("utf-8")).hexdigest(),
        "error": reply.error,
        "latency_s": reply.latency_s,
    }


def write_jsonl(evidence: EvidenceWriter, name: str, records: Sequence[dict[str, Any]]) -> None:
    """One compact JSON object per line, sorted keys (the same records, the same bytes)."""
    evidence.write_text(
        name,
        "".join(
            json.dumps(r, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
            for r in records
        ),
    )


def read_jsonl(evidence: EvidenceReader, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in evidence.read_text(name).splitlines() if line.strip()]


def media_bytes(evidence: EvidenceReader, name: str) -> bytes:
    """A media file of the evidence, by its relative path (ValueError for any other path)."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise ValueError(f"not a path inside the evidence: {name!r}")
    return evidence.path(name).read_bytes()


def body_mismatches(evidence: EvidenceReader, records: Sequence[dict[str, Any]]) -> list[str]:
    """The ids of POST records whose template, re-made with the media files of the evidence,
    does not give the bytes whose sha256 was recorded (or whose answer does not match its
    digest)."""
    bad = []
    for r in records:
        if hashlib.sha256(str(r["answer"]).encode("utf-8")).hexdigest() != r["answer_sha256"]:
            bad.append(str(r["id"]))
            continue
        if r["method"] != "POST":
            continue
        try:
            data = encode_body(build_body(r["body"], lambda p: media_bytes(evidence, p)))
        except (OSError, ValueError):
            bad.append(str(r["id"]))
            continue
        if hashlib.sha256(data).hexdigest() != r["body_sha256"]:
            bad.append(str(r["id"]))
    return bad
