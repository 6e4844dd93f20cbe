"""D16 `llm.serving`: latencies against a server whose token timing the test sets (TTFT,
ITL, TPOT and e2e worked out by hand from its delays), the usage cross-check, failures
(a stream dropped mid-answer, HTTP 500, a hang past the timeout) recorded per request,
the arrival schedule's statistics, order-statistic bounds against scipy's binomial, bad
input, and the reference torch server end to end (real streaming)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from probehelpers import by_id
from scipy import stats

from harness.errors import BadInput
from harness.evidence import EvidenceReader, EvidenceWriter
from harness.probes.base import CollectContext, ScoreContext, ScoreResult
from harness.probes.llm import ServingArgs, ServingProbe
from harness.probes.llm.args import api_url, sut_fields
from harness.probes.llm.arrivals import arrival_offsets
from harness.probes.llm.latency import quantile_bounds
from harness.probes.llm.prompts import read_prompts
from harness.refengines.llm_server import LmConfig, ServerProcess
from harness.schema import SutSpec

FIRST_S = 0.15  # the timed server's delay to the first content chunk
GAP_S = 0.04  # and between content chunks
CHUNKS = 5
TOL_S = 0.03  # timer and scheduling tolerance on a shared 2-core machine


# ------------------------------------------------------------------ a server the test times


class TimedServer(ThreadingHTTPServer):
    """An OpenAI-style streaming server whose answers follow the prompt's case word:
    ok (5 chunks: the first at FIRST_S, then one every GAP_S; usage 5), mismatch (usage
    says 7), nousage (no usage chunk), one (a single chunk), drop (2 chunks, then the
    connection is cut mid-stream), error500, hang (one chunk, then silence for 3 s)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TimedHandler)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> TimedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _TimedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TimedServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        chat = self.path.endswith("/chat/completions")
        prompt = body["messages"][0]["content"] if chat else body["prompt"]
        case = prompt.split()[0]
        with self.server.lock:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        try:
            self._answer(case, chat, bool(body.get("stream")))
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _answer(self, case: str, chat: bool, stream: bool) -> None:
        if case == "error500":
            msg = b'{"error": {"message": "overloaded"}}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        if not stream:
            time.sleep(FIRST_S)
            choice = {"message": {"content": "abcde"}} if chat else {"text": "abcde"}
            usage = {"completion_tokens": 5, "prompt_tokens": 3}
            msg = json.dumps({"choices": [choice], "usage": usage}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if chat:  # a role-only delta at once: not a token
            self._send(json.dumps({"choices": [{"delta": {"role": "assistant", "content": ""}}]}))
        chunks = {"one": 1, "drop": 2, "hang": 1}.get(case, CHUNKS)
        start = time.perf_counter()
        for k in range(chunks):
            wake = start + FIRST_S + k * GAP_S
            time.sleep(max(0.0, wake - time.perf_counter()))
            choice = {"delta": {"content": "x"}} if chat else {"text": "x"}
            self._send(json.dumps({"choices": [choice]}))
        if case == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if case == "hang":
            time.sleep(3.0)
            self.close_connection = True
            return
        if case != "nousage":
            tokens = 7 if case == "mismatch" else chunks
            self._send(json.dumps({"choices": [], "usage": {"completion_tokens": tokens}}))
        self._send("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


# ------------------------------------------------------------------ running the probe


def sut_spec(adapter: str, **fields: Any) -> SutSpec:
    return SutSpec.model_validate({"adapter": adapter, **fields})


def prompts_file(folder: Path, cases: list[str], max_tokens: int = 16) -> Path:
    path = folder / "prompts.jsonl"
    lines = [
        json.dumps({"id": f"{c}-{k}", "prompt": f"{c} please", "max_tokens": max_tokens})
        for k, c in enumerate(cases)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_probe(
    args: ServingArgs, root: Path, sut: SutSpec, datasets: dict[str, Path] | None = None
) -> tuple[list[str], ScoreResult]:
    probe = ServingProbe()
    failures = probe.collect(
        CollectContext(
            task_id="t",
            args=args,
            sut=sut,
            device="cpu",
            seed=0,
            quick=False,
            evidence=EvidenceWriter(root),
            datasets=datasets or {},
        )
    )
    return failures, rescore(args, root, sut, datasets)


def rescore(
    args: ServingArgs, root: Path, sut: SutSpec, datasets: dict[str, Path] | None = None
) -> ScoreResult:
    ctx = ScoreContext(
        task_id="t",
        args=args,
        confidence=0.95,
        hardware=None,
        sut=sut,
        datasets=frozenset(datasets or {}),
    )
    return ServingProbe().score(EvidenceReader(root), ctx)


def records(root: Path) -> dict[str, dict[str, Any]]:
    lines = (root / "run-000.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def timed() -> Any:
    with TimedServer() as server:
        yield server


# ------------------------------------------------------------------ latencies by hand


def test_latencies_match_the_servers_timing(timed: TimedServer, tmp_path: Path) -> None:
    cases = ["ok", "ok", "ok", "mismatch", "nousage", "one"]
    data = {"prompts": prompts_file(tmp_path, cases)}
    args = ServingArgs(warmup_requests=0, timeout_s=5.0)
    sut = sut_spec("http", url=timed.url)
    failures, result = run_probe(args, tmp_path / "ev", sut, data)
    assert failures == []
    got = by_id(result)
    # TTFT: the first chunk at FIRST_S for every request
    assert got["ttft_p50"].value == pytest.approx(FIRST_S, abs=TOL_S)
    assert got["ttft_p99"].value == pytest.approx(FIRST_S, abs=TOL_S)
    # ITL: every gap GAP_S (4 gaps for each 5-chunk answer)
    assert got["itl_p50"].value == pytest.approx(GAP_S * 1e3, abs=TOL_S * 1e3)
    assert got["itl_p50"].n == 4 * 5  # ok x3, mismatch, nousage; "one" has no gap
    # e2e: FIRST_S + 4 GAP_S for the 5-chunk answers, FIRST_S for "one"
    assert got["e2e_p50"].value == pytest.approx(FIRST_S + 4 * GAP_S, abs=TOL_S)
    # TPOT = (e2e - TTFT) / (tokens - 1): 4 GAP_S / 4 for ok and nousage (tokens from the
    # chunks), 4 GAP_S / 6 for mismatch (usage says 7); "one" is left out and counted
    ev = records(tmp_path / "ev")
    assert got["tpot_p50"].n == 5
    assert got["tpot_p50"].details["one_token_requests_excluded"] == 1
    assert got["tpot_p50"].value == pytest.approx(GAP_S * 1e3, abs=TOL_S * 1e3)
    assert got["tpot_p50"].details["min"] == pytest.approx(4 * GAP_S / 6 * 1e3, abs=8.0)
    # the values themselves, from the raw evidence by hand
    m = ev["mismatch-3"]
    content = [e[0] for e in m["events"] if e[1] == "c"]
    assert len(content) == CHUNKS and m["usage"]["completion_tokens"] == 7
    tpot = ((m["done_s"] - m["sent_s"]) - (content[0] - m["sent_s"])) / 6
    assert got["tpot_p50"].details["min"] == pytest.approx(tpot * 1e3, rel=1e-9)
    # usage cross-check: exactly the mismatching request is named
    mis = got["token_count_mismatches"]
    assert mis.value == 1
    assert mis.details["listed"][0]["id"] == "mismatch-3"
    assert "usage reports 7" in mis.details["listed"][0]["mismatch"]
    assert mis.details["answered_without_usage"] == 1  # nousage
    # rates over the wall window, by hand from the evidence
    window = max(r["end_s"] for r in ev.values()) - min(r["sent_s"] for r in ev.values())
    tokens = 5 * 3 + 7 + 5 + 1
    assert got["requests_per_s"].value == pytest.approx(6 / window, rel=1e-9)
    assert got["output_tokens_per_s"].value == pytest.approx(tokens / window, rel=1e-9)
    assert got["requests_per_s"].ci is None and got["requests_per_s"].repeats == 1
    assert got["goodput"].value == pytest.approx(6 / window, rel=1e-9)
    assert got["failed_requests"].value == 0
    # the lab's set, a real server: nothing makes the figures invalid
    assert all(not m.invalid_reason for m in result.measurements)
    # goodput limits: TTFT 0.1 s fails everyone; TPOT 30 ms fails those at 40 ms only
    strict = rescore(args.model_copy(update={"ttft_limit_s": 0.1}), tmp_path / "ev", sut, data)
    assert by_id(strict)["goodput"].value == 0
    tight = rescore(args.model_copy(update={"tpot_limit_s": 0.03}), tmp_path / "ev", sut, data)
    assert by_id(tight)["good_requests"].value == pytest.approx(100 * 2 / 6)  # mismatch, one


def test_chat_role_delta_is_not_the_first_token(timed: TimedServer, tmp_path: Path) -> None:
    data = {"prompts": prompts_file(tmp_path, ["ok", "ok"])}
    args = ServingArgs(api="chat", warmup_requests=0, timeout_s=5.0)
    sut = sut_spec("http", url=timed.url + "/v1")
    failures, result = run_probe(args, tmp_path / "ev", sut, data)
    assert failures == []
    got = by_id(result)
    assert got["ttft_p50"].value == pytest.approx(FIRST_S, abs=TOL_S)  # not ~0
    kinds = [e[1] for e in records(tmp_path / "ev")["ok-0"]["events"]]
    assert kinds == ["e", "c", "c", "c", "c", "c", "u", "d"]


def test_unstreamed_answer(timed: TimedServer, tmp_path: Path) -> None:
    data = {"prompts": prompts_file(tmp_path, ["ok", "ok"])}
    args = ServingArgs(stream=False, warmup_requests=0, timeout_s=5.0)
    sut = sut_spec("http", url=timed.url)
    _, result = run_probe(args, tmp_path / "ev", sut, data)
    got = by_id(result)
    assert got["ttft_p50"].value == pytest.approx(FIRST_S, abs=TOL_S)
    assert got["ttft_p50"].value == pytest.approx(got["e2e_p50"].value, abs=1e-3)
    missing = {u.id: u.reason for u in result.unmeasured}
    assert set(missing) == {f"{n}_p{q}" for n in ("tpot", "itl") for q in (50, 90, 99)}
    assert "does not stream" in missing["tpot_p50"]
    assert got["output_tokens_per_s"].details["per_run"][0]["output_tokens"] == 10


# ------------------------------------------------------------------ failures


def test_failures_are_recorded_and_counted(timed: TimedServer, tmp_path: Path) -> None:
    data = {"prompts": prompts_file(tmp_path, ["ok", "drop", "error500", "hang"])}
    args = ServingArgs(warmup_requests=0, timeout_s=0.8)
    sut = sut_spec("http", url=timed.url)
    failures, result = run_probe(args, tmp_path / "ev", sut, data)
    assert len(failures) == 1 and failures[0].startswith("3 of 4 requests failed")
    ev = records(tmp_path / "ev")
    assert ev["ok-0"]["error"] is None
    assert "broke off after 2 content chunks" in ev["drop-1"]["error"]
    assert ev["error500-2"]["error"].startswith("crashed: HTTP 500")
    assert "overloaded" in ev["error500-2"]["error"]
    assert ev["hang-3"]["error"] == "timeout after 0.8 s (1 content chunks received)"
    # what arrived before the failure is kept
    assert sum(e[1] == "c" for e in ev["drop-1"]["events"]) == 2
    got = by_id(result)
    assert got["failed_requests"].value == 3
    assert got["failed_requests"].details["by_kind"] == {"crashed": 2, "timeout": 1}
    # TTFT samples: ok, drop and hang got their first token at FIRST_S; the 500 counts at
    # the timeout: p50 of [.15, .15, .15, .8] is .15; e2e: [.31, .8, .8, .8] -> p50 .8
    assert got["ttft_p50"].value == pytest.approx(FIRST_S, abs=TOL_S)
    assert got["ttft_p99"].value == pytest.approx(
        float(np.percentile([FIRST_S, FIRST_S, FIRST_S, 0.8], 99)), abs=TOL_S
    )
    assert got["e2e_p50"].value == pytest.approx(0.8)
    assert got["good_requests"].value == pytest.approx(25.0)
    assert got["requests_per_s"].details["per_run"][0]["answered"] == 1
    for metric in ("ttft_p99", "e2e_p50", "goodput", "good_requests"):
        assert "3 of 4 requests failed" in got[metric].invalid_reason
        assert got[metric].failures_count_against
    assert not got["failed_requests"].invalid_reason


def test_unreachable_server_fails_every_request(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = {"prompts": prompts_file(tmp_path, ["ok", "ok"])}
    sut = sut_spec("http", url=f"http://127.0.0.1:{port}", model="m")
    args = ServingArgs(warmup_requests=0, timeout_s=2.0)
    failures, result = run_probe(args, tmp_path / "ev", sut, data)
    assert failures and "unreachable" in failures[0]
    assert by_id(result)["failed_requests"].value == 2
    assert all("every one of the 2 requests failed" in u.reason for u in result.unmeasured)


# ------------------------------------------------------------------ arrivals and concurrency


def test_arrival_schedule_statistics() -> None:
    rate = 50.0
    for burstiness in (1.0, 0.25, 4.0):
        gaps = np.diff(arrival_offsets(40_001, rate, burstiness, seed=7))
        assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
        cv = gaps.std() / gaps.mean()
        assert cv == pytest.approx(1 / np.sqrt(burstiness), rel=0.05)
    poisson = np.diff(arrival_offsets(20_001, rate, 1.0, seed=3))
    assert stats.kstest(poisson, "expon", args=(0, 1 / rate)).pvalue > 1e-3
    assert arrival_offsets(5, rate, 1.0, 1) == arrival_offsets(5, rate, 1.0, 1)
    assert arrival_offsets(5, rate, 1.0, 1) != arrival_offsets(5, rate, 1.0, 2)
    assert arrival_offsets(4, None, 1.0, 0) == [0.0] * 4
    assert arrival_offsets(3, rate, 1.0, 0)[0] == 0.0


def test_schedule_and_concurrency_cap_are_kept(tmp_path: Path) -> None:
    data = {"prompts": prompts_file(tmp_path, ["ok"] * 6)}
    args = ServingArgs(warmup_requests=0, timeout_s=5.0, max_concurrency=2)
    with TimedServer() as timed:  # a server of its own: no other test's request in flight
        sut = sut_spec("http", url=timed.url)
        run_probe(args, tmp_path / "ev", sut, data)
        assert timed.most_in_flight == 2
        paced = ServingArgs(warmup_requests=0, timeout_s=5.0, request_rate=20.0)
        run_probe(paced, tmp_path / "ev2", sut, data)
    ev = sorted(records(tmp_path / "ev").values(), key=lambda r: r["sent_s"])
    # three waves of two: the 3rd waits for a slot
    assert ev[2]["sent_s"] >= min(r["end_s"] for r in ev[:2]) - 1e-3
    for r in records(tmp_path / "ev2").values():
        assert 0 <= r["sent_s"] - r["planned_s"] < 0.02
    planned = [r["planned_s"] for r in records(tmp_path / "ev2").values()]
    seed = json.loads((tmp_path / "ev2" / "runs.json").read_text())[0]["seed"]
    assert seed == [0, 0]
    assert sorted(planned)[0] == 0.0


# ------------------------------------------------------------------ bounds


def test_quantile_bounds_against_scipy_binomial() -> None:
    rng = np.random.default_rng(1)
    xs = rng.exponential(size=400).tolist()
    srt = np.sort(xs)
    for q in (0.5, 0.9, 0.99):
        b = quantile_bounds(xs, q, 0.95)
        n = len(xs)
        hi = next(k for k in range(1, n + 1) if stats.binom.cdf(k - 1, n, q) >= 0.95)
        lo = max(k for k in range(1, n + 1) if 1 - stats.binom.cdf(k - 1, n, q) >= 0.95)
        assert b.high == srt[hi - 1] and b.low == srt[lo - 1]
    # the p99 upper bound needs 299 samples at 95 %: 1 - 0.99**299 >= 0.95 > 1 - 0.99**298
    assert quantile_bounds(xs[:298], 0.99, 0.95).high is None
    assert quantile_bounds(xs[:299], 0.99, 0.95).high == max(xs[:299])
    assert quantile_bounds(xs[:10], 0.99, 0.95).need == 299


# ------------------------------------------------------------------ bad input


def test_bad_prompt_lists_name_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    for text, field in [
        ('{"prompt": "a"}\n{"prompt": ""}\n', "line 2: prompt"),
        ('{"prompt": "a", "max_tokens": 0}\n', "line 1: max_tokens"),
        ('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', "line 2: id"),
        ('{"prompt": "a", "temperature": 1}\n', "line 1: temperature"),
        ("[1, 2]\n", "line 1"),
        ("not json\n", "line 1"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(BadInput) as caught:
            read_prompts(path, 16)
        assert caught.value.field == field
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(BadInput, match="empty prompt list"):
        read_prompts(path, 16)
    with pytest.raises(BadInput) as caught:
        ServingProbe().check_datasets(ServingArgs(), {"prompts": tmp_path / "missing.jsonl"})
    assert "not found" in str(caught.value)


def test_sut_block_and_urls() -> None:
    with pytest.raises(BadInput) as caught:
        sut_fields(sut_spec("command", argv=["x"]))
    assert caught.value.field == "sut.adapter"
    with pytest.raises(BadInput) as caught:
        sut_fields(sut_spec("http", url="ftp://x"))
    assert caught.value.field == "sut.url"
    with pytest.raises(BadInput) as caught:
        sut_fields(sut_spec("http", url="http://h:1", model=""))
    assert caught.value.field == "sut.model"
    http, model = sut_fields(sut_spec("http", url="http://h:1", model="llama"))
    assert model == "llama" and http.url == "http://h:1"
    assert api_url("http://h:8000", "completions") == "http://h:8000/v1/completions"
    assert api_url("http://h:8000/v1/", "chat") == "http://h:8000/v1/chat/completions"
    assert api_url("http://h/x/v1/completions", "completions") == "http://h/x/v1/completions"
    with pytest.raises(ValueError, match="set by the harness"):
        ServingArgs(extra_body={"stream": False})


# ------------------------------------------------------------------ the reference server


def test_reference_server_end_to_end(tmp_path: Path) -> None:
    local = SutSpec()
    args = ServingArgs(dev_prompts=6, max_tokens=8, request_rate=50.0, api="chat")
    failures, result = run_probe(args, tmp_path / "ev", local)
    assert failures == []
    got = by_id(result)
    ev = records(tmp_path / "ev")
    assert len(ev) == 6
    for r in ev.values():  # no end-of-sequence token: exactly max_tokens, usage agrees
        assert r["usage"]["completion_tokens"] == 8
        assert sum(e[1] == "c" for e in r["events"]) == 8
        assert r["events"][-1][1] == "d" and r["finish_reason"] == "length"
    assert got["token_count_mismatches"].value == 0
    assert got["failed_requests"].value == 0
    assert got["tpot_p50"].n == 6 and got["itl_p50"].n == 6 * 7
    for m in result.measurements:
        if m.id not in ("failed_requests", "token_count_mismatches"):
            assert "reference server" in m.invalid_reason
            assert "dev prompts" in m.invalid_reason
    sut = json.loads((tmp_path / "ev" / "sut.json").read_text())
    assert sut["reference"] and sut["server"]["parameters"] > 0
    # the evidence scores the same again (pure), and not as a run on a lab's server
    assert rescore(args, tmp_path / "ev", local) == result
    with pytest.raises(ValueError, match="reference"):
        rescore(args, tmp_path / "ev", sut_spec("http", url="http://h:1"))


def test_reference_server_protocol_and_seeding() -> None:
    import urllib.request

    def ask(url: str, body: dict[str, Any]) -> bytes:
        req = urllib.request.Request(
            url + "/v1/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as answer:
            return bytes(answer.read())

    body = {"prompt": "Hello", "max_tokens": 4, "temperature": 0, "stream": True}
    cfg = LmConfig(hidden=32, layers=1, heads=2, context=64)
    with ServerProcess(3, cfg) as a:
        raw = ask(a.url, {**body, "stream_options": {"include_usage": True}}).decode()
        whole = json.loads(ask(a.url, {**body, "stream": False}))
        try:
            ask(a.url, {**body, "max_tokens": 100})
            raise AssertionError("expected HTTP 400")
        except urllib.error.HTTPError as error:
            assert error.code == 400
            assert "maximum context length is 64" in error.read().decode()
    events = [line[6:] for line in raw.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert len(text) == 4 and text == whole["choices"][0]["text"]  # greedy: the same text
    assert whole["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
