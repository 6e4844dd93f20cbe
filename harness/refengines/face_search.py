"""The harness's reference 1:N face search engine: dlib face embeddings
(`harness.refengines.face.FaceEmbedder`) in a `faiss` exact flat index (IndexFlatL2), score
= 1 - Euclidean distance (the verification engine's score), optionally with a synthetic
background gallery of seeded random unit vectors (load for the search-throughput test: a
flat index's search cost grows with its size, whatever the vectors are).

It speaks the harness's 1:N protocol as a SUT session (docs/suites/d07-3d-face.inputs.md):
one sample `{"enrol": [{"id", "image"}, ...]}` answered `{"gallery_size": n,
"not_enrolled": [ids]}`, then one sample per search `{"search": image, "candidates": R}`
answered `{"candidates": [{"id", "score"}, ...]}` (best first) or `{"failure_to_acquire":
true}`. A sample whose data is an embedding (a float array) is searched directly and
answered with the candidates' internal row numbers (int64), the path the throughput test
times.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.protocol import Sample, SampleOutput
from harness.refengines.face import FaceEmbedder, load_image

DIMENSION = 128


def _faiss_version() -> str | None:
    try:
        return importlib.metadata.version("faiss-cpu")
    except importlib.metadata.PackageNotFoundError:
        return None


def background_vectors(count: int, seed: int, dimension: int = DIMENSION) -> np.ndarray:
    """`count` seeded random unit vectors (float32), generated in blocks."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, dimension), dtype=np.float32)
    block = 65_536
    for start in range(0, count, block):
        chunk = rng.standard_normal((min(block, count - start), dimension), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + chunk.shape[0]] = chunk
    return out


class FlatIndex:
    """An exact faiss IndexFlatL2; rows 0..background-1 are the synthetic gallery, the rows
    after them the enrolled entries (their ids in `ids`)."""

    def __init__(self, background: int = 0, seed: int = 0, threads: int = 1) -> None:
        import faiss

        self._faiss = faiss
        self.threads = threads
        self._saved_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexFlatL2(DIMENSION)
        self.background = background
        self.seed = seed
        if background:
            self.index.add(background_vectors(background, seed))
        self.ids: list[str] = []

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, entry_id: str, embedding: np.ndarray) -> None:
        self.index.add(np.asarray(embedding, dtype=np.float32).reshape(1, DIMENSION))
        self.ids.append(entry_id)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the k nearest rows per query, best first; score = 1 - distance
        (rows -1 where the index holds fewer than k)."""
        squared, rows = self.index.search(np.asarray(queries, dtype=np.float32), k)
        return rows, 1.0 - np.sqrt(np.maximum(squared, 0.0))

    def describe(self) -> dict[str, Any]:
        return {
            "index": "faiss IndexFlatL2 (exact search)",
            "faiss": _faiss_version(),
            "faiss_threads": self.threads,
            "gallery_size": self.size,
            "synthetic_background": self.background,
            "synthetic_background_seed": self.seed,
            "synthetic_background_kind": "seeded random unit vectors (numpy default_rng)",
            "score": "1 - Euclidean distance between the embeddings",
        }

    def close(self) -> None:
        self._faiss.omp_set_num_threads(self._saved_threads)


def _answer(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)


class FaceSearchEngine:
    """A SUT session over a FlatIndex (see the module docstring)."""

    def __init__(
        self,
        embedder: FaceEmbedder | None = None,
        background: int = 0,
        seed: int = 0,
        threads: int = 1,
        vector_candidates: int = 20,
    ) -> None:
        self.embedder = embedder
        self.flat = FlatIndex(background, seed, threads)
        self.k = vector_candidates  # candidates per embedding search (run_vectors)

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"engine": "harness reference 1:N search", **self.flat.describe()}
        if self.embedder is not None:
            facts["embedder"] = self.embedder.describe()
        return facts

    def face_embedder(self) -> FaceEmbedder:
        if self.embedder is None:
            self.embedder = FaceEmbedder()
        return self.embedder

    def _enrol(self, entries: Any) -> str:
        if not isinstance(entries, list):
            raise ValueError("enrol: expected a list of {id, image}")
        missed: list[str] = []
        for entry in entries:
            embedding = self.face_embedder().embed(load_image(Path(entry["image"])))
            if embedding is None:
                missed.append(str(entry["id"]))
            else:
                self.flat.add(str(entry["id"]), embedding)
        return _answer({"gallery_size": self.flat.size, "not_enrolled": missed})

    def _search(self, image: str, k: int) -> str:
        embedding = self.face_embedder().embed(load_image(Path(image)))
        if embedding is None:
            return _answer({"failure_to_acquire": True})
        rows, scores = self.flat.search(embedding.reshape(1, DIMENSION), k)
        base, ids = self.flat.background, self.flat.ids
        candidates = [
            {"id": ids[row - base] if row >= base else f"synthetic-{row}", "score": float(s)}
            for row, s in zip(rows[0].tolist(), scores[0].tolist(), strict=True)
            if row >= 0 and math.isfinite(s)
        ]
        return _answer({"candidates": candidates})

    def answer(self, request: str) -> str:
        value = json.loads(request)
        if "enrol" in value:
            return self._enrol(value["enrol"])
        return self._search(str(value["search"]), int(value["candidates"]))

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        if samples and isinstance(samples[0].data, np.ndarray):
            return self.run_vectors(samples)
        outs: list[SampleOutput] = []
        for s in samples:
            started = time.perf_counter()
            try:
                out: SampleOutput = SampleOutput(s.index, self.answer(str(s.data)), None, 0.0)
            except Exception as error:
                out = SampleOutput(s.index, None, f"{type(error).__name__}: {error}", 0.0)
            outs.append(
                SampleOutput(out.index, out.output, out.error, time.perf_counter() - started)
            )
        return outs

    def run_vectors(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        """Samples whose data are embeddings: one faiss search for the whole batch, each
        answered with its candidates' rows (int64, best first)."""
        if len(samples) == 1:
            queries = samples[0].data.reshape(1, DIMENSION)
        else:
            queries = np.stack([s.data.reshape(DIMENSION) for s in samples])
        rows, _ = self.flat.search(queries, self.k)
        return [SampleOutput(s.index, rows[i], None, 0.0) for i, s in enumerate(samples)]

    def close(self) -> None:
        self.flat.close()


__all__ = ["FaceSearchEngine", "FlatIndex", "background_vectors"]
