"""D16 large pre-trained models: the exact parameter count of a checkpoint from its headers
(safetensors and shard indexes, ONNX initializers, torch.load with mmap, GGUF), with
packed low-bit weights, quantisation side tensors, tied tensors and experts handled."""

from harness.probes.checkpoints import probe
from harness.probes.checkpoints.probe import ParamsArgs, ParamsProbe

__all__ = ["ParamsArgs", "ParamsProbe", "probe"]
