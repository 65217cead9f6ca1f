"""The LSTM sentiment classifier in native TensorFlow (docs/models.md): embedding -> one
LSTM (last hidden state) -> dense logits.

TensorFlow's layouts are the canonical ones (kernels [in, 4u], [u, 4u], one bias, gate
order i, f, g, o), so the canonical tensors are the variables. The LSTM is a tf.scan of
the cell over time, differentiated by TensorFlow. Measured on 2 CPU cores (batch 64,
80 steps, train step): 33 ms with each step's input projection inside the scan (the
while loop runs steps' independent x_t @ W ahead of the h chain); 40 ms with all input
projections hoisted into one matmul; 45 ms with TensorFlow's fused whole-sequence kernel
BlockLSTMV2, whose registered gradient is moreover wrong in TF 2.21 (rnn_grad.py maps it
to the V1 gradient op BlockLSTMGrad, which assumes the V1 gate layout i, g, f, o).

Twins: python/dlrosetta/stacks/pytorch/lstm.py, python/dlrosetta/stacks/keras/lstm.py,
       r/stacks/r-keras/R/lstm.R, julia/stacks/julia-native/src/lstm.jl.
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from dlrosetta.model_spec import ModelSpec


def lstm_last_state(x: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """h_T of x [time, batch, input] from a zero state."""
    def step(state, x_t):
        h, c = state
        i, f, g, o = tf.split(x_t @ kernel + h @ recurrent_kernel + bias, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    zero_state = tf.zeros([tf.shape(x)[1], recurrent_kernel.shape[0]])
    h, _ = tf.scan(step, x, initializer=(zero_state, zero_state))
    return h[-1]


class LSTMClassifier(tf.Module):
    """Tokens [batch, maxlen] -> logits; `training` is accepted for symmetry (no layer
    behaves differently in training)."""

    def __init__(self, cfg: Mapping, spec: ModelSpec):
        super().__init__(name="lstm")
        # Zeros until the trainer loads the canonical weights (load_weights).
        self.v = {p.name: tf.Variable(tf.zeros(p.shape), trainable=p.trainable, name=p.name)
                  for p in spec.params}
        self.trainable = [self.v[p.name] for p in spec.params if p.trainable]

    def __call__(self, tokens: tf.Tensor, training: bool) -> tf.Tensor:
        # Looking up the transposed tokens gives time-major input without moving floats.
        x = tf.nn.embedding_lookup(self.v["embedding.embeddings"], tf.transpose(tokens))
        h = lstm_last_state(x, self.v["lstm.kernel"], self.v["lstm.recurrent_kernel"], self.v["lstm.bias"])
        return tf.matmul(h, self.v["head.dense.kernel"]) + self.v["head.dense.bias"]
