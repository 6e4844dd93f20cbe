"""Wall power from an external analyzer (Yokogawa and others) through SPEC PTDaemon's TCP
interface, the way MLPerf Power drives it, plus the MLPerf ranging procedure.

`PtdClient` speaks the line protocol; `PtdMeter` is the instrument: on enter it connects,
identifies the daemon, reads the analyzer's initial ranges (`RR`), sets this pass's ranges,
waits the settle time and starts logging (`Go`); a daemon thread then reads the logged
samples (`RL`) until exit, which waits the settle time again (still reading), stops
logging (`Stop`), reads the samples logged since the last RL, asks the meter for its own
summary (`Watts`) and uncertainty (`Uncertainty`) and restores the initial ranges
(`SR,V,<initial>`, `SR,A,<initial>`; a fixed initial range is restored as it was, anything
else as Auto, as power-dev does). Whether MLPerf would accept the pass is decided later,
from the record alone, by `harness.instruments.ptd_mlperf`.

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
  RL,*,* | RL | DC-RL      "Last <N> samples", then N lines
                           "Time,<MM-DD-YYYY HH:MM:SS.fff>,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>"
                           (PF may be missing; a Mark pair and channel groups
                           "Ch<n>,Watts,..,Volts,..,Amps,.." may follow: the first group is
                           the power, each channel group an element's readings); "No unread
                           samples" or "Insufficient unread samples": none yet. The variant
                           is negotiated on the first read as power-dev does: `RL,*,*`, then
                           `RL` on "Invalid number of parameters", `DC-RL` on "Unknown
                           command" (a DC analyzer). A negative Watts is the meter's error
                           code (-1 error, -2 missed): kept with its time in the record's
                           error_samples, never used as power.
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
Values are rounded up to 4 significant digits. On a multichannel analyzer the maxima are
each element's (the sum group's current would set too wide a range). MLPerf waits 10 s
after setting the ranges before `Go` and 10 s before `Stop` (`settle_s`, 10 s by default).

Clock. Each RL batch's arrival is kept with its last sample's PTDaemon stamp and our UTC
and local wall time (extra "rl_batches"); observed "clock_offset_s" is PTDaemon's clock
minus ours (it includes the reply's latency).

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
from datetime import UTC, datetime
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
# MLPerf Power's rules (mlcommons/power-dev lib/server.py and compliance/check.py, and the
# inference submission checker's power checks)
MLPERF_SETTLE_S = 10.0  # power-dev's ANALYZER_SLEEP_SECONDS: after SR before Go, before Stop
MLPERF_PERIOD_MS = 1000  # Go,1000,0,<mark>
MLPERF_UNCERTAINTY_LIMIT = 0.01  # no sample above 1 % under fixed ranges
MLPERF_RANGING_TOLERANCE = 0.05  # testing average >= ranging average - 5 %
# what power-dev's compliance/check.py accepts from `Identify` (the version stored here)
MLPERF_PTD_VERSIONS = ("1.9.1", "1.9.2")
MLPERF_ANALYZERS = ("YokogawaWT210", "YokogawaWT310", "YokogawaWT330E")
# RL with all channels and fields; plain RL for a daemon that refuses parameters
# ("Invalid number of parameters"); DC-RL for a DC analyzer's daemon ("Unknown command")
RL_COMMANDS = ("RL,*,*", "RL", "DC-RL")
MAX_FINAL_READS = 5

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
_CHANNEL = re.compile(r"^Ch\d+$")
_VERSION = re.compile(r"^(\d+(?:\.\d+)*)")
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
    """One RL line: PTDaemon's timestamp (its host's local wall clock) and the readings of
    the first group (the analyzer's sum on a multichannel analyzer); `channels` holds each
    further group's (watts, volts, amps), one per analyzer element."""

    ptd_time: str
    watts: float
    volts: float | None
    amps: float | None
    power_factor: float | None
    channels: tuple[tuple[float | None, float | None, float | None], ...] = ()


def _number(text: str, what: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{what} is not finite: {text!r}")
    return value


def parse_sample_line(line: str) -> PtdSample:
    """`Time,<stamp>,Watts,<W>,Volts,<V>,Amps,<A>,PF,<pf>[,Mark,<m>][,Ch1,Watts,...]`.

    Groups: a `Ch<n>` token, or a key the current group already has, starts the next
    channel's group. ValueError if malformed.
    """
    fields = [f.strip() for f in line.split(",")]
    if len(fields) < 4 or fields[0] != "Time":
        raise ValueError("expected 'Time,<stamp>,Watts,<watts>,...'")
    groups: list[dict[str, str]] = [{}]
    i = 2
    while i + 1 < len(fields):
        key = fields[i]
        if _CHANNEL.match(key):
            groups.append({})
            i += 1
            continue
        value = fields[i + 1]
        i += 2
        if key == "Mark":
            continue
        if key in groups[-1]:
            groups.append({})
        groups[-1][key] = value
    first = groups[0]
    if "Watts" not in first:
        raise ValueError("no Watts field")

    def optional(group: dict[str, str], key: str) -> float | None:
        return _number(group[key], key) if key in group else None

    return PtdSample(
        ptd_time=fields[1],
        watts=_number(first["Watts"], "Watts"),
        volts=optional(first, "Volts"),
        amps=optional(first, "Amps"),
        power_factor=optional(first, "PF"),
        channels=tuple(
            (optional(g, "Watts"), optional(g, "Volts"), optional(g, "Amps"))
            for g in groups[1:]
            if g
        ),
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


def initial_ranges(ranges: dict[str, Any]) -> tuple[str, str]:
    """The (voltage, current) ranges to restore on exit from the first RR reply, as
    power-dev reads it: a fixed range (auto flag 0, range > 0) is restored, anything else
    (auto-ranging, unknown, an unreadable reply) as 'Auto'."""

    def one(auto: str, value: str) -> str:
        if ranges.get(auto) == 0 and float(ranges.get(value, -1)) > 0:
            return f"{float(ranges[value]):g}"
        return "Auto"

    return one("voltage_auto", "voltage_range"), one("current_auto", "current_range")


def identify_version(identify: dict[str, Any] | None) -> str:
    """The PTDaemon version from `Identify` (its part before the first '-', as power-dev
    reads `version=<x>-`); "" when none."""
    if not identify:
        return ""
    match = _VERSION.match(str(identify.get("version", "")))
    return match.group(1) if match else ""


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
        self.rl_command: str | None = None  # the RL variant this daemon answers
        self.rl_refused: list[tuple[str, str]] = []  # (variant, reply) refused on the way

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
        """RL: the samples logged since the last RL, and the monotonic time the reply came.

        The first call picks the variant as power-dev does: `RL,*,*`; on "Invalid number of
        parameters" plain `RL`; on "Unknown command" `DC-RL` (a DC analyzer's daemon). The
        variant answered is kept in `rl_command`, the refusals in `rl_refused`.
        `extra_wait_s` lengthens the timeout: PTDaemon may hold RL up to one sample period.
        """
        with self._lock:
            command = self.rl_command or RL_COMMANDS[0]
            while True:
                self._send(command)
                header = self._read_line(command, extra_wait_s)
                received = time.monotonic()
                if self.rl_command is not None:
                    break
                fallback = _rl_fallback(command, header)
                if fallback is None:
                    if not is_error_reply(header):
                        self.rl_command = command
                    break
                self.rl_refused.append((command, header))
                command = fallback
            if _NO_UNREAD.match(header):
                return [], received
            match = _LAST_N.match(header.strip())
            if match is None:
                if is_error_reply(header):
                    raise PtdError(command, header)
                raise self._fail(command, header, "unexpected reply (expected 'Last <N> samples')")
            count = int(match.group(1))
            if count > MAX_BATCH:
                raise self._fail(command, header, f"more than {MAX_BATCH} samples announced")
            samples: list[PtdSample] = []
            for _ in range(count):
                line = self._read_line(command)
                try:
                    samples.append(parse_sample_line(line))
                except ValueError as error:
                    raise self._fail(command, line, f"malformed sample line: {error}") from None
            return samples, received


def _rl_fallback(command: str, reply: str) -> str | None:
    """The next RL variant to try after `reply` refused `command`; None: no fallback."""
    text = reply.strip().lower()
    if command == "RL,*,*" and text.startswith("invalid number of parameters"):
        return "RL"
    if command in ("RL,*,*", "RL") and text.startswith("unknown command"):
        return "DC-RL"
    return None


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
    info: dict[str, Any]  # what the ranging pass saw and chose, with its raw record


def _ptd_stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, PTD_TIME_FORMAT)
    except ValueError:
        return None


class PtdMeter:
    """Wall power from one PTDaemon; a context manager around exactly the timed region.

    `settle_s` (None: MLPerf's 10 s) is waited after setting the ranges before `Go`, and
    after the timed region before `Stop`, with the samples still being read.
    """

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
        settle_s: float | None = None,
        current_margin: float = CURRENT_MARGIN,
    ) -> None:
        settle = MLPERF_SETTLE_S if settle_s is None else settle_s
        if not (sample_period_s > 0 and round(sample_period_s * 1000) >= 1):
            raise ValueError("sample_period_s must be at least 1 ms")
        if timeout_s <= 0 or settle < 0 or current_margin < 1:
            raise ValueError("timeout_s > 0, settle_s >= 0 and current_margin >= 1 required")
        self.name = name
        self.host = host
        self.port = port
        self.sample_period_s = sample_period_s
        self.voltage_range = _check_range(voltage_range, "voltage")
        self.current_range = _check_range(current_range, "current")
        self.timeout_s = timeout_s
        self.settle_s = settle
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
        self._errors: list[list[float]] = []  # [t, code]: -1 error, -2 missed, ...
        self._volts: list[float] = []
        self._amps: list[float] = []
        self._channel_max: dict[int, list[float]] = {}  # channel -> [max volts, max amps]
        self._clamped = 0
        self._batches: list[list[Any]] = []  # [received, count, last PTD stamp, utc, local]
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
            "settle": {"before_go_s": self.settle_s, "before_stop_s": self.settle_s},
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
            if client.connected and "replies" in ranges:
                self._restore(client)
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
            extra["error_samples"] = [list(e) for e in self._errors]
            extra["rl_batches"] = [list(b) for b in self._batches]
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
        self._ranging_info = {k: v for k, v in result.info.items() if k != "record"}
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
        now = datetime.now(UTC)
        self._batches.append(
            [
                received,
                len(batch),
                batch[-1].ptd_time,
                now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                now.astimezone().replace(tzinfo=None).strftime(PTD_TIME_FORMAT),
            ]
        )
        offsets = _ptd_offsets(batch, self.sample_period_s)
        for sample, back in zip(batch, offsets, strict=True):
            t = received - back - self.sample_period_s / 2
            if sample.watts < 0:  # PTDaemon's error codes: -1 error, -2 missed sample
                self._errors.append([t, sample.watts])
                continue
            if self._samples and t <= self._samples[-1][0]:
                t = self._samples[-1][0] + 1e-6
                self._clamped += 1
            self._samples.append([t, sample.watts])
            if sample.channels:  # a multichannel analyzer: each element's own maxima
                for number, (_, volts, amps) in enumerate(sample.channels, start=1):
                    high = self._channel_max.setdefault(number, [-1.0, -1.0])
                    high[0] = max(high[0], volts if volts is not None else -1.0)
                    high[1] = max(high[1], amps if amps is not None else -1.0)
                continue
            if sample.volts is not None and sample.volts >= 0:
                self._volts.append(sample.volts)
            if sample.amps is not None and sample.amps >= 0:
                self._amps.append(sample.amps)

    def _lose(self, error: PtdError) -> None:
        self._lost = (time.monotonic(), len(self._samples), str(error))
        self._uncertainty["source"] = "not available: the connection was lost"

    def _finish(self) -> None:
        client, thread = self._client, self._thread
        if client is None or thread is None:
            return
        if self.settle_s and self._lost is None:
            self._stop.wait(self.settle_s)  # MLPerf: the analyzer settles before Stop
        self._stop.set()
        thread.join(self.timeout_s + 2 * self.sample_period_s + 1.0)
        if thread.is_alive():  # a read that will not end: cut the connection under it
            client.close()
            thread.join(1.0)
        if self._lost is not None:
            self._uncertainty["source"] = "not available: the connection was lost"
            return
        self._extra["rl_command"] = client.rl_command
        self._extra["rl_refused"] = [list(r) for r in client.rl_refused]
        try:
            self._extra["stop_reply"] = client.command("Stop")
        except PtdError as error:
            if error.reply is None:
                self._lose(error)
                return
            self._extra["stop_reply"] = error.reply  # e.g. the meter already stopped itself
        problems: list[str] = []
        final: list[int] = []
        try:  # the samples logged between the last RL and Stop
            for _ in range(MAX_FINAL_READS):
                batch, received = client.read_samples()
                if not batch:
                    break
                final.append(len(batch))
                self._ingest(batch, received)
        except PtdError as error:
            if error.reply is None:
                self._lose(error)
                return
            problems.append(f"final RL after Stop: {error}")
        self._extra["final_read"] = final
        try:
            self._extra["meter_summary"] = parse_watts_summary(client.request("Watts"))
            reply = client.request("Uncertainty")
            self._extra["uncertainty_reply"] = reply
            self._uncertainty = self._uncertainty_from(reply)
        except PtdError as error:  # the samples are complete; only the summary is missing
            problems.append(str(error))
            self._uncertainty["source"] = f"not available: {error}"
        if client.connected:
            self._restore(client)
        if problems:
            self._extra["exit_problems"] = problems

    def _restore(self, client: PtdClient) -> None:
        """Back to the ranges the analyzer had before this pass (power-dev does the same)."""
        initial = self._extra["ranges"].get("initial") or {}
        volts, amps = initial_ranges(initial)
        restore: dict[str, Any] = {"voltage": volts, "current": amps}
        try:
            restore["SR,V"] = client.request(f"SR,V,{volts}")
            restore["SR,A"] = client.request(f"SR,A,{amps}")
        except PtdError as error:
            restore["problem"] = str(error)
        self._extra["restore"] = restore

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
        channels = [
            {"channel": n, "max_volts": high[0], "max_amps": high[1]}
            for n, high in sorted(self._channel_max.items())
        ]
        if channels:  # ranges are per element: the highest element's readings
            max_volts: float | None = max(c["max_volts"] for c in channels)
            max_amps: float | None = max(c["max_amps"] for c in channels)
        else:
            max_volts = max(self._volts) if self._volts else None
            max_amps = max(self._amps) if self._amps else None
        return {
            "valid_samples": len(self._samples),
            "invalid_samples": len(self._errors),
            "rl_batches": len(self._batches),
            "timestamps_clamped": self._clamped,
            "max_volts": max_volts,
            "max_amps": max_amps,
            "channels": channels,
            "mean_watts": statistics.fmean(watts) if watts else None,
            "clock_offset_s": clock_offset(self._batches),
        }


def clock_offset(batches: Sequence[Sequence[Any]]) -> dict[str, Any] | None:
    """PTDaemon's clock minus ours, from each RL reply: its last sample's stamp against our
    local and UTC wall time when the reply came (so it includes the reply's latency, up to
    one sample period). Median and extremes; None when no stamp parses."""
    local: list[float] = []
    utc: list[float] = []
    for batch in batches:
        stamp = _ptd_stamp(str(batch[2]))
        if stamp is None:
            continue
        ours_local = _ptd_stamp(str(batch[4]))
        ours_utc = datetime.strptime(str(batch[3]), "%Y-%m-%dT%H:%M:%S.%fZ")
        if ours_local is not None:
            local.append((stamp - ours_local).total_seconds())
        utc.append((stamp - ours_utc).total_seconds())
    if not utc:
        return None
    return {
        "vs_local_median_s": statistics.median(local) if local else None,
        "vs_utc_median_s": statistics.median(utc),
        "vs_local_range_s": [min(local), max(local)] if local else None,
        "batches": len(utc),
    }


def run_ranging(
    host: str,
    port: int,
    run: Callable[[], None],
    *,
    name: str = "ptd-ranging",
    sample_period_s: float = 1.0,
    timeout_s: float = 5.0,
    settle_s: float | None = None,
    current_margin: float = CURRENT_MARGIN,
) -> RangingResult:
    """The ranging pass in full: ranges for the testing pass and what they came from, with
    the pass's raw record (info["record"]) and the time `run` took (info["window"]).

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
        start = time.monotonic()
        run()
        end = time.monotonic()
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
    per = "the highest element's " if observed["channels"] else ""
    info = {
        "voltage": "Auto",
        "current": "Auto",
        "samples": observed["valid_samples"],
        "invalid_samples": observed["invalid_samples"],
        "max_volts": max_volts,
        "max_amps": max_amps,
        "channels": observed["channels"],
        "mean_watts": observed["mean_watts"],
        "chosen": {"voltage": voltage_range, "current": current_range},
        "rule": (
            f"voltage range = {per}max RMS volts, current range = {current_margin:g} x "
            f"{per}max RMS amps, rounded up to {RANGE_DIGITS} significant digits "
            "(MLPerf power-dev)"
        ),
        "identify": record["extra"].get("identify"),
        "clock": record["clock"],
        "window": [start, end],
        "record": record,
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
    settle_s: float | None = None,
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
