"""The LSTM sentiment classifier as a Keras 3 functional model (docs/models.md), one code
base for the tensorflow, jax and torch backends: embedding -> one LSTM (last hidden
state) -> dense logits.

Keras's LSTM is the canonical one (gate order i, f, g, o, one bias vector, tanh/sigmoid),
so the weights load by layer name (layer_name) as they are. No masking: sequences are
pre-padded, and a mask would keep Keras off the cuDNN kernel on GPU.

Twins: r/stacks/r-keras/R/lstm.R (the same Keras model built from R), python/dlrosetta/stacks/pytorch/lstm.py,
       python/dlrosetta/stacks/tensorflow/lstm.py, julia/stacks/julia-native/src/lstm.jl.
"""
from __future__ import annotations

from typing import Mapping

import keras
from keras import layers

from dlrosetta.stacks.keras import layer_name


def build_lstm(cfg: Mapping) -> keras.Model:
    """The LSTM classifier of a run spec's model_config; int32 tokens in, logits out."""
    tokens = keras.Input((cfg["maxlen"],), dtype="int32", name="tokens")
    x = layers.Embedding(cfg["vocab_size"], cfg["embedding_dim"], name=layer_name("embedding"))(tokens)
    x = layers.LSTM(cfg["units"], name=layer_name("lstm"))(x)
    logits = layers.Dense(cfg["num_classes"], name=layer_name("head.dense"))(x)
    return keras.Model(tokens, logits, name="lstm")
