"""The CNN-LSTM network: a stack of causal dilated Conv1d over time, an LSTM, and a regression head."""

from __future__ import annotations

from collections.abc import Sequence

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
    """(batch, features, time) → one output per sample (a return, or a logit of an up-move).

    ``dilations`` sets the conv stack: one causal conv layer per entry, with that dilation (the default
    ``(1, 2)`` is the original two-layer layout, so bundles saved before the option existed load unchanged).
    """

    def __init__(self, n_features: int, conv_filters: int = 32, kernel_size: int = 3, lstm_hidden: int = 32,
                 lstm_layers: int = 1, dropout: float = 0.1, attention: bool = False,
                 dilations: Sequence[int] = (1, 2)):
        super().__init__()
        if not dilations or any(int(d) != d or d < 1 for d in dilations):
            raise ValueError(f"dilations must be a non-empty list of positive integers, got {list(dilations)}")
        self.pool = AttentionPool(lstm_hidden) if attention else None
        widths = [n_features, *[conv_filters] * len(dilations)]
        self.convs = nn.Sequential(*(CausalConv(c_in, c_out, kernel_size, dilation=int(d))
                                     for c_in, c_out, d in zip(widths[:-1], widths[1:], dilations, strict=True)))
        self.lstm = nn.LSTM(conv_filters, lstm_hidden, num_layers=lstm_layers, batch_first=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(lstm_hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(x).transpose(1, 2)          # (B, L, C)
        out, _ = self.lstm(h)
        pooled = self.pool(out) if self.pool is not None else out[:, -1]
        return self.head(pooled).squeeze(-1)
