"""ResNet v1 for CIFAR in Flax linen (docs/models.md), as Flax's own ImageNet example
builds its ResNet: nn.Conv (no bias) and nn.BatchNorm, whose moving statistics live in the
`batch_stats` collection, made mutable in training (momentum 0.9 = moving*0.9 + batch*0.1,
epsilon 1e-5), read with use_running_average in evaluation.

NHWC throughout, XLA:CPU's native convolution layout (and the canonical HWIO kernels are
Flax's own). Modules carry the canonical names of dlrosetta.model_spec, nested where the
canonical name has a dot (stem/conv, stage2/block1/bn1, head/dense), so the Flax tree's
path joined by "." is the canonical name; only the leaf names differ (resnet_variables).

Where the time goes on CPU (jax.profiler, default study, 2 threads, 3.2 s/epoch): 49% in
XLA's YNNPACK convolution fusions, 36% in transposes XLA inserts before each weight-gradient
convolution (the NHWC activations turned to put the batch in the contracted feature
dimension, the forward BN and ReLU recomputed inside), 15% elementwise; each op runs on
one thread, so two threads are about one busy on average. NCHW measured slower per
convolution in XLA, and no XLA:CPU flag (oneDNN, XNNPACK, the legacy runtime) changed it.

Twins: python/dlrosetta/stacks/pytorch/resnet.py, python/dlrosetta/stacks/keras/resnet.py,
       python/dlrosetta/stacks/tensorflow/resnet.py, r/stacks/r-keras/R/resnet.R,
       julia/stacks/julia-native/src/resnet.jl.
"""
from __future__ import annotations

from functools import partial
from typing import Mapping

import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from dlrosetta.model_spec import ResNetBlock, resnet_blocks

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Flax weighs the old value: moving = 0.9*moving + 0.1*batch


def _conv(features: int, kernel: int, stride: int, name: str) -> nn.Conv:
    # Explicit padding of kernel//2 on every side, as the model definition says ("SAME"
    # would pad a stride-2 conv on an even size asymmetrically).
    p = kernel // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((p, p), (p, p)),
                   use_bias=False, name=name)


class ConvBN(nn.Module):
    """conv -> BN: the stem and the shortcut-B projection (modules `conv`, `bn`)."""
    features: int
    kernel: int
    stride: int

    @nn.compact
    def __call__(self, x, norm):
        return norm(name="bn")(_conv(self.features, self.kernel, self.stride, "conv")(x))


class BasicBlock(nn.Module):
    block: ResNetBlock
    shortcut: str

    @nn.compact
    def __call__(self, x, norm):
        b = self.block
        y = nn.relu(norm(name="bn1")(_conv(b.cout, 3, b.stride, "conv1")(x)))
        y = norm(name="bn2")(_conv(b.cout, 3, 1, "conv2")(y))
        if not b.reshapes:
            shortcut = x
        elif self.shortcut == "A":  # subsample, zero-pad the new channels on both sides
            side = (b.cout - b.cin) // 2
            shortcut = jnp.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (side, side)))
        else:
            shortcut = ConvBN(b.cout, 1, b.stride, name="shortcut")(x, norm)
        return nn.relu(y + shortcut)


class Stage(nn.Module):
    blocks: tuple[ResNetBlock, ...]
    shortcut: str

    @nn.compact
    def __call__(self, x, norm):
        for b in self.blocks:
            x = BasicBlock(b, self.shortcut, name=b.name.split(".")[1])(x, norm)
        return x


class Head(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_classes, name="dense")(jnp.mean(x, axis=(1, 2)))


class ResNet(nn.Module):
    """NHWC images in, logits out; `train` picks batch or moving statistics."""
    depth: int
    width: int
    shortcut: str
    num_classes: int

    @nn.compact
    def __call__(self, x, train: bool):
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
        x = nn.relu(ConvBN(self.width, 3, 1, name="stem")(x, norm))
        stages: dict[str, list[ResNetBlock]] = {}
        for b in resnet_blocks(self.depth, self.width):
            stages.setdefault(b.name.split(".")[0], []).append(b)
        for stage, blocks in stages.items():
            x = Stage(tuple(blocks), self.shortcut, name=stage)(x, norm)
        return Head(self.num_classes, name="head")(x)


def build_resnet(cfg: Mapping) -> ResNet:
    if cfg["shortcut"] not in ("A", "B"):
        raise ValueError(f"resnet shortcut must be 'A' or 'B', got {cfg['shortcut']!r}")
    return ResNet(cfg["depth"], cfg["width"], cfg["shortcut"], cfg["num_classes"])


# Canonical tensor suffix -> (Flax collection, Flax leaf name). Layouts are Flax's own
# (conv HWIO, dense [in, out]): a rename, no transpose.
_FLAX_NAMES = {"kernel": ("params", "kernel"), "bias": ("params", "bias"),
               "gamma": ("params", "scale"), "beta": ("params", "bias"),
               "moving_mean": ("batch_stats", "mean"), "moving_variance": ("batch_stats", "var")}


def resnet_variables(weights: Mapping[str, np.ndarray]) -> dict:
    """The canonical weights as Flax's variables {"params": ..., "batch_stats": ...}."""
    variables: dict = {"params": {}, "batch_stats": {}}
    for name, array in weights.items():
        *path, suffix = name.split(".")
        collection, leaf = _FLAX_NAMES[suffix]
        node = variables[collection]
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = np.ascontiguousarray(array, np.float32)
    return variables


def resnet_canonical(variables: Mapping, names: list[str]) -> dict[str, np.ndarray]:
    """The inverse of resnet_variables for the canonical `names`."""
    out = {}
    for name in names:
        *path, suffix = name.split(".")
        collection, leaf = _FLAX_NAMES[suffix]
        node = variables[collection]
        for key in path:
            node = node[key]
        out[name] = np.asarray(node[leaf])
    return out
