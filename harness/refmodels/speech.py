"""An LSTM acoustic model in the DeepSpeech 2 mould: 80-dim log-mel filterbank frames, two
stride-2 convolutions (4x time subsampling), a stack of bidirectional LSTMs, and per-frame
logits over a CTC alphabet (symbol 0 is the blank)."""

from __future__ import annotations

from torch import Tensor, nn


class ConvBiLstmCtc(nn.Module):
    def __init__(self, mels: int, channels: int, hidden: int, layers: int, symbols: int) -> None:
        super().__init__()
        self.subsample = nn.Sequential(
            nn.Conv2d(1, channels, 3, 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 2, 1),
            nn.ReLU(inplace=True),
        )
        freq = (mels + 3) // 4
        self.project = nn.Linear(channels * freq, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True, bidirectional=True)
        self.output = nn.Linear(2 * hidden, symbols)

    def forward(self, features: Tensor) -> Tensor:
        """features [batch, frames, mels] -> logits [batch, ceil(frames / 4), symbols]."""
        x = self.subsample(features.unsqueeze(1))  # [b, c, t/4, f/4]
        b, c, t, f = x.shape
        x = self.project(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        x, _ = self.lstm(x)
        return self.output(x)
