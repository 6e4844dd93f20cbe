"""`outputs`: pre-computed outputs supplied by the applicant, for dry runs.

    sut:
      adapter: outputs
      path: outputs.jsonl   # relative to the submission file

Each non-blank line of the file is a JSON object `{"index": i, "output": ...}` (other keys
are ignored). A file whose name ends in `.csv` is a table instead (UTF-8, a header row of
unique non-empty column names): data row i (0-based) is the output of sample i, as a
`{column: text}` dict; a probe that reads such tables (the verification scores of D07,
`probe_id,reference_id,genuine,score`) checks the columns. `run()` answers each sample with
the output recorded for its index, or the error "no pre-computed output for sample i".
Nothing is driven or timed: every latency_s is 0.0, and `describe()` says that this evidence
deserves lower trust. The adapter cannot tell a dry run from a real one; `dry_run_only`
tells the caller to allow it only in dry runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from harness.adapters._support import one_line, require_file, source_label
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput
from harness.registry import adapters

TRUST = "lower: the harness did not drive the system; outputs were supplied by the applicant"


@adapters.register("outputs")
class OutputsAdapter:
    """Pre-computed outputs from a JSONL file: nothing is run or timed (dry runs only)."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "outputs"
        path: str

    description: ClassVar[str] = "pre-computed outputs from a JSONL file (dry runs only)"
    dry_run_only: ClassVar[bool] = True

    def check(self, args: Args, base_dir: Path | None, source: str | Path | None = None) -> None:
        """Raise BadInput naming `sut.path` if the file is missing, is not UTF-8 JSONL of
        `{"index": int, "output": ...}` objects, repeats an index or holds no outputs."""
        read_outputs(args, base_dir, source_label(source, base_dir))

    def open(self, args: Args, base_dir: Path | None) -> SutSession:
        return OutputsSession(*read_outputs(args, base_dir, source_label(None, base_dir)))


def read_outputs(
    args: OutputsAdapter.Args, base_dir: Path | None, label: str | Path
) -> tuple[Path, dict[int, Any], str]:
    """The file, its outputs by index and the sha256 of the very bytes parsed."""
    path = require_file(args.path, base_dir, label, "sut.path", "outputs file")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(label, "sut.path", f"cannot read {path}: {one_line(error)}") from None
    if path.suffix.lower() == ".csv":
        table: dict[int, Any] = dict(csv_outputs(text, label, path))
        return path, table, hashlib.sha256(raw).hexdigest()
    outputs: dict[int, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue

        def bad(message: str, number: int = number) -> BadInput:
            return BadInput(label, "sut.path", f"{path} line {number}: {message}")

        try:
            record = json.loads(line)
        except ValueError as error:
            raise bad(f"not JSON: {one_line(error)}") from None
        if not isinstance(record, dict):
            raise bad('expected an object {"index": ..., "output": ...}')
        index = record.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise bad(f'"index" must be an integer >= 0, got {index!r}')
        if "output" not in record:
            raise bad('no "output" key')
        if index in outputs:
            raise bad(f"index {index} appears twice")
        outputs[index] = record["output"]
    if not outputs:
        raise BadInput(label, "sut.path", f"{path} holds no outputs")
    return path, outputs, hashlib.sha256(raw).hexdigest()


def csv_outputs(text: str, label: str | Path, path: Path) -> dict[int, dict[str, str]]:
    """Data row i -> {column: text}; BadInput naming the line for a ragged row, and for a
    header with empty or repeated names."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if any(c.strip() for c in row)]
    if not numbered:
        raise BadInput(label, "sut.path", f"{path} holds no header row")
    header_line, header = numbered[0]
    names = [c.strip() for c in header]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise BadInput(
            label, "sut.path", f"{path} line {header_line}: header names must be unique, non-empty"
        )
    outputs: dict[int, dict[str, str]] = {}
    for number, row in numbered[1:]:
        if len(row) != len(names):
            raise BadInput(
                label,
                "sut.path",
                f"{path} line {number}: {len(row)} fields, the header has {len(names)}",
            )
        outputs[len(outputs)] = dict(zip(names, (c.strip() for c in row), strict=True))
    if not outputs:
        raise BadInput(label, "sut.path", f"{path} holds no outputs (a header only)")
    return outputs


class OutputsSession:
    def __init__(self, path: Path, outputs: dict[int, Any], sha256: str) -> None:
        self.path = path
        self.outputs = outputs
        self.sha256 = sha256

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "outputs",
            "trust": TRUST,
            "path": str(self.path),
            "sha256": self.sha256,
            "outputs": len(self.outputs),
        }

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        results = []
        for sample in samples:
            if sample.index in self.outputs:
                results.append(SampleOutput(sample.index, self.outputs[sample.index], None, 0.0))
            else:
                message = f"no pre-computed output for sample {sample.index}"
                results.append(SampleOutput(sample.index, None, message, 0.0))
        return results

    def close(self) -> None:
        pass
