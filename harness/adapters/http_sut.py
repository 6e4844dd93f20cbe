"""`http`: a SUT behind an HTTP endpoint, one POST per sample.

    sut:
      adapter: http
      url: http://10.0.0.5:8000/predict
      timeout_s: 30                       # per sample (default 30)
      headers: {Authorization: Bearer x}  # optional, added to every request
      model: my-llm                       # optional: the served model's name (llm.serving)

Each sample is sent as `POST <url>` with the JSON body `{"input": <data>}` (numpy arrays as
nested lists, numpy scalars as numbers, text as a string); the SUT answers 2xx with a JSON
object `{"output": ...}`, and that value is the sample's output.

A sample fails, and the run goes on, on: a non-2xx status ("crashed: HTTP 500 ..."), a body
that is not JSON or has no "output" key ("bad output: ..."), no complete answer within
`timeout_s` ("timeout after X s"), or no connection ("unreachable: ...").

Requests go to the configured URL and nowhere else: environment proxy settings
(http_proxy, ...) are ignored and redirects are not followed (a 3xx fails the sample). The
stdlib client opens a new connection per request, so each latency includes connection
setup. The timeout bounds the connection and each read, and the whole answer is abandoned
once `timeout_s` has passed since the request started.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.adapters._support import (
    UnsupportedInput,
    crashed,
    one_line,
    timeout_message,
    to_json,
)
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.registry import adapters

CHUNK = 1 << 16
ERROR_BODY_BYTES = 300


@adapters.register("http")
class HttpAdapter:
    """A SUT behind an HTTP endpoint: one JSON POST per sample."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "http"
        url: str
        timeout_s: float = Field(default=30.0, gt=0)
        headers: dict[str, str] | None = None
        # the served model's name, for OpenAI-compatible servers (llm.serving sends it)
        model: str | None = None

        @field_validator("url")
        @classmethod
        def _http_url(cls, url: str) -> str:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
            if not parts.hostname:
                raise ValueError(f"the URL names no host: {url!r}")
            return url

        @field_validator("headers")
        @classmethod
        def _header_form(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
            for name, value in (headers or {}).items():
                if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                    raise ValueError(f"not an HTTP header name: {name!r}")
                if any(c in value for c in "\r\n\0"):
                    raise ValueError(f"header {name!r}: a value cannot hold line breaks")
                if name.lower() in ("content-length", "host", "transfer-encoding"):
                    raise ValueError(f"header {name!r} is set by the harness")
            return headers

    description: ClassVar[str] = "a SUT behind an HTTP endpoint (JSON POST per sample)"

    def check(self, args: Args, base_dir: Path | None, source: str | Path | None = None) -> None:
        """Nothing beyond `Args` validation (an http(s) URL with a host): the endpoint is not
        contacted before the run, since it may come up only for the run."""

    def open(self, args: Args, base_dir: Path | None) -> SutSession:
        self.check(args, base_dir)
        return HttpSession(args)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def redacted(url: str) -> str:
    """The URL without any user:password part."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class HttpSession:
    def __init__(self, args: HttpAdapter.Args) -> None:
        self.args = args
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "http",
            "url": redacted(self.args.url),
            "method": "POST",
            "request": 'JSON {"input": <sample>}; answer JSON {"output": ...}',
            "timeout_s": self.args.timeout_s,
            "header_names": sorted(self.args.headers or {}),
            "proxies": "none (environment proxy settings ignored)",
            "redirects": "not followed (a 3xx fails the sample)",
            "connections": "one per request (latency includes connection setup)",
        }

    def _request(self, body: bytes) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(self.args.headers or {})
        return urllib.request.Request(self.args.url, data=body, headers=headers, method="POST")

    def _one(self, sample: Sample) -> SampleOutput:
        timeout_s = self.args.timeout_s
        try:
            body = json.dumps({"input": to_json(sample.data)}, allow_nan=False).encode("utf-8")
        except (UnsupportedInput, ValueError, TypeError) as error:
            return SampleOutput(sample.index, None, f"bad input: {one_line(error)}", 0.0)
        request = self._request(body)
        start = time.perf_counter()
        deadline = start + timeout_s

        def failed(error: str) -> SampleOutput:
            return SampleOutput(sample.index, None, error, time.perf_counter() - start)

        try:
            with self.opener.open(request, timeout=timeout_s) as response:
                chunks = []
                while chunk := response.read1(CHUNK):
                    chunks.append(chunk)
                    if time.perf_counter() > deadline:
                        return failed(timeout_message(timeout_s))
        except urllib.error.HTTPError as error:
            return failed(f"crashed: HTTP {error.code} {error.reason}{_error_body(error)}")
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, TimeoutError):
                return failed(timeout_message(timeout_s))
            if isinstance(reason, ConnectionRefusedError):
                return failed(f"unreachable: connection refused ({redacted(self.args.url)})")
            return failed(f"unreachable: {one_line(str(reason))}")
        except TimeoutError:
            return failed(timeout_message(timeout_s))
        except http.client.HTTPException as error:
            problem = f"{type(error).__name__}: {one_line(error)}"
            return failed(f"bad output: malformed HTTP response: {problem}")
        except Exception as error:  # OSError (connection reset, ...) or anything else
            return failed(crashed(error))
        latency = time.perf_counter() - start
        if latency > timeout_s:
            return SampleOutput(sample.index, None, timeout_message(timeout_s), latency)
        raw = b"".join(chunks)
        try:
            answer = json.loads(raw)
        except ValueError as error:
            return SampleOutput(
                sample.index, None, f"bad output: not JSON: {one_line(error)}", latency
            )
        if not isinstance(answer, dict) or "output" not in answer:
            return SampleOutput(
                sample.index, None, 'bad output: no "output" key in the JSON answer', latency
            )
        return SampleOutput(sample.index, answer["output"], None, latency)

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        return [self._one(sample) for sample in samples]

    def close(self) -> None:
        pass


def _error_body(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(ERROR_BODY_BYTES).decode("utf-8", errors="replace")
    except Exception:
        return ""
    finally:
        error.close()
    text = one_line(text)
    return f": {text}" if text else ""
