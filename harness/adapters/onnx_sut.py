"""`onnx`: an ONNX model run in-process by onnxruntime.

    sut:
      adapter: onnx
      model: model.onnx                  # relative to the submission file
      providers: [CUDAExecutionProvider] # default [CPUExecutionProvider]
      provider_options: [{device_id: 0}] # optional, one dict per provider
      intra_op_threads: 8                # optional; onnxruntime's default otherwise
      input_name: images                 # optional; default the model's first input

A sample's data is one numpy array (fed to `input_name`, batch dimension included as the
model expects) or a dict of input name -> array. Its output is the list of the model's
outputs, as numpy arrays, in the model's output order.

onnxruntime quietly falls back to the CPU when a requested provider cannot start (a CUDA
library missing, say); `open()` refuses such a session (SutFailure) rather than measure the
wrong device, and a session with a non-CPU provider is built with onnxruntime's fallback
off, so a provider that fails mid-run fails that sample instead of moving to the CPU.
onnxruntime's CUDAExecutionProvider comes with the `onnxruntime-gpu` package (which replaces
`onnxruntime`), not with the CPU package.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harness.adapters._support import (
    UnsupportedInput,
    crashed,
    one_line,
    require_file,
    sha256_file,
    source_label,
)
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput, SutFailure
from harness.registry import adapters


@adapters.register("onnx")
class OnnxAdapter:
    """An ONNX model, run in-process by onnxruntime with the providers the submission names."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "onnx"
        model: str
        providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"], min_length=1)
        provider_options: list[dict[str, Any]] | None = None
        intra_op_threads: int | None = Field(default=None, ge=1)
        input_name: str | None = None

        @field_validator("providers")
        @classmethod
        def _no_duplicates(cls, providers: list[str]) -> list[str]:
            if len(set(providers)) != len(providers):
                raise ValueError("a provider is listed twice")
            return providers

        @field_validator("provider_options")
        @classmethod
        def _one_per_provider(
            cls, options: list[dict[str, Any]] | None, info: ValidationInfo
        ) -> list[dict[str, Any]] | None:
            providers = info.data.get("providers")
            if options is not None and providers is not None and len(options) != len(providers):
                raise ValueError(
                    f"give one dict per provider: {len(providers)} providers, "
                    f"{len(options)} option dicts"
                )
            return options

    description: ClassVar[str] = "an ONNX model run in-process by onnxruntime"

    def check(self, args: Args, base_dir: Path | None, source: str | Path | None = None) -> None:
        """Raise BadInput (naming `sut.<field>`) for what can be known before the run: the
        model file missing or not an ONNX model, a provider onnxruntime does not have, an
        `input_name` the model does not have."""
        import onnx
        import onnxruntime

        label = source_label(source, base_dir)
        path = require_file(args.model, base_dir, label, "sut.model", "ONNX model")
        available = onnxruntime.get_available_providers()
        for provider in args.providers:
            if provider not in available:
                raise BadInput(
                    label,
                    "sut.providers",
                    f"onnxruntime {onnxruntime.__version__} has no {provider!r}; "
                    f"available here: {', '.join(available)}",
                )
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as error:
            raise BadInput(label, "sut.model", f"not an ONNX model: {one_line(error)}") from None
        if args.input_name is not None:
            initializers = {init.name for init in graph.initializer}
            inputs = [value.name for value in graph.input if value.name not in initializers]
            if args.input_name not in inputs:
                raise BadInput(
                    label,
                    "sut.input_name",
                    f"the model has no input {args.input_name!r}; it has: {', '.join(inputs)}",
                )

    def open(self, args: Args, base_dir: Path | None) -> SutSession:
        """Check, then build the onnxruntime session. BadInput as in `check`; SutFailure if
        onnxruntime cannot build the session or dropped a requested provider."""
        self.check(args, base_dir)
        return OnnxSession(args, base_dir)


def _value_info(values: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": v.name, "shape": list(v.shape), "type": v.type} for v in values]


class OnnxSession:
    def __init__(self, args: OnnxAdapter.Args, base_dir: Path | None) -> None:
        import onnxruntime

        self._ort = onnxruntime
        self.args = args
        self.path = require_file(args.model, base_dir, source_label(None, base_dir), "sut.model")
        self.sha256 = sha256_file(self.path)
        options = onnxruntime.SessionOptions()
        if args.intra_op_threads is not None:
            options.intra_op_num_threads = args.intra_op_threads
        # onnxruntime retries a session whose provider fails to start, or whose run fails in
        # the provider (EPFail), on the CPU, telling only stdout; `enable_fallback=0` makes
        # both an error instead, so no sample is measured on the wrong device.
        no_fallback = (
            {} if set(args.providers) == {"CPUExecutionProvider"} else {"enable_fallback": 0}
        )
        self.session: Any
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path),
                sess_options=options,
                providers=list(args.providers),
                provider_options=(
                    [dict(o) for o in args.provider_options] if args.provider_options else None
                ),
                **no_fallback,
            )
        except Exception as error:
            raise SutFailure(f"onnxruntime cannot load {self.path}: {one_line(error)}") from None
        actual = self.session.get_providers()
        dropped = [p for p in args.providers if p not in actual]
        if dropped:
            raise SutFailure(
                f"onnxruntime did not start {', '.join(dropped)} for {self.path} "
                f"(the session runs on {', '.join(actual)})"
            )
        self.inputs = self.session.get_inputs()
        self.outputs = self.session.get_outputs()
        self.input_name = args.input_name or self.inputs[0].name

    def describe(self) -> dict[str, Any]:
        return {
            "adapter": "onnx",
            "onnxruntime_version": self._ort.__version__,
            "available_providers": self._ort.get_available_providers(),
            "requested_providers": list(self.args.providers),
            "providers": self.session.get_providers(),
            "provider_options": self.session.get_provider_options(),
            "intra_op_threads": self.args.intra_op_threads,
            "model": str(self.path),
            "model_sha256": self.sha256,
            "input_name": self.input_name,
            "inputs": _value_info(self.inputs),
            "outputs": _value_info(self.outputs),
        }

    def _feed(self, data: Any) -> dict[str, Any]:
        if isinstance(data, np.ndarray):
            return {self.input_name: data}
        if isinstance(data, dict) and all(isinstance(v, np.ndarray) for v in data.values()):
            return dict(data)
        raise UnsupportedInput(
            f"expected a numpy array or a dict of name -> array, got {type(data).__name__}"
        )

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        results = []
        for sample in samples:
            try:
                feed = self._feed(sample.data)
            except UnsupportedInput as error:
                results.append(SampleOutput(sample.index, None, f"bad input: {error}", 0.0))
                continue
            start = time.perf_counter()
            try:
                output = self.session.run(None, feed)
            except Exception as error:
                latency = time.perf_counter() - start
                results.append(SampleOutput(sample.index, None, crashed(error), latency))
                continue
            latency = time.perf_counter() - start
            results.append(SampleOutput(sample.index, list(output), None, latency))
        return results

    def close(self) -> None:
        self.session = None  # frees the model; the session is not used after close()
