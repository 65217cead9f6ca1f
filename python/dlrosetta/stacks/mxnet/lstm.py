"""The LSTM sentiment classifier in MXNet Gluon (docs/models.md): embedding -> one LSTM
(last hidden state) -> dense logits, one HybridBlock hybridised by the trainer.

gluon.rnn.LSTM is MXNet's fused RNN operator (oneDNN's LSTM primitive on CPU, forward
and backward; cuDNN's on GPU), gate order i, f, g, o as the canonical layout (checked
against the reference forward pass). Its time-major layout (TNC) is the operator's own:
the int tokens are transposed ([N, T] -> [T, N], cheap) before the embedding instead of
swapping the float activations, which the batch-major layout would do on both sides.

The layer owns two bias vectors (i2h, h2h); the canonical model has one. The h2h bias is
held at zero with grad_req 'null': not trained, not counted, never updated, while the
fused kernel still runs (the operator adds the two biases).

Twins: python/dlrosetta/stacks/pytorch/lstm.py, python/dlrosetta/stacks/keras/lstm.py,
       r/stacks/r-mxnet/R/lstm.R, julia/stacks/julia-native/src/lstm.jl.
"""
from __future__ import annotations

from typing import Mapping, Optional

from mxnet import gluon
from mxnet.gluon import nn


class LSTMClassifier(gluon.HybridBlock):
    """Int tokens [batch, maxlen] in, logits out."""

    def __init__(self, cfg: Mapping):
        super().__init__()
        with self.name_scope():
            self.embedding = nn.Embedding(cfg["vocab_size"], cfg["embedding_dim"])
            self.lstm = gluon.rnn.LSTM(cfg["units"], layout="TNC", input_size=cfg["embedding_dim"])
            self.dense = nn.Dense(cfg["num_classes"], in_units=cfg["units"])
        self.lstm.l0_h2h_bias.grad_req = "null"

    def hybrid_forward(self, F, tokens):
        out = self.lstm(self.embedding(F.transpose(tokens)))   # [T, N, units], zero initial state
        h_last = F.squeeze(F.slice_axis(out, axis=0, begin=-1, end=None), axis=0)
        return self.dense(h_last)


def build_lstm(cfg: Mapping) -> LSTMClassifier:
    return LSTMClassifier(cfg)


def lstm_parameters(net: LSTMClassifier) -> dict[str, tuple[gluon.Parameter, Optional[tuple[int, ...]]]]:
    """Canonical tensor name -> (its Gluon parameter, the axes permuting the canonical
    layout to Gluon's or None): kernels [in, 4u] -> [4u, in], dense [in, out] ->
    [out, in]. The h2h bias has no canonical tensor: it keeps its zero initialisation."""
    lstm = net.lstm
    return {"embedding.embeddings": (net.embedding.weight, None),
            "lstm.kernel": (lstm.l0_i2h_weight, (1, 0)),
            "lstm.recurrent_kernel": (lstm.l0_h2h_weight, (1, 0)),
            "lstm.bias": (lstm.l0_i2h_bias, None),
            "head.dense.kernel": (net.dense.weight, (1, 0)),
            "head.dense.bias": (net.dense.bias, None)}
