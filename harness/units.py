"""Units the harness knows, grouped by dimension, with their scale to the base unit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    name: str
    dimension: str
    scale: float  # multiply a value in this unit by scale to get the base unit


_UNITS = [
    Unit("FLOPS", "flop_rate", 1.0),
    Unit("GFLOPS", "flop_rate", 1e9),
    Unit("TFLOPS", "flop_rate", 1e12),
    Unit("PFLOPS", "flop_rate", 1e15),
    Unit("OPS", "op_rate", 1.0),
    Unit("GOPS", "op_rate", 1e9),
    Unit("TOPS", "op_rate", 1e12),
    Unit("POPS", "op_rate", 1e15),
    Unit("W", "power", 1.0),
    Unit("mW", "power", 1e-3),
    Unit("kW", "power", 1e3),
    Unit("J", "energy", 1.0),
    Unit("TOPS/W", "efficiency", 1.0),
    Unit("TFLOPS/W", "flop_efficiency", 1.0),
    Unit("s", "time", 1.0),
    Unit("ms", "time", 1e-3),
    Unit("us", "time", 1e-6),
    Unit("h", "time", 3600.0),
    Unit("events/24h", "event_rate", 1.0 / 86400.0),  # base: events per second
    Unit("events/h", "event_rate", 1.0 / 3600.0),
    Unit("points", "score", 1.0),  # BLEU, chrF, TER: sacrebleu's 0-100 scale
    Unit("MOS", "opinion_score", 1.0),  # ITU-T P.800 ACR mean opinion score, 1-5
    Unit("%", "fraction", 1e-2),
    Unit("ratio", "fraction", 1.0),
    Unit("pp", "percentage_points", 1.0),  # difference of two percentages
    Unit("B", "data_size", 1.0),
    Unit("MB", "data_size", 1e6),
    Unit("count", "count", 1.0),
    Unit("billion", "count", 1e9),  # D16: parameters ">= 100 billion"
    Unit("samples/s", "sample_rate", 1.0),
    Unit("queries/s", "sample_rate", 1.0),
    Unit("requests/s", "sample_rate", 1.0),
    Unit("tokens/s", "token_rate", 1.0),
    Unit("images/s", "sample_rate", 1.0),
    Unit("m", "length", 1.0),
    Unit("mm", "length", 1e-3),
    Unit("um", "length", 1e-6),
]
UNITS: dict[str, Unit] = {u.name: u for u in _UNITS}


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between units of one dimension; raises ValueError otherwise."""
    if from_unit == to_unit:
        return value
    src, dst = UNITS.get(from_unit), UNITS.get(to_unit)
    if src is None or dst is None:
        raise ValueError(f"unknown unit {from_unit if src is None else to_unit!r}")
    if src.dimension != dst.dimension:
        raise ValueError(
            f"cannot convert {from_unit} ({src.dimension}) to {to_unit} ({dst.dimension})"
        )
    return value * src.scale / dst.scale


def compatible(a: str, b: str) -> bool:
    ua, ub = UNITS.get(a), UNITS.get(b)
    return ua is not None and ub is not None and ua.dimension == ub.dimension
