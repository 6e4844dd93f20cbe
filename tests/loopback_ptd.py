"""A loopback PTDaemon for tests: a threaded TCP server on 127.0.0.1 (ephemeral port) that
speaks the subset of the PTDaemon protocol `harness.instruments.ptdaemon` relies on and
plays a known power waveform, a function of the time since `Go`.

The simulated analyzer behaves like a real one where the tests need it to:
- sample k (k = 1, 2, ...) exists from Go + k * period on; its Watts is the waveform's exact
  average over [(k-1) * period, k * period] after Go, Volts is `volts`, Amps is
  Watts / (Volts * power_factor);
- `RL` returns the samples not read yet; with none ready it waits (at most one period) for
  the next one, as PTDaemon does, then answers "No unread samples" if there is still none;
- with fixed ranges, a sample whose Volts or Amps exceed the range is over-range: Watts -1
  (PTDaemon's error code); with auto ranges it never is;
- `Uncertainty` is unknown (-1) under auto-ranging; with fixed ranges each sample's relative
  uncertainty is 0.1 % of reading + 0.1 % of the power range (V range x A range);
- `Watts` is the measurement's summary "Watts,avg,min,max,samples,errors,valid".

Variants of real daemons and analyzers:
- `rl_style`: "star" answers `RL,*,*` and `RL`; "plain" refuses `RL,*,*` with "Invalid
  number of parameters"; "dc" (a DC analyzer's daemon) answers "Unknown command" to both
  and logs through `DC-RL`, whose lines carry no PF;
- `channels`: a multichannel analyzer whose elements carry these shares of the power (same
  volts): each line has the sum group, then `Ch1,Watts,..,Volts,..,Amps,..,PF,..` per
  element; over-range and the uncertainty (0.1 % of reading + 0.1 % of each element's power
  range) are per element;
- `error_samples`: {measurement number (1-based): sample numbers} that the analyzer reports
  as errors (Watts -1);
- `scale`: {measurement number: factor} multiplies that measurement's waveform (a load that
  draws less in one pass than in another).

Faults: after `drop_after_samples` samples have been read, or `drop_after_s` seconds after
Go, the next request (or a pending RL wait) hits the fault: "close" (the connection is
closed), "garbage" (a line that is not a PTDaemon reply), or "silence" (no reply at all).
The fault fires once per server. With `fault_in_measurement` N it is armed only during the
N-th measurement (1-based, counting every Go), so a test can aim it at one pass of several
whatever the timing of the passes before it.

It bounds itself: everything stops on `close()` (the `with` block's end) or after
`lifetime_s`, whichever comes first; no loop waits without a timeout.
"""

from __future__ import annotations

import contextlib
import math
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

HOST = "127.0.0.1"
EOL = "\r\n"
IDENTIFY = (
    "LoopbackPTD,{interval_ms},1,1,1,1,0,0,0,version=1.10.0-0c0ffee0-20240101,"
    "OS=loopback,mode=power,1,1,1"
)
DEFAULT_PERIOD_MS = 1000
READING_UNCERTAINTY = 0.001  # of reading
RANGE_UNCERTAINTY = 0.001  # of the power range
UNCERTAINTY_LIMIT = 0.01  # a sample above this counts as "invalid" in the Uncertainty reply

Fault = Literal["close", "garbage", "silence"]
RlStyle = Literal["star", "plain", "dc"]


class Waveform(Protocol):
    def power(self, t: float) -> float:
        """Watts at `t` seconds after Go."""
        ...

    def energy(self, t0: float, t1: float) -> float:
        """Joules between `t0` and `t1` seconds after Go (exact)."""
        ...


@dataclass(frozen=True)
class Constant:
    watts: float

    def power(self, t: float) -> float:
        return self.watts

    def energy(self, t0: float, t1: float) -> float:
        return self.watts * (t1 - t0)


@dataclass(frozen=True)
class Ramp:
    start_w: float
    slope_w_per_s: float

    def power(self, t: float) -> float:
        return self.start_w + self.slope_w_per_s * t

    def energy(self, t0: float, t1: float) -> float:
        return self.start_w * (t1 - t0) + self.slope_w_per_s * (t1 * t1 - t0 * t0) / 2


@dataclass(frozen=True)
class SquareWave:
    """`low_w` for `half_period_s`, then `high_w` for `half_period_s`, and so on."""

    low_w: float
    high_w: float
    half_period_s: float

    @property
    def step_w(self) -> float:
        return abs(self.high_w - self.low_w)

    def power(self, t: float) -> float:
        return self.low_w if math.floor(t / self.half_period_s) % 2 == 0 else self.high_w

    def _cumulative(self, t: float) -> float:
        n = math.floor(t / self.half_period_s)
        rest = t - n * self.half_period_s
        pairs, odd = divmod(n, 2)
        level = self.high_w if odd else self.low_w
        return (
            pairs * (self.low_w + self.high_w) * self.half_period_s
            + odd * self.low_w * self.half_period_s
            + rest * level
        )

    def energy(self, t0: float, t1: float) -> float:
        return self._cumulative(t1) - self._cumulative(t0)

    def edges(self, t0: float, t1: float) -> int:
        """How many level changes lie in (t0, t1]."""
        return max(0, math.floor(t1 / self.half_period_s) - math.floor(t0 / self.half_period_s))


@dataclass
class Measurement:
    """One Go..Stop; times on this process's monotonic clock."""

    mark: str
    period_s: float
    go_monotonic: float
    go_wall: datetime
    voltage_range: float | None  # None: auto
    current_range: float | None
    stop_monotonic: float | None = None
    delivered: int = 0
    number: int = 1  # 1-based, counting every Go

    def available(self, now: float) -> int:
        end = now if self.stop_monotonic is None else min(now, self.stop_monotonic)
        return max(0, math.floor((end - self.go_monotonic) / self.period_s + 1e-9))

    def next_sample_at(self) -> float:
        return self.go_monotonic + (self.delivered + 1) * self.period_s


@dataclass(frozen=True)
class Reading:
    stamp: str
    watts: float  # -1 when over-range
    volts: float
    amps: float
    relative_uncertainty: float | None  # None: unknown (auto-ranging)
    channels: tuple[tuple[float, float], ...] = ()  # (watts, amps) per element


@dataclass
class _Conn:
    sock: socket.socket
    buffer: bytes = b""
    silent: bool = False
    closed: bool = False
    lines: list[str] = field(default_factory=list)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True
    owner: LoopbackPtd


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.owner._serve(self.request)


class LoopbackPtd:
    """`with LoopbackPtd(SquareWave(100, 300, 0.5)) as ptd:` ... `ptd.port` ..."""

    def __init__(
        self,
        waveform: Waveform,
        *,
        volts: float = 230.0,
        power_factor: float = 0.95,
        drop_after_samples: int | None = None,
        drop_after_s: float | None = None,
        fault: Fault = "close",
        fault_in_measurement: int | None = None,
        lifetime_s: float = 60.0,
        rl_style: RlStyle = "star",
        channels: tuple[float, ...] = (),
        error_samples: dict[int, set[int]] | None = None,
        scale: dict[int, float] | None = None,
    ) -> None:
        self.rl_style: RlStyle = rl_style
        self.channels = channels
        self.error_samples = error_samples or {}
        self.scale = scale or {}
        self.waveform = waveform
        self.volts = volts
        self.power_factor = power_factor
        self.drop_after_samples = drop_after_samples
        self.drop_after_s = drop_after_s
        self.fault: Fault = fault
        self.fault_in_measurement = fault_in_measurement
        self.lifetime_s = lifetime_s
        self.commands: list[str] = []  # every command received, in order
        self.measurements: list[Measurement] = []
        self.fault_fired_at: float | None = None
        self.voltage_range: float | None = None
        self.current_range: float | None = None
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._conns: list[socket.socket] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> LoopbackPtd:
        server = _Server((HOST, 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.close)
        self._timer.daemon = True
        self._timer.start()
        return self

    def close(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            conns = list(self._conns)
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        for sock in conns:
            _shut(sock)
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()  # joins the connection threads (each ends within ~0.1 s)
        if self._thread is not None:
            self._thread.join(2.0)

    def __enter__(self) -> LoopbackPtd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- simulated analyzer -------------------------------------------------------------------

    @property
    def current(self) -> Measurement | None:
        return self.measurements[-1] if self.measurements else None

    @property
    def running(self) -> bool:
        m = self.current
        return m is not None and m.stop_monotonic is None

    def reading(self, m: Measurement, k: int) -> Reading:
        """Sample k (1-based) of measurement m."""
        t0, t1 = (k - 1) * m.period_s, k * m.period_s
        watts = self.waveform.energy(t0, t1) / m.period_s * self.scale.get(m.number, 1.0)
        volts = self.volts
        amps = watts / (volts * self.power_factor)
        stamp = (m.go_wall + timedelta(seconds=t1)).strftime("%m-%d-%Y %H:%M:%S.%f")[:-3]
        shares = self.channels or (1.0,)
        elements = tuple((watts * f, amps * f) for f in shares)
        fixed = m.voltage_range is not None and m.current_range is not None
        over = (m.voltage_range is not None and volts > m.voltage_range) or (
            m.current_range is not None and max(a for _, a in elements) > m.current_range
        )
        if over or k in self.error_samples.get(m.number, set()):
            return Reading(stamp, -1.0, volts, amps, None, elements if self.channels else ())
        uncertainty = None
        if fixed and watts > 0:
            assert m.voltage_range is not None and m.current_range is not None
            power_range = m.voltage_range * m.current_range * len(shares)
            uncertainty = READING_UNCERTAINTY + RANGE_UNCERTAINTY * power_range / watts
        return Reading(stamp, watts, volts, amps, uncertainty, elements if self.channels else ())

    def readings(self, m: Measurement, now: float | None = None) -> list[Reading]:
        count = m.available(time.monotonic() if now is None else now)
        return [self.reading(m, k) for k in range(1, count + 1)]

    # -- connection handling -------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        with self._lock:
            if self._stopped.is_set():
                _shut(sock)
                return
            self._conns.append(sock)
        conn = _Conn(sock)
        sock.settimeout(0.1)
        try:
            while not self._stopped.is_set() and not conn.closed:
                if not conn.lines:
                    try:
                        chunk = sock.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not chunk:
                        return
                    conn.buffer += chunk
                    while b"\n" in conn.buffer:
                        raw, conn.buffer = conn.buffer.split(b"\n", 1)
                        conn.lines.append(raw.rstrip(b"\r").decode("ascii", errors="replace"))
                    if len(conn.buffer) > 65536:
                        return
                    continue
                line = conn.lines.pop(0)
                with self._lock:
                    self.commands.append(line)
                if conn.silent:
                    continue
                if self._fault_due():
                    self._fire(conn)
                    continue
                reply = self._dispatch(line, conn)
                if reply is not None and not conn.closed and not conn.silent:
                    self._send(conn, reply)
        finally:
            _shut(sock)
            with self._lock:
                if sock in self._conns:
                    self._conns.remove(sock)

    def _send(self, conn: _Conn, text: str) -> None:
        try:
            conn.sock.sendall(text.encode("ascii") + EOL.encode("ascii"))
        except OSError:
            conn.closed = True

    def _fault_armed(self) -> bool:
        """The fault has not fired yet and the current measurement is the one it aims at."""
        with self._lock:
            if self.fault_fired_at is not None or self.current is None:
                return False
            wanted = self.fault_in_measurement
            return wanted is None or len(self.measurements) == wanted

    def _fault_due(self) -> bool:
        with self._lock:
            if not self._fault_armed():
                return False
            m = self.current
            assert m is not None
            if self.drop_after_samples is not None and m.delivered >= self.drop_after_samples:
                return True
            return (
                self.drop_after_s is not None
                and m.stop_monotonic is None
                and time.monotonic() - m.go_monotonic >= self.drop_after_s
            )

    def _fire(self, conn: _Conn) -> None:
        with self._lock:
            self.fault_fired_at = time.monotonic()
        if self.fault == "close":
            conn.closed = True
            _shut(conn.sock)
        elif self.fault == "garbage":
            self._send(conn, "\x15 garbled \x15")
        else:
            conn.silent = True

    def _dispatch(self, line: str, conn: _Conn) -> str | None:
        parts = [p.strip() for p in line.strip().split(",")]
        name = parts[0]
        if name == "Hello":
            return "Hello, PTDaemon here!"
        if name == "Identify":
            m = self.current
            interval = round(m.period_s * 1000) if m is not None else DEFAULT_PERIOD_MS
            return IDENTIFY.format(interval_ms=interval)
        if name == "RR":
            return self._ranges_reply()
        if name == "SR":
            return self._set_range(parts)
        if name == "Go":
            return self._go(parts)
        if name == "Stop":
            return self._stop()
        if line.strip() == "RL,*,*" and self.rl_style == "plain":
            return "Invalid number of parameters"
        if name == "RL" and self.rl_style == "dc":
            return "Unknown command"
        if line.strip() in ("RL", "RL,*,*") or (line.strip() == "DC-RL" and self.rl_style == "dc"):
            return self._read_logged(conn)
        if name == "Watts":
            return self._watts()
        if name == "Uncertainty":
            return self._uncertainty()
        return "Unknown command"

    def _ranges_reply(self) -> str:
        def group(value: float | None) -> str:
            return "1,-1.000000" if value is None else f"0,{value:.6f}"

        with self._lock:
            return f"Ranges,{group(self.current_range)},{group(self.voltage_range)}"

    def _set_range(self, parts: list[str]) -> str:
        if len(parts) != 3:
            return "Invalid number of parameters"
        kind, text = parts[1].upper(), parts[2]
        if kind not in ("V", "A"):
            return "Error in parameter"
        value: float | None
        if text.lower() == "auto":
            value = None
        else:
            try:
                value = float(text)
            except ValueError:
                return "Error in parameter"
            if not value > 0:
                return "Error in parameter"
        with self._lock:
            if kind == "V":
                self.voltage_range = value
            else:
                self.current_range = value
        return f"Range {kind} changed"

    def _go(self, parts: list[str]) -> str:
        if len(parts) not in (3, 4):
            return "Invalid number of parameters"
        try:
            period_ms, _count = int(parts[1]), int(parts[2])
        except ValueError:
            return "Error in parameter"
        period_ms = period_ms if period_ms > 0 else DEFAULT_PERIOD_MS
        with self._lock:
            if self.running:
                return "Error: measurement already running"
            self.measurements.append(
                Measurement(
                    mark=parts[3] if len(parts) == 4 else "notset",
                    period_s=period_ms / 1000,
                    go_monotonic=time.monotonic(),
                    go_wall=datetime.now(),
                    voltage_range=self.voltage_range,
                    current_range=self.current_range,
                    number=len(self.measurements) + 1,
                )
            )
        return (
            f"Starting untimed measurement, maximum 500000 samples at {period_ms}ms "
            "with 0 rampup samples"
        )

    def _stop(self) -> str:
        with self._lock:
            m = self.current
            if m is None or m.stop_monotonic is not None:
                return "Error: no measurement to stop"
            m.stop_monotonic = time.monotonic()
        return "Stopping untimed measurement"

    def _read_logged(self, conn: _Conn) -> str | None:
        m = self.current
        if m is None:
            return "No unread samples"
        if m.available(time.monotonic()) <= m.delivered and m.stop_monotonic is None:
            # PTDaemon holds RL for up to one interval until a sample shows up
            deadline = m.next_sample_at()
            if self.drop_after_s is not None and self._fault_armed():
                deadline = min(deadline, m.go_monotonic + self.drop_after_s)
            self._stopped.wait(max(0.0, min(deadline - time.monotonic(), m.period_s)))
            if self._stopped.is_set():
                return None
            if self._fault_due():
                self._fire(conn)
                return None
        with self._lock:
            count = m.available(time.monotonic()) - m.delivered
            if self.drop_after_samples is not None and self._fault_armed():
                count = min(count, self.drop_after_samples - m.delivered)
            if count <= 0:
                return "No unread samples"
            first = m.delivered + 1
            m.delivered += count
        lines = [f"Last {count} samples"]
        pf = "" if self.rl_style == "dc" else f",PF,{self.power_factor:.6f}"
        for k in range(first, first + count):
            r = self.reading(m, k)
            line = f"Time,{r.stamp},Watts,{r.watts:.6f},Volts,{r.volts:.6f},Amps,{r.amps:.6f}{pf}"
            for number, (watts, amps) in enumerate(r.channels, start=1):
                shown = -1.0 if r.watts < 0 else watts
                line += f",Ch{number},Watts,{shown:.6f},Volts,{r.volts:.6f},Amps,{amps:.6f}{pf}"
            lines.append(line)
        return EOL.join(lines)

    def _watts(self) -> str:
        m = self.current
        if m is None:
            return "Watts,-1.000000,-1.000000,-1.000000,0,0,0"
        readings = self.readings(m)
        valid = [r.watts for r in readings if r.watts >= 0]
        errors = len(readings) - len(valid)
        if not valid:
            return f"Watts,-1.000000,-1.000000,-1.000000,{len(readings)},{errors},0"
        avg = sum(valid) / len(valid)
        return (
            f"Watts,{avg:.6f},{min(valid):.6f},{max(valid):.6f},"
            f"{len(readings)},{errors},{len(valid)}"
        )

    def _uncertainty(self) -> str:
        m = self.current
        readings = self.readings(m) if m is not None else []
        known = [r.relative_uncertainty for r in readings if r.relative_uncertainty is not None]
        unknown = len(readings) - len(known)
        if not known:
            return f"Uncertainty,-1.000000,-1.000000,-1.000000,{len(readings)},0,0,{unknown}"
        invalid = sum(1 for u in known if u > UNCERTAINTY_LIMIT)
        avg = sum(known) / len(known)
        return (
            f"Uncertainty,{avg:.6f},{min(known):.6f},{max(known):.6f},"
            f"{len(readings)},{invalid},{len(known) - invalid},{unknown}"
        )

    def expected_uncertainty(self, m: Measurement) -> float | None:
        """The average relative uncertainty the Uncertainty reply gives for m (tests)."""
        known = [
            r.relative_uncertainty for r in self.readings(m) if r.relative_uncertainty is not None
        ]
        return sum(known) / len(known) if known else None


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
