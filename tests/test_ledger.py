"""The transparency log (`harness ledger`): inclusion proofs checked against an independent
RFC 6962 computation written here with hashlib, a checkpoint verified with `cryptography`
from its note text alone (C2SP signed-note key hash and Ed25519 signature), and a removed
or rewritten entry noticed by `verify`."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from clihelpers import run_cli
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from harness import signing


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(entry: bytes) -> bytes:
    return H(b"\x00" + entry)


def node_hash(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


def mth(entries: list[bytes]) -> bytes:
    """RFC 6962 section 2.1: the Merkle tree hash of a list of entries."""
    if len(entries) == 1:
        return leaf_hash(entries[0])
    k = 1
    while 2 * k < len(entries):
        k *= 2
    return node_hash(mth(entries[:k]), mth(entries[k:]))


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise AssertionError("path too long")
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return r


def envelopes(folder: Path, count: int, key: signing.SigningKey) -> list[Path]:
    """Real DSSE envelopes of small statements, signed with `key`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(count):
        statement = {"_type": "https://in-toto.io/Statement/v1", "subject": [],
                     "predicateType": "test", "predicate": {"k": k}}
        path = folder / f"r{k}.dsse.json"
        path.write_text(json.dumps(signing.sign(statement, key)))
        out.append(path)
    return out


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Path]:
    return signing.write_keypair(tmp_path / "agency")


def test_inclusion_proofs_check_against_an_independent_rfc6962_computation(
    tmp_path: Path, key: tuple[Path, Path]
) -> None:
    private = signing.load_private(key[0])
    files = envelopes(tmp_path / "env", 7, private)
    log = tmp_path / "log"
    result = run_cli("ledger", "add", *files, "--log", log)
    assert result.code == 0, result.stderr
    again = run_cli("ledger", "add", files[2], "--log", log)
    assert "already in the log" in again.stdout  # the same envelope is one entry
    digests = [H(f.read_bytes()) for f in files]
    for k, f in enumerate(files):
        proof = json.loads(run_cli("ledger", "prove", f, "--log", log).stdout)
        assert proof["leaf_index"] == k and proof["tree_size"] == 7
        assert proof["entry_sha256"] == digests[k].hex()
        assert bytes.fromhex(proof["leaf_hash"]) == leaf_hash(digests[k])
        path = [bytes.fromhex(p) for p in proof["audit_path"]]
        root = root_from_path(k, 7, leaf_hash(digests[k]), path)
        assert root == mth(digests) == bytes.fromhex(proof["root_hash"])


def test_a_checkpoint_verifies_with_cryptography_from_its_note_alone(
    tmp_path: Path, key: tuple[Path, Path]
) -> None:
    private = signing.load_private(key[0])
    files = envelopes(tmp_path / "env", 3, private)
    log = tmp_path / "log"
    assert run_cli("ledger", "add", *files, "--log", log).code == 0
    note = run_cli("ledger", "checkpoint", "--key", key[0], "--log", log).stdout
    text, _, signatures = note.partition("\n\n")
    origin, size, root_b64 = text.split("\n")
    assert origin == "harness.local/ledger" and size == "3"
    assert base64.b64decode(root_b64) == mth([H(f.read_bytes()) for f in files])
    dash, name, blob_b64 = signatures.strip().split(" ")
    assert dash == "\u2014" and name == origin
    blob = base64.b64decode(blob_b64)
    public = load_pem_public_key(key[1].read_bytes())
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert blob[:4] == H(name.encode() + b"\n\x01" + raw)[:4]  # C2SP key hash
    public.verify(blob[4:], (text + "\n").encode())  # raises if the signature is wrong


def test_a_rewritten_or_removed_entry_is_noticed(tmp_path: Path, key: tuple[Path, Path]) -> None:
    private = signing.load_private(key[0])
    files = envelopes(tmp_path / "env", 4, private)
    log = tmp_path / "log"
    assert run_cli("ledger", "add", *files[:3], "--log", log).code == 0
    old = tmp_path / "kept.note"
    old.write_text(run_cli("ledger", "checkpoint", "--key", key[0], "--log", log).stdout)
    assert run_cli("ledger", "add", files[3], "--log", log).code == 0
    ok = run_cli("ledger", "verify", "--checkpoint", old, "--pubkey", key[1], "--log", log)
    assert ok.code == 0, ok.stderr
    proof = json.loads(run_cli("ledger", "prove", files[0], "--checkpoint", old,
                               "--log", log).stdout)
    assert proof["consistency"]["old_size"] == 3
    # rewrite entry 1 (another report in its place): the kept checkpoint no longer holds
    entries = (log / "entries.jsonl").read_text().splitlines()
    record = json.loads(entries[1])
    record["sha256"] = hashlib.sha256(b"another report").hexdigest()
    entries[1] = json.dumps(record)
    (log / "entries.jsonl").write_text("\n".join(entries) + "\n")
    bad = run_cli("ledger", "verify", "--checkpoint", old, "--pubkey", key[1], "--log", log)
    assert bad.code != 0 and "differs" in bad.stderr
    # remove the last entry
    (log / "entries.jsonl").write_text("\n".join(entries[:2]) + "\n")
    gone = run_cli("ledger", "verify", "--log", log)
    assert gone.code != 0 and "entries.jsonl 2" in gone.stderr


def test_a_checkpoint_signed_by_another_key_is_not_accepted(
    tmp_path: Path, key: tuple[Path, Path]
) -> None:
    private = signing.load_private(key[0])
    other = signing.write_keypair(tmp_path / "other")
    files = envelopes(tmp_path / "env", 2, private)
    log = tmp_path / "log"
    assert run_cli("ledger", "add", *files, "--log", log).code == 0
    note = tmp_path / "cp.note"
    note.write_text(run_cli("ledger", "checkpoint", "--key", other[0], "--log", log).stdout)
    result = run_cli("ledger", "verify", "--checkpoint", note, "--pubkey", key[1], "--log", log)
    assert result.code != 0 and "no signature by the given keys" in result.stderr


def test_not_an_envelope_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    result = run_cli("ledger", "add", tmp_path / "x.json", "--log", tmp_path / "log")
    assert result.code == 2 and "x.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
