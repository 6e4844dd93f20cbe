"""Pure scoring of `llm.serving`: each request's timings from its recorded events, and
percentiles with distribution-free bounds. No I/O.

Per request (times are the harness's clock; `sent_s` when the request was handed to the
connection, each event when its line was read):
- TTFT = the first content chunk's arrival - sent_s;
- end-to-end latency (e2e) = the arrival of `data: [DONE]` (a non-streamed answer: its
  last byte) - sent_s;
- output tokens = the server's `usage.completion_tokens` when it sent one, else the number
  of content chunks; the two are compared and a difference is recorded per request;
- TPOT = (e2e - TTFT) / (output tokens - 1), for requests with 2 or more output tokens
  (those with one are counted apart);
- ITL = every gap between two consecutive content chunks of a request.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sp

KINDS = ("c", "e", "u", "d")


@dataclass(frozen=True)
class RequestFacts:
    id: str
    run: int
    ok: bool
    error: str | None
    planned_s: float
    sent_s: float
    end_s: float
    ttft_s: float | None  # None: no content chunk arrived
    e2e_s: float | None  # None unless ok
    chunks: int  # content chunks
    usage_tokens: int | None
    tokens: int | None  # None unless ok
    token_source: str  # "usage" | "chunks" | ""
    itl_s: tuple[float, ...]
    tpot_s: float | None  # None unless ok with >= 2 output tokens
    mismatch: str | None  # usage vs chunks, or usage above max_tokens


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def usage_tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    value = usage.get("completion_tokens")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def request_facts(record: dict[str, Any], run: int, streamed: bool) -> RequestFacts:
    """One request's figures from its evidence record (ValueError when malformed)."""
    ident = str(record["id"])
    where = f"run {run} request {ident}"
    sent = _number(record["sent_s"], f"{where} sent_s") if record["sent_s"] is not None else None
    end = _number(record["end_s"], f"{where} end_s")
    events = record["events"]
    if not isinstance(events, list):
        raise ValueError(f"{where}: events must be a list")
    content: list[float] = []
    last = -math.inf
    for k, event in enumerate(events):
        if not isinstance(event, list) or len(event) != 3 or event[1] not in KINDS:
            raise ValueError(f"{where} event {k}: expected [t_s, kind, text]")
        t = _number(event[0], f"{where} event {k}")
        if t < last:
            raise ValueError(f"{where} event {k}: arrival times go backwards")
        last = t
        if event[1] == "c":
            content.append(t)
    error = record["error"]
    chunks = len(content)
    reported = usage_tokens(record["usage"])
    planned = _number(record["planned_s"], f"{where} planned_s")
    mismatch = None
    if streamed and reported is not None and reported != chunks:
        mismatch = (
            f"usage reports {reported} output tokens, the stream carried {chunks} content chunks"
        )
    max_tokens = record.get("max_tokens")
    if reported is not None and isinstance(max_tokens, int) and reported > max_tokens:
        extra = f"usage reports {reported} output tokens, above max_tokens {max_tokens}"
        mismatch = f"{mismatch}; {extra}" if mismatch else extra
    ttft = content[0] - sent if content and sent is not None else None
    if error is None and not content:
        error = "bad output: the answer carried no output text (no first token)"
    e2e = tokens = tpot = None
    source = ""
    if error is None and sent is not None:
        e2e = _number(record["done_s"], f"{where} done_s") - sent
        tokens = reported if reported is not None else chunks
        source = "usage" if reported is not None else "chunks"
        if streamed and ttft is not None and tokens > 1:
            tpot = (e2e - ttft) / (tokens - 1)
    return RequestFacts(
        id=ident,
        run=run,
        ok=error is None,
        error=None if error is None else str(error),
        planned_s=planned,
        sent_s=end if sent is None else sent,  # never sent: a failure before it left
        end_s=end,
        ttft_s=ttft,
        e2e_s=e2e,
        chunks=chunks,
        usage_tokens=reported,
        tokens=tokens,
        token_source=source,
        itl_s=tuple(b - a for a, b in itertools.pairwise(content)),
        tpot_s=tpot,
        mismatch=mismatch,
    )


def good(f: RequestFacts, ttft_limit_s: float, tpot_limit_s: float) -> bool:
    """A request counted in goodput: answered, TTFT within its limit, and TPOT within its
    limit where it has one (a one-token answer, or an unstreamed one, has none)."""
    if not f.ok or f.ttft_s is None or f.ttft_s > ttft_limit_s:
        return False
    return f.tpot_s is None or f.tpot_s <= tpot_limit_s


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 < q < 1) with linear interpolation between order statistics, as
    numpy's default and `vllm bench serve` report it."""
    return float(np.percentile(np.asarray(values, dtype=float), 100.0 * q))


@dataclass(frozen=True)
class QuantileBounds:
    low: float | None  # one-sided lower bound at `confidence`
    high: float | None  # one-sided upper bound at `confidence`
    low_rank: int | None  # which order statistic (1-based)
    high_rank: int | None
    need: int  # the fewest samples that give an upper bound


def quantile_bounds(values: Sequence[float], q: float, confidence: float) -> QuantileBounds:
    """Distribution-free one-sided bounds of the q-quantile from order statistics: the k-th
    smallest x_(k) is an upper bound at `confidence` when P(Binomial(n, q) <= k - 1) >=
    confidence (the smallest such k), a lower bound when P(Binomial(n, q) >= k) >=
    confidence (the largest such k); None where n is too small."""
    xs = np.sort(np.asarray(values, dtype=float))
    n = len(xs)
    need = max(1, math.ceil(math.log(1.0 - confidence) / math.log(q) - 1e-12))
    if n == 0:
        return QuantileBounds(None, None, None, None, need)
    ks = np.arange(1, n + 1)
    upper_ok = np.nonzero(_sp.binom.cdf(ks - 1, n, q) >= confidence)[0]
    lower_ok = np.nonzero(_sp.binom.sf(ks - 1, n, q) >= confidence)[0]
    hi_rank = int(ks[upper_ok[0]]) if upper_ok.size else None
    lo_rank = int(ks[lower_ok[-1]]) if lower_ok.size else None
    return QuantileBounds(
        None if lo_rank is None else float(xs[lo_rank - 1]),
        None if hi_rank is None else float(xs[hi_rank - 1]),
        lo_rank,
        hi_rank,
        need,
    )


@dataclass(frozen=True)
class RunRates:
    run: int
    window_s: float
    requests: int
    completed: int
    good: int
    output_tokens: int

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.window_s

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.window_s

    @property
    def goodput(self) -> float:
        return self.good / self.window_s


def run_rates(
    run: int, facts: Sequence[RequestFacts], ttft_limit_s: float, tpot_limit_s: float
) -> RunRates | None:
    """A run's rates over its wall window, from its first request's send to the end of its
    last request (answered or failed); None when the run sent nothing."""
    if not facts:
        return None
    window = max(f.end_s for f in facts) - min(f.sent_s for f in facts)
    if window <= 0:
        return None
    done = [f for f in facts if f.ok]
    return RunRates(
        run=run,
        window_s=window,
        requests=len(facts),
        completed=len(done),
        good=sum(good(f, ttft_limit_s, tpot_limit_s) for f in facts),
        output_tokens=sum(f.tokens or 0 for f in done),
    )
