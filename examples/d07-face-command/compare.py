"""A 1:1 face comparison engine as a `command` SUT in batch mode (the D07 example): each
stdin line is JSON {"probe": path, "reference": path}; each answer line is a similarity
score (1 - Euclidean distance of dlib's ResNet face embeddings, higher = more similar) or
FTA when no face is found in either image."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.refengines import face


def main() -> None:
    engine = face.FaceEmbedder(upsample=2)
    cache: dict[str, object] = {}

    def embedding(path: str) -> object:
        if path not in cache:
            cache[path] = engine.embed(face.load_image(Path(path)))
        return cache[path]

    for line in sys.stdin:
        request = json.loads(line)
        a, b = embedding(request["probe"]), embedding(request["reference"])
        if a is None or b is None:
            print("FTA", flush=True)
        else:
            print(f"{face.similarity(a, b):.6f}", flush=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
