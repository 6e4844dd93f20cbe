"""An OpenAI-compatible client that records, for every request, what arrived and when.

Built on aiohttp (one event loop, one connection pool with keep-alive; environment proxy
settings ignored, redirects not followed, TCP_NODELAY). The clock is the harness's own:
`time.perf_counter_ns`, in seconds from the start of the run.

A streamed request (`"stream": true, "stream_options": {"include_usage": true}`) is read as
Server-Sent Events: every `data:` line is one event, stamped with the arrival of the bytes
that completed it (the moment the client read them off the connection: events that came
in one read share a time); comments (`:`), `event:`/`id:`/`retry:` lines and blank lines
carry no data. Each event is recorded as `[t_s, kind, text]`:

- `"c"`: a content chunk, its first choice carrying output text (`text` of /v1/completions;
  `delta.content`, or `delta.reasoning_content` / `delta.reasoning`, of chat) -- the text;
- `"e"`: a chunk without output text (the role-only first delta, a finish-only chunk);
- `"u"`: a chunk with no choices (the final usage chunk);
- `"d"`: `data: [DONE]`, the end of the answer.

A non-streamed request's whole JSON body is one `"c"` event at the moment its last byte
was read. The last `usage` object any chunk carried and the last `finish_reason` seen are
kept. The cyclic garbage collector is held off during a timed run. After `[DONE]` the
rest of the body is read (so the connection can be reused); a
failure there is noted, not counted against the request.

A request fails, with its reason, when the answer is not 2xx ("crashed: HTTP 500 ..."), a
stream breaks off or ends before `[DONE]` ("crashed: the stream ... after K content
chunks"), an event is not JSON or carries an `error` object ("bad output: ..."; "crashed:
the server reported an error ..."), the whole request takes longer than the timeout
("timeout after X s"), or the server cannot be reached ("unreachable: ..."). What arrived
before the failure stays in the record.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from harness.adapters._support import one_line
from harness.probes.llm.args import Api, Endpoint
from harness.probes.llm.prompts import Prompt

ERROR_BODY_BYTES = 300
Done = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RequestSpec:
    """What the client sends: the endpoint, API, streaming, and the body's common keys."""

    endpoint: Endpoint
    api: Api
    stream: bool
    temperature: float
    extra_body: dict[str, Any]

    def body(self, prompt: Prompt) -> bytes:
        body: dict[str, Any] = {}
        if self.endpoint.model:
            body["model"] = self.endpoint.model
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt.prompt}]
        else:
            body["prompt"] = prompt.prompt
        body["max_tokens"] = prompt.max_tokens
        body["temperature"] = self.temperature
        body["stream"] = self.stream
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra_body)
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")

    def headers(self) -> dict[str, str]:
        accept = "text/event-stream" if self.stream else "application/json"
        return {"Content-Type": "application/json", "Accept": accept, **self.endpoint.headers}


def models_url(api_url: str) -> str:
    """`.../v1/models` beside the API's endpoint."""
    for suffix in ("/v1/chat/completions", "/v1/completions"):
        if api_url.split("?", 1)[0].endswith(suffix):
            return api_url.split("?", 1)[0][: -len(suffix)] + "/v1/models"
    return api_url.rstrip("/") + "/v1/models"


def _output_text(choice: Any, api: Api) -> str:
    if not isinstance(choice, dict):
        return ""
    if api == "completions":
        text = choice.get("text")
        return text if isinstance(text, str) else ""
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        delta = choice.get("message")  # a non-streamed chat answer
    if not isinstance(delta, dict):
        return ""
    parts = [delta.get(k) for k in ("reasoning_content", "reasoning", "content")]
    return "".join(p for p in parts if isinstance(p, str))


class StreamFailure(Exception):
    """A request failed in a way the record names (its text is the reason)."""


class _Request:
    """One request's record, filled in as its answer arrives."""

    def __init__(self, index: int, prompt: Prompt, planned_s: float) -> None:
        self.record: dict[str, Any] = {
            "index": index,
            "id": prompt.id,
            "max_tokens": prompt.max_tokens,
            "planned_s": planned_s,
            "sent_s": None,
            "status": None,
            "events": [],
            "usage": None,
            "finish_reason": None,
            "done_s": None,
            "end_s": None,
            "error": None,
            "note": None,
        }
        self.events: list[list[Any]] = self.record["events"]

    def content_chunks(self) -> int:
        return sum(1 for e in self.events if e[1] == "c")

    def take(self, obj: Any, t: float, api: Api) -> None:
        """One parsed event of a stream (or a whole non-streamed body)."""
        if type(obj) is not dict:
            raise StreamFailure(f"bad output: event {len(self.events) + 1} is not a JSON object")
        if obj.get("error") is not None:
            raise StreamFailure(
                f"crashed: the server reported an error after {self.content_chunks()} content "
                f"chunks: {one_line(json.dumps(obj['error'], ensure_ascii=False))}"
            )
        usage = obj.get("usage")
        if usage is not None and type(usage) is dict:
            self.record["usage"] = usage
        choices = obj.get("choices")
        if not choices or type(choices) is not list:
            self.events.append([t, "e" if usage is None else "u", None])
            return
        choice = choices[0]
        if type(choice) is not dict:
            self.events.append([t, "e", None])
            return
        if choice.get("finish_reason"):
            self.record["finish_reason"] = choice["finish_reason"]
        if api == "completions":
            text = choice.get("text")
            if not (text and type(text) is str):
                text = ""
        else:
            text = _output_text(choice, api)
        self.events.append([t, "c", text] if text else [t, "e", None])


class Client:
    """Sends requests on one aiohttp session, timing them from `t0_ns`."""

    def __init__(self, spec: RequestSpec, max_concurrency: int | None) -> None:
        self.spec = spec
        self.headers = spec.headers()
        self.url = spec.endpoint.url
        self.timeout_s = spec.endpoint.timeout_s
        self.max_concurrency = max_concurrency
        self.t0_ns = time.perf_counter_ns()

    def now(self) -> float:
        return (time.perf_counter_ns() - self.t0_ns) / 1e9

    async def one(
        self,
        session: aiohttp.ClientSession,
        index: int,
        prompt: Prompt,
        planned_s: float,
        body: bytes,
    ) -> dict[str, Any]:
        request = _Request(index, prompt, planned_s)
        record = request.record
        try:
            async with asyncio.timeout(self.timeout_s):
                record["sent_s"] = self.now()
                async with session.post(
                    self.url, data=body, headers=self.headers, allow_redirects=False
                ) as response:
                    record["status"] = response.status
                    if not 200 <= response.status < 300:
                        text = await _excerpt(response)
                        raise StreamFailure(
                            f"crashed: HTTP {response.status} {response.reason or ''}".rstrip()
                            + (f": {text}" if text else "")
                        )
                    if self.spec.stream:
                        await self._read_stream(response, request)
                    else:
                        raw = await response.read()
                        t = self.now()
                        try:
                            obj = json.loads(raw)
                        except ValueError as error:
                            raise StreamFailure(
                                f"bad output: the answer is not JSON: {one_line(error)}"
                            ) from None
                        request.take(obj, t, self.spec.api)
                        record["done_s"] = t
        except StreamFailure as failure:
            record["error"] = str(failure)
        except TimeoutError:
            k = request.content_chunks()
            record["error"] = f"timeout after {self.timeout_s:g} s ({k} content chunks received)"
        except aiohttp.ClientConnectorError as error:
            record["error"] = f"unreachable: {one_line(error)}"
        except aiohttp.ClientPayloadError as error:
            record["error"] = (
                f"crashed: the stream broke off after {request.content_chunks()} content "
                f"chunks: {one_line(error)}"
            )
        except aiohttp.ServerDisconnectedError as error:
            record["error"] = (
                f"crashed: the server disconnected after {request.content_chunks()} content "
                f"chunks: {one_line(error)}"
            )
        except (aiohttp.ClientError, OSError) as error:
            record["error"] = f"crashed: {type(error).__name__}: {one_line(error)}"
        record["end_s"] = self.now()
        if record["error"] is None and record["done_s"] is None:  # pragma: no cover
            record["error"] = "crashed: the answer ended without a result"
        return record

    async def _read_stream(self, response: aiohttp.ClientResponse, request: _Request) -> None:
        record = request.record
        api = self.spec.api
        content = response.content
        tail = b""
        done = False
        async for data in content.iter_any():
            t = self.now()  # the arrival of these bytes: every line completed in them
            lines = (tail + data if tail else data).split(b"\n")
            tail = lines.pop()
            for raw in lines:
                if not raw.startswith(b"data:"):
                    continue  # blank, comment, event:, id:, retry:
                payload = raw[5:].strip()
                if payload == b"[DONE]":
                    request.events.append([t, "d", None])
                    record["done_s"] = t
                    done = True
                    break
                try:
                    obj = json.loads(payload)
                except ValueError as error:
                    raise StreamFailure(
                        f"bad output: event {len(request.events) + 1} is not JSON: "
                        f"{one_line(error)}"
                    ) from None
                request.take(obj, t, api)
            if done:
                break
        if not done:
            raise StreamFailure(
                f"crashed: the stream ended before data: [DONE] after "
                f"{request.content_chunks()} content chunks"
            )
        try:  # the rest of the body, so that the connection can be kept
            async for _rest in content.iter_any():
                pass
        except (aiohttp.ClientError, OSError) as error:
            record["note"] = f"after [DONE]: {type(error).__name__}: {one_line(error)}"

    async def run(
        self,
        session: aiohttp.ClientSession,
        prompts: Sequence[Prompt],
        offsets: Sequence[float],
        done: Done | None = None,
    ) -> list[dict[str, Any]]:
        """Every prompt sent at its planned offset from now (the run's start, `t0`), at
        most `max_concurrency` in flight; the records in prompt order."""
        bodies = [self.spec.body(p) for p in prompts]
        semaphore = asyncio.Semaphore(self.max_concurrency) if self.max_concurrency else None

        async def limited(index: int) -> dict[str, Any]:
            if semaphore is None:
                record = await self.one(
                    session, index, prompts[index], offsets[index], bodies[index]
                )
            else:
                async with semaphore:
                    record = await self.one(
                        session, index, prompts[index], offsets[index], bodies[index]
                    )
            if done is not None:
                done(record)
            return record

        tasks: list[asyncio.Task[dict[str, Any]]] = []
        collecting = gc.isenabled()
        gc.disable()  # no cyclic collection pauses inside the timed run (records pile up)
        try:
            self.t0_ns = time.perf_counter_ns()
            for index, offset in enumerate(offsets):
                delay = offset - self.now()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(limited(index)))
            return list(await asyncio.gather(*tasks))
        finally:
            if collecting:
                gc.enable()


async def _excerpt(response: aiohttp.ClientResponse) -> str:
    try:
        raw = await response.content.read(ERROR_BODY_BYTES)
    except (aiohttp.ClientError, OSError):
        return ""
    return one_line(raw.decode("utf-8", errors="replace"))


def new_session(max_concurrency: int | None) -> aiohttp.ClientSession:
    """The pool every request goes through: keep-alive, no proxies from the environment."""
    connector = aiohttp.TCPConnector(limit=max_concurrency or 0)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
        auto_decompress=True,
    )


async def discover_model(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout_s: float
) -> tuple[str | None, str]:
    """The first model `GET /v1/models` lists, with what was found (never raises)."""
    try:
        async with (
            asyncio.timeout(timeout_s),
            session.get(url, headers=headers, allow_redirects=False) as response,
        ):
            if response.status != 200:
                return None, f"GET {url}: HTTP {response.status}"
            data = json.loads(await response.read())
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as error:
        return None, f"GET {url}: {type(error).__name__}: {one_line(error)}"
    models = data.get("data") if isinstance(data, dict) else None
    if isinstance(models, list) and models and isinstance(models[0], dict):
        ident = models[0].get("id")
        if isinstance(ident, str) and ident:
            return ident, f"the first of {len(models)} model(s) GET {url} listed"
    return None, f"GET {url} listed no model"
