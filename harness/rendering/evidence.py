"""Evidence files a figure may draw from: only subjects of the signed statement, and only
when their bytes still have the subject's sha256.

Without a run directory nothing is read: figures that need evidence say so and the report
stays a function of the statement alone. A listed file that is missing, a link, or whose
bytes no longer have their digest is a broken run, not a missing figure: that raises
VerificationFailed with the words `harness verify` uses.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.errors import VerificationFailed
from harness.rendering.fmt import as_dict, as_list

NO_RUN_DIR = (
    "its numbers are in evidence files and no run directory was given "
    "(`harness render RUN_DIR` draws it)"
)


class Unavailable(Exception):
    """An evidence file a figure needs cannot be used; the message says why (one line)."""


class SignedEvidence:
    def __init__(self, run_dir: Path | None, statement: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.read_any = False  # whether a figure read an evidence file
        self.digests: dict[str, str] = {}
        for subject in as_list(statement.get("subject")):
            name = as_dict(subject).get("name")
            digest = as_dict(as_dict(subject).get("digest")).get("sha256")
            if isinstance(name, str) and isinstance(digest, str):
                self.digests[name] = digest

    def listed(self, name: str) -> bool:
        return name in self.digests

    def read_bytes(self, name: str) -> bytes:
        if name not in self.digests:
            raise Unavailable(f"{name} is not a subject of the signed statement")
        if self.run_dir is None:
            raise Unavailable(NO_RUN_DIR)
        self.read_any = True
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts) or "\\" in name:
            raise Unavailable(f"{name}: not a plain relative path")
        path = self.run_dir.joinpath(*parts)
        if any(p.is_symlink() for p in [path, *path.parents][: len(parts)]):
            raise VerificationFailed(f"{name}: a symbolic link inside the run directory")
        if not path.is_file():
            raise VerificationFailed(f"{name}: listed in the statement but missing")
        try:
            data = path.read_bytes()
        except OSError as error:
            raise VerificationFailed(f"{name}: unreadable ({error.strerror or error})") from None
        if hashlib.sha256(data).hexdigest() != self.digests[name]:
            raise VerificationFailed(f"{name}: sha256 does not match the signed statement")
        return data

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.read_bytes(name))
        except (UnicodeDecodeError, ValueError):
            raise Unavailable(f"{name}: not JSON") from None

    def read_text(self, name: str) -> str:
        try:
            return self.read_bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            raise Unavailable(f"{name}: not UTF-8 text") from None
