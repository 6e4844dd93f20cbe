"""A tiny real 1:1 comparator for the D07 tests (command SUT, batch mode): score = 1 - mean
absolute difference of the two grey images in [0, 1]; FTA for an all-black image."""

import json
import sys

import numpy as np
from PIL import Image


def grey(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


for line in sys.stdin:
    request = json.loads(line)
    a, b = grey(request["probe"]), grey(request["reference"])
    if not a.any() or not b.any():
        print("FTA", flush=True)
    else:
        print(f"{1.0 - float(np.abs(a - b).mean()):.6f}", flush=True)
