"""The D04 framework contracts that both the `framework` adapter (what a submission may
declare) and the `framework.*` probes (what they run) use: the reference model's arguments
and the checks of its files, and the command and backend declarations. Pure types and
validators; nothing here runs a command or a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Language = Literal["c", "cpp", "java", "python"]
MODEL_PLACEHOLDER = "{model}"
INPUT_PLACEHOLDER = "{input}"


class CommandSpec(BaseModel):
    """An external program that runs the reference model.

    argv: no shell. Every "{model}" in an element is replaced by the absolute path of the
    reference FP32 .onnx, every "{input}" by the absolute path of the input file ("{input}"
    is required). The input file is UTF-8 text, one sample per line: the sample's values
    (the model's first input without the batch dimension, flattened in C order) as
    whitespace-separated decimal float32 numbers that round-trip exactly (`%.9g`).
    The program must print to stdout exactly one line per input line, in order:
    output "values": the model's first output for that sample (flattened) as
    whitespace-separated decimal numbers; output "class": the predicted class (the index
    of the largest value) as one integer. Other stdout lines (empty ones excepted) fail
    the check. A non-zero exit fails it with the exit code; still running after
    `timeout_s`, it is killed with its whole process group. The working directory is
    `cwd` (relative to the harness's) or the harness's own; for a command a submission
    declares (`sut: {adapter: framework}`) it is the submission's folder, or `cwd` relative
    to it. `env` is added to the harness's environment. `sources`: for a C or C++ binding,
    the source files (relative to the working directory) its executable was built from;
    recorded with their digests.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    argv: list[str] = Field(min_length=1)
    output: Literal["values", "class"] = "values"
    timeout_s: float = Field(default=60.0, gt=0)
    cwd: str | None = None
    env: dict[str, str] | None = None
    sources: list[str] | None = None

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if not argv[0]:
            raise ValueError("argv[0], the program, is empty")
        if not any(INPUT_PLACEHOLDER in part for part in argv):
            raise ValueError("argv must contain '{input}' (the path of the input file)")
        return argv


class BackendSpec(BaseModel):
    """One backend: an ONNX Runtime execution provider, or a command (contract:
    `CommandSpec`) that runs the reference model on the backend's chip."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    provider: str | None = None
    provider_options: dict[str, Any] | None = None
    command: CommandSpec | None = None
    chip: str = ""  # what the backend runs on, as declared

    @model_validator(mode="after")
    def _one_kind(self) -> BackendSpec:
        if (self.provider is None) == (self.command is None):
            raise ValueError(f"backend {self.name}: give exactly one of `provider` or `command`")
        if self.provider_options and self.provider is None:
            raise ValueError(f"backend {self.name}: provider_options need a provider")
        return self


def unique_backends(value: list[BackendSpec] | None) -> list[BackendSpec] | None:
    """Validator: backend names are unique, and an execution provider is one backend."""
    if value is None:
        return None
    names = [b.name for b in value]
    providers = [b.provider for b in value if b.provider]
    if len(set(names)) != len(names):
        raise ValueError("backend names must be unique")
    if len(set(providers)) != len(providers):
        raise ValueError("an execution provider is listed twice (it is one backend)")
    return value


def onnx_suffix(value: str | None) -> str | None:
    """Validator: a model path names an .onnx file."""
    if value is not None and not value.endswith(".onnx"):
        raise ValueError(f"model must be an .onnx file, got {value!r}")
    return value


def npz_suffix(value: str | None) -> str | None:
    """Validator: a labelled set (or calibration set) path names an .npz file."""
    if value is not None and not value.endswith(".npz"):
        raise ValueError(f"expected an .npz file with arrays x (and y), got {value!r}")
    return value


class ReferenceArgs(BaseModel):
    """Where the reference model and its labelled set come from (shared by the D04 probes).

    Without `model`, the harness trains its own: an MLP (64 -> hidden -> hidden -> 10, ReLU)
    on scikit-learn's digits (8x8 images scaled to [0, 1]), seeded by the run's seed, with
    a stratified train/test split; the held-out part is the labelled set. With `model`
    (an FP32 ONNX classifier: first input float32 [batch, ...], first output [batch,
    classes]) `data` must name an .npz holding `x` (float32, [N, ...]) and `y` (integer
    labels, [N]): the labelled held-out set. `calibration` (an .npz with `x`) gives the
    samples for static INT8 calibration; never the held-out set. Paths are absolute or
    relative to the harness's working directory; they are checked when the task starts
    (the suite's arguments are re-read by `harness audit` on machines without the files).
    A submission's `sut: {adapter: framework}` block gives these three in place of the
    suite's (its paths start at the submission's folder; `harness.adapters.framework_sut`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str | None = None
    data: str | None = None
    calibration: str | None = None
    hidden: int = Field(default=128, ge=8, le=2048)
    epochs: int = Field(default=30, ge=1, le=1000)
    test_fraction: float = Field(default=0.3, gt=0.05, lt=0.9)

    _onnx_suffix = field_validator("model")(onnx_suffix)
    _npz_suffix = field_validator("data", "calibration")(npz_suffix)

    @model_validator(mode="after")
    def _model_and_data(self) -> ReferenceArgs:
        if (self.model is None) != (self.data is None):
            raise ValueError(
                "give both `model` (an FP32 .onnx) and `data` (its labelled .npz), or neither "
                "(the harness's own digits MLP)"
            )
        if self.calibration is not None and self.model is None:
            raise ValueError("`calibration` goes with a submission's own `model` and `data`")
        return self


class ReferenceFileError(ValueError):
    """A reference file (`model`, `data` or `calibration`) is missing or malformed; `key`
    names the argument, the message reads "<key>: <problem>"."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


def check_reference_files(args: ReferenceArgs) -> None:
    """Raise ReferenceFileError (a ValueError) naming the argument when a given file is
    missing or malformed."""
    if args.model is None:
        return
    for key in ("model", "data", "calibration"):
        value = getattr(args, key)
        if value is None:
            continue
        path = Path(value)
        if not path.is_file():
            raise ReferenceFileError(key, f"file not found: {path.resolve()}")
    assert args.data is not None
    try:
        with np.load(args.data, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise ReferenceFileError(
                    "data", f"{args.data} lacks array(s) {missing} (has {npz.files})"
                )
            if len(npz["x"]) != len(npz["y"]) or len(npz["y"]) == 0:
                raise ReferenceFileError(
                    "data", f"x has {len(npz['x'])} samples, y {len(npz['y'])} (need equal, > 0)"
                )
            if not np.issubdtype(npz["y"].dtype, np.integer):
                raise ReferenceFileError(
                    "data", f"y must hold integer labels, not {npz['y'].dtype}"
                )
    except ReferenceFileError:
        raise
    except Exception as error:  # not an .npz archive, pickled objects, a damaged file
        raise ReferenceFileError(
            "data", f"cannot read {args.data} as .npz: {type(error).__name__}: {error}"
        ) from None
    if args.calibration is not None:
        try:
            with np.load(args.calibration, allow_pickle=False) as npz:
                has_x = "x" in npz.files
        except Exception as error:
            raise ReferenceFileError(
                "calibration",
                f"cannot read {args.calibration} as .npz: {type(error).__name__}: {error}",
            ) from None
        if not has_x:
            raise ReferenceFileError("calibration", f"{args.calibration} lacks array x")
