"""`framework`: what a D04 (terminal AI inference framework) applicant submits.

    sut:
      adapter: framework
      model: model.onnx        # optional: the FP32 reference model (relative to the submission)
      data: held_out.npz       # its labelled held-out set (arrays x, y); required with `model`
      calibration: calib.npz   # optional: x for static INT8 calibration; only with `model`
      bindings:                # language (c, cpp, java, python) -> the command that runs the
        python: {argv: [python3, run.py, "{model}", "{input}"]}      # model through it
        cpp: {argv: [./build/run_cpp, "{model}", "{input}"], timeout_s: 120}
      backends:                # each one is run: an ONNX Runtime provider, or a command
        - {name: cpu, provider: CPUExecutionProvider, chip: host CPU}
        - {name: npu, command: {argv: [./npu_run, "{model}", "{input}"]}, chip: Example NPU}
      device: cpu              # where local probes (GEMM, power) run: auto|cpu|cuda|cuda:N

The D04 probes (`framework.precisions`, `framework.bindings`, `framework.backends`) take
`model`/`data`/`calibration`, `bindings` and `backends` from here in place of their suite
args (what is left out here comes from the suite, then from the probes' defaults). A
command's contract is `harness.contracts.framework.CommandSpec`; a submitted command
runs in the submission's folder (a relative `cwd` starts there), so `argv[0]` is either a
program on PATH or a path from that folder. The adapter answers no samples (no `open`):
the D04 probes drive what it declares.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harness.adapters._support import one_line, require_file, resolve_path, source_label
from harness.adapters.local import LocalAdapter, device_form
from harness.contracts.framework import (
    BackendSpec,
    CommandSpec,
    Language,
    ReferenceArgs,
    ReferenceFileError,
    check_reference_files,
    npz_suffix,
    onnx_suffix,
    unique_backends,
)
from harness.errors import BadInput
from harness.registry import adapters

NAME = "framework"


@adapters.register(NAME)
class FrameworkAdapter:
    """A D04 inference framework: its reference model and labelled set, the command per
    language binding, and the backends it runs the model on."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = NAME
        model: str | None = None
        data: str | None = Field(default=None, validate_default=True)
        calibration: str | None = None
        bindings: dict[Language, CommandSpec] | None = Field(default=None, min_length=1)
        backends: list[BackendSpec] | None = Field(default=None, min_length=1)
        device: str = "cpu"

        _model_suffix = field_validator("model")(onnx_suffix)
        _unique_backends = field_validator("backends")(unique_backends)
        _device_form = field_validator("device")(device_form)

        @field_validator("data")
        @classmethod
        def _data_with_model(cls, value: str | None, info: ValidationInfo) -> str | None:
            model = info.data.get("model")
            if value is None and model is not None:
                raise ValueError("a submitted `model` needs `data`, its labelled .npz (x, y)")
            if value is not None and model is None and "model" in info.data:
                raise ValueError("`data` goes with `model` (the harness's own model has its set)")
            return npz_suffix(value)

        @field_validator("calibration")
        @classmethod
        def _calibration_with_model(cls, value: str | None, info: ValidationInfo) -> str | None:
            if value is not None and info.data.get("model") is None:
                raise ValueError("`calibration` goes with a submitted `model` and `data`")
            return npz_suffix(value)

    description: ClassVar[str] = (
        "a D04 inference framework: reference model, language-binding commands, backends"
    )

    @staticmethod
    def resolve_device(args: Args) -> str:
        """The device local probes run on (as the `local` adapter resolves it)."""
        return LocalAdapter.resolve_device(LocalAdapter.Args(device=args.device))

    def check(self, args: Args, base_dir: Path | None, source: str | Path | None = None) -> None:
        """Raise BadInput (naming `sut.<field>`) for what can be known before the run: the
        model, labelled set or calibration file missing or malformed, a command's program
        or working directory missing."""
        label = source_label(source, base_dir)
        if args.model is not None:
            reference_args(args, base_dir, label)
        for lang, spec in (args.bindings or {}).items():
            problem = command_problem(submitted_command(spec, base_dir))
            if problem is not None:
                field, message = problem
                raise BadInput(label, f"sut.bindings.{lang}.{field}", message)
        for i, backend in enumerate(args.backends or []):
            if backend.command is None:
                continue  # a provider this onnxruntime lacks is recorded as not run
            problem = command_problem(submitted_command(backend.command, base_dir))
            if problem is not None:
                field, message = problem
                raise BadInput(label, f"sut.backends[{i}].command.{field}", message)


def reference_args(
    args: FrameworkAdapter.Args, base_dir: Path | None, label: str | Path
) -> dict[str, str | None]:
    """The submitted `model`, `data` and `calibration` as absolute paths, checked (BadInput
    naming `sut.<field>`); {} when the submission gives no model."""
    if args.model is None:
        return {}
    assert args.data is not None
    model = require_file(args.model, base_dir, label, "sut.model", "ONNX model")
    data = require_file(args.data, base_dir, label, "sut.data", "labelled set")
    calibration = None
    if args.calibration is not None:
        calibration = require_file(
            args.calibration, base_dir, label, "sut.calibration", "calibration set"
        )
    paths: dict[str, str | None] = {
        "model": str(model),
        "data": str(data),
        "calibration": None if calibration is None else str(calibration),
    }
    try:
        check_reference_files(
            ReferenceArgs(
                model=paths["model"], data=paths["data"], calibration=paths["calibration"]
            )
        )
    except ReferenceFileError as error:
        raise BadInput(label, f"sut.{error.key}", one_line(error.problem)) from None
    _check_onnx(model, label)
    return paths


def _check_onnx(path: Path, label: str | Path) -> None:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as error:
        raise BadInput(label, "sut.model", f"not an ONNX model: {one_line(error)}") from None
    if not graph.output or not [v for v in graph.input if v.name not in _initializers(graph)]:
        raise BadInput(label, "sut.model", f"the model has no input or no output: {path}")


def _initializers(graph: Any) -> set[str]:
    return {init.name for init in graph.initializer}


def submitted_command(spec: CommandSpec, base_dir: Path | None) -> CommandSpec:
    """A submitted command as the harness runs it: its working directory is the
    submission's folder, or its `cwd` taken from there (absolute in the result)."""
    return spec.model_copy(update={"cwd": str(resolve_path(spec.cwd or ".", base_dir))})


def command_problem(spec: CommandSpec) -> tuple[str, str] | None:
    """(field, message) when the command cannot start: its working directory or its program
    (on PATH, or a path from the working directory) is missing or not executable."""
    cwd = Path(spec.cwd or ".").resolve()
    if not cwd.is_dir():
        return "cwd", f"working directory not found: {cwd}"
    program = spec.argv[0]
    if os.sep not in program:
        path_env = (spec.env or {}).get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=path_env) is None:
            return "argv", f"program {program!r} not found on PATH"
        return None
    path = cwd / Path(program).expanduser()  # an absolute program stays as it is
    if not path.is_file():
        return "argv", f"program not found: {path}"
    if not os.access(path, os.X_OK):
        return "argv", f"program is not executable: {path}"
    return None
