"""The harness's query interface to its reference targets: a local HTTP server (stdlib,
one thread per request) that answers batches of inputs with the target's labels and scores
and meters every query itself, per job and per item.

    POST /jobs/<token>/items/<k>
      Content-Type: application/json     {"inputs": [<input>, ...]}  (nested lists)
      Content-Type: application/x-npy    the bytes of numpy.save of a (b, *input_shape) array
    200  {"labels": [int, ...], "scores": [[float, ...], ...], "queries_used": q, "query_budget": B}

Each item of a job has its own endpoint (its URL is in the job): for face verification the
endpoint verifies against that item's claimed identity. A query is one input: a request
of b inputs uses b queries of that item. An item may use more than its budget (the queries
are answered: the harness refuses the item's example afterwards, "over budget") up to
`cap_factor` times the budget; beyond that the endpoint answers 429 and nothing is
counted. Refused requests: 400 (not JSON / npy, wrong shape, a non-number, a value not
finite or outside the domain, more than `max_batch` inputs; not counted, the meter's
`bad_requests` counts them), 404 (no such job or item), 410 (the job is over), 413 (a body
over `max_body_bytes`), 429 (over the cap).
"""

from __future__ import annotations

import io
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

Decide = Callable[[np.ndarray, int | None], tuple[np.ndarray, np.ndarray]]


@dataclass
class ItemMeter:
    budget: int
    claim: int | None
    queries: int = 0  # inputs answered
    requests: int = 0  # requests answered
    refused_over_cap: int = 0  # inputs refused with 429
    bad_requests: int = 0


@dataclass
class Job:
    token: str
    input_shape: tuple[int, ...]
    domain: tuple[float, float]
    decide: Decide
    items: list[ItemMeter]
    cap_factor: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class QueryServer:
    """Serve jobs on `host` (a free port): `open_job`, then `close_job` for its meters."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        advertise: str | None = None,
        max_batch: int = 4096,
        max_body_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self._jobs: dict[str, Job] = {}
        self._target_locks: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.base_url = f"http://{advertise or host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="harness-d17-queries", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> QueryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def open_job(
        self,
        input_shape: tuple[int, ...],
        domain: tuple[float, float],
        decide: Decide,
        claims: list[int | None],
        budget: int,
        cap_factor: float = 2.0,
        model_key: int = 0,
    ) -> tuple[str, list[str]]:
        """A new job with one endpoint per item: (token, item URLs). Calls to `decide` of
        one `model_key` are serialised."""
        token = secrets.token_hex(16)
        with self._lock:
            self._target_locks.setdefault(model_key, threading.Lock())
            lock = self._target_locks[model_key]
        meters = [ItemMeter(budget, claim) for claim in claims]

        def serialised(x: np.ndarray, claim: int | None) -> tuple[np.ndarray, np.ndarray]:
            with lock:
                return decide(x, claim)

        with self._lock:
            self._jobs[token] = Job(token, input_shape, domain, serialised, meters, cap_factor)
        urls = [f"{self.base_url}/jobs/{token}/items/{k}" for k in range(len(claims))]
        return token, urls

    def close_job(self, token: str) -> list[ItemMeter]:
        """End the job (its endpoints answer 410 from now on) and hand over its meters."""
        with self._lock:
            job = self._jobs[token]
        with job.lock:
            job.open = False
            return [ItemMeter(**vars(m)) for m in job.items]

    # ------------------------------------------------------------------ one request

    def answer(self, path: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "jobs" or parts[2] != "items":
            return 404, {"error": f"no endpoint {path!r}: POST /jobs/<token>/items/<k>"}
        with self._lock:
            job = self._jobs.get(parts[1])
        if job is None:
            return 404, {"error": "no such job"}
        try:
            k = int(parts[3])
            meter = job.items[k]
            if k < 0:
                raise IndexError
        except (ValueError, IndexError):
            return 404, {"error": f"no item {parts[3]!r} in this job"}
        try:
            batch = self._inputs(job, content_type, body)
        except _Refused as refusal:
            with job.lock:
                meter.bad_requests += 1
            return refusal.status, {"error": str(refusal)}
        cap = int(meter.budget * job.cap_factor)
        with job.lock:
            if not job.open:
                return 410, {"error": "this job is over"}
            if meter.queries + len(batch) > cap:
                meter.refused_over_cap += len(batch)
                return 429, {
                    "error": f"item {k} has used {meter.queries} queries; {len(batch)} more "
                    f"would pass the cap of {cap} ({job.cap_factor:g} x its budget of "
                    f"{meter.budget})"
                }
            meter.queries += len(batch)
            meter.requests += 1
            used = meter.queries
        labels, scores = job.decide(batch, meter.claim)
        return 200, {
            "labels": [int(v) for v in labels],
            "scores": np.asarray(scores, dtype=np.float64).tolist(),
            "queries_used": used,
            "query_budget": meter.budget,
        }

    def _inputs(self, job: Job, content_type: str, body: bytes) -> np.ndarray:
        kind = content_type.split(";")[0].strip().lower()
        if kind == "application/x-npy":
            try:
                raw = np.load(io.BytesIO(body), allow_pickle=False)
            except Exception as error:
                raise _Refused(400, f"not an .npy body: {error}") from None
            if raw.dtype.kind not in "fiu":
                raise _Refused(400, f"inputs of dtype {raw.dtype}, expected numbers")
        elif kind == "application/json":
            try:
                document = json.loads(body)
                listed = document["inputs"]
            except (ValueError, TypeError, KeyError):
                raise _Refused(400, 'expected a JSON object {"inputs": [...]}') from None
            try:
                raw = np.asarray(listed, dtype=np.float64)
            except (ValueError, TypeError):
                raise _Refused(400, "inputs are not an array of numbers of one shape") from None
        else:
            raise _Refused(
                400, f"Content-Type {content_type!r}: send application/json or application/x-npy"
            )
        shape = job.input_shape
        if raw.ndim != len(shape) + 1 or tuple(raw.shape[1:]) != shape or raw.shape[0] < 1:
            raise _Refused(
                400,
                f"inputs of shape {list(raw.shape)}, expected [b, {', '.join(map(str, shape))}]",
            )
        if raw.shape[0] > self.max_batch:
            raise _Refused(400, f"{raw.shape[0]} inputs in one request, at most {self.max_batch}")
        batch = raw.astype(np.float32)
        if not np.all(np.isfinite(batch)):
            raise _Refused(400, "an input value is not finite (as float32)")
        lo, hi = job.domain
        if batch.min() < lo or batch.max() > hi:
            raise _Refused(400, f"an input value lies outside the domain [{lo:g}, {hi:g}]")
        return batch


def _handler(server: QueryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = (
            "HTTP/1.1"  # keep-alive: an attack's many small requests reuse one connection
        )
        disable_nagle_algorithm = (
            True  # headers and body leave at once (no 40 ms delayed-ACK stall)
        )

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > server.max_body_bytes:
                self._send(
                    413, {"error": f"a body of 0..{server.max_body_bytes} bytes is expected"}
                )
                self.close_connection = True
                return
            body = self.rfile.read(length)
            try:
                status, answer = server.answer(
                    self.path, self.headers.get("Content-Type", ""), body
                )
            except Exception as error:  # the target itself failed: say so, keep serving
                status, answer = 500, {"error": f"target failed: {type(error).__name__}: {error}"}
            self._send(status, answer)

        def do_GET(self) -> None:
            self._send(405, {"error": "POST a batch of inputs"})

        def _send(self, status: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
