"""D17's reference target models, trained by the harness at collect time on offline data
(seeded; seconds on two CPU cores), that a submitted attack platform attacks through the
harness's metered query interface:

| name | framework | task | input |
|---|---|---|---|
| `digits_sklearn` | scikit-learn | 8x8 digits, 10 classes | (8, 8) in [0, 1] |
| `breast_cancer_onnx` | onnxruntime (sklearn via skl2onnx) | 2 classes | (30,) in [0, 1] |
| `signs_torch` | pytorch | traffic-sign glyphs, 8 classes | (3, 32, 32) in [0, 1] |
| `signs_keras` | tensorflow (optional extra) | the same glyphs | (3, 32, 32) in [0, 1] |
| `face_impersonation` / `face_dodging` | dlib | 1:1 face verification | (25, 25) in [0, 1] |

`unavailable(name)` says why a target cannot be built here ('' when it can); `build(name,
seed)` trains it (once per process and seed)."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

from harness.refengines.security_targets.base import Pool, Target, TargetInfo, decide

__all__ = ["TARGET_NAMES", "Pool", "Target", "TargetInfo", "build", "decide", "unavailable"]

TARGET_NAMES = (
    "digits_sklearn",
    "breast_cancer_onnx",
    "signs_torch",
    "signs_keras",
    "face_impersonation",
    "face_dodging",
)


def _needs(module: str, why: str) -> Callable[[], str]:
    def check() -> str:
        return "" if importlib.util.find_spec(module) is not None else why

    return check


def _face() -> str:
    from harness.refengines.security_targets.face_verify import unavailable as face_missing

    return face_missing()


def _keras() -> str:
    from harness.refengines.security_targets.signs import keras_available

    return keras_available()


_CHECKS: dict[str, Callable[[], str]] = {
    "digits_sklearn": lambda: "",
    "breast_cancer_onnx": _needs(
        "skl2onnx", "skl2onnx is not installed (pip install skl2onnx): the ONNX target is skipped"
    ),
    "signs_torch": lambda: "",
    "signs_keras": _keras,
    "face_impersonation": _face,
    "face_dodging": _face,
}


def unavailable(name: str) -> str:
    """'' when target `name` can be built here, else the reason it is skipped."""
    if name not in _CHECKS:
        return f"no reference target named {name!r} (known: {', '.join(TARGET_NAMES)})"
    return _CHECKS[name]()


@functools.cache
def _face_engine() -> object:
    from harness.refengines.security_targets.face_verify import FaceEngine

    return FaceEngine()


@functools.cache
def build(name: str, seed: int) -> Target:
    """Target `name` trained with `seed` (cached: one training per process, name and seed)."""
    reason = unavailable(name)
    if reason:
        raise RuntimeError(reason)
    if name == "digits_sklearn":
        from harness.refengines.security_targets.tabular import DigitsSklearn

        return DigitsSklearn(seed)
    if name == "breast_cancer_onnx":
        from harness.refengines.security_targets.tabular import BreastCancerOnnx

        return BreastCancerOnnx(seed)
    if name == "signs_torch":
        from harness.refengines.security_targets.signs import SignsTorch

        return SignsTorch(seed)
    if name == "signs_keras":
        from harness.refengines.security_targets.signs import SignsKeras

        return SignsKeras(seed)
    from harness.refengines.security_targets.face_verify import FaceEngine, FaceTarget

    engine = _face_engine()
    assert isinstance(engine, FaceEngine)
    return FaceTarget(engine, name.removeprefix("face_"), seed)
