"""Which system answers which MT samples, and where the sets come from.

A submission's `sut:` block is the MT system for every language pair (one source line in,
one translation line out; the `command` adapter's batch mode is the usual one). Two keys of
the block, read by these probes and stripped before the adapter sees the rest, refine it:

    sut:
      adapter: command
      mode: batch
      argv: [./translate, --to, es]          # the default system (text -> text)
      pairs:                                  # optional: another system per language pair
        en-zh: {adapter: http, url: "http://mt.lab:8080/zh"}
      modes:                                  # the speech modes (see `modes.py`)
        speech_to_text: {adapter: command, mode: per-sample, argv: [./s2t, "{input}"]}
        text_to_speech: {adapter: command, mode: per-sample, argv: [./t2s, "{input}"]}
        speech_to_speech: {adapter: command, mode: per-sample, argv: [./s2s, "{input}"]}

Without a submission (`adapter: local`) the harness's reference system answers: Apertium
(`harness.refengines.mt`) for the pairs it has installed (eng-spa, spa-eng).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from harness.adapters.protocol import SutSession
from harness.errors import BadInput, SutFailure
from harness.probes.base import CollectContext
from harness.probes.sessions import open_adapter_session
from harness.refengines.mt import ApertiumSession, apertium_direction
from harness.schema import SutSpec
from harness.suites import dev_dataset

SUITE_ID = "d06-machine-translation"
OWN_KEYS = ("pairs", "modes")


def is_local(sut: SutSpec) -> bool:
    return sut.adapter == "local"


def base_block(sut: SutSpec) -> dict[str, Any]:
    raw = sut.model_dump()
    for key in OWN_KEYS:
        raw.pop(key, None)
    return raw


def sub_block(sut: SutSpec, key: str, name: str) -> dict[str, Any] | None:
    """`sut.<key>.<name>` as an adapter block, None when not given."""
    extra = sut.model_dump().get(key)
    if not isinstance(extra, dict):
        return None
    block = extra.get(name)
    return dict(block) if isinstance(block, dict) else None


def open_block(ctx: CollectContext, block: dict[str, Any]) -> SutSession:
    """An adapter session for an adapter block of the submission."""
    sub = dataclasses.replace(ctx, sut=SutSpec(**block), session=None)
    return open_adapter_session(sub)


def open_mt(ctx: CollectContext, src: str, tgt: str) -> SutSession:
    """The session that translates src -> tgt: the reference Apertium without a submission
    (SutFailure when it has no such direction), else `sut.pairs.<src-tgt>` or the
    submission's default block."""
    if ctx.session is not None:
        return ctx.session  # type: ignore[no-any-return]
    if is_local(ctx.sut):
        direction = apertium_direction(src, tgt)
        if direction is None:
            raise SutFailure(f"the reference Apertium has no {src}-{tgt} direction installed")
        try:
            return ApertiumSession(direction)
        except FileNotFoundError as error:
            raise SutFailure(str(error)) from None
    block = sub_block(ctx.sut, "pairs", f"{src}-{tgt}") or base_block(ctx.sut)
    return open_block(ctx, block)


# sha256 of the dev sets shipped under datasets/d06-machine-translation/: a file with one of
# these digests is the shipped set (its references are public), whether it came from the
# harness's folder or as a byte copy through --dataset
SHIPPED_SHA256 = {
    "test.jsonl": "f72ec20ac292c95160fb19ca982da65d429a673de7020171dd260b91f34806c0",
    "ood.jsonl": "84854a5357e5d4a47267c593e40f478c42c2daaa06e3eb876bb9746b19bb60bf",
    "ratings-EXAMPLE.csv": "70c2ad9bc53eeb84b30e45861a17114bfc1b25d22c7d1cfd7a6c47dc21e61bde",
}
SHIPPED_REASON = (
    "shipped public dev set: its references are public; a verdict needs the lab's set via "
    "--dataset {name}=PATH"
)
MODIFIED_REASON = (
    "the shipped dev set {file} was modified (sha256 {sha256}, pinned {pinned}); a verdict "
    "needs the lab's set via --dataset {name}=PATH"
)


@dataclasses.dataclass(frozen=True)
class InputFile:
    """An input file as read, byte for byte, with what the harness knows of it."""

    name: str  # the --dataset name
    path: Path
    data: bytes
    given: bool  # passed with --dataset (else the harness's own dev set)
    dev_name: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def status(self) -> str:
        """ "lab set", "shipped dev set: verified" (the digest is the pinned one, also for a
        byte copy given with --dataset) or "shipped dev set: modified"."""
        if self.sha256 == SHIPPED_SHA256[self.dev_name]:
            return "shipped dev set: verified"
        return "lab set" if self.given else "shipped dev set: modified"

    def facts(self, copy: str) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "given_with_dataset": self.given,
            "sha256": self.sha256,
            "pinned_shipped_sha256": SHIPPED_SHA256[self.dev_name],
            "status": self.status,
            "copy": copy,
        }


def invalid_reason(facts: dict[str, Any], name: str) -> str:
    """Why figures computed on this input cannot decide a verdict ("" for a lab set)."""
    status = facts["status"]
    if status == "shipped dev set: verified":
        return SHIPPED_REASON.format(name=name)
    if status == "shipped dev set: modified":
        return MODIFIED_REASON.format(
            file=facts["file"],
            sha256=facts["sha256"][:12],
            pinned=facts["pinned_shipped_sha256"][:12],
            name=name,
        )
    return ""


def read_input(ctx: CollectContext, name: str, dev_name: str) -> InputFile:
    """`--dataset NAME=PATH` when given, else the shipped dev set, read once as bytes (the
    probe parses and copies exactly these bytes)."""
    given = ctx.datasets.get(name)
    path = given if given is not None else dev_dataset(SUITE_ID, dev_name)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(path, None, f"cannot read: {error.strerror or error}") from None
    return InputFile(name, path, data, given is not None, dev_name)


def check_copy(data: bytes, facts: dict[str, Any], copy: str) -> None:
    """score(): the evidence copy must be the bytes collect read (ValueError otherwise)."""
    if hashlib.sha256(data).hexdigest() != facts["sha256"]:
        raise ValueError(f"{copy}: sha256 differs from the one recorded at collect")
