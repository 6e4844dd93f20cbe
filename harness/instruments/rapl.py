"""CPU package and DRAM energy from RAPL, through the Linux powercap sysfs tree.

The tree (`/sys/class/powercap`) holds top-level zones `intel-rapl:N` (name `package-N`, or
`psys` for the whole platform on some client parts) and sub-zones `intel-rapl:N:M` (`core`,
`uncore`, `dram`). AMD CPUs expose the same `intel-rapl` names. The domains overlap: a
package contains its `core` and `uncore` sub-zones, and `psys` contains the packages, so
only packages and `dram` zones (which the package does not contain) are recorded, one
`RaplZone` instrument each. `intel-rapl-mmio:N` zones mirror the package through MMIO and
are ignored for the same reason.

Each zone reads its `energy_uj` counter at enter, every `sample_period_s` in a daemon
thread (so that at most one wrap-around of the counter falls between two readings), and at
exit; the raw readings go into the record, and `rapl_energy_j` turns them into joules.

`RaplInstrument` groups the zones of one machine behind one context manager; `records()`
gives one record per zone, or one "unavailable" record that says why there are none.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.instruments.base import PollingSampler, clock_mapping
from harness.power import unwrap_counter

DEFAULT_ROOT = Path("/sys/class/powercap")
DOMAINS = ("cpu-package", "dram")

UNCERTAINTY_SOURCE = (
    "RAPL energy counter (Linux powercap): a model-based estimate on some CPUs (Intel before "
    "Haswell, AMD), measured on others; no absolute accuracy figure is published, so none is "
    "claimed; it covers only this domain, not the wall"
)

_TOP = re.compile(r"^intel-rapl:(\d+)$")
_SUB = re.compile(r"^intel-rapl:(\d+):(\d+)$")


def rapl_energy_j(readings: list[list[float]], max_uj: int | None) -> float:
    """Joules between the first and last raw `energy_uj` readings [[t, raw_uj], ...].

    A reading below its predecessor is one wrap-around of the counter: that step counts
    `max_uj - prev + cur` (see `harness.power.unwrap_counter`). Without a known range
    (`max_uj` None) a decrease cannot be explained, and ValueError says so.
    """
    if len(readings) < 2:
        return 0.0
    unwrapped = unwrap_counter(readings, max_uj)
    return (unwrapped[-1][1] - unwrapped[0][1]) / 1e6


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_name(path: Path) -> str:
    try:
        return (path / "name").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _read_reason(energy: Path, error: BaseException) -> str:
    if isinstance(error, PermissionError):
        return (
            f"permission denied reading {energy} (RAPL counters are root-only since Linux "
            "5.10; run as root or grant read access)"
        )
    if isinstance(error, ValueError):
        return f"unreadable value in {energy}: {error}"
    return f"cannot read {energy}: {error}"


@dataclass(frozen=True)
class ZoneInfo:
    """One powercap zone as found on disk."""

    zone: str  # directory name, e.g. "intel-rapl:0:1"
    name: str  # contents of its `name` file, e.g. "package-0", "dram", "core"
    path: Path
    parent: str | None = None  # the top-level zone of a sub-zone
    subzones: tuple[ZoneInfo, ...] = field(default_factory=tuple)


def discover_zones(root: Path = DEFAULT_ROOT) -> list[ZoneInfo]:
    """Top-level `intel-rapl:N` zones, each with its `intel-rapl:N:M` sub-zones.

    Sub-zones are looked for both beside the top-level zones (as in /sys/class/powercap)
    and inside them (as under /sys/devices/virtual/powercap/intel-rapl/intel-rapl:N).
    Nothing raises: an unreadable or missing tree gives an empty list.
    """
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    tops: dict[int, Path] = {}
    subs: dict[int, dict[int, Path]] = {}
    for entry in entries:
        if m := _TOP.match(entry.name):
            tops[int(m.group(1))] = entry
        elif m := _SUB.match(entry.name):
            subs.setdefault(int(m.group(1)), {})[int(m.group(2))] = entry
    for n, top in tops.items():
        try:
            inside = list(top.iterdir())
        except OSError:
            continue
        for entry in inside:
            m = _SUB.match(entry.name)
            if m and int(m.group(1)) == n:
                subs.setdefault(n, {}).setdefault(int(m.group(2)), entry)
    zones = []
    for n in sorted(tops):
        top = tops[n]
        children = tuple(
            ZoneInfo(path.name, _read_name(path), path, parent=top.name)
            for _, path in sorted(subs.get(n, {}).items())
        )
        zones.append(ZoneInfo(top.name, _read_name(top), top, subzones=children))
    return zones


def _domain_of(zone: ZoneInfo) -> str | None:
    """The record domain a zone is measured for, or None when another zone covers it."""
    if zone.parent is None and zone.name.startswith("package"):
        return "cpu-package"
    if zone.name == "dram":
        return "dram"
    return None  # core / uncore (inside the package), psys (contains the packages), ...


class RaplZone(PollingSampler):
    """One RAPL zone (a package or a dram zone) as an instrument."""

    def __init__(
        self,
        zone: ZoneInfo,
        domain: str,
        name: str,
        sample_period_s: float = 0.1,
        package: ZoneInfo | None = None,
    ) -> None:
        self.name = name
        self.zone = zone
        self.domain = domain
        self.sample_period_s = sample_period_s
        self._package = package  # the top-level zone this zone belongs to (or is)
        self._energy = zone.path / "energy_uj"
        self._readings: list[list[float]] = []
        self._clock: dict[str, Any] | None = None
        self._max_uj: int | None = None
        self._max_reason = ""
        self._init_polling()

    def unavailable_reason(self) -> str | None:
        try:
            _read_int(self._energy)
        except (OSError, ValueError) as error:
            return _read_reason(self._energy, error)
        return None

    # -- sampling -------------------------------------------------------------------------

    def _sample(self) -> bool:
        """One reading into the record; False (and status "lost") when it failed."""
        before = time.monotonic()
        try:
            raw = _read_int(self._energy)
        except (OSError, ValueError) as error:
            self._lose(_read_reason(self._energy, error))
            return False
        t = (before + time.monotonic()) / 2
        with self._lock:
            if self._closed:
                return False
            self._readings.append([t, raw])
        return True

    def __enter__(self) -> RaplZone:
        self._readings = []
        self._clock = clock_mapping()
        try:
            self._max_uj = _read_int(self.zone.path / "max_energy_range_uj")
            self._max_reason = ""
        except (OSError, ValueError) as error:
            self._max_uj = None
            self._max_reason = f"no wrap-around range: {error}"
        reason = self.unavailable_reason()
        if reason is not None:
            self._status, self._reason = "unavailable", reason
            return self
        self._start_polling()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_polling()

    def record(self) -> dict[str, Any]:
        with self._lock:
            readings = sorted((list(r) for r in self._readings), key=lambda r: r[0])
            status, reason = self._status, self._reason
        package = self._package or self.zone
        return {
            "name": self.name,
            "kind": "rapl",
            "domain": self.domain,
            "partial_domain": True,
            "sample_period_s": self.sample_period_s,
            "uncertainty": {"relative": None, "absolute_w": None, "source": UNCERTAINTY_SOURCE},
            "clock": self._clock if self._clock is not None else clock_mapping(),
            "status": status,
            "reason": reason,
            "power_samples": [],
            "energy_counter": (
                None
                if status == "unavailable"
                else {"unit": "uJ", "max": self._max_uj, "readings": readings}
            ),
            "extra": {
                "zone": self.zone.zone,
                "zone_name": self.zone.name,
                "path": str(self.zone.path),
                "package_zone": package.zone,
                "package_name": package.name,
                # sub-zones the package already contains: never added to it
                "contained_subzones": [
                    {"zone": s.zone, "name": s.name}
                    for s in package.subzones
                    if _domain_of(s) is None
                ]
                if self.domain == "cpu-package"
                else [],
                "max_energy_range_uj": self._max_uj,
                "max_energy_range_reason": self._max_reason,
            },
        }


def rapl_zones(
    root: Path = DEFAULT_ROOT,
    sample_period_s: float = 0.1,
    domains: Iterable[str] = DOMAINS,
) -> list[RaplZone]:
    """One instrument per package zone ("cpu-package") and per dram zone ("dram")."""
    wanted = set(domains)
    unknown = wanted - set(DOMAINS)
    if unknown:
        raise ValueError(f"unknown RAPL domains {sorted(unknown)}; known: {list(DOMAINS)}")
    out: list[RaplZone] = []
    used: set[str] = set()

    def unique(name: str, zone: ZoneInfo) -> str:
        if name in used:
            name = f"{name}-{zone.zone.removeprefix('intel-rapl:').replace(':', '-')}"
        used.add(name)
        return name

    for top in discover_zones(root):
        top_domain = _domain_of(top)
        label = top.name or top.zone
        if top_domain is not None and top_domain in wanted:
            out.append(RaplZone(top, top_domain, unique(f"rapl-{label}", top), sample_period_s))
        for sub in top.subzones:
            sub_domain = _domain_of(sub)
            if sub_domain is not None and sub_domain in wanted:
                name = unique(f"rapl-{label}-{sub.name}", sub)
                out.append(RaplZone(sub, sub_domain, name, sample_period_s, package=top))
    return out


class RaplInstrument:
    """Every RAPL zone of this machine behind one context manager."""

    name = "rapl"

    def __init__(
        self,
        root: Path = DEFAULT_ROOT,
        sample_period_s: float = 0.1,
        domains: Iterable[str] = DOMAINS,
    ) -> None:
        self.root = root
        self.sample_period_s = sample_period_s
        self.domains = tuple(domains)
        self.zones = rapl_zones(root, sample_period_s, self.domains)
        self._clock: dict[str, Any] | None = None

    def unavailable_reason(self) -> str | None:
        """None when at least one zone can be read; otherwise why none can."""
        if not self.zones:
            found = [f"{z.zone} ({z.name})" for z in discover_zones(self.root)]
            if not found:
                return f"no RAPL powercap zones under {self.root}"
            return (
                f"no RAPL zones for domains {list(self.domains)} under {self.root} "
                f"(found: {', '.join(found)})"
            )
        reasons = [zone.unavailable_reason() for zone in self.zones]
        if all(reasons):
            return reasons[0]
        return None

    def __enter__(self) -> RaplInstrument:
        self._clock = clock_mapping()
        for zone in self.zones:
            zone.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for zone in self.zones:
            zone.__exit__(exc_type, exc, tb)

    def records(self) -> list[dict[str, Any]]:
        """One record per zone; without zones, one "unavailable" record with the reason."""
        if self.zones:
            return [zone.record() for zone in self.zones]
        return [
            {
                "name": self.name,
                "kind": "rapl",
                "domain": "cpu-package",
                "partial_domain": True,
                "sample_period_s": self.sample_period_s,
                "uncertainty": {
                    "relative": None,
                    "absolute_w": None,
                    "source": UNCERTAINTY_SOURCE,
                },
                "clock": self._clock if self._clock is not None else clock_mapping(),
                "status": "unavailable",
                "reason": self.unavailable_reason() or "no RAPL zones",
                "power_samples": [],
                "energy_counter": None,
                "extra": {"root": str(self.root)},
            }
        ]
