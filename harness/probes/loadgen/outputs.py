"""Outputs as LoadGen carries them: encoding a session's output into a response, decoding
a logged response, comparing two."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#
# LoadGen takes a response as (pointer, size) and copies the bytes inside
# QuerySamplesComplete when it logs them; the objects behind the pointers are kept alive
# until that call returns. Arrays go as their raw C-order bytes, text as UTF-8, a dict of
# arrays as the concatenation in key order; the descriptor that decodes them is recorded
# per sample in the accuracy run.


def _address(array: np.ndarray) -> int:
    return int(array.ctypes.data)


def encode_output(out: Any) -> tuple[int, int, Any, dict[str, Any]]:
    """(pointer, size, object to keep alive, descriptor) for one output."""
    if isinstance(out, str):
        raw = np.frombuffer(out.encode("utf-8"), dtype=np.uint8)
        return _address(raw), raw.nbytes, raw, {"kind": "text"}
    if isinstance(out, bytes | bytearray | memoryview):
        raw = np.frombuffer(bytes(out), dtype=np.uint8)
        return _address(raw), raw.nbytes, raw, {"kind": "bytes"}
    if isinstance(out, dict):
        names = sorted(out)
        arrays = [np.ascontiguousarray(out[k]) for k in names]
        for name, a in zip(names, arrays, strict=True):
            if a.dtype.hasobject:
                raise TypeError(f"output {name!r} has dtype object")
        raw = np.frombuffer(b"".join(a.tobytes() for a in arrays), dtype=np.uint8)
        items = [[n, a.dtype.str, list(a.shape)] for n, a in zip(names, arrays, strict=True)]
        return _address(raw), raw.nbytes, raw, {"kind": "arrays", "items": items}
    array = np.ascontiguousarray(out)
    if array.dtype.hasobject:
        raise TypeError(f"cannot send an output of type {type(out).__name__} to LoadGen")
    desc = {"kind": "array", "dtype": array.dtype.str, "shape": list(array.shape)}
    return _address(array), array.nbytes, array, desc


def _split(data: bytes, desc: dict[str, Any]) -> list[np.ndarray] | None:
    """The arrays a response holds, or None when its size does not fit the descriptor."""
    items = [[None, desc["dtype"], desc["shape"]]] if desc["kind"] == "array" else desc["items"]
    arrays = []
    offset = 0
    for _name, dtype, shape in items:
        dt = np.dtype(dtype)
        size = dt.itemsize * math.prod(shape)
        if offset + size > len(data):
            return None
        arrays.append(np.frombuffer(data[offset : offset + size], dtype=dt).reshape(shape))
        offset += size
    return arrays if offset == len(data) else None


def decode_output(data: bytes, desc: dict[str, Any]) -> Any:
    """One logged response as the session gave it, from its descriptor: text (str), bytes,
    an array, or a dict of name -> array. None when it holds no output (a failed sample,
    none given) or does not fit its descriptor (wrong size, text that is not UTF-8)."""
    kind = desc.get("kind")
    if kind == "text":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if kind == "bytes":
        return data
    if kind in ("array", "arrays"):
        arrays = _split(data, desc)
        if arrays is None:
            return None
        if kind == "array":
            return arrays[0]
        return {item[0]: a for item, a in zip(desc["items"], arrays, strict=True)}
    return None


def outputs_match(
    got: bytes, expected: bytes, desc: dict[str, Any], rtol: float, atol: float
) -> bool:
    """Exact for text and bytes; numpy allclose (NaN equal to NaN) for arrays."""
    if got == expected:
        return True
    if desc.get("kind") not in ("array", "arrays"):
        return False
    a, b = _split(got, desc), _split(expected, desc)
    if a is None or b is None:
        return False
    for x, y in zip(a, b, strict=True):
        if x.dtype.kind in "fc":
            if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True
