"""The canonical definition of dlrosetta's two models, independent of any framework.

This module is the single source of truth that every stack (Python, R, Julia) mirrors:
the ordered list of named tensors, their shapes in the canonical layout, whether they
are trained, and how they are initialised (docs/models.md explains each choice).
Parameter counts and FLOPs per sample are derived from it, never typed in.

Twins: r/R/weights.R (canonical names), julia/stacks/julia-native/src/resnet.jl and julia/stacks/julia-native/src/lstm.jl.

Canonical layouts (every framework converts to/from these when loading weights):
  conv kernel     [kh, kw, in, out]        (HWIO)
  dense kernel    [in, out]
  embedding       [vocab, dim]
  LSTM kernels    [in, 4*units], [units, 4*units], bias [4*units]; gate order i, f, g, o
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

RESNET = "resnet"
LSTM = "lstm"
MODELS = (RESNET, LSTM)


@dataclass(frozen=True)
class ParamSpec:
    """One named tensor of a model in the canonical layout.

    init is one of: he_uniform (limit sqrt(6/fan_in)), glorot_uniform
    (limit sqrt(6/(fan_in+fan_out))), uniform:<limit>, zeros, ones, lstm_bias
    (zeros, forget-gate block = 1).
    """

    name: str
    shape: tuple[int, ...]
    init: str
    trainable: bool = True

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class ModelSpec:
    model: str
    params: tuple[ParamSpec, ...]
    forward_flops_per_sample: int

    @property
    def parameter_count(self) -> int:
        """Trainable parameters (BN moving statistics are state, not parameters)."""
        return sum(p.size for p in self.params if p.trainable)

    @property
    def train_flops_per_sample(self) -> int:
        # Backward costs two forward passes (gradient w.r.t. inputs and to weights).
        return 3 * self.forward_flops_per_sample

    def names(self) -> list[str]:
        return [p.name for p in self.params]


def _conv(name: str, kh: int, cin: int, cout: int) -> ParamSpec:
    return ParamSpec(f"{name}.kernel", (kh, kh, cin, cout), "he_uniform")


def _bn(name: str, c: int) -> list[ParamSpec]:
    return [
        ParamSpec(f"{name}.gamma", (c,), "ones"),
        ParamSpec(f"{name}.beta", (c,), "zeros"),
        ParamSpec(f"{name}.moving_mean", (c,), "zeros", trainable=False),
        ParamSpec(f"{name}.moving_variance", (c,), "ones", trainable=False),
    ]


def resnet_blocks_per_stage(depth: int) -> int:
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
    return (depth - 2) // 6


@dataclass(frozen=True)
class ResNetBlock:
    """One basic block, as the spec lists it and every Python ResNet builds it."""

    name: str    # canonical prefix of its tensors, e.g. "stage2.block1"
    cin: int
    cout: int
    stride: int  # of its first conv: 2 where the block halves the resolution

    @property
    def reshapes(self) -> bool:
        """Whether the shortcut changes shape (shortcut A pads, B projects)."""
        return self.stride != 1 or self.cin != self.cout


def resnet_blocks(depth: int, width: int) -> list[ResNetBlock]:
    """Stages 1-3 with n blocks each, in order: stage s has width*2**(s-1) filters and
    stages 2 and 3 halve the resolution in their first block."""
    n = resnet_blocks_per_stage(depth)
    blocks, cin = [], width
    for stage in range(3):
        cout = width * 2**stage
        for block in range(n):
            blocks.append(ResNetBlock(f"stage{stage + 1}.block{block + 1}", cin, cout,
                                      2 if stage > 0 and block == 0 else 1))
            cin = cout
    return blocks


def resnet_spec(depth: int, width: int, shortcut: str, num_classes: int,
                image_size: int = 32, channels: int = 3) -> ModelSpec:
    """ResNet v1 for CIFAR (He et al. 2016, section 4.2): 3 stages of n basic blocks.

    Shortcut A: identity, subsampled and zero-padded channels where shapes change (no
    parameters). Shortcut B: 1x1 stride-2 conv + BN where shapes change. Head: global
    average pool, dense to num_classes.
    """
    if shortcut not in ("A", "B"):
        raise ValueError(f"resnet shortcut must be 'A' or 'B', got {shortcut!r}")
    params: list[ParamSpec] = [_conv("stem.conv", 3, channels, width), *_bn("stem.bn", width)]
    hw = image_size
    flops = 2 * hw * hw * 9 * channels * width
    blocks = resnet_blocks(depth, width)
    for b in blocks:
        hw //= b.stride
        params += [_conv(f"{b.name}.conv1", 3, b.cin, b.cout), *_bn(f"{b.name}.bn1", b.cout),
                   _conv(f"{b.name}.conv2", 3, b.cout, b.cout), *_bn(f"{b.name}.bn2", b.cout)]
        flops += 2 * hw * hw * 9 * (b.cin * b.cout + b.cout * b.cout)
        if b.reshapes and shortcut == "B":
            params += [_conv(f"{b.name}.shortcut.conv", 1, b.cin, b.cout),
                       *_bn(f"{b.name}.shortcut.bn", b.cout)]
            flops += 2 * hw * hw * b.cin * b.cout
    cout = blocks[-1].cout
    params += [ParamSpec("head.dense.kernel", (cout, num_classes), "glorot_uniform"),
               ParamSpec("head.dense.bias", (num_classes,), "zeros")]
    flops += 2 * cout * num_classes
    return ModelSpec(RESNET, tuple(params), flops)


def lstm_spec(vocab_size: int, embedding_dim: int, units: int, maxlen: int,
              num_classes: int) -> ModelSpec:
    """Embedding -> one LSTM -> last hidden state -> dense to num_classes.

    One bias vector per gate block (Keras layout): frameworks with two LSTM biases
    (PyTorch, cuDNN) keep the second one fixed at zero and outside the parameter count.
    """
    g = 4 * units
    params = (
        ParamSpec("embedding.embeddings", (vocab_size, embedding_dim), "uniform:0.05"),
        ParamSpec("lstm.kernel", (embedding_dim, g), f"uniform:{1 / math.sqrt(units)!r}"),
        ParamSpec("lstm.recurrent_kernel", (units, g), f"uniform:{1 / math.sqrt(units)!r}"),
        ParamSpec("lstm.bias", (g,), "lstm_bias"),
        ParamSpec("head.dense.kernel", (units, num_classes), "glorot_uniform"),
        ParamSpec("head.dense.bias", (num_classes,), "zeros"),
    )
    flops = maxlen * 2 * g * (embedding_dim + units) + 2 * units * num_classes
    return ModelSpec(LSTM, params, flops)


def model_spec(model: str, model_config: Mapping) -> ModelSpec:
    """ModelSpec from a run spec's model_config (see docs/stack-contract.md)."""
    c = dict(model_config)
    if model == RESNET:
        return resnet_spec(c["depth"], c["width"], c["shortcut"], c["num_classes"],
                           c.get("image_size", 32), c.get("channels", 3))
    if model == LSTM:
        return lstm_spec(c["vocab_size"], c["embedding_dim"], c["units"], c["maxlen"],
                         c["num_classes"])
    raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")


def fans(p: ParamSpec) -> tuple[int, int]:
    """fan_in, fan_out of a kernel in the canonical layout."""
    if len(p.shape) == 4:
        kh, kw, cin, cout = p.shape
        return kh * kw * cin, kh * kw * cout
    return p.shape[0], p.shape[-1]


def initial_value(p: ParamSpec, rng: np.random.Generator) -> np.ndarray:
    """Draw one tensor by the documented scheme (float32, canonical layout)."""
    if p.init == "zeros":
        return np.zeros(p.shape, np.float32)
    if p.init == "ones":
        return np.ones(p.shape, np.float32)
    if p.init == "lstm_bias":
        b = np.zeros(p.shape, np.float32)
        units = p.shape[0] // 4
        b[units:2 * units] = 1.0  # forget gate opens at start (Jozefowicz et al. 2015)
        return b
    if p.init == "he_uniform":
        limit = np.sqrt(6.0 / fans(p)[0])
    elif p.init == "glorot_uniform":
        limit = np.sqrt(6.0 / sum(fans(p)))
    elif p.init.startswith("uniform:"):
        limit = float(p.init.split(":", 1)[1])
    else:
        raise ValueError(f"unknown init {p.init!r} for {p.name}")
    return rng.uniform(-limit, limit, p.shape).astype(np.float32)


def initial_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """All tensors of a model, drawn in canonical order from one seeded stream."""
    rng = np.random.default_rng(seed)
    return {p.name: initial_value(p, rng) for p in spec.params}
