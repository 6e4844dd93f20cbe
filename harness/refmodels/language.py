"""A BERT-style encoder: token and position embeddings, post-norm transformer encoder layers
(GELU feed-forward of 4x the hidden size), a tanh pooler on the first token and a linear
classifier head."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BertStyleEncoder(nn.Module):
    position_ids: Tensor

    def __init__(
        self, vocab: int, hidden: int, layers: int, heads: int, seq_len: int, classes: int
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(seq_len, hidden)
        self.norm = nn.LayerNorm(hidden)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, 4 * hidden, dropout=0.0, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, classes)
        self.register_buffer("position_ids", torch.arange(seq_len).unsqueeze(0), persistent=False)

    def forward(self, token_ids: Tensor) -> Tensor:
        positions = self.position_ids[:, : token_ids.shape[1]]
        x = self.norm(self.tokens(token_ids) + self.positions(positions))
        x = self.encoder(x)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return self.classifier(pooled)
