"""The `face.pad` dev presentations: bona fide faces and synthetic presentation attacks,
generated reproducibly (seeded) from the faces that ship inside scikit-image.

Faces: the first 100 crops of `skimage.data.lfw_subset()` (25 x 25 grey faces of
different people) and the astronaut's face from `skimage.data.astronaut()`, each resized
(bicubic) to `size` x `size` grey. The faces are split by a seeded permutation into a train
half (trains the reference PAD engine) and a test half (the scored presentations); no face
lies in both.

A bona fide presentation is the face as a camera sees it: light photometric jitter (gain,
offset, gamma) and sensor noise. The attacks imitate what their species does to an image,
then the same camera jitter:

- paper_print: ordered (Bayer 4 x 4) halftone, dot gain (blur), ink and paper that lower
  the contrast, low-frequency paper texture;
- screen_replay: display gamma, the screen's pixel grid (darker rows and columns every 3
  or 4 pixels) and a moire pattern (a sinusoid of seeded frequency and orientation);
- video_replay: blur (resampling, motion), codec blockiness (8 x 8 DCT blocks with coarse
  quantisation) and a fainter pixel grid.

Non-paper 2D instruments, masks and head models cannot be imitated honestly by an image
filter: the dev set has none of them (their figures are NOT_MEASURED in a dry run). These
are synthetic attacks for a dry run, not attack instruments: no figure on them decides a
verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEV_SPECIES = ("paper_print", "screen_replay", "video_replay")
DEV_FACES = 100  # lfw_subset(): images 0..99 are faces
NOT_SYNTHESISED = {
    "non_paper_2d": "a non-paper 2D instrument (a photo on plastic, fabric or film)",
    "mask": "a mask",
    "head_model": "a head model",
}
BAYER4 = (
    np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], dtype=np.float64) + 0.5
) / 16.0


@dataclass(frozen=True)
class Presentation:
    id: str
    species: str  # "bona_fide" or one of DEV_SPECIES
    face: int  # index into dev_faces()
    image: np.ndarray  # size x size uint8 grey


def dev_faces(size: int) -> list[np.ndarray]:
    """The dev faces as size x size grey float images in [0, 1]."""
    from skimage import data
    from skimage.color import rgb2gray
    from skimage.transform import resize

    crops = list(data.lfw_subset()[:DEV_FACES])
    astronaut = rgb2gray(data.astronaut())[20:220, 150:330]  # her face
    crops.append(astronaut)
    return [np.clip(resize(c, (size, size), order=3, anti_aliasing=True), 0.0, 1.0) for c in crops]


def split(n_faces: int, seed: int) -> tuple[list[int], list[int]]:
    """The train and test faces (disjoint halves of a seeded permutation)."""
    order = np.random.default_rng([seed, 7]).permutation(n_faces)
    half = n_faces // 2
    return sorted(int(i) for i in order[:half]), sorted(int(i) for i in order[half:])


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.asarray(gaussian_filter(image, sigma, mode="reflect"))


def capture(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A camera's view: gain, offset, gamma jitter and sensor noise."""
    gain, offset = rng.uniform(0.9, 1.1), rng.uniform(-0.04, 0.04)
    gamma = rng.uniform(0.9, 1.1)
    out = np.clip(image * gain + offset, 0.0, 1.0) ** gamma
    return np.clip(out + rng.normal(0.0, rng.uniform(0.005, 0.015), image.shape), 0.0, 1.0)


def paper_print(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape
    threshold = np.tile(BAYER4, (h // 4 + 1, w // 4 + 1))[:h, :w]
    dots = (image > threshold).astype(np.float64)  # halftone: ink or paper
    dots = _blur(dots, rng.uniform(0.5, 0.8))  # dot gain
    ink, paper = rng.uniform(0.08, 0.18), rng.uniform(0.82, 0.92)
    printed = ink + (paper - ink) * dots
    texture = _blur(rng.normal(0.0, 1.0, image.shape), 3.0)
    texture *= rng.uniform(0.01, 0.03) / max(float(texture.std()), 1e-9)
    return capture(np.clip(printed + texture, 0.0, 1.0), rng)


def _grid(shape: tuple[int, int], pitch: int, factor: float) -> np.ndarray:
    mask = np.ones(shape)
    mask[::pitch, :] *= factor
    mask[:, ::pitch] *= factor
    return mask


def screen_replay(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape
    shown = image ** rng.uniform(0.7, 0.85)  # display gamma, brighter
    shown = shown * _grid((h, w), int(rng.choice([3, 4])), rng.uniform(0.8, 0.9))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    freq, angle = rng.uniform(0.3, 0.45), rng.uniform(0.0, np.pi)
    moire = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 6))
    shown = shown + rng.uniform(0.04, 0.08) * moire
    return capture(np.clip(shown, 0.0, 1.0), rng)


def _blocky(image: np.ndarray, step: float) -> np.ndarray:
    from scipy.fft import dctn, idctn

    h, w = image.shape
    out = image.copy()
    for y in range(0, h - h % 8, 8):
        for x in range(0, w - w % 8, 8):
            coeffs = dctn(image[y : y + 8, x : x + 8], norm="ortho")
            out[y : y + 8, x : x + 8] = idctn(np.round(coeffs / step) * step, norm="ortho")
    return out


def video_replay(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    frame = _blur(image, rng.uniform(1.0, 1.6))
    frame = _blocky(frame, rng.uniform(0.08, 0.15))
    frame = frame * _grid(image.shape, int(rng.choice([3, 4])), rng.uniform(0.9, 0.95))
    return capture(np.clip(frame, 0.0, 1.0), rng)


ATTACKS = {"paper_print": paper_print, "screen_replay": screen_replay, "video_replay": video_replay}


def _uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def presentations(
    faces: list[np.ndarray], indices: list[int], variants: int, seed: int, prefix: str
) -> list[Presentation]:
    """Per face of `indices` and variant: one bona fide presentation and one attack of each
    dev species, each from its own seeded generator."""
    out: list[Presentation] = []
    kinds = ("bona_fide", *DEV_SPECIES)
    for face in indices:
        for v in range(variants):
            for s, species in enumerate(kinds):
                rng = np.random.default_rng([seed, face, v, s])
                if species == "bona_fide":
                    image = capture(faces[face], rng)
                else:
                    image = ATTACKS[species](faces[face], rng)
                out.append(
                    Presentation(f"{prefix}-{face:03d}-{v}-{species}", species, face, _uint8(image))
                )
    return out
