"""The arguments of `llm.serving` and the endpoint a submission's `sut:` block names."""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.adapters.http_sut import HttpAdapter, redacted
from harness.errors import BadInput
from harness.schema import SutSpec, adapter_fields

Api = Literal["completions", "chat"]
API_PATHS: dict[str, str] = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
# MLPerf Inference's LLM Server latency limits (Llama 2 70B: TTFT p99 <= 2 s, TPOT p99 <=
# 200 ms), taken as the harness's defaults
DEFAULT_TTFT_LIMIT_S = 2.0
DEFAULT_TPOT_LIMIT_S = 0.2
LIMITS_SOURCE = (
    "harness defaults after MLPerf Inference's LLM Server latency constraints "
    "(p99 TTFT <= 2 s, p99 TPOT <= 200 ms)"
)


class ServingArgs(BaseModel):
    """`llm.serving` task arguments. Arrivals follow `vllm bench serve`: `request_rate`
    requests/s (None: all at once) with gamma-distributed gaps of shape `burstiness` (1 is
    Poisson; below 1 burstier, above 1 steadier), and at most `max_concurrency` requests in
    flight (None: no cap). A fixed-concurrency run is `request_rate: null` with a cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    api: Api = "completions"
    stream: bool = True
    dataset: str = "prompts"  # --dataset prompts=PATH: JSONL {"prompt", "max_tokens"?, "id"?}
    dev_prompts: int = Field(default=64, ge=1, le=100_000)  # the seeded dev set's size
    max_requests: int | None = Field(default=None, ge=1)  # the first N prompts only
    max_tokens: int = Field(default=64, ge=1, le=1_000_000)  # a prompt without its own
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    request_rate: float | None = Field(default=None, gt=0)
    burstiness: float = Field(default=1.0, gt=0, le=1000)
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    runs: int = Field(default=1, ge=1, le=100)  # the prompt set this many times, each timed
    warmup_requests: int = Field(default=1, ge=0, le=1000)  # sent first, never scored
    timeout_s: float | None = Field(default=None, gt=0, le=86_400)  # else sut.timeout_s
    ttft_limit_s: float = Field(default=DEFAULT_TTFT_LIMIT_S, gt=0)
    tpot_limit_s: float = Field(default=DEFAULT_TPOT_LIMIT_S, gt=0)
    # extra request-body keys sent with every request (e.g. {"ignore_eos": true} on vLLM)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    # the dry run's reference server (harness.refengines.llm_server), by its sizes
    reference_layers: int = Field(default=2, ge=1, le=12)
    reference_hidden: int = Field(default=64, ge=16, le=1024)

    @field_validator("request_rate")
    @classmethod
    def _finite_rate(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            return None  # inf: all at once, as vllm's default
        return value

    @field_validator("extra_body")
    @classmethod
    def _no_protocol_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = {"prompt", "messages", "stream", "stream_options", "max_tokens", "model"}
        clash = sorted(owned & set(value))
        if clash:
            raise ValueError(f"set by the harness, not by extra_body: {', '.join(clash)}")
        return value


@dataclass(frozen=True)
class Endpoint:
    """Where the requests go: `base` (scheme://host:port[/prefix]) + the API's path."""

    url: str  # the full URL of the API's endpoint
    headers: dict[str, str]
    timeout_s: float
    model: str | None

    def describe(self) -> dict[str, Any]:
        return {
            "url": redacted(self.url),
            "header_names": sorted(self.headers),
            "timeout_s": self.timeout_s,
            "model": self.model,
        }


def api_url(base: str, api: Api) -> str:
    """The endpoint's URL: `base` as given when it already ends with the API's path (or
    `/v1/<path>`), `base` + `/completions` when it ends with `/v1`, else `base` + the path."""
    parts = urllib.parse.urlsplit(base)
    path = parts.path.rstrip("/")
    full = API_PATHS[api]
    if path.endswith(full):
        new = path
    elif path.endswith("/v1"):
        new = path + full[len("/v1") :]
    else:
        new = path + full
    return urllib.parse.urlunsplit(parts._replace(path=new, query=parts.query))


def sut_fields(sut: SutSpec, source: str | Path = "submission") -> tuple[HttpAdapter.Args, Any]:
    """The http adapter's validated args of a `sut:` block and its `model` key (None when
    absent). BadInput naming `sut.<field>` when the block is not an http one."""
    raw = sut.model_dump()
    if raw.get("adapter") != "http":
        raise BadInput(
            source,
            "sut.adapter",
            "llm.serving drives an OpenAI-compatible HTTP endpoint: expected `adapter: http` "
            f"with its `url`, got {raw.get('adapter')!r}",
        )
    raw = adapter_fields(sut, HttpAdapter.Args)
    model = raw.pop("model", None)
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise BadInput(source, "sut.model", f"expected the served model's name, got {model!r}")
    try:
        args = HttpAdapter.Args.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(source, f"sut.{where}" if where else "sut", first["msg"]) from None
    return args, model


def endpoint_of(sut: SutSpec, args: ServingArgs) -> Endpoint:
    http, model = sut_fields(sut)
    return Endpoint(
        url=api_url(http.url, args.api),
        headers=dict(http.headers or {}),
        timeout_s=args.timeout_s if args.timeout_s is not None else http.timeout_s,
        model=model,
    )
