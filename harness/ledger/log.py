"""The transparency log of issued envelopes, in a folder (default `reports/ledger/`):

- `tree.db`: pymerkle's SqliteTree (RFC 6962 hashing: leaves SHA-256(0x00 || entry), nodes
  SHA-256(0x01 || left || right); its indices are 1-based);
- `entries.jsonl`: one line per entry in order: index (0-based, RFC form), the envelope's
  sha256 (the entry itself, 32 bytes in the tree), where it came from and when it was added;
- `checkpoints/<size>.note`: each signed checkpoint this log issued.

An entry is the sha256 of an envelope's bytes (`report.dsse.json` of a run directory, or
the envelope file itself); adding the same envelope twice gives its first index back.
`check()` rebuilds the tree from entries.jsonl and compares it with tree.db and with every
issued checkpoint, so a removed, reordered or rewritten entry is noticed. Only an entry's
sha256 is in the tree: its `source` and `added_utc` are notes for the operator that no
checkpoint signs (when a report was issued is in its signed statement, `run.finished_utc`)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymerkle import InmemoryTree, InvalidProof, SqliteTree, verify_consistency, verify_inclusion

from harness.errors import BadInput, VerificationFailed
from harness.signing import open_envelope

DEFAULT_DIR = Path("reports") / "ledger"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
ENTRIES = "entries.jsonl"
TREE = "tree.db"
CHECKPOINTS = "checkpoints"


def envelope_of(path: Path) -> Path:
    """The envelope file of a run directory or the file itself; BadInput when it is none."""
    target = path / "report.dsse.json" if path.is_dir() else path
    if not target.is_file():
        raise BadInput(path, None, "no report.dsse.json here (a run directory or an envelope)")
    try:
        open_envelope(json.loads(target.read_bytes()), str(target))
    except (ValueError, UnicodeDecodeError) as error:
        raise BadInput(target, None, f"not a DSSE envelope: {error}") from None
    except VerificationFailed as error:
        raise BadInput(target, None, str(error).removeprefix(f"{target}: ")) from None
    return target


@dataclass(frozen=True)
class Entry:
    index: int  # 0-based
    sha256: str
    source: str
    added_utc: str


class Ledger:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CHECKPOINTS).mkdir(exist_ok=True)
        self.tree = SqliteTree(str(folder / TREE), algorithm="sha256")

    def close(self) -> None:
        self.tree.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- entries

    def entries(self) -> list[Entry]:
        path = self.folder / ENTRIES
        if not path.is_file():
            return []
        out: list[Entry] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                out.append(Entry(**record))
            except (ValueError, TypeError) as error:
                raise BadInput(path, f"line {number}", f"not a ledger entry: {error}") from None
        return out

    def add(self, path: Path) -> tuple[Entry, bool]:
        """Append the envelope at `path` (or of that run directory): (its entry, whether it
        is new)."""
        envelope = envelope_of(path)
        digest = hashlib.sha256(envelope.read_bytes()).hexdigest()
        entries = self.entries()
        for entry in entries:
            if entry.sha256 == digest:
                return entry, False
        if self.tree.get_size() != len(entries):
            raise BadInput(self.folder / TREE, None, "the tree and entries.jsonl disagree")
        index = self.tree.append_entry(bytes.fromhex(digest)) - 1
        entry = Entry(
            index,
            digest,
            str(envelope.resolve()),
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        with open(self.folder / ENTRIES, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry.__dict__, sort_keys=True) + "\n")
        return entry, True

    def size(self) -> int:
        return int(self.tree.get_size())

    def root(self, size: int | None = None) -> bytes:
        """The root hash at `size` entries (default: all); the empty tree's is SHA-256("")."""
        if not (size or self.size()):
            return hashlib.sha256().digest()
        return bytes(self.tree.get_root(size))

    # -------------------------------------------------------------- proofs

    def inclusion(self, path: Path) -> dict[str, Any]:
        """The inclusion proof of an envelope in the current tree, in RFC 6962 form."""
        digest = hashlib.sha256(envelope_of(path).read_bytes()).hexdigest()
        found = [e for e in self.entries() if e.sha256 == digest]
        if not found:
            raise BadInput(path, None, "this envelope is not in the ledger")
        index, size = found[0].index, self.size()
        proof = self.tree.prove_inclusion(index + 1, size)
        try:
            verify_inclusion(self.tree.get_leaf(index + 1), self.root(size), proof)
        except InvalidProof as error:
            raise BadInput(self.folder, None, f"inclusion proof fails: {error}") from None
        raw = proof.serialize()
        return {
            "entry_sha256": digest,
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": raw["path"][0],
            "audit_path": raw["path"][1:],  # RFC 6962 order: nearest the leaf first
            "root_hash": self.root(size).hex(),
        }

    def consistency(self, old_size: int) -> dict[str, Any]:
        size = self.size()
        if not 0 < old_size <= size:
            raise BadInput("--checkpoint", None, f"size {old_size} is not in 1..{size}")
        proof = self.tree.prove_consistency(old_size, size)
        try:
            verify_consistency(self.root(old_size), self.root(size), proof)
        except InvalidProof as error:
            raise BadInput(self.folder, None, f"consistency proof fails: {error}") from None
        return {"old_size": old_size, "tree_size": size, "proof": proof.serialize()}

    # -------------------------------------------------------------- integrity

    def check(self, keys: dict[str, Any] | None = None) -> list[str]:
        """What is wrong with the log ([] when nothing): entries.jsonl rebuilt into a tree
        must give tree.db's root, and every issued checkpoint's root at its size; with
        `keys` (name -> Ed25519 public key), every kept checkpoint must carry a signature
        by one of them."""
        from harness.ledger.note import open_note

        problems: list[str] = []
        entries = self.entries()
        if [e.index for e in entries] != list(range(len(entries))) or any(
            type(e.index) is not int for e in entries
        ):
            problems.append("entries.jsonl is not numbered 0, 1, 2, ... in order")
        malformed = [e.index for e in entries if not SHA256_HEX.fullmatch(str(e.sha256))]
        if malformed:
            problems.append(
                f"entries.jsonl: entry {malformed[0]}'s sha256 is not 64 lower-case hex digits"
            )
            return problems
        rebuilt = InmemoryTree(algorithm="sha256")
        for entry in entries:
            rebuilt.append_entry(bytes.fromhex(entry.sha256))
        if len(entries) != self.size():
            problems.append(f"tree.db holds {self.size()} entries, entries.jsonl {len(entries)}")
        elif entries and bytes(rebuilt.get_root()) != self.root():
            problems.append("tree.db's root differs from the tree of entries.jsonl")
        for note in sorted((self.folder / CHECKPOINTS).glob("*.note")):
            try:
                checkpoint = open_note(note.read_text(encoding="utf-8"), keys or {})
            except ValueError as error:
                problems.append(f"{note.name}: {error}")
                continue
            if keys and not checkpoint.signers:
                problems.append(f"{note.name}: no signature by the given keys verifies")
            if checkpoint.size > len(entries):
                problems.append(
                    f"{note.name}: issued at size {checkpoint.size}, the log now holds "
                    f"{len(entries)} entries (entries removed)"
                )
            elif bytes(rebuilt.get_root(checkpoint.size)) != checkpoint.root:
                problems.append(
                    f"{note.name}: the log's first {checkpoint.size} entries no longer give "
                    "the root it signed (an entry was rewritten or removed)"
                )
        return problems
