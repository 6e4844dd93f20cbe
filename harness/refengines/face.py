"""The harness's reference face engine: dlib's ResNet face embeddings (128-d, the models of
the `face_recognition_models` package, run by `dlib-bin`), and the dev faces that ship
inside scikit-image (`skimage.data.lfw_subset`: the first 100 of its 200 25x25 crops are
faces of different people).

The models are located without importing `face_recognition_models` (its `__init__`
imports `pkg_resources`, which recent setuptools no longer ship), and without the
`face_recognition` wrapper: dlib's detector, 5-point shape predictor and recognition model
are called directly. A face the detector does not find is a failure to acquire (None),
never a guess.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODELS_PACKAGE = "face_recognition_models"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
DEV_FACES = 100  # lfw_subset(): images 0..99 are faces, 100..199 are not


def models_dir() -> Path | None:
    """The folder holding dlib's model files, or None when the package is absent."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    ok = (folder / SHAPE_MODEL).is_file() and (folder / RECOGNITION_MODEL).is_file()
    return folder if ok else None


def available() -> bool:
    """Whether dlib and its face models are installed."""
    return importlib.util.find_spec("dlib") is not None and models_dir() is not None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A C-contiguous HxWx3 uint8 array (grey images repeated on three channels; floats in
    [0, 1] scaled to 0..255)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected a grey or RGB image, got shape {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def load_image(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (Pillow)."""
    from PIL import Image

    with Image.open(path) as image:
        return as_rgb(np.asarray(image.convert("RGB")))


class FaceEmbedder:
    """Detect the largest face (dlib HOG detector, upsampled `upsample` times), align it
    with 5 landmarks and compute dlib's 128-d embedding. Two faces of one person lie closer
    than about 0.6 in Euclidean distance (dlib's own operating point)."""

    def __init__(self, upsample: int = 2) -> None:
        import dlib

        folder = models_dir()
        if folder is None:
            raise RuntimeError(
                "the face models are not installed: pip install dlib-bin face-recognition-models"
            )
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(folder / SHAPE_MODEL))
        self._model = dlib.face_recognition_model_v1(str(folder / RECOGNITION_MODEL))
        self._rectangle = dlib.rectangle

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "dlib ResNet face embeddings (128-d), HOG face detector, 5-point alignment",
            "dlib": _version("dlib-bin") or _version("dlib"),
            "face_recognition_models": _version("face-recognition-models"),
            "detector_upsample": self.upsample,
            "score": "1 - Euclidean distance between the two embeddings (higher = more similar)",
        }

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        """The embedding of the largest detected face, None when no face is found."""
        rgb = as_rgb(image)
        faces = self._detector(rgb, self.upsample)
        if len(faces) == 0:
            return None
        box = max(faces, key=lambda r: (r.area(), -r.left(), -r.top()))
        landmarks = self._shape(rgb, box)
        return np.asarray(self._model.compute_face_descriptor(rgb, landmarks), dtype=np.float64)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The reference engine's comparison score: 1 - Euclidean distance."""
    return float(1.0 - np.linalg.norm(a - b))


@dataclass(frozen=True)
class DevFaces:
    images: np.ndarray  # (n, 25, 25) uint8
    source: dict[str, Any]


def dev_faces(count: int = DEV_FACES) -> DevFaces:
    """The first `count` faces of scikit-image's lfw_subset as uint8, with where they came
    from (the package version and the sha256 of the array)."""
    from skimage import data

    faces = data.lfw_subset()[: min(count, DEV_FACES)]
    images = (np.clip(faces, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return DevFaces(
        images,
        {
            "dataset": "scikit-image data.lfw_subset() (Labeled Faces in the Wild, 25x25 crops)",
            "scikit_image": _version("scikit-image"),
            "faces": int(images.shape[0]),
            "sha256_uint8": hashlib.sha256(images.tobytes()).hexdigest(),
        },
    )


def genuine_variant(image: np.ndarray, seed: int) -> np.ndarray:
    """A reproducible photometric and geometric variant of one face (gamma, rotation of at
    most 6 degrees, a shift of at most one pixel, sensor noise): a genuine comparison's
    second image. Same seed, same bytes."""
    from skimage import transform

    rng = np.random.default_rng(seed)
    pixels = image.astype(np.float64) / 255.0
    pixels = pixels ** rng.uniform(0.8, 1.25)
    pixels = transform.rotate(pixels, rng.uniform(-6.0, 6.0), mode="edge")
    shift = transform.SimilarityTransform(translation=rng.uniform(-1.0, 1.0, size=2))
    pixels = transform.warp(pixels, shift, mode="edge")
    pixels = pixels + rng.normal(0.0, 0.02, pixels.shape)
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
