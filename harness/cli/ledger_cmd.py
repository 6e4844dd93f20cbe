"""`harness ledger add|checkpoint|prove|verify`: the transparency log of issued reports."""

from __future__ import annotations

import json
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from harness import signing
from harness.errors import BadInput
from harness.ledger.log import CHECKPOINTS, DEFAULT_DIR, Ledger
from harness.ledger.note import checkpoint_text, open_note, sign_note

DEFAULT_ORIGIN = "harness.local/ledger"
LOG_OPTION = click.option(
    "--log",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="the log's folder",
)


@click.group()
def ledger() -> None:
    """Append-only log of issued report envelopes (RFC 6962), with signed checkpoints."""


@ledger.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@LOG_OPTION
def add(paths: tuple[Path, ...], folder: Path) -> None:
    """Append run directories or envelopes (by the sha256 of the envelope)."""
    with Ledger(folder) as log:
        for path in paths:
            entry, new = log.add(path)
            state = "added" if new else "already in the log"
            click.echo(f"{entry.index}\t{entry.sha256}\t{state}\t{path}")


@ledger.command()
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path))
@click.option("--origin", default=DEFAULT_ORIGIN, show_default=True)
@click.option("--name", default=None, help="the key's name in the note (default: the origin)")
@LOG_OPTION
def checkpoint(key_path: Path, origin: str, name: str | None, folder: Path) -> None:
    """Print the signed checkpoint (C2SP signed-note) of the log as it stands; keep a copy."""
    key = signing.load_private(key_path)
    with Ledger(folder) as log:
        problems = log.check()
        if problems:
            raise BadInput(folder, None, "; ".join(problems))
        text = checkpoint_text(origin, log.size(), log.root())
        note = sign_note(text, name or origin, key.private)
        (folder / CHECKPOINTS / f"{log.size()}.note").write_text(note, encoding="utf-8")
    click.echo(note, nl=False)


@ledger.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--checkpoint",
    "old",
    type=click.Path(dir_okay=False, path_type=Path),
    help="an earlier checkpoint note: also prove the log grew from it without rewriting",
)
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path))
@click.option("--name", "names", multiple=True, help="the key name of each --pubkey, in order")
@LOG_OPTION
def prove(
    path: Path,
    old: Path | None,
    pubkeys: tuple[Path, ...],
    names: tuple[str, ...],
    folder: Path,
) -> None:
    """Print the inclusion proof of one report (JSON, RFC 6962 audit path); with
    --checkpoint, the consistency proof from that checkpoint, which the log must still
    hold (its root at its size) and, with --pubkey, a key must have signed."""
    with Ledger(folder) as log:
        proof = log.inclusion(path)
        if old is not None:
            cp = open_note(old.read_text(encoding="utf-8"), _public_keys(pubkeys, names))
            if pubkeys and not cp.signers:
                raise BadInput(old, None, "no signature by the given keys verifies")
            if cp.size > log.size() or log.root(cp.size) != cp.root:
                raise BadInput(
                    old, None, "the log no longer holds what this checkpoint signed: no proof"
                )
            proof["consistency"] = log.consistency(cp.size)
    if old is not None and not pubkeys:
        click.echo(f"warning: {old}: its signature was not checked (no --pubkey)", err=True)
    click.echo(json.dumps(proof, indent=2, sort_keys=True))


def _public_keys(paths: tuple[Path, ...], names: tuple[str, ...]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for k, path in enumerate(paths):
        key = load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise BadInput(path, None, "not an Ed25519 public key")
        keys[names[k] if k < len(names) else DEFAULT_ORIGIN] = key
    return keys


@ledger.command()
@click.option(
    "--checkpoint",
    "old",
    type=click.Path(dir_okay=False, path_type=Path),
    help="a checkpoint note kept earlier: the log must still hold what it signed",
)
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(path_type=Path))
@click.option("--name", "names", multiple=True, help="the key name of each --pubkey, in order")
@LOG_OPTION
def verify(
    old: Path | None, pubkeys: tuple[Path, ...], names: tuple[str, ...], folder: Path
) -> None:
    """Check the log: entries, tree and every issued checkpoint agree (with --pubkey, each
    kept checkpoint signed by one of the keys); with --checkpoint, that note is signed (by a
    --pubkey) and the log is consistent with it. Entries' source and added_utc are not
    signed by any checkpoint: only their sha256 is in the tree."""
    keys = _public_keys(pubkeys, names)
    with Ledger(folder) as log:
        problems = log.check(keys)
        if old is not None:
            cp = open_note(old.read_text(encoding="utf-8"), keys)
            if pubkeys and not cp.signers:
                problems.append(f"{old}: no signature by the given keys verifies")
            if cp.size > log.size():
                problems.append(f"{old}: size {cp.size}, the log holds {log.size()} entries")
            elif log.root(cp.size) != cp.root:
                problems.append(f"{old}: the log no longer holds what this checkpoint signed")
            else:
                log.consistency(cp.size)
        size = log.size()
    if problems:
        raise BadInput(folder, None, "; ".join(problems))
    if old is not None and not pubkeys:
        click.echo(
            f"warning: {old}: its signature was not checked (no --pubkey): anyone could have "
            "written this checkpoint; pass the log operator's --pubkey",
            err=True,
        )
    click.echo(
        f"ledger OK: {size} entries, every checkpoint consistent (only each entry's sha256 "
        "is in the tree: its source and added_utc are not signed)"
    )
