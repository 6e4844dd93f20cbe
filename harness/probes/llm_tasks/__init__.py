"""D16 large pre-trained models, the task probes: downstream task scores (`llm.downstream`),
modalities (`llm.modalities`), services (`llm.services`) and the fine-tuning workflow
(`llm.finetune`). Importing this package registers them."""

from harness.probes.llm_tasks.downstream import DownstreamArgs, DownstreamProbe
from harness.probes.llm_tasks.finetune import FinetuneArgs, FinetuneProbe
from harness.probes.llm_tasks.modalities import ModalitiesArgs, ModalitiesProbe
from harness.probes.llm_tasks.services import ServicesArgs, ServicesProbe

__all__ = [
    "DownstreamArgs",
    "DownstreamProbe",
    "FinetuneArgs",
    "FinetuneProbe",
    "ModalitiesArgs",
    "ModalitiesProbe",
    "ServicesArgs",
    "ServicesProbe",
]
