"""Counting a 100-billion-parameter sharded safetensors checkpoint reads headers only.

The benchmark writes a Llama-like BF16 checkpoint of about 1.0e11 parameters (hidden 10240,
FFN 27648, 78 layers, vocabulary 128000, untied head; 705 tensors) as a few SPARSE shards:
each shard's 8-byte length and JSON header are written, then the file is truncated to its
full size (~50 GB each), so the tensor data is a hole that takes no disk. A tiny checkpoint
with the same 705 tensor names in the same shards (hidden 64: ~1e6 parameters) is written
the same way: the same headers' length, 1e5 times fewer parameters.

Each measurement runs in a fresh process (so its peak RSS is its own), three sides:
- harness: the whole `checkpoint.params` collect + score (headers read and hashed, every
  tensor classified, evidence JSON written, score reading it back and recomputing);
- harness-read: the reading and counting alone (read_checkpoint, classify, count);
- safe_open: a plain loop of `safetensors.safe_open(shard, framework="numpy")` over the
  shards, summing the products of `get_slice(name).get_shape()` (Rust, no evidence).
Every side must give the count the benchmark worked out from the shapes it wrote. Each
process runs its side twice (the first call pays lazy imports and cold reads) and times the
second. Reported: the median wall time of R alternating rounds (and of the first calls),
the ratio to safe_open, and each process's peak RSS growth over its RSS after imports
(resource.getrusage ru_maxrss). Flat memory: the growth is the same for the tiny and the
large checkpoint (it follows the number of tensors, never the 200 GB of data).

    python benchmarks/bench_param_count.py [--shards 4] [--layers 78] [--rounds 3]
        [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LARGE = (10240, 27648, 128000)  # hidden, FFN, vocabulary
TINY = (64, 172, 800)  # the same tensors, ~1e6 parameters
SIDES = ("harness", "harness-read", "safe_open")


def layer_shapes(layer: int, dims: tuple[int, int, int]) -> dict[str, list[int]]:
    HIDDEN, FFN, _vocab = dims
    p = f"model.layers.{layer}"
    return {
        f"{p}.input_layernorm.weight": [HIDDEN],
        f"{p}.self_attn.q_proj.weight": [HIDDEN, HIDDEN],
        f"{p}.self_attn.k_proj.weight": [HIDDEN, HIDDEN],
        f"{p}.self_attn.v_proj.weight": [HIDDEN, HIDDEN],
        f"{p}.self_attn.o_proj.weight": [HIDDEN, HIDDEN],
        f"{p}.post_attention_layernorm.weight": [HIDDEN],
        f"{p}.mlp.gate_proj.weight": [FFN, HIDDEN],
        f"{p}.mlp.up_proj.weight": [FFN, HIDDEN],
        f"{p}.mlp.down_proj.weight": [HIDDEN, FFN],
    }


def all_shapes(layers: int, dims: tuple[int, int, int]) -> dict[str, list[int]]:
    HIDDEN, _ffn, VOCAB = dims
    shapes = {"model.embed_tokens.weight": [VOCAB, HIDDEN]}
    for layer in range(layers):
        shapes.update(layer_shapes(layer, dims))
    shapes["model.norm.weight"] = [HIDDEN]
    shapes["lm_head.weight"] = [VOCAB, HIDDEN]
    return shapes


def write_sparse_checkpoint(
    folder: Path, layers: int, shards: int, dims: tuple[int, int, int]
) -> int:
    """The checkpoint's shards (header written, data a hole), its index and config.json;
    returns the parameter count worked out from the shapes."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = all_shapes(layers, dims)
    names = list(shapes)
    per_shard = math.ceil(len(names) / shards)
    weight_map = {}
    total_bytes = 0
    for s in range(shards):
        part = names[s * per_shard : (s + 1) * per_shard]
        shard = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        header, offset = {}, 0
        for name in part:
            size = math.prod(shapes[name]) * 2  # BF16
            header[name] = {
                "dtype": "BF16",
                "shape": shapes[name],
                "data_offsets": [offset, offset + size],
            }
            offset += size
            weight_map[name] = shard
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        with (folder / shard).open("wb") as handle:
            handle.write(struct.pack("<Q", len(blob)) + blob)
            handle.truncate(8 + len(blob) + offset)  # the data: a hole
        total_bytes += offset
    index = {"metadata": {"total_size": total_bytes}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {
        "model_type": "llama",
        "hidden_size": dims[0],
        "intermediate_size": dims[1],
        "num_hidden_layers": layers,
        "vocab_size": dims[2],
        "tie_word_embeddings": False,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return sum(math.prod(s) for s in shapes.values())


def rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def child(side: str, folder: Path, work: Path) -> None:
    """One measurement in this (fresh) process; prints JSON."""
    import numpy  # noqa: F401  (imported before the baseline on every side)
    from safetensors import safe_open

    from harness.evidence import EvidenceReader, EvidenceWriter
    from harness.probes.base import CollectContext, ScoreContext
    from harness.probes.checkpoints import ParamsArgs, ParamsProbe
    from harness.probes.checkpoints.classify import classify
    from harness.probes.checkpoints.config import model_config
    from harness.probes.checkpoints.count import count as count_of
    from harness.probes.checkpoints.probe import read_checkpoint
    from harness.schema import SutSpec

    def once(k: int) -> int:
        if side == "harness":
            probe, args = ParamsProbe(), ParamsArgs()
            root = work / f"evidence-{k}"
            probe.collect(
                CollectContext(
                    "t",
                    args,
                    SutSpec(),
                    "cpu",
                    0,
                    False,
                    EvidenceWriter(root),
                    datasets={"checkpoint": folder},
                )
            )
            result = probe.score(
                EvidenceReader(root),
                ScoreContext("t", args, 0.95, None, datasets=frozenset({"checkpoint"})),
            )
            return int(result.measurements[0].value)
        if side == "harness-read":
            _located, got, configs = read_checkpoint(folder)
            config = model_config(configs, {})
            return count_of(classify(got.tensors, config), config, got.claims).total
        total = 0
        for shard in sorted(folder.glob("*.safetensors")):
            with safe_open(str(shard), framework="numpy") as f:
                for name in f.keys():  # noqa: SIM118
                    total += math.prod(f.get_slice(name).get_shape())
        return total

    before = rss_kib()
    start = time.perf_counter()
    once(0)  # cold: lazy imports, first reads
    cold = time.perf_counter() - start
    start = time.perf_counter()
    count = once(1)
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "count": count,
                "seconds": elapsed,
                "cold_seconds": cold,
                "rss_growth_kib": rss_kib() - before,
                "rss_peak_kib": rss_kib(),
            }
        )
    )


def run_child(side: str, folder: Path, work: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, "--folder", str(folder), "--work", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--layers", type=int, default=78)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--child", choices=SIDES, default=None)
    parser.add_argument("--work", type=Path, default=None)
    opts = parser.parse_args()
    if opts.child:
        child(opts.child, opts.folder, opts.work)
        return
    with tempfile.TemporaryDirectory(prefix="bench-params-", dir=opts.folder) as tmp:
        base = Path(tmp)
        sizes = {
            "tiny": write_sparse_checkpoint(base / "tiny", opts.layers, opts.shards, TINY),
            "large": write_sparse_checkpoint(base / "large", opts.layers, opts.shards, LARGE),
        }
        shards = sorted((base / "large").glob("*.safetensors"))
        apparent = sum(p.stat().st_size for p in shards)
        on_disk = sum(p.stat().st_blocks * 512 for p in shards)
        print(
            f"large: {sizes['large']:,} parameters in {opts.shards} shards, "
            f"{apparent / 1e9:.0f} GB apparent, {on_disk / 1e6:.2f} MB on disk (sparse); "
            f"tiny: the same {len(all_shapes(opts.layers, TINY))} tensors, "
            f"{sizes['tiny']:,} parameters"
        )
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for r in range(opts.rounds):
            for size in ("tiny", "large"):
                order = SIDES if r % 2 == 0 else tuple(reversed(SIDES))
                for side in order:
                    work = base / f"work-{size}-{side}-{r}"
                    got = run_child(side, base / size, work)
                    assert got["count"] == sizes[size], (side, size, got, sizes[size])
                    results.setdefault((size, side), []).append(got)
        for size in ("tiny", "large"):
            print(f"{size} ({sizes[size]:,} parameters; every side agrees with the shapes):")
            base_time = statistics.median(x["seconds"] for x in results[(size, "safe_open")])
            for side in SIDES:
                runs = results[(size, side)]
                med = statistics.median(x["seconds"] for x in runs)
                cold = statistics.median(x["cold_seconds"] for x in runs)
                growth = max(x["rss_growth_kib"] for x in runs) / 1024
                peak = max(x["rss_peak_kib"] for x in runs) / 1024
                print(
                    f"  {side:12s} {med * 1e3:7.1f} ms (first call {cold * 1e3:6.1f} ms), "
                    f"{med / base_time:6.1f}x safe_open; peak RSS growth {growth:5.1f} MiB "
                    f"(process peak {peak:.0f} MiB)"
                )
        print(f"medians of {opts.rounds} alternating rounds, one fresh process per measurement")


if __name__ == "__main__":
    main()
