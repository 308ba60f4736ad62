"""The CNN-LSTM network: causal dilated Conv1d over time, an LSTM, and a regression head."""

from __future__ import annotations

import torch
from torch import nn


class CausalConv(nn.Module):
    """Conv1d padded on the left only, so output at step k sees inputs up to k."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(nn.functional.pad(x, (self.pad, 0))))


class AttentionPool(nn.Module):
    """A learned query scores every time step; the output is their softmax-weighted sum."""

    def __init__(self, hidden: int):
        super().__init__()
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(h), dim=1)      # (B, L, 1)
        return (weights * h).sum(dim=1)


class CNNLSTM(nn.Module):
    """(batch, features, time) → one output per sample (a return, or a logit of an up-move)."""

    def __init__(self, n_features: int, conv_filters: int = 32, kernel_size: int = 3, lstm_hidden: int = 32,
                 lstm_layers: int = 1, dropout: float = 0.1, attention: bool = False):
        super().__init__()
        self.pool = AttentionPool(lstm_hidden) if attention else None
        self.convs = nn.Sequential(CausalConv(n_features, conv_filters, kernel_size, dilation=1),
                                   CausalConv(conv_filters, conv_filters, kernel_size, dilation=2))
        self.lstm = nn.LSTM(conv_filters, lstm_hidden, num_layers=lstm_layers, batch_first=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(lstm_hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x).transpose(1, 2)          # (B, L, C)
        out, _ = self.lstm(h)
        pooled = self.pool(out) if self.pool is not None else out[:, -1]
        return self.head(pooled).squeeze(-1)
