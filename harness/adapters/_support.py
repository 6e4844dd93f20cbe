"""Helpers shared by the SUT adapters: path resolution, `package.module:function` targets,
digests, and the one-line error texts a `SampleOutput.error` carries.

Error texts start with one of these words, so reports can group them:

- ``crashed: ...``      the SUT raised, exited non-zero or answered an HTTP error;
- ``timeout after X s`` the SUT did not answer in time (X as configured);
- ``bad output: ...``   the SUT answered, but not in the agreed form;
- ``bad input: ...``    the harness could not hand this sample to this adapter;
- ``unreachable: ...``  the SUT could not be reached (connection refused, DNS, ...);
- ``not run: ...``      the sample was never handed over (an earlier failure stopped the call).
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import BadInput

LOCAL_LABEL = "(local default submission)"
TARGET_FORM = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
MAX_MESSAGE = 500


class UnsupportedInput(Exception):
    """A sample's data is not something this adapter can hand to the SUT ("bad input: ...")."""


def source_label(source: str | Path | None, base_dir: Path | None) -> str | Path:
    """What a BadInput names: the submission file if the caller passed it, else its folder."""
    if source is not None:
        return source
    return base_dir if base_dir is not None else LOCAL_LABEL


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """`path` as given, relative to the submission's folder (or the working directory)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    return candidate.resolve()


def require_file(
    path: str, base_dir: Path | None, source: str | Path, field: str, what: str = "file"
) -> Path:
    resolved = resolve_path(path, base_dir)
    if not resolved.exists():
        raise BadInput(source, field, f"{what} not found: {resolved}")
    if not resolved.is_file():
        raise BadInput(source, field, f"not a file: {resolved}")
    return resolved


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_target(spec: str) -> Callable[..., Any]:
    """The callable named by "package.module:function" (attribute paths allowed after the
    colon). Imports the module, so it runs the applicant's module-level code. Raises
    ValueError with a one-line reason."""
    if not TARGET_FORM.fullmatch(spec):
        raise ValueError(f"expected 'package.module:function', got {spec!r}")
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the module's own code failing
        raise ValueError(f"cannot import {module_name!r}: {one_line(error)}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise ValueError(f"{spec!r} is not callable (it is a {type(target).__name__})")
    return target  # type: ignore[no-any-return]


def one_line(error: BaseException | str) -> str:
    """An exception's message (or any text) on one line, cut to a readable length."""
    text = " ".join(str(error).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return text


def crashed(error: BaseException) -> str:
    message = one_line(error)
    name = type(error).__name__
    return f"crashed: {name}: {message}" if message else f"crashed: {name}"


def seconds(value: float) -> str:
    return f"{value:g}"


def timeout_message(timeout_s: float) -> str:
    return f"timeout after {seconds(timeout_s)} s"


def to_json(value: Any) -> Any:
    """Sample data as JSON values: arrays -> nested lists; refuses what JSON cannot carry."""
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise UnsupportedInput("dict keys must be strings to be sent as JSON")
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise UnsupportedInput(f"cannot send {type(value).__name__} as JSON")
