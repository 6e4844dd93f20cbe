"""The dev checkpoint a dry run counts (no --dataset checkpoint, no sut.checkpoint): a
seeded tiny mixture-of-experts causal LM in torch, its LM head tied to its embedding,
saved with `safetensors.torch.save_model` (which stores the tied pair once) beside a
config.json that declares the experts and the tie. Its count decides nothing (the figure
carries an invalid_reason); it shows the probe reading a real file the real writer made.

Shapes: vocabulary 64, width 16, 2 layers of q/k/v/o (16 x 16, no bias), an RMS-norm
weight (16), a router (4 x 16) and 4 experts of w1 (32 x 16) and w2 (16 x 32), 2 experts
per token; a final norm (16). Total 64*16 + 2*(4*256 + 16 + 64 + 4*(512 + 512)) + 16 =
11,440; active 11,440 - 2*4,096 + 2*2,048 = 7,344."""

from __future__ import annotations

import json
from pathlib import Path

VOCAB, WIDTH, LAYERS, EXPERTS, PER_TOKEN, HIDDEN = 64, 16, 2, 4, 2, 32
TOTAL = (
    VOCAB * WIDTH
    + LAYERS * (4 * WIDTH * WIDTH + WIDTH + EXPERTS * WIDTH + EXPERTS * 2 * WIDTH * HIDDEN)
    + WIDTH
)
ACTIVE = TOTAL - LAYERS * (EXPERTS - PER_TOKEN) * 2 * WIDTH * HIDDEN


def write(folder: Path, seed: int) -> Path:
    """The dev checkpoint in `folder` (model.safetensors + config.json); returns the folder."""
    import torch
    from safetensors.torch import save_model
    from torch import nn

    class Expert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = nn.Linear(WIDTH, HIDDEN, bias=False)
            self.w2 = nn.Linear(HIDDEN, WIDTH, bias=False)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
                nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(4)
            )
            self.norm = nn.RMSNorm(WIDTH)
            self.gate = nn.Linear(WIDTH, EXPERTS, bias=False)
            self.experts = nn.ModuleList(Expert() for _ in range(EXPERTS))

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed_tokens = nn.Embedding(VOCAB, WIDTH)
            self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
            self.norm = nn.RMSNorm(WIDTH)
            self.lm_head = nn.Linear(WIDTH, VOCAB, bias=False)
            self.lm_head.weight = self.embed_tokens.weight  # tied

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(Model(), str(folder / "model.safetensors"))
    config = {
        "model_type": "harness-dev-moe",
        "vocab_size": VOCAB,
        "hidden_size": WIDTH,
        "num_hidden_layers": LAYERS,
        "num_local_experts": EXPERTS,
        "num_experts_per_tok": PER_TOKEN,
        "tie_word_embeddings": True,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return folder
