"""llm.serving vs a plain aiohttp async loop, against the same local null streaming server,
in one run, alternating rounds.

The null server (a raw asyncio HTTP/1.1 server in a child process, keep-alive) answers
every POST at once with `--tokens` SSE content chunks, a usage chunk and `data: [DONE]`:
whatever limits the rate or adds to the TTFT is the client. The probe side is the whole
probe (`ServingProbe.collect` then `score`: prompts, arrival schedule, per-event stamping,
evidence writing), its figures `requests_per_s` and `ttft_p50` taken from its own score.
The plain side is the leanest loop of the same client library (aiohttp, as `vllm bench
serve` uses): a semaphore of `--concurrency`, `session.post`, `resp.content.iter_any()`
split into lines, `json.loads` of each `data:` line, the first text's time; no timeout,
no records, no evidence. Both send
`--requests` requests with at most `--concurrency` in flight, all due at once.

Each round has two parts, the sides' order alternating from round to round:
- saturated: `--requests` requests, `--concurrency` in flight: requests/s probe / plain
  (and the TTFT at saturation, which is queueing in the client's event loop, printed);
- one at a time: `--sequential` requests, concurrency 1: TTFT plain / probe (median TTFT
  of each side), the latency the probe's client adds to a request.
Figures: the medians of the per-round ratios; a ratio below 1 means the probe is slower.
Aim >= 0.9 for both.

    python benchmarks/bench_llm_serving.py [--rounds R] [--requests N] [--concurrency C]
        [--sequential S] [--tokens T]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext
from harness.probes.llm import ServingArgs, ServingProbe
from harness.schema import SutSpec

# ------------------------------------------------------------------ the null server


def _answer(tokens: int) -> bytes:
    events = [
        b"data: " + json.dumps({"choices": [{"index": 0, "text": "x"}]}).encode() + b"\n\n"
        for _ in range(tokens)
    ]
    usage = {"completion_tokens": tokens, "prompt_tokens": 4, "total_tokens": tokens + 4}
    events.append(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return head + body


class _Null(asyncio.Protocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.answer)


def serve(tokens: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Null(_answer(tokens)), "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


# ------------------------------------------------------------------ the two sides


async def plain_loop(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """(requests/s, median TTFT s) of a plain aiohttp loop."""
    body = json.dumps(
        {
            "prompt": "hello",
            "max_tokens": 16,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    headers = {"Content-Type": "application/json"}
    semaphore = asyncio.Semaphore(concurrency)
    ttfts: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one() -> None:
            async with semaphore:
                start = time.perf_counter()
                first = 0.0
                tail = b""
                async with session.post(url, data=body, headers=headers) as response:
                    async for data in response.content.iter_any():
                        lines = (tail + data).split(b"\n")
                        tail = lines.pop()
                        for line in lines:
                            if not line.startswith(b"data:") or line == b"data: [DONE]":
                                continue
                            chunk = json.loads(line[5:])
                            if not first and chunk["choices"] and chunk["choices"][0]["text"]:
                                first = time.perf_counter() - start
                ttfts.append(first)

        await one()  # warm-up, as the probe's one warm-up request
        ttfts.clear()
        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - start
    return requests / wall, statistics.median(ttfts)


def probe_side(base: str, requests: int, concurrency: int, work: Path) -> tuple[float, float]:
    prompts = work / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": "hello", "max_tokens": 16}) + "\n" for _ in range(requests)),
        encoding="utf-8",
    )
    root = work / f"ev-{time.perf_counter_ns()}"
    args = ServingArgs(max_concurrency=concurrency, warmup_requests=1, timeout_s=60)
    sut = SutSpec.model_validate({"adapter": "http", "url": base, "model": "null"})
    probe = ServingProbe()
    probe.collect(
        CollectContext(
            task_id="t",
            args=args,
            sut=sut,
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            datasets={"prompts": prompts},
        )
    )
    ctx = ScoreContext("t", args, 0.95, None, sut=sut, datasets=frozenset({"prompts"}))
    got = {m.id: m for m in probe.score(EvidenceReader(root), ctx).measurements}
    if got["failed_requests"].value:
        raise RuntimeError(f"the probe saw failures: {got['failed_requests'].details}")
    return got["requests_per_s"].value, got["ttft_p50"].value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.serve:
        serve(ns.tokens)
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--tokens", str(ns.tokens)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        rps_ratio: list[float] = []
        ttft_ratio: list[float] = []
        busy_ttft_ratio: list[float] = []
        url = base + "/v1/completions"
        with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
            for r in range(ns.rounds):
                sides = ["probe", "plain"] if r % 2 == 0 else ["plain", "probe"]
                got: dict[tuple[str, int], tuple[float, float]] = {}
                for n, c in ((ns.requests, ns.concurrency), (ns.sequential, 1)):
                    for side in sides:
                        if side == "probe":
                            got[side, c] = probe_side(base, n, c, Path(tmp))
                        else:
                            got[side, c] = asyncio.run(plain_loop(url, n, c))
                sat, one = ns.concurrency, 1
                rps_ratio.append(got["probe", sat][0] / got["plain", sat][0])
                ttft_ratio.append(got["plain", one][1] / got["probe", one][1])
                busy_ttft_ratio.append(got["plain", sat][1] / got["probe", sat][1])
                print(
                    f"round {r}: saturated: probe {got['probe', sat][0]:.0f} req/s (TTFT p50 "
                    f"{got['probe', sat][1] * 1e3:.2f} ms), plain {got['plain', sat][0]:.0f} "
                    f"req/s ({got['plain', sat][1] * 1e3:.2f} ms); one at a time: TTFT p50 "
                    f"probe {got['probe', one][1] * 1e3:.3f} ms, plain "
                    f"{got['plain', one][1] * 1e3:.3f} ms",
                    flush=True,
                )
    finally:
        child.terminate()
        child.wait(timeout=10)
    print(
        f"requests/s probe/plain: {statistics.median(rps_ratio):.3f} (median of {ns.rounds}; "
        f"aim >= 0.9); TTFT plain/probe one at a time: {statistics.median(ttft_ratio):.3f} "
        f"(aim >= 0.9); TTFT plain/probe saturated: {statistics.median(busy_ttft_ratio):.3f}; "
        f"{ns.requests} requests x {ns.tokens} tokens at concurrency "
        f"{ns.concurrency}, {ns.sequential} one at a time, "
        f"aiohttp {aiohttp.__version__}"
    )


if __name__ == "__main__":
    main()
