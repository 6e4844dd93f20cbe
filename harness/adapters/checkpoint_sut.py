"""`checkpoint`: a model's checkpoint files, for the tasks that read them (D16's parameter
count, `checkpoint.params`); it answers no samples.

    task_suts:
      params: {adapter: checkpoint, checkpoint: ckpt/}   # a file, or a folder with config.json

The path is relative to the submission's folder. A task that must drive the model (serving,
downstream tasks) takes another adapter (`http`, ...) in its own `task_suts` entry.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from harness.registry import adapters


@adapters.register("checkpoint")
class CheckpointAdapter:
    """Checkpoint files to be read, not run."""

    class Args(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        adapter: str = "checkpoint"
        checkpoint: str = Field(min_length=1)

    description: ClassVar[str] = "a model's checkpoint files, read (not run) by checkpoint.params"
