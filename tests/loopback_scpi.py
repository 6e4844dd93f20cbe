"""A loopback SCPI power meter for tests: a TCP server on 127.0.0.1 (ephemeral port) that
answers SCPI over a raw socket, as analyzers do on their socket port (Keysight 5025), one
command per line: `*IDN?`, `MEAS:POW?`, `MEAS:VOLT?`, and silently accepts other commands.

Fault: after `answer_queries` power queries it stops answering (the connection stays open
and silent), as a meter that hangs or loses its network does. It bounds itself: everything
stops on `close()` or after `lifetime_s`.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time

HOST = "127.0.0.1"
IDN = "LOOPBACK,SCPI-POWER,0001,1.0"


class LoopbackScpi:
    def __init__(
        self, watts: float, answer_queries: int | None = None, lifetime_s: float = 60.0
    ) -> None:
        self.watts = watts
        self.answer_queries = answer_queries
        self.queries = 0
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + lifetime_s
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(0.5)
                while time.monotonic() < outer._deadline and not outer._closed.is_set():
                    try:
                        line = self.rfile.readline()
                    except (TimeoutError, OSError):
                        continue
                    if not line:
                        return
                    reply = outer._answer(line.decode("ascii", errors="replace").strip())
                    if reply is not None:
                        self.wfile.write((reply + "\n").encode("ascii"))

        self._closed = threading.Event()
        self._server = socketserver.ThreadingTCPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _answer(self, command: str) -> str | None:
        with self._lock:
            self.commands.append(command)
            upper = command.upper()
            if upper == "*IDN?":
                return IDN
            if upper.startswith("MEAS:POW"):
                self.queries += 1
                if self.answer_queries is not None and self.queries > self.answer_queries:
                    return None  # silent from here on
                return f"{self.watts:.6E}"
            if upper.startswith("MEAS:VOLT"):
                return "2.301000E+02"
            return None  # a setting: no reply

    def __enter__(self) -> LoopbackScpi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.shutdown()
            self._server.server_close()
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, self.port), timeout=0.1).close()
