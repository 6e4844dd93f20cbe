"""D16 serving latency and throughput of an OpenAI-compatible endpoint (`llm.serving`).

The SUT: `sut: {adapter: http, url: http://host:port, model: NAME, headers: {...},
timeout_s: 60}`. Requests go to `<url>/v1/completions` (`api: completions`) or
`<url>/v1/chat/completions` (`api: chat`; a URL that already ends with the path, or with
`/v1`, is completed as needed), with `max_tokens`, `temperature` (default 0), `stream`
and, streamed, `stream_options: {include_usage: true}`; `extra_body` adds keys (e.g.
`ignore_eos` on vLLM). Without `model` the first model `GET /v1/models` lists is used (and
recorded); where none is listed the key is left out. A dry run (`sut.adapter: local`)
drives the harness's reference server (`harness.refengines.llm_server`, a seeded tiny
GPT-like model on 127.0.0.1), started before and stopped after the task.

collect: the prompts are a lab's JSONL list (`--dataset prompts=PATH`, see
`harness.probes.llm.prompts`) or the seeded dev set. `warmup_requests` go first, one at a
time, and are recorded but never scored. Then the set is sent `runs` times; in each run
request k is due at the k-th planned offset of `harness.probes.llm.arrivals` (Poisson or
gamma arrivals at `request_rate`, or all at once), at most `max_concurrency` in flight,
the schedule seeded by (seed, run). Every request's record (`run-NNN.jsonl`, one JSON
object per line): planned and actual send time, every SSE event with its arrival time
(`harness.probes.llm.client`), status, usage, finish_reason, `[DONE]`'s arrival, the end,
and the error if it failed; times in seconds of `time.perf_counter_ns` from the run's
start.

score (from the evidence only; `harness.probes.llm.latency`):
- `ttft_p50/p90/p99` (s), `e2e_p50/p90/p99` (s), `tpot_p50/p90/p99` (ms), `itl_p50/p90/p99`
  (ms) over the requests of all runs (ITL: every gap), each with distribution-free
  order-statistic bounds (a p99 upper bound needs 299 samples at 95%). Failed requests
  are not dropped: their TTFT (when no token came), e2e and TPOT count at the timeout,
  and each adds one ITL gap at the timeout; the figures then carry the failures as an
  invalid_reason that counts against them (worse than measured, never better).
  Requests with one output token are left out of TPOT and counted.
- `requests_per_s` (answered requests), `output_tokens_per_s` (their output tokens) and
  `goodput` (requests with TTFT <= `ttft_limit_s` and TPOT <= `tpot_limit_s`; a failed
  request is never good) per run over its wall window (first send to last end); the median
  over runs with order-statistic bounds (>= 5 runs at 95%), a single run marked as one.
- `good_requests` (%, exact Clopper-Pearson bounds), `failed_requests` and
  `token_count_mismatches` (usage vs the stream's content chunks, per request) as counts.
Non-streamed tasks have no token timing: TTFT is the whole answer's latency and TPOT/ITL
are not measured. Figures on the dev prompts or from the reference server carry an
invalid_reason: they never decide a verdict.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from harness.evidence import EvidenceReader
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.llm import arrivals
from harness.probes.llm.args import (
    LIMITS_SOURCE,
    Endpoint,
    ServingArgs,
    api_url,
    endpoint_of,
    sut_fields,
)
from harness.probes.llm.client import Client, RequestSpec, discover_model, models_url, new_session
from harness.probes.llm.latency import (
    RequestFacts,
    RunRates,
    percentile,
    quantile_bounds,
    request_facts,
    run_rates,
)
from harness.probes.llm.prompts import Prompt, dev_prompts, read_prompts, sha256_file
from harness.registry import probes
from harness.schema import Interval, Measurement, SutSpec, Unmeasured
from harness.scoring.accuracy import accuracy_percent
from harness.stats import median_bounds

QUANTILES = (0.5, 0.9, 0.99)
LATENCIES = {"ttft": ("s", 1.0), "e2e": ("s", 1.0), "tpot": ("ms", 1e3), "itl": ("ms", 1e3)}
RATES = {
    "requests_per_s": "requests/s",
    "output_tokens_per_s": "tokens/s",
    "goodput": "requests/s",
}
COUNTS = {"good_requests": "%", "failed_requests": "count", "token_count_mismatches": "count"}
LIST_COPY = "prompt-list.jsonl"
LISTED = 100  # failures and mismatches listed by name in a figure's details
DEV_REASON = (
    "the harness's seeded dev prompts (public and predictable: a server can cache them); "
    "a lab's --dataset prompts=PATH decides"
)
REFERENCE_REASON = (
    "answered by the harness's own reference server (a seeded tiny model on this "
    "machine): a dry run of the probe, not a product's figure"
)


def _metric_ids() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, (unit, _) in LATENCIES.items():
        for q in QUANTILES:
            out[f"{name}_p{round(q * 100)}"] = unit
    return {**out, **RATES, **COUNTS}


METRICS = _metric_ids()


def _run_file(run: int) -> str:
    return f"run-{run:03d}.jsonl"


def _jsonl(records: Sequence[dict[str, Any]]) -> str:
    """One compact JSON object per line (sorted keys: the same records, the same bytes)."""
    return "".join(
        json.dumps(r, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n" for r in records
    )


def _read_jsonl(evidence: EvidenceReader, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in evidence.read_text(name).splitlines() if line.strip()]


@probes.register("llm.serving")
class ServingProbe:
    name: ClassVar[str] = "llm.serving"
    Args: ClassVar[type[BaseModel]] = ServingArgs
    reads_sut_outputs: ClassVar[bool] = True

    def metrics(self, args: BaseModel) -> dict[str, str]:
        return dict(METRICS)

    def estimated_steps(self, args: BaseModel, quick: bool) -> int:
        assert isinstance(args, ServingArgs)
        per_run = args.max_requests or args.dev_prompts
        return 2 + args.warmup_requests + args.runs * per_run

    def check_datasets(self, args: BaseModel, datasets: dict[str, Path]) -> None:
        assert isinstance(args, ServingArgs)
        if args.dataset in datasets:
            read_prompts(datasets[args.dataset], args.max_tokens)

    def check_sut(self, args: BaseModel, sut: SutSpec, base_dir: Path | None) -> None:
        if sut.adapter != "local":
            sut_fields(sut)

    # -------------------------------------------------------------------- collect

    def collect(self, ctx: CollectContext) -> list[str]:
        args = ctx.args
        assert isinstance(args, ServingArgs)
        ctx.progress("read the prompts")
        prompts, listing = self._prompts(ctx, args)
        if args.max_requests is not None:
            prompts = prompts[: args.max_requests]
        ctx.evidence.write_json(
            "prompts.json", {**listing, "prompts": [p.record() for p in prompts]}
        )
        given = ctx.datasets.get(args.dataset)
        if given is not None:
            ctx.evidence.write_bytes(LIST_COPY, given.read_bytes())
        if ctx.sut.adapter == "local":
            from harness.refengines.llm_server import LmConfig, ServerProcess

            cfg = LmConfig(hidden=args.reference_hidden, layers=args.reference_layers)
            ctx.progress("start the reference server")
            with ServerProcess(ctx.seed, cfg) as server:
                endpoint = Endpoint(
                    url=api_url(server.url, args.api),
                    headers={},
                    timeout_s=args.timeout_s or 30.0,
                    model=server.model_name,
                )
                sut, failed = self._drive(ctx, args, endpoint, prompts, "the reference server")
                sut = {"reference": True, "server": server.describe(), **sut}
        else:
            endpoint = endpoint_of(ctx.sut, args)
            sut, failed = self._drive(ctx, args, endpoint, prompts, "sut.model")
            sut = {"reference": False, **sut}
        ctx.evidence.write_json("sut.json", sut)
        if failed:
            total = args.runs * len(prompts)
            return [f"{len(failed)} of {total} requests failed (first: {failed[0]['error']})"]
        return []

    def _prompts(
        self, ctx: CollectContext, args: ServingArgs
    ) -> tuple[list[Prompt], dict[str, Any]]:
        given = ctx.datasets.get(args.dataset)
        if given is None:
            listing = {
                "dev": True,
                "source": f"seeded dev set ({args.dev_prompts} prompts, seed {ctx.seed})",
            }
            return dev_prompts(args.dev_prompts, args.max_tokens, ctx.seed), listing
        listing = {
            "dev": False,
            "source": f"--dataset {args.dataset}",
            "sha256": sha256_file(given),
        }
        return read_prompts(given, args.max_tokens), listing

    def _drive(
        self,
        ctx: CollectContext,
        args: ServingArgs,
        endpoint: Endpoint,
        prompts: list[Prompt],
        sut_source: str,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Warm-up and the timed runs; writes their records; returns sut.json's fields and
        the failed requests' records."""
        done_count = [0]

        def done(_record: dict[str, Any]) -> None:
            done_count[0] += 1
            ctx.progress(f"request {done_count[0]}")

        result = asyncio.run(self._all_runs(ctx.seed, args, endpoint, prompts, sut_source, done))
        warmup, runs, endpoint, model_source = result
        ctx.evidence.write_text("warmup.jsonl", _jsonl(warmup))
        listing = []
        failed = []
        for k, (records, seed) in enumerate(runs):
            failed += [r for r in records if r["error"]]
            ctx.evidence.write_text(_run_file(k), _jsonl(records))
            listing.append({"run": k, "seed": seed, "file": _run_file(k), "requests": len(records)})
        ctx.evidence.write_json("runs.json", listing)
        fields = {
            "endpoint": endpoint.describe(),
            "model_source": model_source,
            "api": args.api,
            "stream": args.stream,
            "temperature": args.temperature,
            "extra_body": args.extra_body,
            "timeout_s": endpoint.timeout_s,
            "arrivals": {
                "request_rate": args.request_rate,
                "burstiness": args.burstiness,
                "max_concurrency": args.max_concurrency,
                "described": arrivals.describe(
                    args.request_rate, args.burstiness, args.max_concurrency
                ),
            },
            "client": {
                "library": f"aiohttp {version('aiohttp')}",
                "clock": "time.perf_counter_ns, seconds from each run's start",
                "proxies": "none (environment proxy settings ignored)",
                "redirects": "not followed",
            },
        }
        return fields, failed

    async def _all_runs(
        self,
        seed: int,
        args: ServingArgs,
        endpoint: Endpoint,
        prompts: list[Prompt],
        sut_source: str,
        done: Callable[[dict[str, Any]], None],
    ) -> tuple[list[dict[str, Any]], list[tuple[list[dict[str, Any]], list[int]]], Endpoint, str]:
        async with new_session(args.max_concurrency) as session:
            model_source = sut_source
            if endpoint.model is None:
                found, how = await discover_model(
                    session, models_url(endpoint.url), endpoint.headers, endpoint.timeout_s
                )
                endpoint = Endpoint(endpoint.url, endpoint.headers, endpoint.timeout_s, found)
                model_source = how if found else f"none: {how} (no `model` key sent)"
            spec = RequestSpec(endpoint, args.api, args.stream, args.temperature, args.extra_body)
            client = Client(spec, args.max_concurrency)
            warmup: list[dict[str, Any]] = []
            for k in range(args.warmup_requests):
                p = prompts[k % len(prompts)]
                warmup += await client.run(session, [p], [0.0], done)
            runs = []
            for k in range(args.runs):
                run_seed = [seed, k]
                offsets = arrivals.arrival_offsets(
                    len(prompts), args.request_rate, args.burstiness, _seed(run_seed)
                )
                runs.append((await client.run(session, prompts, offsets, done), run_seed))
        return warmup, runs, endpoint, model_source

    # -------------------------------------------------------------------- score

    def score(self, evidence: EvidenceReader, ctx: ScoreContext) -> ScoreResult:
        args = ctx.args
        assert isinstance(args, ServingArgs)
        sut = evidence.read_json("sut.json")
        listing = evidence.read_json("prompts.json")
        if sut["api"] != args.api or sut["stream"] != args.stream:
            raise ValueError("sut.json's api/stream differ from the task's arguments")
        dev = args.dataset not in ctx.datasets
        if bool(listing["dev"]) != dev:
            raise ValueError(
                "prompts.json says the set was "
                f"{'dev' if listing['dev'] else 'given'}, the run header otherwise"
            )
        if bool(sut["reference"]) != (ctx.sut.adapter == "local"):
            raise ValueError("sut.json's reference flag differs from the run's sut.adapter")
        runs = evidence.read_json("runs.json")
        if len(runs) != args.runs:
            raise ValueError(f"runs.json lists {len(runs)} runs, the task asks for {args.runs}")
        streamed = bool(args.stream)
        timeout_s = float(sut["timeout_s"])
        facts: list[RequestFacts] = []
        rates: list[RunRates] = []
        for entry in runs:
            k = int(entry["run"])
            mine = [request_facts(r, k, streamed) for r in _read_jsonl(evidence, entry["file"])]
            facts += mine
            rate = run_rates(k, mine, args.ttft_limit_s, args.tpot_limit_s)
            if rate is not None:
                rates.append(rate)
        if not facts:
            reason = "no request was sent (an empty prompt set)"
            return ScoreResult([], [Unmeasured(id=m, reason=reason) for m in METRICS])
        failed = [f for f in facts if not f.ok]
        if len(failed) == len(facts):
            reason = f"every one of the {len(facts)} requests failed (first: {failed[0].error})"
            count = self._failed(facts, failed)
            return ScoreResult(
                [count], [Unmeasured(id=m, reason=reason) for m in METRICS if m != count.id]
            )
        invalid, against = self._invalid(ctx, dev, failed, len(facts), timeout_s)
        what = self._what(sut, listing, args, len(runs))
        measurements: list[Measurement] = []
        unmeasured: list[Unmeasured] = []
        for name in LATENCIES:
            got = self._latency(name, facts, timeout_s, streamed, ctx.confidence, what, len(runs))
            for item in got:
                if isinstance(item, Measurement):
                    measurements.append(item)
                else:
                    unmeasured.append(item)
        measurements += self._rates(rates, facts, args, ctx.confidence, what)
        measurements.append(self._good(facts, args, ctx.confidence, what))
        measurements.append(self._failed(facts, failed))
        measurements.append(self._mismatches(facts, streamed))
        if invalid:
            measurements = [
                m.model_copy(update={"invalid_reason": invalid, "failures_count_against": against})
                if m.id not in ("failed_requests", "token_count_mismatches")
                else m
                for m in measurements
            ]
        return ScoreResult(measurements, unmeasured)

    @staticmethod
    def _invalid(
        ctx: ScoreContext, dev: bool, failed: list[RequestFacts], total: int, timeout_s: float
    ) -> tuple[str, bool]:
        reasons = []
        if ctx.sut.adapter == "local":  # checked against sut.json's reference flag
            reasons.append(REFERENCE_REASON)
        if dev:
            reasons.append(DEV_REASON)
        if reasons:
            return "; ".join(reasons), False
        if failed:
            return (
                f"{len(failed)} of {total} requests failed (first: {failed[0].error}); they "
                f"count at the timeout ({timeout_s:g} s) and as answered late",
                True,
            )
        return "", False

    @staticmethod
    def _what(sut: dict[str, Any], listing: dict[str, Any], args: ServingArgs, runs: int) -> str:
        where = "the reference server" if sut.get("reference") else sut["endpoint"]["url"]
        mode = "streamed (SSE)" if args.stream else "not streamed"
        return (
            f"{where}, /v1/{'chat/completions' if args.api == 'chat' else 'completions'} "
            f"{mode}, {len(listing['prompts'])} prompts ({listing['source']}) x {runs} run(s), "
            f"{sut['arrivals']['described']}; times from the harness's clock"
        )

    def _latency(
        self,
        name: str,
        facts: list[RequestFacts],
        timeout_s: float,
        streamed: bool,
        confidence: float,
        what: str,
        runs: int,
    ) -> list[Measurement | Unmeasured]:
        unit, scale = LATENCIES[name]
        ids = [f"{name}_p{round(q * 100)}" for q in QUANTILES]
        if name in ("tpot", "itl") and not streamed:
            reason = (
                "the task does not stream (stream: false): no token arrives before the whole "
                "answer, so there is no token timing (TTFT is the whole answer's latency)"
            )
            return [Unmeasured(id=i, reason=reason) for i in ids]
        values: list[float] = []
        at_timeout = 0
        one_token = 0
        if name == "ttft":
            for f in facts:
                if f.ttft_s is None:
                    at_timeout += 1
                values.append(timeout_s if f.ttft_s is None else f.ttft_s)
            define = "first content chunk's arrival - send"
        elif name == "e2e":
            for f in facts:
                at_timeout += f.e2e_s is None
                values.append(timeout_s if f.e2e_s is None else f.e2e_s)
            define = "arrival of data: [DONE] (unstreamed: the answer's last byte) - send"
        elif name == "tpot":
            for f in facts:
                if not f.ok:
                    at_timeout += 1
                    values.append(timeout_s)
                elif f.tpot_s is None:
                    one_token += 1
                else:
                    values.append(f.tpot_s)
            define = "(e2e - TTFT) / (output tokens - 1), output tokens from usage"
        else:
            for f in facts:
                values += f.itl_s
                if not f.ok:
                    at_timeout += 1
                    values.append(timeout_s)
            define = "every gap between two consecutive content chunks of a request"
        if not values:
            reason = (
                "no request had two or more output tokens"
                if name == "tpot"
                else ("no request streamed two or more content chunks")
            )
            return [Unmeasured(id=i, reason=reason) for i in ids]
        out: list[Measurement | Unmeasured] = []
        mean = statistics.fmean(values)
        for metric_id, q in zip(ids, QUANTILES, strict=True):
            b = quantile_bounds(values, q, confidence)
            need = ""
            if b.high is None:
                need = (
                    f"an upper bound on the p{round(q * 100)} at {confidence:.0%} needs >= "
                    f"{b.need} samples, have {len(values)}"
                )
            correlated = (
                "; gaps within one request are not independent, so the bound treats them as "
                "if they were"
                if name == "itl"
                else ""
            )
            details: dict[str, Any] = {
                "mean": mean * scale,
                "min": min(values) * scale,
                "max": max(values) * scale,
                "samples": len(values),
                "counted_at_timeout": at_timeout,
                "bound_ranks": {"low": b.low_rank, "high": b.high_rank},
            }
            if name == "tpot":
                details["one_token_requests_excluded"] = one_token
            out.append(
                Measurement(
                    id=metric_id,
                    value=percentile(values, q) * scale,
                    unit=unit,
                    n=len(values),
                    repeats=runs,
                    ci=Interval(
                        low=None if b.low is None else b.low * scale,
                        high=None if b.high is None else b.high * scale,
                        confidence=confidence,
                        method=(
                            f"distribution-free one-sided order-statistic bounds on the "
                            f"{q:g} quantile (x_(k) with P(Binomial(n, {q:g}) <= k - 1) >= "
                            f"confidence above, P(Binomial(n, {q:g}) >= k) below){correlated}"
                        ),
                        need=need,
                    ),
                    method=(
                        f"{name.upper()} = {define}; p{round(q * 100)} by linear interpolation "
                        f"(numpy, as vllm bench serve) over {len(values)} samples; failed "
                        f"requests counted at the timeout ({timeout_s:g} s); {what}"
                    ),
                    details=details,
                )
            )
        return out

    def _rates(
        self,
        rates: list[RunRates],
        facts: list[RequestFacts],
        args: ServingArgs,
        confidence: float,
        what: str,
    ) -> list[Measurement]:
        figures: dict[str, Callable[[RunRates], float]] = {
            "requests_per_s": lambda r: r.requests_per_s,
            "output_tokens_per_s": lambda r: r.tokens_per_s,
            "goodput": lambda r: r.goodput,
        }
        defines = {
            "requests_per_s": "answered requests / the run's wall window",
            "output_tokens_per_s": "output tokens of the answered requests (usage, else "
            "content chunks) / the run's wall window",
            "goodput": f"requests with TTFT <= {args.ttft_limit_s:g} s and TPOT <= "
            f"{args.tpot_limit_s * 1e3:g} ms (a one-token or unstreamed answer: TTFT only; "
            f"a failed request never) / the run's wall window; limits: {LIMITS_SOURCE}",
        }
        per_run = [
            {
                "run": r.run,
                "window_s": r.window_s,
                "requests": r.requests,
                "answered": r.completed,
                "good": r.good,
                "output_tokens": r.output_tokens,
            }
            for r in rates
        ]
        lag = max((f.sent_s - f.planned_s for f in facts), default=0.0)
        out = []
        for metric_id, get in figures.items():
            values = [get(r) for r in rates]
            ci = None
            note = "a single run: repeat (runs >= 5 at 95%) for an interval"
            if len(values) >= 2:
                mb = median_bounds(values, confidence)
                ci = Interval(
                    low=mb.low,
                    high=mb.high,
                    confidence=confidence,
                    method=f"distribution-free order-statistic bounds on the median of "
                    f"{len(values)} runs",
                    need="" if mb.low is not None else f"at least {mb.min_n} runs",
                )
                note = f"median of {len(values)} runs"
            out.append(
                Measurement(
                    id=metric_id,
                    value=statistics.median(values),
                    unit=RATES[metric_id],
                    n=sum(r.requests for r in rates),
                    repeats=len(values),
                    ci=ci,
                    method=f"{defines[metric_id]}, the window from the first send to the last "
                    f"request's end; {note}; {what}",
                    details={
                        "per_run": [
                            {**row, metric_id: v} for row, v in zip(per_run, values, strict=True)
                        ],
                        "client_send_lag_max_s": lag,
                    },
                )
            )
        return out

    def _good(
        self, facts: list[RequestFacts], args: ServingArgs, confidence: float, what: str
    ) -> Measurement:
        from harness.probes.llm.latency import good

        count = sum(good(f, args.ttft_limit_s, args.tpot_limit_s) for f in facts)
        return accuracy_percent(
            "good_requests",
            count,
            len(facts),
            confidence,
            counted="within both limits",
            noun="requests",
            method=(
                f"requests answered with TTFT <= {args.ttft_limit_s:g} s and TPOT <= "
                f"{args.tpot_limit_s * 1e3:g} ms (failed requests count as not), of "
                f"{len(facts)}; limits: {LIMITS_SOURCE}; {what}"
            ),
            details={"good": count, "requests": len(facts)},
        )

    @staticmethod
    def _failed(facts: list[RequestFacts], failed: list[RequestFacts]) -> Measurement:
        kinds: dict[str, int] = {}
        for f in failed:
            kind = (f.error or "?").split(":")[0].split(" after")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        return Measurement(
            id="failed_requests",
            value=float(len(failed)),
            unit="count",
            n=len(facts),
            repeats=1,
            method="requests that got no complete answer (non-2xx, a stream that broke off "
            "or ended before [DONE], a malformed event, a timeout, no connection), of "
            f"{len(facts)} sent",
            details={
                "by_kind": dict(sorted(kinds.items())),
                "listed": [{"run": f.run, "id": f.id, "error": f.error} for f in failed[:LISTED]],
            },
        )

    @staticmethod
    def _mismatches(facts: list[RequestFacts], streamed: bool) -> Measurement:
        odd = [f for f in facts if f.mismatch]
        no_usage = sum(1 for f in facts if f.ok and f.usage_tokens is None)
        return Measurement(
            id="token_count_mismatches",
            value=float(len(odd)),
            unit="count",
            n=len(facts),
            repeats=1,
            method=(
                "requests whose server-reported usage.completion_tokens differs from the "
                "number of content chunks the stream carried (a chunk may hold several "
                "tokens) or exceeds max_tokens; the usage figure is the one counted"
                if streamed
                else "requests whose usage.completion_tokens exceeds max_tokens"
            ),
            details={
                "answered_without_usage": no_usage,
                "listed": [
                    {"run": f.run, "id": f.id, "mismatch": f.mismatch} for f in odd[:LISTED]
                ],
            },
        )


def _seed(parts: list[int]) -> int:
    """One integer seed from (seed, run) for numpy's generator."""
    import numpy as np

    return int(np.random.SeedSequence(parts).generate_state(1)[0])


__all__ = ["ServingArgs", "ServingProbe"]
