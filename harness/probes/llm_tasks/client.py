"""A small synchronous OpenAI-compatible client for the D16 task probes (downstream scores,
modalities, services): one request at a time, non-streamed, every request and answer kept
for the evidence.

Requests go to the URL given and nowhere else (environment proxy settings ignored,
redirects not followed: a 3xx fails the request). `timeout_s` bounds the connection and
each read, and the whole answer is abandoned once it has passed since the request started.
An answer body is kept up to `MAX_ANSWER_BYTES`; a longer one fails its request.

A request's failure reason starts with one of the adapters' words (harness.adapters
._support): `crashed: HTTP 400 ...: <the body's first bytes>`, `timeout after X s`,
`unreachable: ...`, `bad output: ...`.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from harness.adapters._support import one_line, timeout_message
from harness.adapters.http_sut import redacted

MAX_ANSWER_BYTES = 4 << 20
ERROR_BODY_BYTES = 300
CHUNK = 1 << 16


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


@dataclass(frozen=True)
class Reply:
    """What came back: the HTTP status (None when none came), the body as text (UTF-8,
    undecodable bytes replaced), the failure reason (None for a 2xx answer read whole) and
    the harness's latency around the request."""

    status: int | None
    body: str
    error: str | None
    latency_s: float


def send(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout_s: float,
) -> Reply:
    """One request (module doc); never raises for the server's failure."""
    head = {"Accept": "application/json", **headers}
    if body is not None:
        head["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=head, method=method)
    start = time.perf_counter()
    deadline = start + timeout_s

    def failed(error: str, status: int | None = None, text: str = "") -> Reply:
        return Reply(status, text, error, time.perf_counter() - start)

    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status = int(response.status)
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read1(CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    return failed(
                        f"bad output: the answer is longer than {MAX_ANSWER_BYTES} bytes", status
                    )
                if time.perf_counter() > deadline:
                    return failed(timeout_message(timeout_s), status)
    except urllib.error.HTTPError as error:
        excerpt = _excerpt(error)
        reason = f"crashed: HTTP {error.code} {error.reason}" + (f": {excerpt}" if excerpt else "")
        return failed(reason, error.code, excerpt)
    except urllib.error.URLError as error:
        cause = error.reason
        if isinstance(cause, TimeoutError):
            return failed(timeout_message(timeout_s))
        if isinstance(cause, ConnectionRefusedError):
            return failed(f"unreachable: connection refused ({redacted(url)})")
        return failed(f"unreachable: {one_line(str(cause))}")
    except TimeoutError:
        return failed(timeout_message(timeout_s))
    except http.client.HTTPException as error:
        return failed(f"bad output: malformed HTTP response: {type(error).__name__}: {error}")
    except OSError as error:
        return failed(f"crashed: {type(error).__name__}: {one_line(error)}")
    latency = time.perf_counter() - start
    text = b"".join(chunks).decode("utf-8", errors="replace")
    if latency > timeout_s:
        return Reply(status, text, timeout_message(timeout_s), latency)
    return Reply(status, text, None, latency)


def _excerpt(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read(ERROR_BODY_BYTES)
    except (OSError, http.client.HTTPException):
        return ""
    return one_line(raw.decode("utf-8", errors="replace"))


def encode_body(body: dict[str, Any]) -> bytes:
    """The bytes a JSON body is sent as (and re-made from at scoring, whatever order the
    evidence keeps its keys in): keys sorted, json.dumps's default separators, UTF-8,
    non-ASCII kept, no NaN."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, sort_keys=True).encode("utf-8")


def answer_text(body: str, api: str) -> tuple[str | None, str]:
    """The output text of a non-streamed OpenAI answer body (`choices[0].text` of
    /v1/completions; `choices[0].message.content` of chat, a string or a list of text
    parts), else None with the reason ("bad output: ...")."""
    try:
        obj = json.loads(body)
    except ValueError as error:
        return None, f"bad output: the answer is not JSON: {one_line(error)}"
    if not isinstance(obj, dict):
        return None, "bad output: the answer is not a JSON object"
    if obj.get("error") is not None:
        return None, f"crashed: the server reported an error: {one_line(json.dumps(obj['error']))}"
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None, "bad output: no `choices` list with an object in it"
    choice = choices[0]
    if api == "completions":
        text = choice.get("text")
        if not isinstance(text, str):
            return None, "bad output: `choices[0].text` is not a string"
        return text, ""
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts: the text parts joined
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(t, str) for t in texts) and texts:
            return "".join(t for t in texts if isinstance(t, str)), ""
    if not isinstance(content, str):
        return None, "bad output: `choices[0].message.content` is not a string"
    return content, ""


def join_url(base: str, path: str) -> str:
    """`path` (absolute, or relative to `base`'s folder as a browser reads it) against
    `base`; an absolute http(s) URL as it is."""
    return urllib.parse.urljoin(base, path)
