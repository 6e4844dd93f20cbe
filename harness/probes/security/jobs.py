"""The messages between the harness and an attack platform (the formats are documented in
harness/probes/security/probe.py) and the evidence record of one (attack, target) job."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.evidence import EvidenceReader, EvidenceWriter
from harness.refengines.security_targets.transforms import SpatialMove

SCHEMA = "harness.d17-attacks/v1"
NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
MODES = ("digital", "physical")


@dataclass(frozen=True)
class Offer:
    """One attack the platform offers: its name, mode, norm, whether it is targeted, and
    the targets it will attack (None: every target of the request)."""

    name: str
    mode: str
    norm: str
    targeted: bool
    targets: tuple[str, ...] | None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "norm": self.norm,
            "targeted": self.targeted,
            "targets": None if self.targets is None else list(self.targets),
        }


def catalogue_request(mode: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SCHEMA, "task": "attacks.catalogue", "mode": mode, "targets": targets}


def _as_document(output: Any) -> Any:
    if isinstance(output, str | bytes):
        return json.loads(output)
    return output


def parse_catalogue(
    output: Any, mode: str, norms: tuple[str, ...], limit: int
) -> tuple[list[Offer], list[str]]:
    """The offers of `mode` in the platform's answer, and one reason per entry refused."""
    try:
        document = _as_document(output)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        return [], [f"the catalogue is not JSON: {error}"]
    entries = document.get("attacks") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return [], ['the catalogue is not a JSON object {"attacks": [...]}']
    offers: list[Offer] = []
    refused: list[str] = []
    seen: set[str] = set()
    for k, entry in enumerate(entries):
        where = f"attacks[{k}]"
        if not isinstance(entry, dict):
            refused.append(f"{where}: not an object")
            continue
        name, entry_mode, norm = entry.get("name"), entry.get("mode", mode), entry.get("norm")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            refused.append(f"{where}: name {name!r} is not a lower-case identifier (<= 48 chars)")
            continue
        if entry_mode not in MODES:
            refused.append(f"{where} ({name}): mode {entry_mode!r}, expected digital or physical")
            continue
        if entry_mode != mode:
            continue  # offered for the other probe
        if name in seen:
            refused.append(f"{where}: {name} is offered twice")
            continue
        if norm not in norms:
            refused.append(f"{where} ({name}): norm {norm!r}, expected one of {', '.join(norms)}")
            continue
        targeted = entry.get("targeted", False)
        if not isinstance(targeted, bool):
            refused.append(f"{where} ({name}): targeted must be true or false")
            continue
        names = entry.get("targets")
        if names is not None and not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            refused.append(f"{where} ({name}): targets must be a list of target names")
            continue
        if len(offers) >= limit:
            refused.append(f"{where} ({name}): more than max_attacks = {limit} attacks offered")
            continue
        seen.add(name)
        offers.append(Offer(name, mode, norm, targeted, None if names is None else tuple(names)))
    return offers, refused


@dataclass
class Answer:
    """The examples a platform returned for a job, as arrays, with a reason per item that
    could not be read (an item that came back has `returned` set; its values are kept as
    they came, NaN and all, for the checks)."""

    adv: np.ndarray
    returned: np.ndarray
    moves: np.ndarray  # (n, 3): rotation_deg, shift rows, shift columns; NaN when absent
    reasons: list[str]
    error: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


def _array(value: Any, shape: tuple[int, ...]) -> tuple[np.ndarray | None, str]:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # OverflowError: an int beyond float64
        return None, "not an array of numbers"
    if array.shape != shape:
        return None, f"shape {list(array.shape)}, expected {list(shape)}"
    with np.errstate(over="ignore"):
        return array.astype(np.float32), ""


def _move(value: Any) -> tuple[float, float, float] | str:
    if not isinstance(value, dict):
        return "the move is not an object {rotation_deg, shift_px}"
    try:
        rotation = float(value["rotation_deg"])
        dy, dx = (float(v) for v in value["shift_px"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return "the move needs rotation_deg (a number) and shift_px ([rows, columns])"
    return rotation, dy, dx


def parse_answer(output: Any, error: str | None, n: int, shape: tuple[int, ...]) -> Answer:
    blank = Answer(
        np.zeros((n, *shape), dtype=np.float32),
        np.zeros(n, dtype=bool),
        np.full((n, 3), np.nan),
        [""] * n,
    )

    def every(reason: str) -> Answer:
        blank.reasons = [reason] * n
        blank.error = reason
        return blank

    if output is None:
        return every(f"the platform failed: {error or 'no answer'}")
    try:
        document = _as_document(output)
    except (ValueError, RecursionError) as parse_error:
        return every(f"bad output: not JSON ({parse_error})")
    if not isinstance(document, dict):
        return every('bad output: not a JSON object {"examples": [...]}')
    notes = document.get("notes")
    blank.notes = notes if isinstance(notes, dict) else {}
    if "examples_npy_b64" in document:
        try:
            raw = np.load(
                io.BytesIO(base64.b64decode(document["examples_npy_b64"])), allow_pickle=False
            )
        except (binascii.Error, ValueError, TypeError, OSError) as decode_error:
            return every(f"bad output: examples_npy_b64 is not a base64 .npy ({decode_error})")
        if raw.dtype.kind not in "fiu":
            return every(f"bad output: examples of dtype {raw.dtype}, expected numbers")
        if raw.shape != (n, *shape):
            return every(f"bad output: examples of shape {list(raw.shape)}, expected {[n, *shape]}")
        returned = document.get("returned", [True] * n)
        if not (
            isinstance(returned, list)
            and len(returned) == n
            and all(isinstance(r, bool) for r in returned)
        ):
            return every("bad output: returned must list one true/false per item")
        with np.errstate(over="ignore"):
            blank.adv = raw.astype(np.float32)
        blank.returned = np.asarray(returned, dtype=bool)
        blank.reasons = ["" if r else "no example returned" for r in returned]
    elif "examples" in document:
        examples = document["examples"]
        if not isinstance(examples, list) or len(examples) != n:
            count = len(examples) if isinstance(examples, list) else "no list of"
            return every(f"bad output: {count} examples for {n} items")
        for k, value in enumerate(examples):
            if value is None:
                blank.reasons[k] = "no example returned"
                continue
            array, reason = _array(value, shape)
            if array is None:
                blank.reasons[k] = reason
                continue
            blank.adv[k] = array
            blank.returned[k] = True
    else:
        stated = document.get("error")
        return every(
            f"the platform returned no examples: {stated}"
            if stated
            else 'bad output: no "examples"'
        )
    moves = document.get("moves")
    if moves is not None:
        if not isinstance(moves, list) or len(moves) != n:
            return every(f"bad output: moves must list one move (or null) per item, for {n} items")
        for k, value in enumerate(moves):
            if value is None:
                continue
            move = _move(value)
            if isinstance(move, str):
                blank.reasons[k] = blank.reasons[k] or move
                blank.returned[k] = False
            else:
                blank.moves[k] = move
    return blank


def move_of(row: np.ndarray) -> SpatialMove | None:
    if not np.all(np.isfinite(row)):
        return None
    return SpatialMove(float(row[0]), (float(row[1]), float(row[2])))


# ---------------------------------------------------------------- evidence of one job

ARRAYS = (
    "clean",
    "labels",
    "goal",
    "claims",
    "clean_labels",
    "clean_scores",
    "adv",
    "returned",
    "moves",
    "adv_labels",
    "adv_scores",
    "queries",
    "requests",
    "refused_over_cap",
    "bad_requests",
    "phys_clean_labels",
    "phys_adv_labels",
    "phys_adv_scores",
)


def write_record(
    evidence: EvidenceWriter, stem: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """`<stem>.npz` (every array of the job: what was sent, what came back, what the target
    answered the harness) and `<stem>.json` (the job's facts and per-item reasons)."""
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise ValueError(f"job record lacks {missing}")
    buffer = io.BytesIO()
    kept: dict[str, Any] = {k: arrays[k] for k in ARRAYS}
    np.savez_compressed(buffer, **kept)
    evidence.write_bytes(f"{stem}.npz", buffer.getvalue())
    evidence.write_json(f"{stem}.json", meta)


def read_record(
    evidence: EvidenceReader, stem: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta = evidence.read_json(f"{stem}.json")
    with np.load(evidence.path(f"{stem}.npz"), allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k]) for k in ARRAYS}
    return meta, arrays
