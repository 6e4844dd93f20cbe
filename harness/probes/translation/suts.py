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
from pathlib import Path
from typing import Any

from harness.adapters.protocol import SutSession
from harness.errors import SutFailure
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


def dataset_path(ctx: CollectContext, name: str, dev_name: str) -> tuple[Path, bool]:
    """(path, shipped): `--dataset NAME=PATH` when given, else the shipped dev set."""
    given = ctx.datasets.get(name)
    if given is not None:
        return given, False
    return dev_dataset(SUITE_ID, dev_name), True
