"""Driving-perception targets: a small CNN that classifies the suite's traffic-sign glyphs
(harness/refengines/security_targets/glyphs.py; RGB (3, 32, 32) in [0, 1], eight classes),
trained at collect time on freshly rendered glyphs (their seeded jitter is the
augmentation), held out on glyphs of another seed:

- `signs_torch`: PyTorch (CPU, two intra-op threads, deterministic algorithms);
- `signs_keras`: TensorFlow / Keras (`tensorflow-cpu`, an optional extra imported only here:
  `keras_available()` says why the target is skipped when it is absent).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from harness.refengines.security_targets import glyphs
from harness.refengines.security_targets.base import Pool, TargetInfo, digest, version

TRAIN_PER_CLASS = 100
POOL_PER_CLASS = 12
EPOCHS = 16
BATCH = 32
LEARNING_RATE = 2e-3


def _info(name: str, framework: str, how: str) -> TargetInfo:
    return TargetInfo(
        name=name,
        framework=framework,
        task="classification",
        input_shape=(3, glyphs.SIZE, glyphs.SIZE),
        domain=(0.0, 1.0),
        class_names=glyphs.CLASS_NAMES,
        channel_axis=0,
        image=True,
        description=f"traffic-sign-like glyphs rendered by the suite ({glyphs.GENERATOR_VERSION}, "
        f"RGB 32x32, channels first), {how}",
    )


class SignsTorch:
    def __init__(self, seed: int) -> None:
        import torch
        from torch import nn

        start = time.perf_counter()
        x, y = glyphs.glyph_set(TRAIN_PER_CLASS, seed)
        px, py = glyphs.glyph_set(POOL_PER_CLASS, seed + 1_000_003)
        torch.manual_seed(seed % 2**32)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small convolutions: more threads only contend
        self.model = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 64),
            nn.ReLU(),
            nn.Linear(64, len(glyphs.CLASS_NAMES)),
        )
        optimiser = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        loss_fn = nn.CrossEntropyLoss()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        order_rng = np.random.default_rng([seed % 2**32, 17, 5])
        self.model.train()
        for _ in range(EPOCHS):
            order = torch.from_numpy(order_rng.permutation(len(y)))
            for k in range(0, len(y), BATCH):
                batch = order[k : k + BATCH]
                optimiser.zero_grad()
                loss = loss_fn(self.model(xt[batch]), yt[batch])
                loss.backward()
                optimiser.step()
        self.model.eval()
        torch.set_num_threads(threads)
        self._torch = torch
        self.info = _info("signs_torch", "pytorch", "a 2-conv CNN trained with PyTorch")
        self._pool = Pool(
            px, py, source={"glyphs": glyphs.GENERATOR_VERSION, "seed": seed + 1_000_003}
        )
        self.accuracy = float(np.mean(np.argmax(self.scores(px), axis=1) == py))
        self.seed = seed
        self.train_s = time.perf_counter() - start
        self.sizes = (len(y), len(py))
        self.data_sha256 = digest(x, y)

    def scores(self, x: np.ndarray, claim: int | None = None) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            return torch.softmax(logits, dim=1).double().numpy()

    def pool(self) -> Pool:
        return self._pool

    def describe(self) -> dict[str, Any]:
        return {
            "model": "Conv(3->16)-ReLU-MaxPool-Conv(16->32)-ReLU-MaxPool-FC(2048->64)-ReLU-"
            "FC(64->8), "
            f"Adam {LEARNING_RATE:g}, {EPOCHS} epochs, batch {BATCH}, softmax scores",
            "torch": version("torch"),
            "train": self.sizes[0],
            "held_out": self.sizes[1],
            "held_out_accuracy": self.accuracy,
            "seed": self.seed,
            "train_s": self.train_s,
            "train_data_sha256": self.data_sha256,
        }


def keras_available() -> str:
    """'' when TensorFlow can be imported, else why the Keras target is skipped."""
    if importlib.util.find_spec("tensorflow") is None:
        return (
            "TensorFlow is not installed (pip install tensorflow-cpu, the harness's optional "
            "extra `security-tf`): the TensorFlow target is skipped"
        )
    return ""


class SignsKeras:
    def __init__(self, seed: int) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        start = time.perf_counter()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process
            pass
        tf.keras.utils.set_random_seed(seed % 2**31)
        x, y = glyphs.glyph_set(TRAIN_PER_CLASS, seed + 7)
        px, py = glyphs.glyph_set(POOL_PER_CLASS, seed + 2_000_003)
        layers = tf.keras.layers
        model = tf.keras.Sequential(
            [
                tf.keras.Input(shape=(glyphs.SIZE, glyphs.SIZE, 3)),
                layers.Conv2D(16, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(32, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(2),
                layers.Flatten(),
                layers.Dense(64, activation="relu"),
                layers.Dense(len(glyphs.CLASS_NAMES), activation="softmax"),
            ]
        )
        model.compile(
            optimizer=tf.keras.optimizers.Adam(LEARNING_RATE),
            loss="sparse_categorical_crossentropy",
        )
        model.fit(
            x.transpose(0, 2, 3, 1), y, epochs=EPOCHS, batch_size=BATCH, verbose=0, shuffle=True
        )
        self.model = model
        self._tf = tf
        self._predict = tf.function(
            lambda batch: model(batch, training=False), reduce_retracing=True
        )
        self.info = _info(
            "signs_keras", "tensorflow", "a 2-conv CNN trained with TensorFlow / Keras"
        )
        self._pool = Pool(
            px, py, source={"glyphs": glyphs.GENERATOR_VERSION, "seed": seed + 2_000_003}
        )
        self.accuracy = float(np.mean(np.argmax(self.scores(px), axis=1) == py))
        self.seed = seed
        self.train_s = time.perf_counter() - start
        self.sizes = (len(y), len(py))
        self.data_sha256 = digest(x, y)

    def scores(self, x: np.ndarray, claim: int | None = None) -> np.ndarray:
        batch = np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 2, 3, 1))
        out = self._predict(self._tf.constant(batch))
        return np.asarray(out, dtype=np.float64)

    def pool(self) -> Pool:
        return self._pool

    def describe(self) -> dict[str, Any]:
        return {
            "model": "Keras Conv2D(16)-MaxPool-Conv2D(32)-MaxPool-Dense(64)-Dense(8, softmax), "
            f"Adam {LEARNING_RATE:g}, {EPOCHS} epochs, batch {BATCH} (channels last inside; "
            "the job's inputs are "
            "channels first)",
            "tensorflow": version("tensorflow-cpu") or version("tensorflow"),
            "keras": version("keras"),
            "train": self.sizes[0],
            "held_out": self.sizes[1],
            "held_out_accuracy": self.accuracy,
            "seed": self.seed,
            "train_s": self.train_s,
            "train_data_sha256": self.data_sha256,
        }
