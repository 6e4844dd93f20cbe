"""The metered query interface a platform reaches a target through: a local HTTP server the
harness runs for the length of a task (127.0.0.1, a free port, one thread per connection).

Each (method, target) the platform is asked about gets an endpoint of its own,
`POST http://127.0.0.1:PORT/<token>/predict`, with a fresh random token, closed as soon
as the platform has answered:

    request:  {"x": [[f, f, ...], ...]}     (records, each of the target's feature count)
    answer:   {"probabilities": [[p, ...], ...]}   (access "probabilities")
              {"labels": [k, ...]}                  (access "labels": the predicted class)

Every request is counted (requests, records); a request that would take the endpoint past
its budget of records is refused (429) and counted as refused, a malformed one gets 400,
an unknown or closed token 404: all with `{"error": "..."}`.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from harness.probes.privacy.targets import Predict

MAX_BODY_BYTES = 64 << 20
MAX_ROWS = 100_000


@dataclass
class Meter:
    requests: int = 0
    records: int = 0
    refused_requests: int = 0
    refused_records: int = 0
    bad_requests: int = 0


@dataclass
class _Endpoint:
    predict: Predict
    features: int
    access: str
    budget_records: int
    meter: Meter
    lock: threading.Lock


def _records(body: bytes, features: int) -> np.ndarray:
    value = json.loads(body.decode("utf-8"))
    if not isinstance(value, dict) or not isinstance(value.get("x"), list):
        raise ValueError('expected {"x": [[...], ...]}')
    rows = value["x"]
    if not rows or len(rows) > MAX_ROWS:
        raise ValueError(f"x must hold 1 to {MAX_ROWS} records")
    for k, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != features:
            raise ValueError(f"x[{k}] must be a list of {features} numbers")
        for v in row:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"x[{k}] holds {v!r}, not a finite number")
    return np.asarray(rows, dtype=np.float64)


class QueryServer:
    """`with QueryServer() as server:` ... `server.open(...)` ... `server.close_endpoint`."""

    def __init__(self) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, value: dict[str, Any]) -> None:
                data = json.dumps(value, allow_nan=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(405, {"error": "POST /<token>/predict"})

            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                endpoint = None
                if len(parts) == 2 and parts[1] == "predict":
                    with owner._lock:
                        endpoint = owner._endpoints.get(parts[0])
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._reply(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                    return
                body = self.rfile.read(length)
                if endpoint is None:
                    self._reply(404, {"error": "no such endpoint (unknown or closed token)"})
                    return
                status, value = owner._answer(endpoint, body)
                self._reply(status, value)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="harness-membership-queries", daemon=True
        )

    @staticmethod
    def _answer(endpoint: _Endpoint, body: bytes) -> tuple[int, dict[str, Any]]:
        with endpoint.lock:
            try:
                x = _records(body, endpoint.features)
            except (ValueError, UnicodeDecodeError) as error:
                endpoint.meter.bad_requests += 1
                return 400, {"error": str(error)}
            meter = endpoint.meter
            if meter.records + len(x) > endpoint.budget_records:
                meter.refused_requests += 1
                meter.refused_records += len(x)
                return 429, {
                    "error": f"query budget: {meter.records} of {endpoint.budget_records} "
                    f"records used, this request asks {len(x)} more"
                }
            meter.requests += 1
            meter.records += len(x)
            probabilities = endpoint.predict(x)
        if endpoint.access == "labels":
            return 200, {"labels": [int(k) for k in np.argmax(probabilities, axis=1)]}
        return 200, {"probabilities": [[float(p) for p in row] for row in probabilities]}

    def __enter__(self) -> QueryServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def open(self, predict: Predict, features: int, access: str, budget_records: int) -> str:
        """A new endpoint; its URL."""
        token = secrets.token_hex(16)
        endpoint = _Endpoint(predict, features, access, budget_records, Meter(), threading.Lock())
        with self._lock:
            self._endpoints[token] = endpoint
        return f"http://127.0.0.1:{self.port}/{token}/predict"

    def close_endpoint(self, url: str) -> dict[str, int]:
        """Close the endpoint (later requests get 404); what its meter counted."""
        token = url.rsplit("/", 2)[-2]
        with self._lock:
            endpoint = self._endpoints.pop(token)
        with endpoint.lock:  # a request in flight finishes first
            return asdict(endpoint.meter)
