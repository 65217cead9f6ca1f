"""ResNet v1 for CIFAR in MXNet Gluon (docs/models.md), written as Gluon's own model zoo
writes its ResNets: HybridBlocks whose hybrid_forward the trainer hybridises into one
cached graph (static_alloc, static_shape), so training runs MXNet's graph executor with
its memory planned once, not Python op by op.

NCHW throughout: oneDNN's convolutions and batch norm run on it (MXNet 1.9's NHWC
convolutions fail on CPU, ../shared/ENVIRONMENT.md), and ReLU is the Activation operator
(oneDNN's eltwise kernel), not the generic `relu`.

Blocks are registered under the canonical names of dlrosetta.model_spec (stem.conv,
stage2.block1.bn1, head.dense, ...), so a canonical tensor is a Gluon parameter renamed,
its layout permuted (resnet_parameters).

Twins: python/dlrosetta/stacks/pytorch/resnet.py, python/dlrosetta/stacks/keras/resnet.py,
       r/stacks/r-mxnet/R/resnet.R, julia/stacks/julia-native/src/resnet.jl.
"""
from __future__ import annotations

from typing import Mapping, Optional

from mxnet import gluon
from mxnet.gluon import nn

from dlrosetta.model_spec import ResNetBlock, resnet_blocks

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # MXNet weighs the old value: moving = 0.9*moving + 0.1*batch


def named(container: nn.HybridSequential, **children: gluon.HybridBlock) -> nn.HybridSequential:
    """A HybridSequential whose children carry names (in this order) instead of 0, 1, ...:
    the structural parameter names (stem.bn.gamma) are then the canonical ones."""
    for name, child in children.items():
        container.register_child(child, name)
    return container


def _conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2D:
    # padding 1 on both sides for 3x3 (0 for 1x1), as the model definition says.
    return nn.Conv2D(cout, kernel, stride, padding=kernel // 2, use_bias=False, in_channels=cin)


def _bn(channels: int) -> nn.BatchNorm:
    return nn.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, in_channels=channels)


class ShortcutA(gluon.HybridBlock):
    """x[:, :, ::2, ::2] with the new channels zero-padded equally on both sides.

    MXNet's pad operator pads only axes after the first two, so the channels become
    axis 2 of a 5-D view [N, 1, C, H, W] (no copy), padded there, and the view is
    squeezed back (a reshape merging axes, code -3, would do the same, but mx2onnx cannot
    convert it). Concatenating zeros on the channel axis instead crashes MXNet 1.9's
    oneDNN concat backward (SIGFPE) at widths 4 and 8, where 2 or 4 padded channels split
    oneDNN's channel block."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.side = (cout - cin) // 2

    def hybrid_forward(self, F, x):
        x = F.slice(x, begin=(None, None, None, None), end=(None, None, None, None), step=(1, 1, 2, 2))
        x = F.pad(F.expand_dims(x, axis=1), mode="constant", constant_value=0,
                  pad_width=(0, 0, 0, 0, self.side, self.side, 0, 0, 0, 0))
        return F.squeeze(x, axis=1)  # [N, 1, C, H, W] -> [N, C, H, W]


class GlobalMean(gluon.HybridBlock):
    """Global average pooling as a mean over H and W, [N, C, H, W] -> [N, C].

    Not nn.GlobalAvgPool2D: its [N, C, 1, 1] output gets its gradient back from the dense
    layer in a layout (acdB16b) for which oneDNN 2.4 has only reference kernels, so the
    pooling backward and the batch norm backward below it ran single-threaded reference
    code: 40% of a training step on one thread, gone with the mean."""

    def hybrid_forward(self, F, x):
        return F.mean(x, axis=(2, 3))


class BasicBlock(gluon.HybridBlock):
    def __init__(self, block: ResNetBlock, shortcut: str):
        super().__init__()
        with self.name_scope():
            self.conv1 = _conv(block.cin, block.cout, 3, block.stride)
            self.bn1 = _bn(block.cout)
            self.conv2 = _conv(block.cout, block.cout, 3, 1)
            self.bn2 = _bn(block.cout)
            if not block.reshapes:
                self.shortcut = None
            elif shortcut == "A":
                self.shortcut = ShortcutA(block.cin, block.cout)
            else:
                self.shortcut = named(nn.HybridSequential(), conv=_conv(block.cin, block.cout, 1, block.stride),
                                      bn=_bn(block.cout))

    def hybrid_forward(self, F, x):
        y = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        y = self.bn2(self.conv2(y))
        # elemwise_add is what `+` of two symbols is (_Plus); spelt out, as R writes it.
        return F.Activation(F.elemwise_add(y, x if self.shortcut is None else self.shortcut(x)), act_type="relu")


def build_resnet(cfg: Mapping) -> nn.HybridSequential:
    """The ResNet of a run spec's model_config; NCHW images in, logits out. Every shape
    is given (in_channels, in_units), so the parameters exist before the first batch."""
    if cfg["shortcut"] not in ("A", "B"):
        raise ValueError(f"resnet shortcut must be 'A' or 'B', got {cfg['shortcut']!r}")
    blocks = resnet_blocks(cfg["depth"], cfg["width"])
    net = named(nn.HybridSequential(), stem=named(nn.HybridSequential(), conv=_conv(cfg.get("channels", 3), cfg["width"], 3, 1),
                                                  bn=_bn(cfg["width"]), relu=nn.Activation("relu")))
    stages: dict[str, dict[str, BasicBlock]] = {}
    for block in blocks:
        stage, name = block.name.split(".")
        stages.setdefault(stage, {})[name] = BasicBlock(block, cfg["shortcut"])
    for stage, children in stages.items():
        named(net, **{stage: named(nn.HybridSequential(), **children)})
    return named(net, head=named(nn.HybridSequential(), pool=GlobalMean(),
                                 dense=nn.Dense(cfg["num_classes"], in_units=blocks[-1].cout)))


# Gluon's parameter name -> the canonical tensor's (dlrosetta.model_spec).
_CANONICAL_NAMES = {"weight": "kernel", "gamma": "gamma", "beta": "beta", "bias": "bias",
                    "running_mean": "moving_mean", "running_var": "moving_variance"}
# The axes permuting a canonical tensor to Gluon's layout, by rank: conv HWIO -> OIHW,
# dense [in, out] -> [out, in]; others are the same.
_TO_GLUON = {4: (3, 2, 0, 1), 2: (1, 0)}


def resnet_parameters(net: nn.HybridSequential) -> dict[str, tuple[gluon.Parameter, Optional[tuple[int, ...]]]]:
    """Canonical tensor name -> (its Gluon parameter, the axes permuting the canonical
    layout to Gluon's or None), matched by structural name (stem.bn.running_mean, as
    Block.save_parameters names them)."""
    out = {}
    for name, param in net._collect_params_with_prefix().items():
        prefix, suffix = name.rsplit(".", 1)
        out[f"{prefix}.{_CANONICAL_NAMES[suffix]}"] = (param, _TO_GLUON.get(len(param.shape)))
    return out
