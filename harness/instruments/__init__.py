"""Power instruments, registered by kind. A submission names its instruments
(`instruments: [{kind: ptdaemon, host: ..., port: ...}]`); the local device's own sensors
(NVML for a CUDA GPU, RAPL for a CPU) are added automatically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import BadInput
from harness.instruments.base import Instrument
from harness.loading import bad_input_from
from harness.registry import Registry
from harness.schema import InstrumentSpec

specs: Registry[Any] = Registry("harness.instruments")


class PlannedInstrument(Protocol):
    """A validated instrument spec that can build fresh instrument instances."""

    kind: ClassVar[str]
    name: str

    def unavailable_reason(self) -> str | None: ...

    def build(self) -> Instrument: ...


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    name: str = ""
    # who named the meter: the lab (its instruments file, --meter-log, the device's own
    # sensors) or the applicant's submission; set by the harness, never read from a file
    supplied_by: Literal["lab", "applicant"] = Field(default="applicant", exclude=True)


class Uncertainty(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    relative: float | None = Field(default=None, ge=0)
    absolute_w: float | None = Field(default=None, ge=0)


@specs.register("meter-log")
class MeterLogSpec(_Spec):
    kind: ClassVar[str] = "meter-log"
    name: str = "wall-log"
    path: Path
    clock_offset_s: float = 0.0
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    # where the accuracy was stated: the submission's `uncertainty:` or --meter-uncertainty
    stated_in: Literal["submission", "command line"] = "submission"

    def unavailable_reason(self) -> str | None:
        return None if self.path.is_file() else f"meter log {self.path} not found"

    def build(self) -> Instrument:
        from harness.instruments.meterlog import MeterLog

        return MeterLog(
            self.name,
            self.path,
            self.clock_offset_s,
            self.uncertainty.relative,
            self.uncertainty.absolute_w,
            self.stated_in,
        )

    def validate_files(self, source: str | Path, where: str) -> None:
        from harness.instruments.meterlog import read_log

        if not self.path.is_file():
            raise BadInput(source, f"{where}.path", f"meter log not found: {self.path}")
        read_log(self.path)


@specs.register("nvml")
class NvmlSpec(_Spec):
    """A GPU's board power and energy counter through NVML."""

    kind: ClassVar[str] = "nvml"
    index: int = Field(default=0, ge=0)
    sample_period_s: float = Field(default=0.1, gt=0)

    def model_post_init(self, context: Any) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"nvml-gpu{self.index}")

    def unavailable_reason(self) -> str | None:
        return self.build().unavailable_reason()

    def build(self) -> Instrument:
        from harness.instruments.nvml_power import NvmlPowerInstrument

        return NvmlPowerInstrument(self.index, self.sample_period_s)


@specs.register("rapl")
class RaplSpec(_Spec):
    """One RAPL zone (CPU package or DRAM) from the powercap sysfs tree."""

    kind: ClassVar[str] = "rapl"
    root: Path = Path("/sys/class/powercap")
    zone: str = ""  # an instrument name from rapl_zones(); "" = every package and dram zone
    sample_period_s: float = Field(default=0.1, gt=0)

    def expand(self) -> list[RaplSpec]:
        """One spec per zone; itself (to report why) when there is none."""
        from harness.instruments.rapl import rapl_zones

        if self.zone:
            return [self]
        zones = rapl_zones(self.root, self.sample_period_s)
        if not zones:
            return [self.model_copy(update={"name": self.name or "rapl"})]
        return [self.model_copy(update={"zone": z.name, "name": z.name}) for z in zones]

    def unavailable_reason(self) -> str | None:
        from harness.instruments.rapl import RaplInstrument

        if not self.zone:
            return RaplInstrument(self.root, self.sample_period_s).unavailable_reason() or (
                "no RAPL package or dram zone"
            )
        return self.build().unavailable_reason()

    def build(self) -> Instrument:
        from harness.instruments.rapl import rapl_zones

        for zone in rapl_zones(self.root, self.sample_period_s):
            if zone.name == self.zone:
                return zone
        raise BadInput(self.root, "zone", f"no RAPL zone named {self.zone!r}")


@specs.register("ptdaemon")
class PtdSpec(_Spec):
    """A wall-power analyzer behind a SPEC PTDaemon, over TCP."""

    kind: ClassVar[str] = "ptdaemon"
    name: str = "wall"
    host: str
    port: int = Field(ge=1, le=65535)
    sample_period_s: float = Field(default=1.0, gt=0)
    voltage_range: str = "Auto"
    current_range: str = "Auto"
    ranging: bool = True  # a ranging pass with auto ranges first, as MLPerf Power does
    ranging_s: float = Field(default=10.0, gt=0)
    settle_s: float = Field(default=0.0, ge=0)
    timeout_s: float = Field(default=5.0, gt=0)

    def unavailable_reason(self) -> str | None:
        return self.build().unavailable_reason()

    def build(self) -> Instrument:
        from harness.instruments.ptdaemon import PtdMeter

        return PtdMeter(
            self.name,
            self.host,
            self.port,
            self.sample_period_s,
            self.voltage_range,
            self.current_range,
            self.timeout_s,
            settle_s=self.settle_s,
        )

    def after_ranging(self, run: Callable[[float], None]) -> tuple[PtdSpec, dict[str, Any]]:
        """Run the workload once with auto ranges; the spec with the ranges it chose."""
        if not self.ranging:
            return self, {}
        from harness.instruments.ptdaemon import run_ranging

        result = run_ranging(
            self.host,
            self.port,
            lambda: run(self.ranging_s),
            name=f"{self.name}-ranging",
            sample_period_s=self.sample_period_s,
            timeout_s=self.timeout_s,
            settle_s=self.settle_s,
        )
        fixed = self.model_copy(
            update={
                "voltage_range": result.voltage_range,
                "current_range": result.current_range,
                "ranging": False,
            }
        )
        return fixed, dict(result.info)


@specs.register("visa")
class VisaSpec(_Spec):
    """A power analyzer through VISA/SCPI (pyvisa; backend "@py" is pure Python, "@sim" or
    "FILE.yaml@sim" the pyvisa-sim simulator). The queries are the analyzer's own: e.g. a
    Yokogawa WT (setup `:NUMERIC:FORMAT ASCII`, `:NUMERIC:NORMAL:ITEM1 P,1`; power query
    `:NUMERIC:NORMAL:VALUE? 1`), a Keysight or R&S meter (`MEAS:POW?`)."""

    kind: ClassVar[str] = "visa"
    name: str = "wall-visa"
    resource: str = Field(min_length=1)  # e.g. TCPIP::10.0.0.5::INSTR, TCPIP::h::5025::SOCKET
    backend: str = "@py"
    sample_period_s: float = Field(default=0.5, gt=0)
    power_query: str = Field(default="MEAS:POW?", min_length=1)
    voltage_query: str | None = None
    current_query: str | None = None
    setup: list[str] = Field(default_factory=list)
    timeout_ms: int = Field(default=2000, ge=1)
    read_termination: str = "\n"
    write_termination: str = "\n"
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)

    def unavailable_reason(self) -> str | None:
        return self.build().unavailable_reason()

    def build(self) -> Instrument:
        from harness.instruments.visa import VisaMeter

        return VisaMeter(
            self.name,
            self.resource,
            self.backend,
            self.sample_period_s,
            self.power_query,
            self.voltage_query,
            self.current_query,
            self.setup,
            self.timeout_ms,
            self.uncertainty.relative,
            self.uncertainty.absolute_w,
            self.read_termination,
            self.write_termination,
        )


def parse(
    raw: list[InstrumentSpec],
    source: str | Path,
    base_dir: Path | None,
    supplied_by: Literal["lab", "applicant"] = "applicant",
) -> list[Any]:
    """Validate an instrument list (a submission's, or the lab's instruments file); paths
    are relative to the file."""
    out: list[Any] = []
    for i, spec in enumerate(raw):
        where = f"instruments[{i}]"
        cls = specs.get(spec.kind)
        if cls is None:
            known = ", ".join(specs.names())
            raise BadInput(
                source, f"{where}.kind", f"unknown instrument {spec.kind!r}; known: {known}"
            )
        data = spec.model_dump()
        data.pop("kind")
        if "path" in data and base_dir is not None:
            data["path"] = str((base_dir / str(data["path"])).resolve())
        if "supplied_by" in data:
            raise BadInput(source, f"{where}.supplied_by", "is set by the harness, not a file")
        try:
            parsed = cls.model_validate(data).model_copy(update={"supplied_by": supplied_by})
        except ValidationError as error:
            raise bad_input_from(source, error, prefix=where) from None
        if hasattr(parsed, "validate_files"):
            parsed.validate_files(source, where)
        out.append(parsed)
    names = [p.name for p in out]
    for name in names:
        if names.count(name) > 1:
            raise BadInput(source, "instruments", f"two instruments are named {name!r}")
    return out


def _device_sensors(device: str) -> list[Any]:
    """The sensors a local device has of its own: NVML for a CUDA GPU, RAPL for a CPU."""
    if device.startswith("cuda"):
        from harness.nvml import index_of_cuda_device

        return [NvmlSpec(index=index_of_cuda_device(device), supplied_by="lab")]
    return [RaplSpec(supplied_by="lab")]


def plan(configured: list[Any], device: str) -> list[Any]:
    """The configured instruments plus the device's own sensors (unless one of that kind is
    configured already), RAPL expanded into one instrument per zone."""
    kinds = {c.kind for c in configured}
    chosen = [*configured, *(s for s in _device_sensors(device) if s.kind not in kinds)]
    out: list[Any] = []
    for spec in chosen:
        out += spec.expand() if isinstance(spec, RaplSpec) else [spec]
    return out
