"""The LSTM sentiment classifier in PyTorch (docs/models.md): embedding -> one LSTM (last
hidden state) -> dense logits.

nn.LSTM owns two bias vectors (b_ih, b_hh); the canonical model has one. FusedLSTM owns
the canonical three tensors and hands the fused op (torch's LSTM: oneDNN on CPU, cuDNN on
GPU) a constant zero buffer as the second bias, so the parameter count matches the other
stacks and the fused kernel still runs.

Twins: python/dlrosetta/stacks/tensorflow/lstm.py, python/dlrosetta/stacks/keras/lstm.py,
       r/stacks/r-keras/R/lstm.R, julia/stacks/julia-native/src/lstm.jl.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import numpy as np
import torch
from torch import nn


class FusedLSTM(nn.Module):
    """One unidirectional layer, batch first, zero initial state; returns h_T.
    Gate order i, f, g, o, as PyTorch's and the canonical layout."""

    def __init__(self, input_size: int, units: int):
        super().__init__()
        self.units = units
        self.weight_ih = nn.Parameter(torch.empty(4 * units, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * units, units))
        self.bias = nn.Parameter(torch.empty(4 * units))
        self.register_buffer("zero_bias", torch.zeros(4 * units), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = x.new_zeros(1, x.shape[0], self.units)
        _, h_n, _ = torch._VF.lstm(x, (h0, h0), [self.weight_ih, self.weight_hh, self.bias, self.zero_bias],
                                   True, 1, 0.0, self.training, False, True)
        return h_n[0]


def build_lstm(cfg: Mapping) -> nn.Sequential:
    """The LSTM classifier of a run spec's model_config; int tokens in, logits out."""
    return nn.Sequential(OrderedDict(
        embedding=nn.Embedding(cfg["vocab_size"], cfg["embedding_dim"]),
        lstm=FusedLSTM(cfg["embedding_dim"], cfg["units"]),
        head=nn.Sequential(OrderedDict(dense=nn.Linear(cfg["units"], cfg["num_classes"])))))


# Canonical name -> (this model's name, whether the layouts are transposes of each other).
_TORCH_NAMES = {"embedding.embeddings": ("embedding.weight", False),
                "lstm.kernel": ("lstm.weight_ih", True),              # [in, 4u] / [4u, in]
                "lstm.recurrent_kernel": ("lstm.weight_hh", True),    # [u, 4u] / [4u, u]
                "lstm.bias": ("lstm.bias", False),
                "head.dense.kernel": ("head.dense.weight", True),     # [in, out] / [out, in]
                "head.dense.bias": ("head.dense.bias", False)}


def lstm_state_dict(weights: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The canonical weights as this model's state dict."""
    state = {}
    for name, (torch_name, transposed) in _TORCH_NAMES.items():
        t = torch.from_numpy(np.ascontiguousarray(weights[name]))
        state[torch_name] = t.t().contiguous() if transposed else t
    return state


def lstm_canonical(state: Mapping[str, torch.Tensor], names: list[str]) -> dict[str, np.ndarray]:
    """The inverse of lstm_state_dict."""
    out = {}
    for name in names:
        torch_name, transposed = _TORCH_NAMES[name]
        t = state[torch_name].detach().cpu()
        out[name] = (t.t() if transposed else t).numpy()
    return out
