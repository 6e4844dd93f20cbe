"""The streaming-speech protocol of the D08 response-time task, its client and the
harness's reference streaming server.

Protocol (the harness is the client; `sut: {adapter: http, url: ...}` names the endpoint):

    POST <url path>  HTTP/1.1
    Content-Type: audio/L16; rate=16000; channels=1
    Transfer-Encoding: chunked
    X-Harness-Chunk-Ms: 100

The body is the utterance as raw 16 kHz mono signed 16-bit little-endian PCM, one HTTP
chunk per `chunk_ms` of audio. With `pace: realtime` (the default) chunk k is sent when
its audio would have been captured, at start + (k + 1) x chunk_ms, as a microphone would
deliver it; `pace: fast` sends the chunks back to back. The zero-length chunk that ends
the body marks the end of the user's speech. The SUT answers 2xx with its response (JSON
`{"output": ...}` or any text); the harness times, with `time.perf_counter_ns`, from the
moment the end of the body has been handed to the socket to the arrival of the answer's
byte of the answer text (`latency_s`): for a plain-text body the first non-whitespace
byte, for a JSON body (which says nothing until it parses) its last byte. The status
line's arrival is recorded as `headers_s` and the body's last byte as `complete_s`. Just
before the terminating chunk the harness looks at the socket (`select`): a SUT that has
sent anything by then answered before the end of speech, and the utterance fails (one
early byte must not stop the clock). An empty or all-whitespace answer fails too.

The reference server (`ReferenceStreamingServer`) listens on 127.0.0.1 on a free port in a
thread and runs pocketsphinx (the en-US model in the wheel, full language model)
incrementally on each chunk as it arrives; at the end of the body it finishes the
utterance and answers `{"output": <transcript>}`: real recognition work.
"""

from __future__ import annotations

import http.client
import json
import select
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SAMPLE_RATE = 16000
CONTENT_TYPE = "audio/L16; rate=16000; channels=1"
MAX_OUTPUT_CHARS = 2000
MAX_BODY_BYTES = 1 << 20  # an answer longer than this is cut (and timed to its cut)
WHITESPACE = b" \t\r\n\x0b\x0c"


@dataclass(frozen=True)
class StreamResult:
    latency_s: float | None  # end of body sent -> first byte of the answer text
    headers_s: float | None  # end of body sent -> status line and headers parsed
    send_s: float  # first chunk sent -> end of body sent
    chunks: int
    status: int | None
    output: str | None
    error: str | None
    complete_s: float | None = None  # end of body sent -> the answer's last byte

    def record(self) -> dict[str, Any]:
        return {
            "latency_s": self.latency_s,
            "complete_s": self.complete_s,
            "headers_s": self.headers_s,
            "send_s": self.send_s,
            "chunks": self.chunks,
            "status": self.status,
            "output": self.output,
            "error": self.error,
        }


def is_json(body: bytes) -> bool:
    try:
        json.loads(body.decode("utf-8", "replace"))
    except json.JSONDecodeError:
        return False
    return True


def answer_text(body: bytes) -> str:
    """The answer's text: JSON `{"output": ...}` (or any JSON value), else the body."""
    return _answer_text(body)


def first_text_time(body: bytes, arrivals: list[tuple[int, int]]) -> int:
    """When the answer text began: the arrival (ns) of the piece holding the first
    non-whitespace byte of a plain-text body; of the last piece for a JSON body."""
    if is_json(body):
        return arrivals[-1][0]
    at = len(body) - len(body.lstrip(WHITESPACE))
    for when, total in arrivals:
        if total > at:
            return when
    return arrivals[-1][0]


def _answer_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:MAX_OUTPUT_CHARS]
    if isinstance(value, dict) and "output" in value:
        value = value["output"]
    return (value if isinstance(value, str) else json.dumps(value))[:MAX_OUTPUT_CHARS]


def stream_utterance(
    url: str,
    pcm: bytes,
    chunk_ms: int,
    realtime: bool,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> StreamResult:
    """Send one utterance by the protocol above and time the answer. Never raises for the
    SUT's failure: the result's `error` says what went wrong."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    conn_cls = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_cls(host, parts.port, timeout=timeout_s)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    step = max(2, SAMPLE_RATE * chunk_ms // 1000 * 2)
    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    sent = 0
    start = end = time.perf_counter_ns()
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        conn.putheader("Content-Type", CONTENT_TYPE)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.putheader("X-Harness-Chunk-Ms", str(chunk_ms))
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        start = time.perf_counter_ns()
        for k, chunk in enumerate(chunks):
            if realtime:
                # chunk k is due once its audio has been captured
                due = start + int(sum_ms(k + 1, step, len(pcm)) * 1e6)
                wait = (due - time.perf_counter_ns()) / 1e9
                if wait > 0:
                    time.sleep(wait)
            conn.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sent += 1
        sock = conn.sock
        if sock is not None and select.select([sock], [], [], 0)[0]:
            # bytes (or the end of the connection) already there before the end of speech
            conn.close()
            return StreamResult(
                None,
                None,
                (time.perf_counter_ns() - start) / 1e9,
                sent,
                None,
                None,
                "answered before the end of speech: the SUT sent bytes before the body's "
                "terminating chunk",
            )
        conn.send(b"0\r\n\r\n")
        end = time.perf_counter_ns()
        response = conn.getresponse()
        head = time.perf_counter_ns()
        arrivals: list[tuple[int, int]] = []
        body = b""
        while len(body) < MAX_BODY_BYTES:
            piece = response.read1(65536)
            if not piece:
                break
            body += piece
            arrivals.append((time.perf_counter_ns(), len(body)))
    except (OSError, http.client.HTTPException) as error:
        conn.close()
        kind = "timeout" if isinstance(error, TimeoutError) else "unreachable or broken"
        return StreamResult(
            None,
            None,
            (end - start) / 1e9,
            sent,
            None,
            None,
            f"{kind}: {type(error).__name__}: {error}",
        )
    conn.close()
    send_s = (end - start) / 1e9
    if not 200 <= response.status < 300:
        return StreamResult(
            None,
            (head - end) / 1e9,
            send_s,
            sent,
            response.status,
            None,
            f"crashed: HTTP {response.status} {response.reason}",
        )
    text = _answer_text(body)
    if not arrivals or not text.strip():
        return StreamResult(
            None, (head - end) / 1e9, send_s, sent, response.status, text, "an empty answer"
        )
    return StreamResult(
        (first_text_time(body, arrivals) - end) / 1e9,
        (head - end) / 1e9,
        send_s,
        sent,
        response.status,
        text,
        None,
        (arrivals[-1][0] - end) / 1e9,
    )


def sum_ms(chunks: int, step_bytes: int, total_bytes: int) -> float:
    """Milliseconds of audio in the first `chunks` chunks of `step_bytes` each."""
    return min(chunks * step_bytes, total_bytes) / 2 / SAMPLE_RATE * 1000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ReferenceStreamingServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _chunks(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            size = int(self.headers.get("Content-Length", "0"))
            yield self.rfile.read(size)
            return
        while True:
            line = self.rfile.readline(64)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            data = self.rfile.read(size)
            self.rfile.read(2)
            yield data

    def do_POST(self) -> None:
        try:
            with self.server.lock:
                d = self.server.decoder
                d.start_utt()
                carry = b""
                for data in self._chunks():
                    data = carry + data
                    cut = len(data) - len(data) % 2
                    carry = data[cut:]
                    d.process_raw(data[:cut], False, False)
                d.end_utt()
                hyp = d.hyp()
                text = hyp.hypstr if hyp is not None else ""
            body = json.dumps({"output": text}).encode("utf-8")
            self.send_response(200)
        except Exception as error:  # a broken request: answer 400 with the reason
            body = json.dumps({"error": f"{type(error).__name__}: {error}"}).encode("utf-8")
            self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ReferenceStreamingServer(ThreadingHTTPServer):
    """pocketsphinx behind the streaming protocol on 127.0.0.1 (module doc); a context
    manager that serves in a daemon thread until it exits."""

    daemon_threads = True

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        super().__init__(("127.0.0.1", 0), _Handler)
        self.decoder = Decoder(logfn="/dev/null")
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/recognize"

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "engine": "harness reference streaming server: pocketsphinx (en-US model, full "
            "language model), incremental decoding of each chunk, transcript at the end of "
            "the body",
            "pocketsphinx": version("pocketsphinx"),
            "listens": "127.0.0.1 (loopback), a free port",
        }

    def __enter__(self) -> ReferenceStreamingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
