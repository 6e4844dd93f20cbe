"""Wall power from an external analyzer (Yokogawa and others) through SPEC PTDaemon's TCP
interface, the way MLPerf Power drives it, plus the MLPerf ranging procedure.

`PtdClient` speaks the line protocol; `PtdMeter` is the instrument: on enter it connects,
identifies the daemon, sets the voltage and current ranges and starts logging (`Go`); a
daemon thread then reads the logged samples (`RL`) until exit, which stops logging (`Stop`)
and asks the meter for its own summary (`Watts`) and uncertainty (`Uncertainty`).

Wire format (what this client relies on). ASCII lines; every command is one line ended by
CR LF; every reply is one line (CR LF or LF), except RL: a header line and then N sample
lines. A reply that starts with "Error", "Invalid", "Unknown command", "Null channel",
"Channel number out" or "Meter busy" (any case) is an error reply: `PtdClient.command`
raises `PtdError` with the command and the reply.

  command                  reply relied on
  -----------------------  ----------------------------------------------------------------
  Hello                    exactly "Hello, PTDaemon here!" (anything else: not a PTDaemon)
  Identify                 one line, stored raw; split on commas into driver, interval_ms,
                           can_watts, can_volts, can_amps, can_pf, can_energy, can_freq,
                           accepted, version=..., OS=..., mode=..., can_accuracy,
                           can_rangeset, channels (best effort, for the record only)
  RR                       "Ranges,<A auto 0|1>,<A range>,<V auto 0|1>,<V range>", read
                           before and after setting ranges; stored only (an error is fine)
  SR,V,<Auto|volts>        any non-error reply (PTDaemon says "Range V changed")
  SR,A,<Auto|amps>         any non-error reply (PTDaemon says "Range A changed")
  Go,<period_ms>,0,<mark>  a reply starting "Starting" ("Starting untimed measurement, ...")
  RL                       "Last <N> samples", then N lines
                           "Time,<MM-DD-YYYY HH:MM:SS.fff>,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>"
                           (more key,value pairs or channel groups may follow; the first
                           Watts/Volts/Amps are used); "No unread samples" or "Insufficient
                           unread samples": none yet. A negative Watts is the meter's error
                           code (-1 error, -2 missed): counted, never used as power.
  Stop                     any non-error reply ("Stopping untimed measurement")
  Watts                    "Watts,<avg>,<min>,<max>,<samples>,<errors>,<valid>" over the
                           measurement: stored in extra as the meter's own cross-check
  Uncertainty              "Uncertainty,<avg>,<min>,<max>,<total>,<invalid>,<valid>,<unknown>":
                           relative uncertainties as fractions; avg < 0 (PTDaemon's answer
                           under auto-ranging) means unknown. The record's relative
                           uncertainty is <avg>.

Timestamps. RL returns the samples logged since the previous RL; PTDaemon stamps them with
its own host's wall clock, which we do not trust across machines. Each batch is instead
anchored at the monotonic time its header arrived; samples of one batch keep their
PTDaemon spacing (or the sample period, if the stamps do not parse). A PTDaemon sample is
the analyzer's average over its last update interval, so it is placed half a period
before that anchor, at the interval's midpoint. RL is re-sent half a period after each
reply (PTDaemon itself waits up to one interval for a sample), so the timing error is at
most half a period plus the network latency. Times are kept strictly increasing.

Ranging (MLPerf `lib/server.py`): a first pass runs the workload with `SR,V,Auto` and
`SR,A,Auto`; the testing pass then uses a fixed voltage range of the highest RMS voltage
seen and a current range of 1.1 x the highest RMS current seen (MLPerf's current rule; its
earlier 3.3 x for loads under 75 W was withdrawn because it inflates the uncertainty).
Values are rounded up to 4 significant digits. MLPerf also waits 10 s after setting the
ranges before `Go` (`settle_s` here, 0 by default).

A connection that fails mid-run (closed, timed out, malformed reply) never raises out of
the `with` block: the record says status "lost" and keeps the samples taken before.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import re
import socket
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from harness.instruments.base import clock_mapping

EOL = b"\r\n"
HELLO_REPLY = "Hello, PTDaemon here!"
MAX_LINE_BYTES = 64 * 1024
MAX_BATCH = 1_000_000
CURRENT_MARGIN = 1.1  # MLPerf: current range = 1.1 x the highest RMS current of the ranging pass
RANGE_DIGITS = 4
PTD_TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"
UNAVAILABLE_PROBE_TIMEOUT_S = 2.0

_ERROR_PREFIXES = (
    "error",
    "invalid",
    "unknown command",
    "null channel",
    "channel number out",
    "meter busy",
)
_NO_UNREAD = re.compile(r"^(?:no|insufficient) unread", re.IGNORECASE)
_LAST_N = re.compile(r"^Last (\d+) samples?$")
_RANGE_VALUE = re.compile(r"^(?:auto|\d+(?:\.\d+)?)$", re.IGNORECASE)
_IDENTIFY_FIELDS = (
    "driver",
    "interval_ms",
    "can_watts",
    "can_volts",
    "can_amps",
    "can_pf",
    "can_energy",
    "can_freq",
    "accepted",
    "version",
    "os",
    "mode",
    "can_accuracy",
    "can_rangeset",
    "channels",
)


class PtdError(Exception):
    """A PTDaemon command failed: an error reply, or no usable reply (reply None)."""

    def __init__(self, command: str, reply: str | None, problem: str = "error reply") -> None:
        self.command = command
        self.reply = reply
        self.problem = problem
        if reply is None:
            message = f"PTDaemon command {command!r}: {problem}"
        else:
            message = f"PTDaemon command {command!r} got {reply!r}: {problem}"
        super().__init__(message)


def is_error_reply(reply: str) -> bool:
    return reply.strip().lower().startswith(_ERROR_PREFIXES)


@dataclass(frozen=True)
class PtdSample:
    """One RL line: PTDaemon's timestamp (its host's local wall clock) and the readings."""

    ptd_time: str
    watts: float
    volts: float | None
    amps: float | None
    power_factor: float | None


def _number(text: str, what: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{what} is not finite: {text!r}")
    return value


def parse_sample_line(line: str) -> PtdSample:
    """`Time,<stamp>,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>[,...]`; ValueError if malformed."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) < 4 or fields[0] != "Time":
        raise ValueError("expected 'Time,<stamp>,Watts,<watts>,...'")
    values: dict[str, str] = {}
    for key, value in zip(fields[2::2], fields[3::2], strict=False):
        if key in values:  # the next channel's group: keep the first (sum) channel
            break
        values[key] = value
    if "Watts" not in values:
        raise ValueError("no Watts field")

    def optional(key: str) -> float | None:
        return _number(values[key], key) if key in values else None

    return PtdSample(
        ptd_time=fields[1],
        watts=_number(values["Watts"], "Watts"),
        volts=optional("Volts"),
        amps=optional("Amps"),
        power_factor=optional("PF"),
    )


def parse_identify(reply: str) -> dict[str, Any]:
    fields = reply.split(",", len(_IDENTIFY_FIELDS))
    parsed: dict[str, Any] = {"raw": reply}
    for name, value in zip(_IDENTIFY_FIELDS, fields, strict=False):
        for prefix in ("version=", "OS=", "mode="):
            if value.startswith(prefix):
                value = value[len(prefix) :]
        parsed[name] = value
    return parsed


def parse_ranges(reply: str) -> dict[str, Any]:
    """`Ranges,<A auto>,<A range>,<V auto>,<V range>` (first channel group); raw otherwise."""
    fields = reply.split(",")
    if len(fields) >= 5 and fields[0] == "Ranges":
        try:
            return {
                "raw": reply,
                "current_auto": int(float(fields[1])),
                "current_range": float(fields[2]),
                "voltage_auto": int(float(fields[3])),
                "voltage_range": float(fields[4]),
            }
        except ValueError:
            pass
    return {"raw": reply}


def parse_watts_summary(reply: str) -> dict[str, Any]:
    fields = reply.split(",")
    if len(fields) >= 7 and fields[0] == "Watts":
        try:
            avg, low, high = (float(f) for f in fields[1:4])
            samples, errors, valid = (int(float(f)) for f in fields[4:7])
            return {
                "raw": reply,
                "average_w": avg,
                "min_w": low,
                "max_w": high,
                "samples": samples,
                "errors": errors,
                "valid": valid,
            }
        except ValueError:
            pass
    return {"raw": reply}


def parse_uncertainty(reply: str) -> dict[str, Any] | None:
    """The fields of an `Uncertainty,...` reply; None when it is not one."""
    fields = reply.split(",")
    if len(fields) < 8 or fields[0] != "Uncertainty":
        return None
    try:
        avg, low, high = (float(f) for f in fields[1:4])
        total, invalid, valid, unknown = (int(float(f)) for f in fields[4:8])
    except ValueError:
        return None
    return {
        "average": avg,
        "min": low,
        "max": high,
        "total": total,
        "invalid": invalid,
        "valid": valid,
        "unknown": unknown,
    }


def round_up(value: float, digits: int = RANGE_DIGITS) -> str:
    """`value` rounded up to `digits` significant digits, as a range string for SR."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a range must be a positive number, got {value}")
    exponent = math.floor(math.log10(value)) - (digits - 1)
    step = 10.0**exponent
    rounded = math.ceil(value / step - 1e-9) * step
    return f"{rounded:.{max(0, -exponent)}f}"


def choose_ranges(
    max_volts: float, max_amps: float, current_margin: float = CURRENT_MARGIN
) -> tuple[str, str]:
    """The testing pass's fixed (voltage, current) ranges from the ranging pass's maxima."""
    return round_up(max_volts), round_up(max_amps * current_margin)


def _check_range(value: str, what: str) -> str:
    text = value.strip()
    if not _RANGE_VALUE.match(text) or (text.lower() != "auto" and float(text) <= 0):
        raise ValueError(f"{what} range must be 'Auto' or a positive number, got {value!r}")
    return "Auto" if text.lower() == "auto" else text


def _mark(name: str) -> str:
    return re.sub(r"[^-_A-Za-z0-9]", "_", name) or "harness"


class PtdClient:
    """A line-oriented PTDaemon connection: one command per line, one reply line each.

    A timeout, a closed connection or a malformed RL reply closes the connection and raises
    `PtdError` with reply None (or the offending line); an error reply raises `PtdError`
    from `command()` but leaves the connection usable.
    """

    def __init__(self, host: str, port: int, timeout_s: float = 5.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.Lock()

    def connect(self) -> None:
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as error:
            raise PtdError(
                "connect", None, f"cannot connect to {self.host}:{self.port}: {error}"
            ) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf = b""

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> PtdClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fail(self, command: str, reply: str | None, problem: str) -> PtdError:
        self.close()
        return PtdError(command, reply, problem)

    def _send(self, command: str) -> None:
        if self._sock is None:
            raise PtdError(command, None, "not connected")
        try:
            self._sock.settimeout(self.timeout_s)
            self._sock.sendall(command.encode("ascii") + EOL)
        except (OSError, UnicodeEncodeError) as error:
            raise self._fail(command, None, f"cannot send: {error}") from error

    def _read_line(self, command: str, extra_wait_s: float = 0.0) -> str:
        limit = self.timeout_s + extra_wait_s
        deadline = time.monotonic() + limit
        while True:
            newline = self._buf.find(b"\n")
            if newline >= 0:
                raw, self._buf = self._buf[:newline], self._buf[newline + 1 :]
                return raw.rstrip(b"\r").decode("ascii", errors="replace")
            if len(self._buf) > MAX_LINE_BYTES:
                raise self._fail(command, None, f"reply line longer than {MAX_LINE_BYTES} bytes")
            if self._sock is None:
                raise PtdError(command, None, "not connected")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(command, None, f"no reply within {limit:g} s")
            try:
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise self._fail(command, None, f"no reply within {limit:g} s") from None
            except OSError as error:
                raise self._fail(command, None, f"connection error: {error}") from error
            if not chunk:
                raise self._fail(command, None, "connection closed by PTDaemon")
            self._buf += chunk

    def request(self, command: str) -> str:
        """The raw reply line, error replies included; PtdError only when there is none."""
        with self._lock:
            self._send(command)
            return self._read_line(command)

    def command(self, command: str) -> str:
        """The reply line; PtdError on an error reply or when there is no reply."""
        reply = self.request(command)
        if is_error_reply(reply):
            raise PtdError(command, reply)
        return reply

    def hello(self) -> None:
        reply = self.request("Hello")
        if reply.strip() != HELLO_REPLY:
            raise PtdError("Hello", reply, f"not a PTDaemon (expected {HELLO_REPLY!r})")

    def read_samples(self, extra_wait_s: float = 0.0) -> tuple[list[PtdSample], float]:
        """`RL`: the samples logged since the last RL, and the monotonic time the reply came.

        `extra_wait_s` lengthens the timeout: PTDaemon may hold RL up to one sample period.
        """
        with self._lock:
            self._send("RL")
            header = self._read_line("RL", extra_wait_s)
            received = time.monotonic()
            if _NO_UNREAD.match(header):
                return [], received
            match = _LAST_N.match(header.strip())
            if match is None:
                if is_error_reply(header):
                    raise PtdError("RL", header)
                raise self._fail("RL", header, "unexpected reply (expected 'Last <N> samples')")
            count = int(match.group(1))
            if count > MAX_BATCH:
                raise self._fail("RL", header, f"more than {MAX_BATCH} samples announced")
            samples: list[PtdSample] = []
            for _ in range(count):
                line = self._read_line("RL")
                try:
                    samples.append(parse_sample_line(line))
                except ValueError as error:
                    raise self._fail("RL", line, f"malformed sample line: {error}") from None
            return samples, received


def _ptd_offsets(batch: Sequence[PtdSample], period_s: float) -> list[float]:
    """Seconds from each sample to the batch's last one, from PTDaemon's own stamps."""
    count = len(batch)
    nominal = [(count - 1 - i) * period_s for i in range(count)]
    try:
        stamps = [datetime.strptime(s.ptd_time, PTD_TIME_FORMAT) for s in batch]
    except ValueError:
        return nominal
    offsets = [(stamps[-1] - stamp).total_seconds() for stamp in stamps]
    if any(b > a for a, b in itertools.pairwise(offsets)) or offsets[0] < 0:
        return nominal  # not in order: do not trust them
    return offsets


@dataclass(frozen=True)
class RangingResult:
    voltage_range: str
    current_range: str
    info: dict[str, Any]  # what the ranging pass saw and chose, for the testing record


class PtdMeter:
    """Wall power from one PTDaemon; a context manager around exactly the timed region."""

    kind = "ptdaemon"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sample_period_s: float = 1.0,
        voltage_range: str = "Auto",
        current_range: str = "Auto",
        timeout_s: float = 5.0,
        *,
        settle_s: float = 0.0,
        current_margin: float = CURRENT_MARGIN,
    ) -> None:
        if not (sample_period_s > 0 and round(sample_period_s * 1000) >= 1):
            raise ValueError("sample_period_s must be at least 1 ms")
        if timeout_s <= 0 or settle_s < 0 or current_margin < 1:
            raise ValueError("timeout_s > 0, settle_s >= 0 and current_margin >= 1 required")
        self.name = name
        self.host = host
        self.port = port
        self.sample_period_s = sample_period_s
        self.voltage_range = _check_range(voltage_range, "voltage")
        self.current_range = _check_range(current_range, "current")
        self.timeout_s = timeout_s
        self.settle_s = settle_s
        self.current_margin = current_margin
        self._ranging_info: dict[str, Any] | None = None
        self._reset()

    # -- state ---------------------------------------------------------------------------

    def _reset(self) -> None:
        self._client: PtdClient | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._clock: dict[str, Any] | None = None
        self._status = "unavailable"
        self._reason = "never entered"
        self._samples: list[list[float]] = []
        self._volts: list[float] = []
        self._amps: list[float] = []
        self._invalid = 0
        self._clamped = 0
        self._batches = 0
        self._lost: tuple[float, int, str] | None = None
        self._uncertainty: dict[str, Any] = {
            "relative": None,
            "absolute_w": None,
            "source": "not available: the measurement did not complete",
        }
        self._extra: dict[str, Any] = {}

    # -- Instrument protocol -------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        client = PtdClient(self.host, self.port, min(self.timeout_s, UNAVAILABLE_PROBE_TIMEOUT_S))
        try:
            client.connect()
            client.hello()
        except PtdError as error:
            return f"PTDaemon at {self.host}:{self.port} is not usable: {error}"
        finally:
            client.close()
        return None

    def __enter__(self) -> PtdMeter:
        self._reset()
        self._clock = clock_mapping()
        period_ms = round(self.sample_period_s * 1000)
        go = f"Go,{period_ms},0,{_mark(self.name)}"
        ranges: dict[str, Any] = {
            "this_pass": {"voltage": self.voltage_range, "current": self.current_range},
            "ranging_pass": copy.deepcopy(self._ranging_info),
        }
        self._extra = {
            "host": self.host,
            "port": self.port,
            "identify": None,
            "ranges": ranges,
            "go": {"command": go, "reply": None},
            "timestamping": (
                "RL batch anchored at its reply's arrival (monotonic), samples spaced by "
                "PTDaemon's stamps, each placed half a sample period earlier (mid-interval)"
            ),
        }
        client = PtdClient(self.host, self.port, self.timeout_s)
        try:
            client.connect()
            client.hello()
            self._extra["identify"] = parse_identify(client.command("Identify"))
            ranges["initial"] = parse_ranges(client.request("RR"))
            ranges["replies"] = {
                "SR,V": client.command(f"SR,V,{self.voltage_range}"),
                "SR,A": client.command(f"SR,A,{self.current_range}"),
            }
            ranges["readback"] = parse_ranges(client.request("RR"))
            if self.settle_s:
                time.sleep(self.settle_s)
            reply = client.command(go)
            self._extra["go"]["reply"] = reply
            if not reply.startswith("Starting"):
                raise PtdError(go, reply, "unexpected reply (expected 'Starting ...')")
        except PtdError as error:
            client.close()
            self._reason = f"could not start a measurement at {self.host}:{self.port}: {error}"
            return self
        self._client = client
        self._status = "ok"
        self._reason = ""
        self._thread = threading.Thread(target=self._poll, name=f"ptd-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._finish()
        except Exception as error:  # never raise out of the with block
            if self._lost is None and self._status == "ok":
                self._lost = (time.monotonic(), len(self._samples), f"internal error: {error!r}")
        if self._client is not None:
            self._client.close()
        if self._lost is not None:
            when, count, problem = self._lost
            self._status = "lost"
            self._reason = f"connection lost at t={when:.3f} after {count} samples: {problem}"

    def record(self) -> dict[str, Any]:
        extra = copy.deepcopy(self._extra)
        if self._status != "unavailable":
            extra["observed"] = self._observed()
        return {
            "name": self.name,
            "kind": self.kind,
            "domain": "wall",
            "partial_domain": False,
            "sample_period_s": self.sample_period_s,
            "uncertainty": dict(self._uncertainty),
            "clock": dict(self._clock) if self._clock is not None else clock_mapping(),
            "status": self._status,
            "reason": self._reason,
            "power_samples": [list(s) for s in self._samples],
            "energy_counter": None,
            "extra": extra,
        }

    # -- ranging ---------------------------------------------------------------------------

    def ranging_pass(self, run: Callable[[], None]) -> tuple[str, str]:
        """Run `run` once with auto ranges; fix this meter's ranges from what it saw.

        The chosen ranges and the ranging pass's maxima go into later records' extra.
        """
        result = run_ranging(
            self.host,
            self.port,
            run,
            name=f"{self.name}-ranging",
            sample_period_s=self.sample_period_s,
            timeout_s=self.timeout_s,
            settle_s=self.settle_s,
            current_margin=self.current_margin,
        )
        self.voltage_range = result.voltage_range
        self.current_range = result.current_range
        self._ranging_info = result.info
        return result.voltage_range, result.current_range

    # -- internals ---------------------------------------------------------------------------

    def _poll(self) -> None:
        client = self._client
        assert client is not None
        while not self._stop.is_set():
            try:
                batch, received = client.read_samples(extra_wait_s=self.sample_period_s)
            except Exception as error:
                self._lost = (time.monotonic(), len(self._samples), str(error))
                return
            self._ingest(batch, received)
            self._stop.wait(self.sample_period_s / 2)

    def _ingest(self, batch: Sequence[PtdSample], received: float) -> None:
        if not batch:
            return
        self._batches += 1
        offsets = _ptd_offsets(batch, self.sample_period_s)
        for sample, back in zip(batch, offsets, strict=True):
            if sample.watts < 0:  # PTDaemon's error codes: -1 error, -2 missed sample
                self._invalid += 1
                continue
            t = received - back - self.sample_period_s / 2
            if self._samples and t <= self._samples[-1][0]:
                t = self._samples[-1][0] + 1e-6
                self._clamped += 1
            self._samples.append([t, sample.watts])
            if sample.volts is not None and sample.volts >= 0:
                self._volts.append(sample.volts)
            if sample.amps is not None and sample.amps >= 0:
                self._amps.append(sample.amps)

    def _finish(self) -> None:
        client, thread = self._client, self._thread
        if client is None or thread is None:
            return
        self._stop.set()
        thread.join(self.timeout_s + 2 * self.sample_period_s + 1.0)
        if thread.is_alive():  # a read that will not end: cut the connection under it
            client.close()
            thread.join(1.0)
        if self._lost is not None:
            self._uncertainty["source"] = "not available: the connection was lost"
            return
        try:
            self._extra["stop_reply"] = client.command("Stop")
        except PtdError as error:
            if error.reply is None:
                self._lost = (time.monotonic(), len(self._samples), str(error))
                self._uncertainty["source"] = "not available: the connection was lost"
                return
            self._extra["stop_reply"] = error.reply  # e.g. the meter already stopped itself
        problems: list[str] = []
        try:
            self._extra["meter_summary"] = parse_watts_summary(client.request("Watts"))
            reply = client.request("Uncertainty")
            self._extra["uncertainty_reply"] = reply
            self._uncertainty = self._uncertainty_from(reply)
        except PtdError as error:  # the samples are complete; only the summary is missing
            problems.append(str(error))
            self._uncertainty["source"] = f"not available: {error}"
        if problems:
            self._extra["exit_problems"] = problems

    def _uncertainty_from(self, reply: str) -> dict[str, Any]:
        fields = parse_uncertainty(reply)
        if fields is None or fields["average"] < 0 or fields["total"] <= 0:
            auto = "Auto" in (self.voltage_range, self.current_range)
            why = "auto-ranging gives none" if auto else "the meter gave none"
            return {
                "relative": None,
                "absolute_w": None,
                "source": f"PTDaemon reported no uncertainty ({why}): {reply!r}",
            }
        return {
            "relative": fields["average"],
            "absolute_w": None,
            "source": (
                f"PTDaemon 'Uncertainty' over this measurement: average {fields['average']:.4%} "
                f"(min {fields['min']:.4%}, max {fields['max']:.4%}) of reading; "
                f"{fields['total']} samples, {fields['invalid']} over the analyzer's limit, "
                f"{fields['unknown']} unknown"
            ),
        }

    def _observed(self) -> dict[str, Any]:
        watts = [w for _, w in self._samples]
        return {
            "valid_samples": len(self._samples),
            "invalid_samples": self._invalid,
            "rl_batches": self._batches,
            "timestamps_clamped": self._clamped,
            "max_volts": max(self._volts) if self._volts else None,
            "max_amps": max(self._amps) if self._amps else None,
            "mean_watts": statistics.fmean(watts) if watts else None,
        }


def run_ranging(
    host: str,
    port: int,
    run: Callable[[], None],
    *,
    name: str = "ptd-ranging",
    sample_period_s: float = 1.0,
    timeout_s: float = 5.0,
    settle_s: float = 0.0,
    current_margin: float = CURRENT_MARGIN,
) -> RangingResult:
    """The ranging pass in full: ranges for the testing pass and what they came from.

    PtdError when the pass lost its connection or saw no voltage or current readings.
    """
    meter = PtdMeter(
        name,
        host,
        port,
        sample_period_s,
        "Auto",
        "Auto",
        timeout_s,
        settle_s=settle_s,
        current_margin=current_margin,
    )
    with meter:
        run()
    record = meter.record()
    if record["status"] != "ok":
        raise PtdError("ranging pass", None, f"{record['status']}: {record['reason']}")
    observed = record["extra"]["observed"]
    max_volts, max_amps = observed["max_volts"], observed["max_amps"]
    if not max_volts or not max_amps or max_volts <= 0 or max_amps <= 0:
        raise PtdError(
            "ranging pass",
            None,
            f"no positive volts/amps readings in {observed['valid_samples']} samples "
            "(was the workload shorter than one sample period?)",
        )
    voltage_range, current_range = choose_ranges(max_volts, max_amps, current_margin)
    info = {
        "voltage": "Auto",
        "current": "Auto",
        "samples": observed["valid_samples"],
        "invalid_samples": observed["invalid_samples"],
        "max_volts": max_volts,
        "max_amps": max_amps,
        "mean_watts": observed["mean_watts"],
        "chosen": {"voltage": voltage_range, "current": current_range},
        "rule": (
            f"voltage range = max RMS volts, current range = {current_margin:g} x max RMS "
            f"amps, rounded up to {RANGE_DIGITS} significant digits (MLPerf power-dev)"
        ),
        "identify": record["extra"].get("identify"),
        "clock": record["clock"],
    }
    return RangingResult(voltage_range, current_range, info)


def ranging_pass(
    host: str,
    port: int,
    run: Callable[[], None],
    *,
    name: str = "ptd-ranging",
    sample_period_s: float = 1.0,
    timeout_s: float = 5.0,
    settle_s: float = 0.0,
    current_margin: float = CURRENT_MARGIN,
) -> tuple[str, str]:
    """Run `run` with auto ranges; the fixed (voltage, current) ranges for the testing pass."""
    result = run_ranging(
        host,
        port,
        run,
        name=name,
        sample_period_s=sample_period_s,
        timeout_s=timeout_s,
        settle_s=settle_s,
        current_margin=current_margin,
    )
    return result.voltage_range, result.current_range
