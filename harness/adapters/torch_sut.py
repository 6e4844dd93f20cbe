"""`torch`: a PyTorch model run in-process.

    sut:
      adapter: torch
      model: model.pt              # a TorchScript file (torch.jit.save), relative to the
                                   # submission file; or instead:
      factory: mypkg.models:build  # an importable function returning an nn.Module
      device: cuda:0               # cpu (default), cuda or cuda:N
      dtype: bfloat16              # float32 (default), bfloat16 or float16

Exactly one of `model`, `factory`. The module is put in eval mode and cast with
`.to(device, dtype)`: its floating-point parameters and buffers, and every floating-point
input tensor, take `dtype` (integer inputs, token ids say, are left alone). This is a plain
cast, not autocast: the whole model runs in `dtype`.

A sample's data is a numpy array (or torch tensor), passed as the one positional argument,
or a dict of name -> array passed as keyword arguments. Calls run under
`torch.inference_mode()`, and the latency includes moving the input to the device, the
forward pass, a `torch.cuda.synchronize` and copying the outputs back, so it is what a
caller would see. Outputs come back as numpy arrays: a tensor as a one-element list, a
tuple or list of tensors as a list, a dict as a dict; floating-point outputs are returned as
float32 (numpy has no bfloat16).

`torch.jit.load` is deprecated from torch 2.13 on; it still works, and its warning is
silenced here because the applicant, not the operator, would have to act on it.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.adapters._support import (
    UnsupportedInput,
    crashed,
    import_target,
    one_line,
    require_file,
    sha256_file,
    source_label,
)
from harness.adapters.protocol import Sample, SampleOutput, SutSession
from harness.errors import BadInput, SutFailure
from harness.registry import adapters


@adapters.register("torch")
class TorchAdapter:
    """A TorchScript file or a factory function's nn.Module, run in-process by PyTorch."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "torch"
        model: str | None = None
        factory: str | None = None
        device: str = "cpu"
        dtype: Literal["float32", "bfloat16", "float16"] = "float32"

        @field_validator("device")
        @classmethod
        def _device_form(cls, device: str) -> str:
            if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
                raise ValueError("expected one of cpu, cuda, cuda:N")
            return device

        @model_validator(mode="after")
        def _exactly_one_source(self) -> TorchAdapter.Args:
            if (self.model is None) == (self.factory is None):
                raise PydanticCustomError("model_or_factory", "give exactly one of model, factory")
            return self

    description: ClassVar[str] = "a PyTorch model (TorchScript file or factory) run in-process"

    def check(self, args: Args, base_dir: Path | None, source: str | Path | None = None) -> None:
        """Raise BadInput (naming `sut.<field>`) for a missing model file, a factory that
        cannot be imported or is not callable (its module is imported, the function is not
        called), or a CUDA device torch cannot see."""
        label = source_label(source, base_dir)
        if args.model is not None:
            require_file(args.model, base_dir, label, "sut.model", "TorchScript file")
        if args.factory is not None:
            try:
                import_target(args.factory)
            except ValueError as error:
                raise BadInput(label, "sut.factory", str(error)) from None
        try:
            resolve_device(args.device)
        except ValueError as error:
            raise BadInput(label, "sut.device", str(error)) from None

    def open(self, args: Args, base_dir: Path | None) -> SutSession:
        """Check, then load the model onto the device. SutFailure if loading fails or the
        factory does not return an nn.Module."""
        self.check(args, base_dir)
        return TorchSession(args, base_dir)


def resolve_device(device: str) -> str:
    import torch

    if device == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"{device} requested but torch sees no CUDA device")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"{device} requested; torch sees {torch.cuda.device_count()}")
    return f"cuda:{index}"


class TorchSession:
    def __init__(self, args: TorchAdapter.Args, base_dir: Path | None) -> None:
        import torch

        self.torch = torch
        self.args = args
        self.device = torch.device(resolve_device(args.device))
        self.dtype = getattr(torch, args.dtype)
        self.model_path: Path | None = None
        self.model_sha256: str | None = None
        module: Any
        if args.model is not None:
            self.model_path = require_file(
                args.model, base_dir, source_label(None, base_dir), "sut.model"
            )
            self.model_sha256 = sha256_file(self.model_path)
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings(
                        "ignore", message=r".*torch\.jit\.load.*", category=DeprecationWarning
                    )
                    module = torch.jit.load(str(self.model_path), map_location=self.device)
            except Exception as error:
                raise SutFailure(
                    f"torch cannot load {self.model_path}: {one_line(error)}"
                ) from None
        else:
            assert args.factory is not None
            try:
                module = import_target(args.factory)()
            except Exception as error:
                raise SutFailure(f"factory {args.factory} failed: {one_line(error)}") from None
            if not isinstance(module, torch.nn.Module):
                raise SutFailure(
                    f"factory {args.factory} returned a {type(module).__name__}, "
                    "not a torch.nn.Module"
                )
        try:
            self.module = module.to(device=self.device, dtype=self.dtype).eval()
        except Exception as error:
            raise SutFailure(
                f"cannot move the model to {self.device} as {args.dtype}: {one_line(error)}"
            ) from None
        self.parameters = sum(p.numel() for p in self.module.parameters())

    def describe(self) -> dict[str, Any]:
        torch = self.torch
        if self.device.type == "cuda":
            device_name = torch.cuda.get_device_name(self.device)
        else:
            from harness.environment import cpu_facts

            device_name = cpu_facts()["cpu_name"]
        return {
            "adapter": "torch",
            "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda,
            "device": str(self.device),
            "device_name": device_name,
            "dtype": self.args.dtype,
            "precision": "module and floating-point inputs cast with .to(dtype)",
            "threads": torch.get_num_threads(),
            "model": str(self.model_path) if self.model_path else None,
            "model_sha256": self.model_sha256,
            "factory": self.args.factory,
            "module_type": type(self.module).__name__,
            "parameters": self.parameters,
        }

    def _tensor(self, value: Any) -> Any:
        torch = self.torch
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise UnsupportedInput(f"expected numpy arrays or tensors, got {type(value).__name__}")
        if value.is_floating_point():
            return value.to(device=self.device, dtype=self.dtype)
        return value.to(device=self.device)

    def _numpy(self, value: Any) -> Any:
        torch = self.torch
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.is_floating_point():
                value = value.float()
            return value.cpu().numpy()
        if isinstance(value, (tuple, list)):
            return [self._numpy(v) for v in value]
        if isinstance(value, dict):
            return {k: self._numpy(v) for k, v in value.items()}
        return value

    def _call(self, data: Any) -> Any:
        if isinstance(data, dict):
            kwargs = {str(k): self._tensor(v) for k, v in data.items()}
            out = self.module(**kwargs)
        else:
            out = self.module(self._tensor(data))
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
        converted = self._numpy(out)
        return [converted] if isinstance(out, self.torch.Tensor) else converted

    def run(self, samples: Sequence[Sample]) -> list[SampleOutput]:
        results = []
        with self.torch.inference_mode():
            for sample in samples:
                start = time.perf_counter()
                try:
                    output = self._call(sample.data)
                except UnsupportedInput as error:
                    results.append(SampleOutput(sample.index, None, f"bad input: {error}", 0.0))
                    continue
                except Exception as error:
                    latency = time.perf_counter() - start
                    results.append(SampleOutput(sample.index, None, crashed(error), latency))
                    continue
                latency = time.perf_counter() - start
                results.append(SampleOutput(sample.index, output, None, latency))
        return results

    def close(self) -> None:
        self.module = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
