"""`harness rank` over N indexed reports vs ranking the same N files (each re-read and
verified: signature and every evidence digest), in one run, alternating rounds; the figure
is the ratio of median times, files / index. Both sides must give the same table.

    python benchmarks/bench_rank_index.py [--reports 10000] [--rounds 3] [--work DIR]

The reports are made here from a few real runs of the tiny suite (tests/data), signed with
a key the benchmark makes, then re-issued as the agency would for many applicants (the
applicant, product and figures vary; the evidence files are hard links to the real runs').
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from harness import signing
from harness.selection import index as report_index
from harness.selection.output import as_json
from harness.selection.ranking import select
from harness.selection.reports import ReportRecord, Unusable, read_report, run_dirs

ROOT = Path(__file__).resolve().parent.parent
TINY_SUITE = ROOT / "tests" / "data" / "tiny-suite.yaml"


def real_runs(work: Path, key_path: Path, count: int) -> list[Path]:
    runs = []
    for i in range(count):
        submission = work / f"submission-{i}.yaml"
        submission.write_text(yaml.safe_dump({
            "applicant": f"Base Lab {i}", "product": "Base Chip", "suite": "tiny-gemm",
            "sut": {"adapter": "local", "device": "cpu"}}))
        out = work / f"base-{i}"
        subprocess.run(
            [sys.executable, "-m", "harness", "run", str(TINY_SUITE), "--submission",
             str(submission), "--key", str(key_path), "--out", str(out), "--seed", str(i)],
            check=True, capture_output=True,
            env={**os.environ, "XDG_CONFIG_HOME": str(work / "xdg")},
        )
        runs.append(out)
    return runs


def reissue(base: Path, dest: Path, key: signing.SigningKey, i: int, rng: random.Random) -> None:
    for top, _dirs, files in os.walk(base / "evidence"):
        target = dest / Path(top).relative_to(base)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(top) / name, target / name)
    envelope = json.loads((base / "report.dsse.json").read_text())
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    p = statement["predicate"]
    p["submission"] = {"applicant": f"Lab {i:05d}", "product": f"Chip {i % 7}",
                       "suite": "tiny-gemm", "sut": {"adapter": "local"}}
    p["suite"]["shipped"] = "shipped"
    for verdict in p["verdicts"]:
        value = rng.uniform(1, 100)
        verdict.update(value=value, bound=value * 0.97,
                       status="PASS" if rng.random() < 0.7 else "FAIL")
        for m in p["measurements"]:
            if m["id"] == f"gemm.{verdict['indicator'].split('_')[0]}.throughput":
                m["value"] = value
                m["ci"] = {"low": value * 0.97, "high": value * 1.03, "confidence": 0.95,
                           "method": "bench", "need": "", "proportion": {}}
    p["signer"] = {"keyid": key.keyid, "public_key": key.public_pem(), "self_generated": False}
    envelope_bytes = signing.envelope_file_bytes(signing.sign(statement, key))
    (dest / "report.dsse.json").write_bytes(envelope_bytes)
    (dest / "statement.json").write_bytes(signing.payload_bytes(statement))


def rank_files(root: Path, pub: Path, trusted: frozenset[str]) -> str:
    records: list[ReportRecord] = []
    unusable: list[Unusable] = []
    for run_dir in run_dirs([root]):
        read = read_report(run_dir.resolve(), [pub])
        if isinstance(read, Unusable):
            unusable.append(read)
        else:
            records.append(read)
    return as_json(select(records, unusable, trusted=trusted))


def rank_index(db: Path, pub: Path, trusted: frozenset[str]) -> str:
    """What `rank --index` does: every row re-verified from the signed bytes it keeps."""
    with report_index.connect(db, create=False) as conn:
        records, unusable = report_index.records(conn, pubkeys=[pub])
    return as_json(select(records, unusable, trusted=trusted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="bench-rank-"))
    work.mkdir(parents=True, exist_ok=True)
    key_path, pub = signing.write_keypair(work / "agency")
    key = signing.load_private(key_path)
    trusted = frozenset({key.keyid})
    start = time.perf_counter()
    bases = real_runs(work, key_path, opts.base_runs)
    rng = random.Random(0)
    root = work / "reports"
    for i in range(opts.reports):
        reissue(bases[i % len(bases)], root / f"run-{i:05d}", key, i, rng)
    made = time.perf_counter() - start
    db = work / "index.sqlite"
    start = time.perf_counter()
    added = report_index.add(db, [root], [pub])
    ingest = time.perf_counter() - start
    assert added.added == opts.reports and not added.skipped, added.skipped[:3]
    times: dict[str, list[float]] = {"index": [], "files": []}
    outputs: dict[str, str] = {}
    for r in range(opts.rounds):
        for side in ("index", "files") if r % 2 == 0 else ("files", "index"):
            start = time.perf_counter()
            outputs[side] = rank_index(db, pub, trusted) if side == "index" else rank_files(
                root, pub, trusted)
            times[side].append(time.perf_counter() - start)
    assert json.loads(outputs["index"]) == json.loads(outputs["files"]), "tables differ"
    median = {side: statistics.median(t) for side, t in times.items()}
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               "unknown CPU")
    print(f"{opts.reports} reports ({opts.base_runs} real runs re-issued) made in {made:.1f} s; "
          f"indexed (each verified once) in {ingest:.1f} s")
    print(f"rank from the index: median {median['index']:.2f} s; re-reading and verifying "
          f"every file: median {median['files']:.2f} s; ratio files/index "
          f"{median['files'] / median['index']:.1f}x ({opts.rounds} alternating rounds, {cpu}, "
          f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
