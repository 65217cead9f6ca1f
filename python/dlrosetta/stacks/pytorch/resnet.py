"""ResNet v1 for CIFAR in PyTorch (docs/models.md).

Modules carry the canonical names of dlrosetta.model_spec (stem.conv, stage2.block1.bn1,
head.dense, ...), so loading the canonical weights is a rename plus a layout change.

Twins: python/dlrosetta/stacks/tensorflow/resnet.py, python/dlrosetta/stacks/keras/resnet.py,
       r/stacks/r-keras/R/resnet.R, julia/stacks/julia-native/src/resnet.jl.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlrosetta.model_spec import ResNetBlock, resnet_blocks

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.1  # PyTorch weighs the batch statistic: moving = 0.9*moving + 0.1*batch


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    # padding 1 on both sides for 3x3 (0 for 1x1), as the model definition says.
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv=_conv(cin, cout, kernel, stride),
                                     bn=nn.BatchNorm2d(cout, BN_EPSILON, BN_MOMENTUM)))


class ShortcutA(nn.Module):
    """x[:, :, ::2, ::2] with the new channels zero-padded equally on both sides."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.side = (cout - cin) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.side, self.side))


class BasicBlock(nn.Module):
    def __init__(self, block: ResNetBlock, shortcut: str):
        super().__init__()
        self.conv1 = _conv(block.cin, block.cout, 3, block.stride)
        self.bn1 = nn.BatchNorm2d(block.cout, BN_EPSILON, BN_MOMENTUM)
        self.conv2 = _conv(block.cout, block.cout, 3, 1)
        self.bn2 = nn.BatchNorm2d(block.cout, BN_EPSILON, BN_MOMENTUM)
        if not block.reshapes:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ShortcutA(block.cin, block.cout)
        else:
            self.shortcut = _conv_bn(block.cin, block.cout, 1, block.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


def build_resnet(cfg: Mapping) -> nn.Sequential:
    """The ResNet of a run spec's model_config; NCHW images in, logits out."""
    if cfg["shortcut"] not in ("A", "B"):
        raise ValueError(f"resnet shortcut must be 'A' or 'B', got {cfg['shortcut']!r}")
    blocks = resnet_blocks(cfg["depth"], cfg["width"])
    stages: OrderedDict[str, OrderedDict[str, nn.Module]] = OrderedDict()
    for block in blocks:
        stage, name = block.name.split(".")
        stages.setdefault(stage, OrderedDict())[name] = BasicBlock(block, cfg["shortcut"])
    stem = _conv_bn(cfg.get("channels", 3), cfg["width"], 3, 1)
    stem.add_module("relu", nn.ReLU(inplace=True))
    head = nn.Sequential(OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     dense=nn.Linear(blocks[-1].cout, cfg["num_classes"])))
    return nn.Sequential(OrderedDict(stem=stem, **{s: nn.Sequential(b) for s, b in stages.items()},
                                     head=head))


# Canonical tensor suffix -> PyTorch's name for it.
_TORCH_NAMES = {"kernel": "weight", "gamma": "weight", "beta": "bias", "bias": "bias",
                "moving_mean": "running_mean", "moving_variance": "running_var"}


def _torch_name(name: str) -> str:
    prefix, suffix = name.rsplit(".", 1)
    return f"{prefix}.{_TORCH_NAMES[suffix]}"


def resnet_state_dict(weights: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The canonical weights as this model's state dict: conv HWIO -> OIHW, dense
    [in, out] -> [out, in]."""
    state = {}
    for name, array in weights.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if tensor.ndim == 4:
            tensor = tensor.permute(3, 2, 0, 1)
        elif tensor.ndim == 2:
            tensor = tensor.t()
        state[_torch_name(name)] = tensor.contiguous()
        if name.endswith(".moving_mean"):  # BN's update counter (unused with a fixed momentum)
            state[f"{name.rsplit('.', 1)[0]}.num_batches_tracked"] = torch.tensor(0)
    return state


def resnet_canonical(state: Mapping[str, torch.Tensor], names: list[str]) -> dict[str, np.ndarray]:
    """The inverse of resnet_state_dict for the canonical `names`: OIHW -> HWIO, [out, in] -> [in, out]."""
    out = {}
    for name in names:
        tensor = state[_torch_name(name)].detach().cpu()
        if tensor.ndim == 4:
            tensor = tensor.permute(2, 3, 1, 0)
        elif tensor.ndim == 2:
            tensor = tensor.t()
        out[name] = tensor.numpy()
    return out
