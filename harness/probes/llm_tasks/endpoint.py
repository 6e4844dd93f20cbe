"""The OpenAI-compatible endpoint a D16 task probe drives, and the dry run's reference server.

The SUT block: `sut: {adapter: http, url: http://host:port, model: NAME, headers: {...},
timeout_s: 60}` plus the keys these probes read themselves: `checkpoint` (a checkpoint
path, the model service), `data_url` (a dataset listing, the data service). Requests go to
`<url>/v1/completions` or `<url>/v1/chat/completions` (harness.probes.llm.args.api_url: a
URL that already ends with the path, or with `/v1`, is completed as needed). Without
`model` the first model `GET <url>/v1/models` lists is sent (and recorded); where none is
listed the key is left out. A dry run (`sut.adapter: local`) drives the harness's
reference server (harness.refengines.llm_server, a seeded tiny GPT-like model on 127.0.0.1,
started before and stopped after the task): its figures never decide a verdict.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from harness.adapters.http_sut import HttpAdapter, redacted
from harness.errors import BadInput
from harness.probes.base import CollectContext
from harness.probes.llm.args import api_url
from harness.probes.llm_tasks.client import send
from harness.schema import SutSpec

Api = Literal["completions", "chat"]
OWN_KEYS = ("model", "checkpoint", "data_url")
REFERENCE_REASON = (
    "answered by the harness's own reference LLM server (a seeded tiny model with random "
    "weights on this machine): a dry run of the probe, not a product's figure"
)


@dataclass(frozen=True)
class Target:
    """Where the requests go: `base` as the submission gives it, its headers, the per-request
    timeout and the model name sent (None: the key is left out)."""

    base: str
    headers: dict[str, str]
    timeout_s: float
    model: str | None

    def url(self, api: Api) -> str:
        return api_url(self.base, api)

    def describe(self) -> dict[str, Any]:
        return {
            "url": redacted(self.base),
            "header_names": sorted(self.headers),
            "timeout_s": self.timeout_s,
            "model": self.model,
        }


def models_url(base: str) -> str:
    """`<...>/v1/models` beside the API's endpoints."""
    path = api_url(base, "chat").split("?", 1)[0]
    return path[: -len("/chat/completions")] + "/models"


def own_field(sut: SutSpec, key: str) -> Any:
    return (sut.model_extra or {}).get(key)


def target_of(sut: SutSpec, probe: str, timeout_s: float | None = None) -> Target:
    """The endpoint of an `http` SUT block (module doc); BadInput naming `sut.<field>`."""
    raw = sut.model_dump()
    if raw.get("adapter") != "http":
        raise BadInput(
            "submission",
            "sut.adapter",
            f"{probe} drives an OpenAI-compatible HTTP endpoint: expected `adapter: http` "
            f"with its `url` (or `local` for a dry run), got {raw.get('adapter')!r}",
        )
    own = {k: raw.pop(k) for k in OWN_KEYS if k in raw}
    model = own.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise BadInput(
            "submission", "sut.model", f"expected the served model's name, got {model!r}"
        )
    for key in ("checkpoint", "data_url"):
        value = own.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BadInput(
                "submission", f"sut.{key}", f"expected a non-empty string, got {value!r}"
            )
    try:
        args = HttpAdapter.Args.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput("submission", f"sut.{where}" if where else "sut", first["msg"]) from None
    return Target(
        base=args.url,
        headers=dict(args.headers or {}),
        timeout_s=timeout_s if timeout_s is not None else args.timeout_s,
        model=model,
    )


def discover(target: Target) -> tuple[Target, dict[str, Any]]:
    """The target with the model `GET /v1/models` lists first when the SUT block names none,
    and what was asked and found (for the evidence)."""
    if target.model is not None:
        return target, {"model": target.model, "from": "sut.model"}
    url = models_url(target.base)
    reply = send("GET", url, None, target.headers, target.timeout_s)
    found: str | None = None
    if reply.error is None:
        try:
            data = json.loads(reply.body)
            first = data["data"][0]["id"]
            found = first if isinstance(first, str) and first else None
        except (ValueError, KeyError, IndexError, TypeError):
            found = None
    note = {
        "model": found,
        "from": f"GET {redacted(url)}" if found else f"GET {redacted(url)} listed none",
        "status": reply.status,
        "error": reply.error,
    }
    return Target(target.base, target.headers, target.timeout_s, found), note


@contextlib.contextmanager
def endpoint(
    ctx: CollectContext, probe: str, timeout_s: float | None, layers: int, hidden: int
) -> Iterator[tuple[Target, dict[str, Any]]]:
    """The target to drive and the SUT facts for `sut.json`: the submission's endpoint, or
    for `sut.adapter: local` the reference server, started now and stopped on exit."""
    if ctx.sut.adapter == "local":
        from harness.refengines.llm_server import LmConfig, ServerProcess

        ctx.progress("start the reference server")
        with ServerProcess(ctx.seed, LmConfig(hidden=hidden, layers=layers)) as server:
            target = Target(server.url, {}, timeout_s or 60.0, server.model_name)
            yield target, {"reference": True, "server": server.describe()}
        return
    target, found = discover(target_of(ctx.sut, probe, timeout_s))
    yield target, {"reference": False, "endpoint": target.describe(), "model_discovery": found}


def is_reference(sut: dict[str, Any]) -> bool:
    return bool(sut.get("reference"))


def resolve_submitted(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p
