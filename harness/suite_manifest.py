"""The suites this harness ships, by id and version, with the sha256 of each file.

A suite's id and version name one exact file: a copy with the same id and version but other
bytes (targets lowered, a task removed) is refused by `harness run` ("change its id or
version"), and a suite this manifest does not know is reported as not shipped. `audit`
re-derives the same status from `evidence/suite.yaml` with the auditor's own harness.

Maintainers: after changing a file in suites/, bump its `version` and run
`python -m harness.suite_manifest` to add the new entry (entries are never changed or
removed, so older reports keep their status).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from harness.suites import SUITES_DIR

MANIFEST_FILE = Path(__file__).resolve().with_name("shipped_suites.json")

Status = Literal["shipped", "modified", "not shipped"]


@dataclass(frozen=True)
class SuiteIdentity:
    status: Status
    sha256: str  # of the file that was run
    shipped_sha256: str | None  # what the manifest holds for this id and version

    @property
    def note(self) -> str:
        if self.status == "shipped":
            return "the file shipped with the harness under this id and version"
        if self.status == "modified":
            return (
                f"NOT the shipped suite: this id and version are shipped with sha256 "
                f"{self.shipped_sha256}, this file is {self.sha256}"
            )
        return "not a suite the harness ships: its tasks and targets are the author's own"


def manifest() -> dict[str, dict[str, str]]:
    """suite id -> version -> sha256."""
    data = json.loads(MANIFEST_FILE.read_text(encoding="utf-8"))
    return {str(k): {str(v): str(d) for v, d in vs.items()} for k, vs in data.items()}


def identify(suite_id: str, version: str, data: bytes) -> SuiteIdentity:
    digest = hashlib.sha256(data).hexdigest()
    shipped = manifest().get(suite_id, {}).get(version)
    if shipped is None:
        return SuiteIdentity("not shipped", digest, None)
    return SuiteIdentity("shipped" if shipped == digest else "modified", digest, shipped)


def _entries_for_tree() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        raw = path.read_bytes()
        head = yaml.safe_load(raw)
        found.setdefault(str(head["id"]), {})[str(head["version"])] = hashlib.sha256(
            raw
        ).hexdigest()
    return found


def main() -> int:
    """Add the suites/ files' (id, version, sha256) to the manifest; refuse to change one."""
    table = manifest() if MANIFEST_FILE.is_file() else {}
    problems = []
    for suite_id, versions in _entries_for_tree().items():
        for version, digest in versions.items():
            known = table.setdefault(suite_id, {}).get(version)
            if known is None:
                table[suite_id][version] = digest
                print(f"added {suite_id} {version} {digest}")
            elif known != digest:
                problems.append(
                    f"{suite_id} {version}: the file changed (shipped {known}, now {digest}); "
                    "bump its version"
                )
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    ordered = {k: dict(sorted(v.items())) for k, v in sorted(table.items())}
    MANIFEST_FILE.write_text(json.dumps(ordered, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
