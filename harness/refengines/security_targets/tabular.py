"""Two scikit-learn targets on data that ships inside scikit-learn:

- `digits_sklearn`: an MLP (scikit-learn, run by scikit-learn) on the 8x8 hand-written
  digits (`sklearn.datasets.load_digits`), pixels scaled to [0, 1] (value / 16); input
  (8, 8), ten classes;
- `breast_cancer_onnx`: a logistic regression on the 30 features of the Wisconsin breast
  cancer set (`load_breast_cancer`), each min-max scaled to [0, 1] on the training split
  (held-out inputs clipped into it), converted to ONNX by skl2onnx and run by ONNX Runtime
  (the ONNX model, not scikit-learn, answers); two classes.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from harness.refengines.security_targets.base import (
    Pool,
    TargetInfo,
    digest,
    held_out_accuracy,
    split,
    version,
)


class DigitsSklearn:
    def __init__(self, seed: int) -> None:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        start = time.perf_counter()
        data = load_digits()
        x = (data.images / 16.0).astype(np.float32)
        y = data.target.astype(np.int64)
        train, test = split(len(y), 0.3, seed)
        self.model = MLPClassifier(
            hidden_layer_sizes=(64,), max_iter=300, random_state=seed % 2**32, alpha=1e-3
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x[train].reshape(len(train), -1), y[train])
        self.info = TargetInfo(
            name="digits_sklearn",
            framework="scikit-learn",
            task="classification",
            input_shape=(8, 8),
            domain=(0.0, 1.0),
            class_names=tuple(str(k) for k in range(10)),
            channel_axis=None,
            image=True,
            description="8x8 hand-written digits (scikit-learn load_digits, value / 16), "
            "a scikit-learn MLP (64 hidden units)",
        )
        self._pool = Pool(x[test], y[test], source={"split": "held-out 30 %", "seed": seed})
        self.accuracy = held_out_accuracy(self, x[test], y[test])
        self.seed = seed
        self.train_s = time.perf_counter() - start
        self.sizes = (len(train), len(test))
        self.data_sha256 = digest(x, y)

    def scores(self, x: np.ndarray, claim: int | None = None) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        return np.asarray(self.model.predict_proba(flat), dtype=np.float64)

    def pool(self) -> Pool:
        return self._pool

    def describe(self) -> dict[str, Any]:
        return {
            "model": "sklearn.neural_network.MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3)",
            "scikit_learn": version("scikit-learn"),
            "train": self.sizes[0],
            "held_out": self.sizes[1],
            "held_out_accuracy": self.accuracy,
            "seed": self.seed,
            "train_s": self.train_s,
            "data_sha256": self.data_sha256,
        }


class BreastCancerOnnx:
    def __init__(self, seed: int) -> None:
        import onnxruntime
        from skl2onnx import to_onnx
        from sklearn.datasets import load_breast_cancer
        from sklearn.linear_model import LogisticRegression

        start = time.perf_counter()
        data = load_breast_cancer()
        raw = data.data.astype(np.float64)
        y = data.target.astype(np.int64)
        train, test = split(len(y), 0.3, seed)
        low, high = raw[train].min(axis=0), raw[train].max(axis=0)
        x = np.clip((raw - low) / (high - low), 0.0, 1.0).astype(np.float32)
        model = LogisticRegression(C=10.0, max_iter=2000)
        model.fit(x[train], y[train])
        onnx_model = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset=17)
        self.onnx_bytes = onnx_model.SerializeToString()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            self.onnx_bytes, options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.prob_name = next(n for n in outputs if "prob" in n)
        self.info = TargetInfo(
            name="breast_cancer_onnx",
            framework="onnxruntime",
            task="classification",
            input_shape=(30,),
            domain=(0.0, 1.0),
            class_names=tuple(str(n) for n in data.target_names),
            channel_axis=None,
            image=False,
            description="Wisconsin breast cancer (scikit-learn load_breast_cancer), 30 features "
            "min-max scaled to [0, 1] on the training split; a logistic regression exported "
            "by skl2onnx, run by ONNX Runtime",
        )
        self._pool = Pool(x[test], y[test], source={"split": "held-out 30 %", "seed": seed})
        self.accuracy = held_out_accuracy(self, x[test], y[test])
        self.seed = seed
        self.train_s = time.perf_counter() - start
        self.sizes = (len(train), len(test))
        self.data_sha256 = digest(x, y)

    def scores(self, x: np.ndarray, claim: int | None = None) -> np.ndarray:
        batch = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), 30))
        (prob,) = self.session.run([self.prob_name], {self.input_name: batch})
        return np.asarray(prob, dtype=np.float64)

    def pool(self) -> Pool:
        return self._pool

    def describe(self) -> dict[str, Any]:
        import hashlib

        return {
            "model": "sklearn LogisticRegression(C=10) -> skl2onnx -> onnxruntime "
            "CPUExecutionProvider",
            "onnxruntime": version("onnxruntime"),
            "skl2onnx": version("skl2onnx"),
            "scikit_learn": version("scikit-learn"),
            "onnx_sha256": hashlib.sha256(self.onnx_bytes).hexdigest(),
            "train": self.sizes[0],
            "held_out": self.sizes[1],
            "held_out_accuracy": self.accuracy,
            "seed": self.seed,
            "train_s": self.train_s,
            "data_sha256": self.data_sha256,
        }
