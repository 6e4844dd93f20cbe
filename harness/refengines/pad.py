"""The harness's reference presentation-attack detector (dry runs of `face.pad`): a small,
real texture detector.

Features of a grey image: the histograms of uniform local binary patterns
(`skimage.feature.local_binary_pattern`, 8 neighbours at radius 1 and 16 at radius 2),
the mean absolute Laplacian relative to the mean absolute gradient (fine detail), and the
shares of spectral energy in three radial frequency bands (print halftones, screen grids
and moire put energy high; codec blur takes it away). A standardised logistic regression
(scikit-learn) trained with a fixed seed separates bona fide (1) from attacks (0); the
answer is its decision function (the logit: higher = more bona fide) as JSON
`{"score": x, "bona_fide": x >= 0}`.

Follows `harness.adapters.protocol`: `run()` never raises for one sample's failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.protocol import Sample, SampleOutput

LBP_SETTINGS = ((8, 1.0), (16, 2.0))
BANDS = ((0.0625, 0.125), (0.125, 0.25), (0.25, 0.5))  # cycles per pixel


def texture_features(image: np.ndarray) -> np.ndarray:
    """The feature vector of a grey image (uint8 or float in [0, 1])."""
    from scipy.ndimage import laplace, sobel
    from skimage.feature import local_binary_pattern

    grey = np.asarray(image, dtype=np.float64)
    if grey.ndim != 2:
        raise ValueError(f"expected a grey image, got shape {grey.shape}")
    if np.asarray(image).dtype == np.uint8:
        grey = grey / 255.0
    parts: list[np.ndarray] = []
    as_bytes = (np.clip(grey, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    for points, radius in LBP_SETTINGS:
        codes = local_binary_pattern(as_bytes, points, radius, method="uniform")
        hist, _ = np.histogram(codes, bins=points + 2, range=(0, points + 2))
        parts.append(hist / max(1, codes.size))
    gradient = np.hypot(sobel(grey, 0), sobel(grey, 1))
    detail = np.abs(laplace(grey)).mean() / max(float(gradient.mean()), 1e-9)
    spectrum = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy = np.fft.fftfreq(grey.shape[0])[:, None]
    fx = np.fft.fftfreq(grey.shape[1])[None, :]
    radial = np.hypot(fx, fy)
    total = max(float(spectrum.sum()), 1e-12)
    bands = [float(spectrum[(radial >= lo) & (radial < hi)].sum()) / total for lo, hi in BANDS]
    parts.append(np.array([detail, *bands, float(grey.std())]))
    return np.concatenate(parts)


def load_grey(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


class TexturePad:
    """LBP + spectral features, logistic regression; trained on (image, bona fide?) pairs."""

    def __init__(self, images: Sequence[np.ndarray], bona_fide: Sequence[bool], seed: int) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.params: dict[str, Any] = {
            "features": "uniform LBP histograms (P=8 R=1, P=16 R=2), Laplacian/gradient "
            "ratio, spectral energy shares in bands "
            + ", ".join(f"{lo:g}-{hi:g}" for lo, hi in BANDS)
            + " cycles/px, grey std",
            "classifier": f"StandardScaler + LogisticRegression(C=1.0, max_iter=5000, "
            f"random_state={seed})",
        }
        self.model = make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
        )
        started = time.perf_counter()
        features = np.stack([texture_features(i) for i in images])
        self.model.fit(features, np.asarray(bona_fide, dtype=int))
        self.train_s = time.perf_counter() - started
        self.train_size = len(images)
        self.train_bona_fide = int(sum(bool(b) for b in bona_fide))

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "engine": "harness reference PAD engine (texture features + logistic regression)",
            "scikit-learn": version("scikit-learn"),
            "scikit-image": version("scikit-image"),
            **self.params,
            "train_presentations": self.train_size,
            "train_bona_fide": self.train_bona_fide,
            "train_s": round(self.train_s, 4),
        }

    def score(self, image: np.ndarray) -> float:
        return float(self.model.decision_function(texture_features(image)[None, :])[0])

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        outputs: list[SampleOutput] = []
        for s in samples:
            started = time.perf_counter()
            try:
                value = self.score(load_grey(str(s.data)))
            except Exception as error:  # one unreadable image fails its sample only
                outputs.append(
                    SampleOutput(
                        s.index,
                        None,
                        f"{type(error).__name__}: {error}",
                        time.perf_counter() - started,
                    )
                )
                continue
            answer = json.dumps({"score": round(value, 6), "bona_fide": value >= 0.0})
            outputs.append(SampleOutput(s.index, answer, None, time.perf_counter() - started))
        return outputs

    def close(self) -> None:
        return None
