"""The MT test-set format (`--dataset test=PATH`, `--dataset ood=PATH`): JSONL, one segment a
line,

    {"id": "s1", "source": "The house is big.", "reference": "La casa es grande.",
     "src": "en", "tgt": "es"}

or `"references": ["...", "..."]` for several references (not both keys). `src`/`tgt`
are BCP-47 codes; the language pair is "src-tgt" and `tgt` chooses the tokenizer. Blank
lines are skipped. Every refusal names the file, the line and the field: a line that is
not JSON or not an object, a missing or non-string field, an empty source or reference,
a duplicate id, text that is not UTF-8, a source with a line break (a batch SUT gets one
line per segment), a private-use (`x-`) language subtag."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BadInput

LANG_CODE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class Segment:
    id: str
    source: str
    references: tuple[str, ...]
    src: str
    tgt: str

    @property
    def pair(self) -> str:
        return f"{self.src}-{self.tgt}"


def _text(path: Path, line_no: int, record: dict[str, object], name: str) -> str:
    where = f"line {line_no}: {name}"
    if name not in record:
        raise BadInput(path, where, "missing")
    value = record[name]
    if not isinstance(value, str):
        raise BadInput(path, where, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadInput(path, where, "is empty")
    return value


def canonical_language(code: str) -> str:
    """The language a BCP-47 code names, for counting pairs: ISO 639-2/3 folded to 639-1
    where there is one, script, region and variants dropped, `zh` as `cmn` (`eng`, `en-US`
    -> `en`; `zh-CN`, `zho`, `cmn-Hans` -> `cmn`; `yue`, `zh-yue` -> `yue`)."""
    from harness.scoring.speech_text import variety

    return variety(code)


def read_testset(path: Path) -> list[Segment]:
    """The segments of a test-set file, in file order (BadInput on any bad line)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise BadInput(path, None, f"cannot read: {error.strerror or error}") from None
    return parse_testset(raw, path)


def parse_testset(raw: bytes, path: Path) -> list[Segment]:
    """The segments of a test set's bytes, in file order (BadInput naming `path`)."""
    segments: list[Segment] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput(path, f"line {line_no}", f"not UTF-8 ({error.reason})") from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInput(path, f"line {line_no}", f"not JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise BadInput(path, f"line {line_no}", "must be a JSON object")
        ident = _text(path, line_no, record, "id")
        if ident in seen:
            raise BadInput(
                path, f"line {line_no}: id", f"duplicate id {ident!r} (first on line {seen[ident]})"
            )
        seen[ident] = line_no
        source = _text(path, line_no, record, "source")
        if "\n" in source or "\r" in source:
            raise BadInput(path, f"line {line_no}: source", "holds a line break")
        if "reference" in record and "references" in record:
            raise BadInput(path, f"line {line_no}: references", "give reference or references")
        if "references" in record:
            refs = record["references"]
            if not isinstance(refs, list) or not refs:
                raise BadInput(
                    path, f"line {line_no}: references", "must be a non-empty list of strings"
                )
            for k, ref in enumerate(refs):
                if not isinstance(ref, str) or not ref.strip():
                    raise BadInput(
                        path, f"line {line_no}: references[{k}]", "must be a non-empty string"
                    )
            references = tuple(str(r) for r in refs)
        else:
            references = (_text(path, line_no, record, "reference"),)
        langs = []
        for name in ("src", "tgt"):
            code = _text(path, line_no, record, name)
            if not LANG_CODE.match(code):
                raise BadInput(path, f"line {line_no}: {name}", f"not a BCP-47 code: {code!r}")
            if "x" in code.lower().split("-"):
                raise BadInput(
                    path,
                    f"line {line_no}: {name}",
                    f"private-use subtag (x-) in {code!r}: a pair is named by its languages",
                )
            langs.append(code)
        segments.append(Segment(ident, source, references, langs[0], langs[1]))
    if not segments:
        raise BadInput(path, None, "no segments (the file is empty)")
    return segments


def by_pair(segments: list[Segment]) -> dict[str, list[Segment]]:
    """Segments grouped by language pair, pairs in order of first appearance."""
    groups: dict[str, list[Segment]] = {}
    for s in segments:
        groups.setdefault(s.pair, []).append(s)
    return groups
