"""ResNet v1 for CIFAR as a Keras 3 functional model (docs/models.md), one code base for
the tensorflow, jax and torch backends.

Layers carry the canonical names of dlrosetta.model_spec, spelt by layer_name
(stem_conv, stage2_block1_bn1, head_dense, ...). Keras's layouts are the canonical ones,
so the weights load by name as they are (trainer.canonical_variables).

Twins: r/stacks/r-keras/R/resnet.R (the same Keras model built from R), python/dlrosetta/stacks/pytorch/resnet.py,
       python/dlrosetta/stacks/tensorflow/resnet.py, julia/stacks/julia-native/src/resnet.jl.
"""
from __future__ import annotations

from typing import Mapping

import keras
from keras import layers, ops

from dlrosetta.model_spec import resnet_blocks
from dlrosetta.stacks.keras import layer_name

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras weighs the old value: moving = 0.9*moving + 0.1*batch


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    padding = "same"  # exactly one pixel on every side for 3x3 at stride 1 (none for 1x1)
    if stride > 1 and kernel > 1:
        # "same" would pad a stride-2 conv on an even size asymmetrically, unlike the
        # model definition: pad explicitly.
        x = layers.ZeroPadding2D(kernel // 2, name=layer_name(f"{name}.pad"))(x)
        padding = "valid"
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                         name=layer_name(name))(x)


def _bn(x, name: str):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=layer_name(name))(x)


def _relu(x, name: str):
    return layers.ReLU(name=layer_name(name))(x)


def build_resnet(cfg: Mapping) -> keras.Model:
    """The ResNet of a run spec's model_config; NHWC images in, logits out."""
    if cfg["shortcut"] not in ("A", "B"):
        raise ValueError(f"resnet shortcut must be 'A' or 'B', got {cfg['shortcut']!r}")
    size = cfg.get("image_size", 32)
    inputs = keras.Input((size, size, cfg.get("channels", 3)), name="images")
    x = _relu(_bn(_conv(inputs, cfg["width"], 3, 1, "stem.conv"), "stem.bn"), "stem.relu")
    for b in resnet_blocks(cfg["depth"], cfg["width"]):
        y = _relu(_bn(_conv(x, b.cout, 3, b.stride, f"{b.name}.conv1"), f"{b.name}.bn1"), f"{b.name}.relu1")
        y = _bn(_conv(y, b.cout, 3, 1, f"{b.name}.conv2"), f"{b.name}.bn2")
        if not b.reshapes:
            shortcut = x
        elif cfg["shortcut"] == "A":  # subsample, zero-pad the new channels on both sides
            side = (b.cout - b.cin) // 2
            shortcut = ops.pad(x[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [side, side]])
        else:
            shortcut = _bn(_conv(x, b.cout, 1, b.stride, f"{b.name}.shortcut.conv"), f"{b.name}.shortcut.bn")
        x = _relu(layers.Add(name=layer_name(f"{b.name}.add"))([y, shortcut]), f"{b.name}.relu2")
    x = layers.GlobalAveragePooling2D(name=layer_name("head.pool"))(x)
    logits = layers.Dense(cfg["num_classes"], name=layer_name("head.dense"))(x)
    return keras.Model(inputs, logits, name=f"resnet{cfg['depth']}")
