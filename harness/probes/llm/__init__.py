"""D16 large pre-trained models: LLM serving latency and throughput (`llm.serving`) of an
OpenAI-compatible endpoint. Importing this package registers its probes."""

from harness.probes.llm.args import ServingArgs
from harness.probes.llm.serving import ServingProbe

__all__ = ["ServingArgs", "ServingProbe"]
