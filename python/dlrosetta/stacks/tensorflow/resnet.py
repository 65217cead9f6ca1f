"""ResNet v1 for CIFAR in native TensorFlow (docs/models.md): tf.Variables named as the
canonical tensors of dlrosetta.model_spec and a forward pass of tf.nn / raw ops, NHWC.

TensorFlow's layouts are the canonical ones (conv HWIO, dense [in, out]), so the weights
load as they are. Stride-2 3x3 convolutions pad one pixel on every side explicitly:
TensorFlow's "SAME" pads them asymmetrically on even sizes. Batch norm is
the fused kernel (FusedBatchNormV3), which also updates the moving statistics
(exponential_avg_factor 0.1: moving = 0.9*moving + 0.1*batch).

Twins: python/dlrosetta/stacks/pytorch/resnet.py, python/dlrosetta/stacks/keras/resnet.py,
       r/stacks/r-keras/R/resnet.R, julia/stacks/julia-native/src/resnet.jl.
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from dlrosetta.model_spec import ModelSpec, ResNetBlock, resnet_blocks

BN_EPSILON = 1e-5
BN_AVERAGE_FACTOR = 0.1  # weight of the batch statistic in the moving average


class ResNet(tf.Module):
    """Images [batch, 32, 32, 3] -> logits. `training` normalises with the batch's own
    statistics and updates the moving ones; otherwise the moving ones are used."""

    def __init__(self, cfg: Mapping, spec: ModelSpec):
        super().__init__(name="resnet")
        if cfg["shortcut"] not in ("A", "B"):
            raise ValueError(f"resnet shortcut must be 'A' or 'B', got {cfg['shortcut']!r}")
        self.shortcut = cfg["shortcut"]
        self.blocks = resnet_blocks(cfg["depth"], cfg["width"])
        # Zeros until the trainer loads the canonical weights (load_weights).
        self.v = {p.name: tf.Variable(tf.zeros(p.shape), trainable=p.trainable, name=p.name)
                  for p in spec.params}
        self.trainable = [self.v[p.name] for p in spec.params if p.trainable]

    def _conv(self, name: str, x: tf.Tensor, stride: int) -> tf.Tensor:
        kernel = self.v[f"{name}.kernel"]
        pad = kernel.shape[0] // 2
        if stride == 1 or pad == 0:  # "SAME" is exactly the symmetric padding here
            return tf.nn.conv2d(x, kernel, stride, padding="SAME")
        # Not conv2d's explicit `padding=[...]`: oneDNN does not take its gradients,
        # which then run 2-3x slower as Eigen contractions (TF 2.21, CPU).
        return tf.nn.conv2d(tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]), kernel, stride, padding="VALID")

    def _bn(self, name: str, x: tf.Tensor, training: bool) -> tf.Tensor:
        mean, variance = self.v[f"{name}.moving_mean"], self.v[f"{name}.moving_variance"]
        y, new_mean, new_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=self.v[f"{name}.gamma"], offset=self.v[f"{name}.beta"], mean=mean,
            variance=variance, epsilon=BN_EPSILON,
            exponential_avg_factor=BN_AVERAGE_FACTOR if training else 1.0, is_training=training)
        if training:  # the op returns the moving statistics already updated
            mean.assign(new_mean)
            variance.assign(new_variance)
        return y

    def _conv_bn(self, conv: str, bn: str, x: tf.Tensor, stride: int, training: bool) -> tf.Tensor:
        return self._bn(bn, self._conv(conv, x, stride), training)

    def _block(self, b: ResNetBlock, x: tf.Tensor, training: bool) -> tf.Tensor:
        y = tf.nn.relu(self._conv_bn(f"{b.name}.conv1", f"{b.name}.bn1", x, b.stride, training))
        y = self._conv_bn(f"{b.name}.conv2", f"{b.name}.bn2", y, 1, training)
        if not b.reshapes:
            shortcut = x
        elif self.shortcut == "A":  # subsample, zero-pad the new channels on both sides
            side = (b.cout - b.cin) // 2
            shortcut = tf.pad(x[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [side, side]])
        else:
            shortcut = self._conv_bn(f"{b.name}.shortcut.conv", f"{b.name}.shortcut.bn", x, b.stride,
                                     training)
        return tf.nn.relu(y + shortcut)

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        x = tf.nn.relu(self._conv_bn("stem.conv", "stem.bn", x, 1, training))
        for block in self.blocks:
            x = self._block(block, x, training)
        x = tf.reduce_mean(x, axis=[1, 2])
        return tf.matmul(x, self.v["head.dense.kernel"]) + self.v["head.dense.bias"]
